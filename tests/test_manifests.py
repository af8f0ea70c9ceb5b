"""Every YAML under manifests/ checked offline, plus the version pins and the GKE/kind cross-references.

Core Kubernetes objects are validated with kubernetes-validate (strict: unknown fields fail) against one
pinned schema version. kind's Cluster config, kustomize's Kustomization and Config Connector objects are
not core Kubernetes and have no schema there: they get structural checks (apiVersion, kind, the fields
the harness and the pipeline rely on) instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from pipelines.config import CONFIG_DIR, load_config

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
# The oldest Kubernetes KFP 2.17's CI runs on (v1.33.12 and v1.36.1); the kind node image is 1.36.
K8S_SCHEMA_VERSION = "1.33"
KIND_API = "kind.x-k8s.io/v1alpha4"
KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"
CONFIG_CONNECTOR_GROUP = "cnrm.cloud.google.com"
RUNNER_SA = "cxr-pipeline-runner"
GPU_POOL_LABEL = ("cxr-kfp/pool", "gpu")


def yaml_files() -> list[Path]:
    return sorted(p for p in MANIFESTS.rglob("*") if p.suffix in (".yaml", ".yml"))


def documents() -> list[tuple[str, dict]]:
    docs = []
    for path in yaml_files():
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is not None:
                docs.append((f"{path.relative_to(ROOT)}#{i}", doc))
    return docs


DOCS = documents()


def by_kind(kind: str) -> list[dict]:
    return [doc for _, doc in DOCS if doc.get("kind") == kind]


def is_core(doc: dict) -> bool:
    api = doc.get("apiVersion", "")
    return api not in (KIND_API, KUSTOMIZE_API) and CONFIG_CONNECTOR_GROUP not in api


def test_manifests_exist():
    names = {str(p.relative_to(MANIFESTS)) for p in yaml_files()}
    assert {"kind/cluster.yaml", "cluster/kustomization.yaml", "gke/containernodepool-t4x2.yaml"} <= names
    assert len(DOCS) >= 7


@pytest.mark.parametrize("where,doc", DOCS, ids=[where for where, _ in DOCS])
def test_document_has_api_version_kind_and_name(where, doc):
    assert isinstance(doc, dict), f"{where}: not a mapping"
    assert doc.get("apiVersion") and doc.get("kind"), f"{where}: apiVersion and kind are required"
    if doc["kind"] not in ("Kustomization", "Cluster"):
        assert doc.get("metadata", {}).get("name"), f"{where}: metadata.name is required"


@pytest.mark.parametrize(
    "where,doc", [(w, d) for w, d in DOCS if is_core(d)], ids=[w for w, d in DOCS if is_core(d)]
)
def test_core_objects_validate_against_pinned_schema(where, doc):
    try:
        kubernetes_validate.validate(doc, K8S_SCHEMA_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        pytest.fail(f"{where}: {path}: {exc.message}")
    except kubernetes_validate.SchemaNotFoundError as exc:
        pytest.fail(f"{where}: {exc.message} (not core Kubernetes? give it a structural check here)")


def test_the_validator_catches_a_typo():
    (role,) = by_kind("Role")
    broken = {**role, "rules": [{**role["rules"][0], "verb": ["get"]}]}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_SCHEMA_VERSION, strict=True)


def test_namespaced_objects_live_in_kubeflow():
    for where, doc in DOCS:
        if is_core(doc) and doc["kind"] in ("ServiceAccount", "Role", "RoleBinding", "ResourceQuota"):
            assert doc["metadata"].get("namespace") == "kubeflow", where


# --- kind


def kind_cluster() -> dict:
    (cluster,) = by_kind("Cluster")
    return cluster


def test_kind_cluster_structure():
    cluster = kind_cluster()
    assert cluster["apiVersion"] == KIND_API
    assert cluster["networking"]["apiServerAddress"] == "127.0.0.1"
    roles = [node["role"] for node in cluster["nodes"]]
    assert roles.count("control-plane") == 1 and roles.count("worker") >= 1
    assert set(roles) <= {"control-plane", "worker"}
    for node in cluster["nodes"]:
        assert set(node) <= {
            "role",
            "image",
            "labels",
            "extraMounts",
            "extraPortMappings",
            "kubeadmConfigPatches",
        }, node


def test_kind_node_image_pinned_by_tag():
    pattern = re.compile(r"^kindest/node:v(\d+)\.(\d+)\.(\d+)(@sha256:[0-9a-f]{64})?$")
    images = {node.get("image") for node in kind_cluster()["nodes"]}
    assert len(images) == 1, f"one node image for every node, not {images}"
    (image,) = images
    match = pattern.match(image or "")
    assert match, f"node image {image!r} must be kindest/node:vX.Y.Z (no :latest, no bare name)"
    minor = tuple(int(x) for x in match.groups()[:2])
    assert minor >= tuple(int(x) for x in K8S_SCHEMA_VERSION.split(".")), (
        "the kind node must not be older than the schema the manifests are validated against"
    )


def test_kind_has_one_gpu_worker_for_the_fake_gpu_lane():
    key, value = GPU_POOL_LABEL
    gpu = [n for n in kind_cluster()["nodes"] if n.get("labels", {}).get(key) == value]
    other = [n for n in kind_cluster()["nodes"] if n["role"] == "worker" and n not in gpu]
    assert len(gpu) == 1 and gpu[0]["role"] == "worker"
    assert other, "the CPU steps and KFP need an untainted worker besides the GPU one"
    assert f"KIND_GPU_NODE_LABEL := {key}={value}" in (MANIFESTS / "kind.mk").read_text()


# --- versions


def test_kfp_backend_version_matches_sdk_pins():
    env = (MANIFESTS / "kfp-version.env").read_text()
    assignments = [line for line in env.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(assignments) == 1, "kfp-version.env holds KFP_BACKEND_VERSION and nothing else"
    match = re.fullmatch(r"KFP_BACKEND_VERSION=(\d+)\.(\d+)\.(\d+)", assignments[0].strip())
    assert match, assignments[0]
    backend = match.group(1, 2)
    pyproject = (ROOT / "pyproject.toml").read_text()
    for package in ("kfp", "kfp-kubernetes"):
        pin = re.search(rf'"{package}==(\d+)\.(\d+)\.[0-9*]+"', pyproject)
        assert pin, f"pyproject.toml pins {package}==MAJOR.MINOR.*"
        sdk = ".".join(pin.group(1, 2))
        assert pin.group(1, 2) == backend, f"{package} {sdk} vs backend {'.'.join(backend)}: move together"


def test_kind_mk_reads_the_version_file():
    text = (MANIFESTS / "kind.mk").read_text()
    assert "include $(KIND_MK_DIR)/kfp-version.env" in text
    assert "KFP_BACKEND_VERSION=" not in text.replace("KFP_BACKEND_VERSION='$(KFP_BACKEND_VERSION)'", "")
    assert 'source "$MANIFESTS_DIR/kfp-version.env"' in (MANIFESTS / "kind" / "deploy-kfp.sh").read_text()


def test_deploy_installs_platform_agnostic_standalone_at_the_pin():
    script = (MANIFESTS / "kind" / "deploy-kfp.sh").read_text()
    base = "github.com/kubeflow/pipelines/manifests/kustomize"
    assert f'kustomize_base="{base}"' in script
    order = [
        script.index(s)
        for s in (
            "cluster-scoped-resources?ref=$KFP_BACKEND_VERSION",
            "crd/applications.app.k8s.io",
            "env/platform-agnostic?ref=$KFP_BACKEND_VERSION",
        )
    ]
    assert order == sorted(order)
    assert "deployment/$deployment" in script and "for deployment in mysql ml-pipeline" in script


# --- manifests/cluster


def test_kustomization_lists_every_cluster_manifest():
    kustomization = yaml.safe_load((MANIFESTS / "cluster" / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == KUSTOMIZE_API and kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == "kubeflow"
    listed = set(kustomization["resources"])
    present = {p.name for p in (MANIFESTS / "cluster").glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_runner_service_account_is_annotated_for_workload_identity():
    (sa,) = by_kind("ServiceAccount")
    assert sa["metadata"]["name"] == RUNNER_SA
    gsa = sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
    assert re.fullmatch(r"cxr-pipeline@PROJECT_ID\.iam\.gserviceaccount\.com", gsa), "placeholder PROJECT_ID"
    script = (MANIFESTS / "gke" / "workload-identity.sh").read_text()
    assert f"KSA={RUNNER_SA}" in script and 'GSA_NAME="${GSA_NAME:-cxr-pipeline}"' in script
    assert f"KFP_RUNNER_SA ?= {RUNNER_SA}" in (MANIFESTS / "kind.mk").read_text()


def test_rbac_is_least_privilege():
    (role,) = by_kind("Role")
    (binding,) = by_kind("RoleBinding")
    assert not by_kind("ClusterRole") and not by_kind("ClusterRoleBinding")
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], f"wildcard {key} in {rule}"
        assert not set(rule["verbs"]) & {"delete", "deletecollection", "escalate", "bind", "impersonate"}
        if "secrets" in rule["resources"] or "configmaps" in rule["resources"]:
            assert rule.get("resourceNames"), f"secrets and config maps by name only: {rule}"
            assert rule["verbs"] == ["get"]
    granted = {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert ("argoproj.io", "workflowtaskresults", "create") in granted  # Argo executor >= 3.4
    assert ("", "secrets", "get") in granted  # object-store credentials
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": RUNNER_SA, "namespace": "kubeflow"}]


def test_gpu_quota_fits_three_parallel_train_tasks():
    (quota,) = by_kind("ResourceQuota")
    placement = load_config(CONFIG_DIR / "cluster.yaml", env={}).placement
    assert int(quota["spec"]["hard"]["requests.nvidia.com/gpu"]) == 3 * placement.accelerator_count


# --- GKE


def test_config_connector_node_pool_matches_the_cluster_placement():
    (pool,) = by_kind("ContainerNodePool")
    assert pool["apiVersion"] == "container.cnrm.cloud.google.com/v1beta1"
    spec = pool["spec"]
    assert {"location", "clusterRef"} <= set(spec), "Config Connector requires location and clusterRef"
    assert pool["metadata"]["annotations"]["cnrm.cloud.google.com/project-id"] == "PROJECT_ID"
    (accelerator,) = spec["nodeConfig"]["guestAccelerator"]
    placement = load_config(CONFIG_DIR / "cluster.yaml", env={}).placement
    assert accelerator["type"] == placement.node_selector_value == "nvidia-tesla-t4"
    assert accelerator["count"] == placement.accelerator_count == 2
    assert accelerator["gpuDriverInstallationConfig"]["gpuDriverVersion"] == "DEFAULT"
    assert placement.node_selector_key == "cloud.google.com/gke-accelerator"
    assert placement.toleration_key == "nvidia.com/gpu"
    assert spec["nodeConfig"]["machineType"].startswith("n1-")  # T4s attach to N1 machines only
    assert spec["nodeConfig"]["workloadMetadataConfig"]["mode"] == "GKE_METADATA"
    assert spec["autoscaling"]["maxNodeCount"] >= 1


def test_gcloud_node_pool_script_dry_run():
    env = {**os.environ, "PROJECT_ID": "my-project", "CLUSTER": "kfp", "LOCATION": "us-central1-a"}
    out = subprocess.run(
        [str(MANIFESTS / "gke" / "gpu-node-pool.sh"), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert out.startswith("gcloud container node-pools create t4x2 --project my-project --cluster kfp")
    for part in (
        "--machine-type n1-standard-16",
        "--accelerator type=nvidia-tesla-t4,count=2,gpu-driver-version=default",
        "--workload-metadata GKE_METADATA",
        "--enable-autoscaling",
    ):
        assert part in out
    env["PROJECT_ID"] = "PROJECT_ID"
    refused = subprocess.run(
        [str(MANIFESTS / "gke" / "gpu-node-pool.sh"), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2 and "set PROJECT_ID" in refused.stderr


def test_workload_identity_script_dry_run():
    env = {**os.environ, "PROJECT_ID": "my-project", "DATA_BUCKET": "xrays"}
    out = subprocess.run(
        [str(MANIFESTS / "gke" / "workload-identity.sh"), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "--role roles/storage.objectViewer" in out and "gs://xrays" in out
    assert f"serviceAccount:my-project.svc.id.goog[kubeflow/{RUNNER_SA}]" in out
    assert "cxr-pipeline@my-project.iam.gserviceaccount.com" in out


# --- scripts


SCRIPTS = sorted(MANIFESTS.rglob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(s.relative_to(MANIFESTS)) for s in SCRIPTS])
def test_shell_scripts_parse_and_are_strict(script):
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    text = script.read_text()
    if script.name != "lib.sh":  # sourced, not run
        assert text.startswith("#!/usr/bin/env bash\n"), script
        assert "set -euo pipefail" in text
        assert os.access(script, os.X_OK), f"{script} is not executable"


def test_shell_scripts_pass_shellcheck():
    assert shutil.which("shellcheck"), "shellcheck is missing: `make test-tools` installs it"
    result = subprocess.run(
        ["shellcheck", "-x", "-P", str(MANIFESTS / "kind"), *map(str, SCRIPTS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout


def test_no_latest_tags_anywhere():
    for path in [*yaml_files(), *SCRIPTS, MANIFESTS / "kind.mk"]:
        assert not re.search(r":latest\b", path.read_text()), path
