"""Every YAML under manifests/ checked offline, plus the version pins and the GKE/kind cross-references.

Core Kubernetes objects are validated with kubernetes-validate (strict: unknown fields fail) against one
pinned schema version. kind's Cluster config, kustomize's Kustomization and Config Connector objects are
not core Kubernetes and have no schema there: they get structural checks (apiVersion, kind, the fields
the harness and the pipeline rely on) instead.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from pipelines.config import CONFIG_DIR, load_config
from tests.shell import BASH3_ENV, bash4_constructs

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


def node_taints(node: dict) -> list[dict]:
    """The taints kubeadm registers the node with (kind's kubeadmConfigPatches)."""
    taints = []
    for patch in node.get("kubeadmConfigPatches", []):
        doc = yaml.safe_load(patch)
        if doc.get("kind") in ("JoinConfiguration", "InitConfiguration"):
            taints += doc.get("nodeRegistration", {}).get("taints", [])
    return taints


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    """Kubernetes' rule: same key (or an empty key with Exists), value unless Exists, effect unless empty."""
    for t in tolerations:
        key_ok = t.get("key") == taint["key"] or (not t.get("key") and t.get("operator") == "Exists")
        value_ok = t.get("operator") == "Exists" or t.get("value") == taint.get("value")
        if key_ok and value_ok and t.get("effect", "") in ("", taint["effect"]):
            return True
    return False


def test_kind_gpu_worker_is_tainted_from_the_start_so_kfp_stays_on_the_cpu_worker():
    """KFP's MySQL and object store pin their volumes to the node they first run on: the GPU worker must
    be tainted before KFP is installed, and only the train tasks may tolerate it.
    """
    key, value = GPU_POOL_LABEL
    (gpu,) = [n for n in kind_cluster()["nodes"] if n.get("labels", {}).get(key) == value]
    taints = node_taints(gpu)
    assert taints == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "gpu", "labels": gpu["labels"]},
        "spec": {"taints": taints},
    }
    kubernetes_validate.validate(node, K8S_SCHEMA_VERSION, strict=True)
    for other in kind_cluster()["nodes"]:
        if other is not gpu and other["role"] == "worker":
            assert node_taints(other) == [], "KFP needs an untainted worker"
    placement = json.loads((ROOT / "tests" / "golden" / "placement.json").read_text())
    for task, spec in placement.items():
        kubernetes = spec["kubernetes"] or {}
        admitted = tolerates(kubernetes.get("tolerations", []), taints[0])
        assert admitted == (task == "exec-train-op"), task
        if admitted:
            assert kubernetes["nodeSelector"]["labels"].items() <= gpu["labels"].items(), (
                "the train task's node selector must match the GPU worker"
            )


def test_kind_taint_checks_catch_a_wrong_taint():
    assert not tolerates(
        [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoExecute"},
    )
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "n"},
                "spec": {"taints": [{"key": "k", "effects": "NoSchedule"}]},
            },
            K8S_SCHEMA_VERSION,
            strict=True,
        )


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
    assert 'fetch="ref=$KFP_BACKEND_VERSION&timeout=${KIND_FETCH_TIMEOUT}s"' in script
    order = [
        script.index(s)
        for s in (
            "cluster-scoped-resources?$fetch",
            "crd/applications.app.k8s.io",
            "env/platform-agnostic?$fetch",
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


def test_config_connector_node_pool_starts_empty_scales_in_total_and_can_be_spot():
    (pool,) = by_kind("ContainerNodePool")
    spec = pool["spec"]
    assert spec["initialNodeCount"] == 0, "an idle 2 x T4 node bills by the hour"
    autoscaling = spec["autoscaling"]
    assert autoscaling["totalMinNodeCount"] == 0 and autoscaling["totalMaxNodeCount"] >= 1
    assert not {"minNodeCount", "maxNodeCount"} & set(autoscaling), "per-zone limits multiply by the zones"
    assert spec["nodeLocations"] == ["T4_ZONE"], "not every zone of a region has T4s"
    assert spec["nodeConfig"]["spot"] is False, "the spot switch is a boolean field, off by default"


def test_config_connector_node_pool_runs_as_the_node_service_account_that_may_pull():
    (pool,) = by_kind("ContainerNodePool")
    ref = pool["spec"]["nodeConfig"]["serviceAccountRef"]
    (account,) = by_kind("IAMServiceAccount")
    assert ref == {"name": account["metadata"]["name"]}
    roles = {
        member["spec"]["role"]
        for member in by_kind("IAMPolicyMember")
        if member["spec"].get("memberFrom", {}).get("serviceAccountRef") == ref
    }
    assert roles == set(NODE_ROLES)
    for member in by_kind("IAMPolicyMember"):
        assert member["spec"]["resourceRef"] == {"kind": "Project", "external": "projects/PROJECT_ID"}


# --- GKE scripts: dry runs, and runs against a fake gcloud and kubectl

GKE = MANIFESTS / "gke"
NODE_ROLES = ("roles/container.defaultNodeServiceAccount", "roles/artifactregistry.reader")
GKE_SETTINGS = {"PROJECT_ID": "my-project", "CLUSTER": "kfp", "LOCATION": "us-central1-a"}
FLAGS_WITHOUT_VALUE = {
    "--enable-autoscaling",
    "--enable-autorepair",
    "--enable-autoupgrade",
    "--spot",
    "--overwrite",
}


def gke_script(name: str, *args: str, path: str | None = None, **settings: str):
    env = {k: v for k, v in os.environ.items() if k not in ("IMAGE_REGISTRY", "ARTIFACT_BUCKET", "SPOT")}
    env.update(BASH3_ENV, **settings)
    if path:
        env["PATH"] = f"{path}:{env['PATH']}"
    return subprocess.run([str(GKE / name), *args], env=env, capture_output=True, text=True, timeout=30)


def dry_run(name: str, *args: str, **settings: str) -> list[list[str]]:
    """The commands a script prints under --dry-run, as argument lists."""
    result = gke_script(name, "--dry-run", *args, **settings)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines() if line.strip()]


def options(command: list[str]) -> dict[str, str | bool]:
    """--flag value pairs of one command line (flags that take no value map to True)."""
    out, i = {}, 0
    while i < len(command):
        word = command[i]
        if word.startswith("--"):
            if word in FLAGS_WITHOUT_VALUE:
                out[word] = True
            else:
                out[word], i = command[i + 1], i + 1
        i += 1
    return out


def the_command(commands: list[list[str]], *prefix: str) -> list[str]:
    (command,) = [c for c in commands if c[: len(prefix)] == list(prefix)]
    return command


def test_gpu_pool_script_creates_the_pool_with_its_own_node_service_account():
    commands = dry_run("gpu-node-pool.sh", **{**GKE_SETTINGS, "PROJECT_ID": "my-project"})
    create = the_command(commands, "gcloud", "container", "node-pools", "create")
    assert create[4] == "t4x2"
    flags = options(create)
    node_sa = "cxr-gke-node@my-project.iam.gserviceaccount.com"
    assert flags["--service-account"] == node_sa and flags["--scopes"] == "cloud-platform"
    assert flags["--machine-type"] == "n1-standard-16"
    assert flags["--accelerator"] == "type=nvidia-tesla-t4,count=2,gpu-driver-version=default"
    assert flags["--workload-metadata"] == "GKE_METADATA"
    # The account exists and holds its roles before a node runs as it.
    created = commands.index(the_command(commands, "gcloud", "iam", "service-accounts", "create"))
    grants = [c for c in commands if c[:3] == ["gcloud", "projects", "add-iam-policy-binding"]]
    assert {options(c)["--role"] for c in grants} == set(NODE_ROLES)
    assert all(options(c)["--member"] == f"serviceAccount:{node_sa}" for c in grants)
    assert created < min(commands.index(c) for c in grants) < commands.index(create)


def test_gpu_pool_starts_at_zero_nodes_and_caps_the_total():
    flags = options(
        the_command(
            dry_run("gpu-node-pool.sh", **GKE_SETTINGS, MAX_NODES="3"),
            "gcloud",
            "container",
            "node-pools",
            "create",
        )
    )
    assert flags["--num-nodes"] == "0" and flags["--enable-autoscaling"] is True
    assert flags["--total-min-nodes"] == "0" and flags["--total-max-nodes"] == "3"
    assert not {"--min-nodes", "--max-nodes"} & set(flags), "per-zone limits multiply by the zones"
    assert "--spot" not in flags and "--node-locations" not in flags


def test_gpu_pool_in_a_regional_cluster_needs_zones_with_t4s():
    refused = gke_script("gpu-node-pool.sh", "--dry-run", **{**GKE_SETTINGS, "LOCATION": "us-central1"})
    assert refused.returncode == 1 and not refused.stdout
    assert "LOCATION=us-central1 is a region" in refused.stderr and "set NODE_LOCATIONS" in refused.stderr
    flags = options(
        the_command(
            dry_run(
                "gpu-node-pool.sh",
                **{**GKE_SETTINGS, "LOCATION": "us-central1"},
                NODE_LOCATIONS="us-central1-a,us-central1-c",
            ),
            "gcloud",
            "container",
            "node-pools",
            "create",
        )
    )
    assert flags["--location"] == "us-central1" and flags["--node-locations"] == "us-central1-a,us-central1-c"


def test_gpu_pool_spot_option():
    flags = options(
        the_command(
            dry_run("gpu-node-pool.sh", **GKE_SETTINGS, SPOT="true"),
            "gcloud",
            "container",
            "node-pools",
            "create",
        )
    )
    assert flags["--spot"] is True and flags["--location-policy"] == "ANY"
    refused = gke_script("gpu-node-pool.sh", "--dry-run", **GKE_SETTINGS, SPOT="yes")
    assert refused.returncode == 1 and "SPOT must be true or false" in refused.stderr


@pytest.mark.parametrize(
    "registry,grant",
    [
        (
            "europe-west4-docker.pkg.dev/images-project/cxr",
            [
                "gcloud",
                "artifacts",
                "repositories",
                "add-iam-policy-binding",
                "cxr",
                "--project",
                "images-project",
                "--location",
                "europe-west4",
            ],
        ),
        ("", ["gcloud", "projects", "add-iam-policy-binding", "my-project"]),
    ],
)
def test_image_pulls_are_granted_on_the_images_repository(registry, grant):
    commands = dry_run("gpu-node-pool.sh", **GKE_SETTINGS, IMAGE_REGISTRY=registry)
    (pulls,) = [c for c in commands if options(c).get("--role") == "roles/artifactregistry.reader"]
    assert pulls[: len(grant)] == grant


def test_gcloud_script_and_config_connector_describe_the_same_pool():
    (pool,) = by_kind("ContainerNodePool")
    spec, node = pool["spec"], pool["spec"]["nodeConfig"]
    flags = options(
        the_command(
            dry_run("gpu-node-pool.sh", **GKE_SETTINGS), "gcloud", "container", "node-pools", "create"
        )
    )
    (accelerator,) = node["guestAccelerator"]
    assert flags["--accelerator"] == (
        f"type={accelerator['type']},count={accelerator['count']},"
        f"gpu-driver-version={accelerator['gpuDriverInstallationConfig']['gpuDriverVersion'].lower()}"
    )
    assert flags["--machine-type"] == node["machineType"]
    assert flags["--disk-type"] == node["diskType"] and flags["--disk-size"] == str(node["diskSizeGb"])
    assert flags["--num-nodes"] == str(spec["initialNodeCount"])
    assert flags["--total-min-nodes"] == str(spec["autoscaling"]["totalMinNodeCount"])
    assert flags["--total-max-nodes"] == str(spec["autoscaling"]["totalMaxNodeCount"])
    assert flags["--location-policy"] == spec["autoscaling"]["locationPolicy"]
    assert flags["--workload-metadata"] == node["workloadMetadataConfig"]["mode"]
    assert f"https://www.googleapis.com/auth/{flags['--scopes']}" == "".join(node["oauthScopes"])
    assert flags["--service-account"].split("@")[0] == node["serviceAccountRef"]["name"]
    assert flags["--node-labels"] == ",".join(f"{k}={v}" for k, v in node["labels"].items())
    assert ("--spot" in flags) == node["spot"]
    assert (
        pool["metadata"]["name"]
        == the_command(
            dry_run("gpu-node-pool.sh", **GKE_SETTINGS), "gcloud", "container", "node-pools", "create"
        )[4]
    )


def test_gke_scripts_refuse_placeholders_and_unknown_flags():
    refused = gke_script("gpu-node-pool.sh", "--dry-run", **{**GKE_SETTINGS, "PROJECT_ID": "PROJECT_ID"})
    assert refused.returncode == 2 and "set PROJECT_ID" in refused.stderr
    refused = gke_script("gpu-node-pool.sh", "--dry-rum", **GKE_SETTINGS)
    assert refused.returncode == 2 and "unknown argument '--dry-rum'" in refused.stderr


WI_SETTINGS = {**GKE_SETTINGS, "LOCATION": "us-central1", "DATA_BUCKET": "xrays"}


def test_workload_identity_script_dry_run():
    commands = dry_run("workload-identity.sh", **WI_SETTINGS)
    lines = [" ".join(c) for c in commands]
    out = "\n".join(lines)
    assert "--role roles/storage.objectViewer" in out and "gs://xrays" in out
    assert f"serviceAccount:my-project.svc.id.goog[kubeflow/{RUNNER_SA}]" in out
    assert "cxr-pipeline@my-project.iam.gserviceaccount.com" in out
    for pool in ("default-pool", "t4x2"):
        assert f"gcloud container node-pools describe {pool} --cluster kfp --location us-central1" in out
    assert "node-pools update" not in out, "without --update-node-pools nothing is changed"
    assert "ml-pipeline-ui" not in out and "objectUser" not in out, "no artifact bucket, no UI account"


def test_workload_identity_with_an_artifact_bucket_grants_the_runner_and_the_ui():
    commands = dry_run("workload-identity.sh", **WI_SETTINGS, ARTIFACT_BUCKET="gs://kfp-artifacts")
    on_bucket = {
        (options(c)["--member"], options(c)["--role"])
        for c in commands
        if c[:4] == ["gcloud", "storage", "buckets", "add-iam-policy-binding"]
        and c[4] == "gs://kfp-artifacts"
    }
    runner, ui = (
        "serviceAccount:cxr-pipeline@my-project.iam.gserviceaccount.com",
        "serviceAccount:cxr-kfp-ui@my-project.iam.gserviceaccount.com",
    )
    assert on_bucket == {(runner, "roles/storage.objectUser"), (ui, "roles/storage.objectViewer")}
    impersonation = {
        (c[4], options(c)["--member"])
        for c in commands
        if options(c).get("--role") == "roles/iam.workloadIdentityUser"
    }
    ui_ksa = "serviceAccount:my-project.svc.id.goog[kubeflow/ml-pipeline-ui]"
    assert (ui.split(":")[1], ui_ksa) in impersonation
    annotate = the_command(commands, "kubectl", "-n", "kubeflow", "annotate")
    assert annotate[4:6] == ["serviceaccount", "ml-pipeline-ui"]
    assert f"iam.gke.io/gcp-service-account={ui.split(':')[1]}" in annotate


FAKE_GCLOUD = """#!{python}
# gcloud and kubectl stand-in: logs each call to STUB_LOG, answers the queries from the STUB_* settings.
import os, sys
args, name = sys.argv[1:], os.path.basename(sys.argv[0])
open(os.environ["STUB_LOG"], "a").write(" ".join([name, *args]) + "\\n")
env = os.environ.get
if name == "kubectl":
    if args[0] == "apply":
        sys.stdin.read()
    elif args[0] == "kustomize":
        print("apiVersion: v1\\nkind: ServiceAccount")
    sys.exit(0)
if args[:3] == ["container", "clusters", "describe"]:
    print(env("STUB_WORKLOAD_POOL", "my-project.svc.id.goog"))
elif args[:3] == ["container", "node-pools", "describe"]:
    pool = args[3]
    if pool == env("STUB_MISSING_POOL"):
        sys.exit("ERROR: (gcloud.container.node-pools.describe) NOT_FOUND")
    modes = dict(pair.split("=") for pair in env("STUB_MODES", "").split(",") if pair)
    account = env("STUB_CPU_NODE_SA", "default") if pool == "default-pool" else "cxr-gke-node@my-project"
    print(modes.get(pool, "GKE_METADATA") + "\\t" + account)
elif args[:2] == ["projects", "describe"]:
    print("123456789012")
elif args[:3] == ["iam", "service-accounts", "describe"]:
    sys.exit(1)
"""


def run_with_fake_gcloud(tmp_path: Path, *args: str, **stub: str):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("gcloud", "kubectl"):
        (bin_dir / tool).write_text(FAKE_GCLOUD.format(python=sys.executable))
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / "calls.log"
    log.touch()
    result = gke_script(
        "workload-identity.sh", *args, path=str(bin_dir), STUB_LOG=str(log), **WI_SETTINGS, **stub
    )
    return result, log.read_text().splitlines()


def changes(calls: list[str]) -> list[str]:
    return [c for c in calls if re.search(r" (create|add-iam-policy-binding|update|apply|annotate) ", c)]


def test_workload_identity_refuses_a_pool_without_gke_metadata_and_changes_nothing(tmp_path):
    result, calls = run_with_fake_gcloud(tmp_path, STUB_MODES="default-pool=GCE_METADATA")
    assert result.returncode == 1
    assert "node pool default-pool has workload metadata 'GCE_METADATA', not GKE_METADATA" in result.stderr
    assert "--update-node-pools" in result.stderr
    assert changes(calls) == []


def test_workload_identity_updates_the_pools_that_need_it(tmp_path):
    result, calls = run_with_fake_gcloud(tmp_path, "--update-node-pools", STUB_MODES="t4x2=")
    assert result.returncode == 0, result.stderr
    updates = [c for c in calls if "node-pools update" in c]
    assert updates == [
        "gcloud container node-pools update t4x2 --cluster kfp --location us-central1 "
        "--project my-project --workload-metadata GKE_METADATA"
    ]


def test_workload_identity_lets_the_cpu_nodes_pull_the_images(tmp_path):
    result, calls = run_with_fake_gcloud(tmp_path, IMAGE_REGISTRY="us-central1-docker.pkg.dev/my-project/cxr")
    assert result.returncode == 0, result.stderr
    assert (
        "gcloud artifacts repositories add-iam-policy-binding cxr --project my-project --location "
        "us-central1 --member serviceAccount:123456789012-compute@developer.gserviceaccount.com "
        "--role roles/artifactregistry.reader"
    ) in calls
    result, calls = run_with_fake_gcloud(
        tmp_path / "custom", STUB_CPU_NODE_SA="nodes@my-project.iam.gserviceaccount.com"
    )
    assert result.returncode == 0, result.stderr
    assert any(
        "--member serviceAccount:nodes@my-project.iam.gserviceaccount.com --role "
        "roles/artifactregistry.reader" in c
        for c in calls
    )


@pytest.mark.parametrize(
    "stub,reason",
    [
        ({"STUB_WORKLOAD_POOL": ""}, "cluster kfp has no Workload Identity"),
        ({"STUB_MISSING_POOL": "t4x2"}, "no node pool t4x2 in cluster kfp"),
    ],
)
def test_workload_identity_needs_the_cluster_ready(tmp_path, stub, reason):
    result, calls = run_with_fake_gcloud(tmp_path, **stub)
    assert result.returncode == 1 and reason in result.stderr
    assert changes(calls) == []


def test_gcloud_accepts_every_flag_the_scripts_use(tmp_path):
    """Each gcloud command the GKE scripts print, checked against that command's own --help (offline)."""
    if not shutil.which("gcloud"):
        pytest.skip("gcloud is not installed")
    commands = [
        *dry_run(
            "gpu-node-pool.sh",
            **{**GKE_SETTINGS, "LOCATION": "us-central1"},
            NODE_LOCATIONS="us-central1-a",
            SPOT="true",
            IMAGE_REGISTRY="us-docker.pkg.dev/p/r",
        ),
        *dry_run("gpu-node-pool.sh", **GKE_SETTINGS),
        *dry_run("workload-identity.sh", "--update-node-pools", **WI_SETTINGS, ARTIFACT_BUCKET="a"),
    ]
    # Offline and local: no metadata-server probe, no usage report, no update check.
    env = {
        **os.environ,
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
    }
    by_command = {}
    for command in commands:
        if command[0] == "gcloud":
            words = tuple(itertools.takewhile(lambda w: not w.startswith("--"), command[1:]))
            by_command.setdefault(words, []).append(command)

    def help_text(words):
        out = subprocess.run(
            ["gcloud", *words, "--help"], env=env, capture_output=True, text=True, timeout=60
        )
        return re.sub(r"\x1b\[[0-9;]*m", "", out.stdout)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        helps = dict(zip(by_command, pool.map(help_text, by_command), strict=True))
    assert len(helps) >= 9
    for words, text in helps.items():
        known = set(re.findall(r"--[a-z][a-z-]*", text))
        choices = dict(re.findall(r"([A-Z_]+) must be one of: ([^.]+)\.", text))
        metavars = dict(re.findall(r"(--[a-z][a-z-]*)=([A-Z_]+)", text))
        for command in by_command[words]:
            for flag, value in options(command).items():
                assert flag in known, f"gcloud {' '.join(words)}: no flag {flag}"
                allowed = choices.get(metavars.get(flag, ""))
                if allowed:
                    assert value in re.split(r",\s*", allowed), f"{flag} {value}: not one of {allowed}"


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


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(s.relative_to(MANIFESTS)) for s in SCRIPTS])
def test_shell_scripts_run_on_bash_3_2(script):
    """macOS's bash; every test that runs these scripts also runs them without bash 4's builtins."""
    assert bash4_constructs(script.read_text()) == []


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
