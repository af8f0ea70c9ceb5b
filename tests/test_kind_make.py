"""The kind harness offline: make's checks and command lines, check_run.py against a fake KFP, run-test.sh
against a fake kubectl (kind itself cannot run here: these never touch a cluster or the network).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from pipelines.config import CONFIG_DIR, load_config
from tests import fakes
from tests.fakes import mlmd_answer, scenario_from
from tests.shell import BASH3_ENV

ROOT = Path(__file__).resolve().parent.parent
KIND_DIR = ROOT / "manifests" / "kind"
VARIANTS = ("model1", "model2", "model3")


def make_command() -> list[str]:
    """The top-level Makefile once it includes manifests/kind.mk; kind.mk alone until then."""
    included = "manifests/kind.mk" in (ROOT / "Makefile").read_text()
    return ["make", "--no-print-directory"] + ([] if included else ["-f", "manifests/kind.mk"])


def make(*args: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KFP_PORT", "KIND_CLUSTER_NAME", "IMAGE_TAG", "IMAGE_REGISTRY", "MAKEFLAGS")
    }
    env.update(BASH3_ENV)
    return subprocess.run(
        [*make_command(), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


# --- make: settings are checked when the makefile is read, so `make -n` rejects them


@pytest.mark.parametrize(
    "setting,shown",
    [
        ("KFP_PORT=abc", "KFP_PORT must be a whole number from 1 to 65535, not 'abc'"),
        ("KFP_PORT=70000", "KFP_PORT must be a whole number from 1 to 65535, not '70000'"),
        ("KFP_PORT=", "KFP_PORT must be a whole number"),
        ("KIND_CLUSTER_NAME=Bad_Name", "KIND_CLUSTER_NAME 'Bad_Name' is not a valid name"),
        ("KIND_CLUSTER_NAME=-cxr", "KIND_CLUSTER_NAME '-cxr' is not a valid name"),
        ("KIND_CLUSTER_NAME=cxr;rm", "KIND_CLUSTER_NAME 'cxr;rm' is not a valid name"),
        ("KIND_CLUSTER_NAME=" + "a" * 51, "is too long: at most 50 characters"),
        ("KIND_GPU_COUNT=two", "KIND_GPU_COUNT must be a whole number from 1 to 8"),
        ("KIND_FETCH_TIMEOUT=27s", "KIND_FETCH_TIMEOUT must be a whole number from 1 to 3600"),
    ],
)
def test_bad_settings_are_rejected_by_make_n(setting, shown):
    result = make("-n", "kind-up", setting, "IMAGE_TAG=abc123")
    assert result.returncode != 0
    assert shown in result.stderr
    assert "up.sh" not in result.stdout, "nothing may run with a bad setting"


def test_bad_image_tag_is_rejected():
    result = make("-n", "kind-test", "IMAGE_TAG=latest")
    assert result.returncode != 0 and "latest" in result.stderr


def test_good_settings_pass_and_other_goals_are_not_checked():
    good = make("-n", "kind-up", "KFP_PORT=18080", "KIND_CLUSTER_NAME=cxr-ci-1", "IMAGE_TAG=abc123")
    assert good.returncode == 0, good.stderr
    assert make("-n", "kind-down", "KFP_PORT=08080").returncode == 0


def test_kind_test_prints_the_submit_command():
    result = make("-n", "kind-test", "KFP_PORT=18080", "IMAGE_TAG=abc123def456")
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert "manifests/kind/run-test.sh -- " in line
    assert (
        "cxr submit --config pipelines/configs/kind.yaml --host http://127.0.0.1:18080 "
        "--set images.registry=localhost/cxr-kfp --set images.tag=abc123def456 "
        "--set study.source=demo:240 "
        "--set study.weights=demo --set placement.caching=false"
    ) in line
    assert line.endswith(" --wait")
    assert "KIND_CLUSTER_NAME='cxr-kfp'" in line and "KFP_PORT='18080'" in line


def test_gpu_placement_submits_the_cluster_placement_and_checks_it():
    result = make("-n", "kind-test-gpu-placement", "IMAGE_TAG=abc123")
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.replace("\\\n", " ").split())
    for part in (
        "--gpu-node-label 'cxr-kfp/pool=gpu' --gpu-count 2 --",
        "--config pipelines/configs/kind.yaml",
        "--set placement.accelerator_count=2",
    ):
        assert part in out
    # Raising the GPU count is all it takes: the kind profile compiles to the cluster's placement.
    args = re.search(r"cxr submit (.*?) --wait", out).group(1).split()
    overrides = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    kind_gpu = load_config(CONFIG_DIR / "kind.yaml", overrides, env={}).placement
    assert kind_gpu == dataclasses.replace(
        load_config(CONFIG_DIR / "cluster.yaml", env={}).placement,
        train_cpu=kind_gpu.train_cpu,
        train_memory=kind_gpu.train_memory,
        step_cpu=kind_gpu.step_cpu,
        step_memory=kind_gpu.step_memory,
        retries=0,
        caching=False,
    )


def test_deploy_and_fake_gpu_use_the_pinned_versions():
    version = (ROOT / "manifests" / "kfp-version.env").read_text().split("KFP_BACKEND_VERSION=")[1].split()[0]
    out = make("-n", "kind-deploy-kfp", "kind-fake-gpu").stdout
    assert f"KFP_BACKEND_VERSION='{version}'" in out
    assert "FAKE_GPU_OPERATOR_VERSION='0.2.0'" in out and "KIND_GPU_COUNT='2'" in out


def test_kind_up_loads_the_cpu_images():
    out = make("-n", "kind-up", "IMAGE_TAG=abc123", "IMAGE_REGISTRY=registry.example/team").stdout
    images = "'registry.example/team/cxr-kfp-cpu:abc123' 'registry.example/team/cxr-kfp-train-cpu:abc123'"
    assert f"up.sh {images}" in out


def test_help_lists_the_kind_targets():
    goal = "help" if len(make_command()) == 2 else "kind-help"
    out = make(goal).stdout
    for target in (
        "kind-up",
        "kind-deploy-kfp",
        "kind-test",
        "kind-down",
        "kind-fake-gpu",
        "kind-test-gpu-placement",
    ):
        assert target in out


def test_kind_help_names_the_ordinary_builds_first_and_the_offline_base_as_the_fallback():
    out = make("kind-help").stdout
    first = out.splitlines()[0]
    assert "make build-image-cpu build-image-train-cpu" in first
    assert first.index("build-image-cpu") < first.index("build-images-local")
    readme = (ROOT / "manifests" / "README.md").read_text()
    quickstart = readme.split("## Local cluster with kind", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    assert quickstart.strip().splitlines()[0].startswith("make build-image-cpu build-image-train-cpu")


def test_the_documented_kind_builds_make_the_images_kind_up_loads_without_debootstrap():
    """With a registry at hand, no root, debootstrap or Debian mirror: the public python base."""
    build = make("-n", "build-image-cpu", "build-image-train-cpu", "IMAGE_TAG=abc123")
    assert build.returncode == 0, build.stderr
    assert "base-image.sh" not in build.stdout and "BASE_IMAGE=''" in build.stdout
    loads = make("-n", "kind-up", "IMAGE_TAG=abc123").stdout
    images = re.search(r"up\.sh (.*)", loads).group(1).replace("'", "").split()
    builds = [line for line in build.stdout.splitlines() if "build-image.sh" in line]
    assert len(builds) == 2 and all(f"'{image}'" in "".join(builds) for image in images)


# --- check_run.py against a fake KFP (REST API + ML Metadata over grpc-web)


def load_check_run():
    spec = importlib.util.spec_from_file_location("check_run", KIND_DIR / "check_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_run = load_check_run()


def default_scenario() -> dict:
    """The fake KFP's answers (tests/fakes.py KfpScenario) plus the fake kubectl's pods and GPUs."""
    return {
        "run_id": "run-1",
        "final_state": "SUCCEEDED",
        "accuracy": dict.fromkeys(VARIANTS, 0.8),
        "report_state": 3,
        "evaluate_states": [3, 3, 3],
        "node_gpus": "2",
        "pods": None,
    }


@pytest.fixture
def fake_kfp():
    scenario = scenario_from(default_scenario())
    with fakes.fake_kfp(scenario, mlmd=mlmd_answer(check_run)) as (host, scenario):
        yield host, scenario


def test_check_run_reads_accuracy_per_variant(fake_kfp, capsys):
    host, _ = fake_kfp
    assert check_run.main(["--host", host, "--run-id", "run-1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["state"] == "SUCCEEDED" and summary["best_variant"] == "model2"
    assert summary["accuracy"] == {v: 0.8 for v in VARIANTS}


@pytest.mark.parametrize(
    "change,reason",
    [
        ({"final_state": "FAILED"}, "run run-1 is FAILED, not SUCCEEDED"),
        ({"report_state": 4}, "the report task did not succeed"),
        ({"accuracy": {"model1": 0.8, "model2": 0.7}}, "no logged accuracy for model3"),
        ({"accuracy": {v: 1.5 for v in VARIANTS}}, "accuracy outside [0, 1]"),
        ({"evaluate_states": [3, 4, 3]}, "2 completed evaluate executions, expected 3"),
        ({"run_id": "other"}, "could not return run run-1"),
    ],
)
def test_check_run_fails_with_a_reason(fake_kfp, capsys, change, reason):
    _, scenario = fake_kfp
    for key, value in change.items():
        setattr(scenario, key, value)
    assert check_run.main(["--host", fake_kfp[0], "--run-id", "run-1"]) == 1
    assert reason in capsys.readouterr().err


def test_check_run_unreachable_metadata_is_explained(capsys):
    assert check_run.main(["--host", "http://127.0.0.1:9", "--run-id", "run-1"]) == 1
    assert "check-run:" in capsys.readouterr().err


def gpu_pod(name: str, node: str = "cxr-kfp-worker2", gpus: str = "2", phase: str = "Succeeded") -> dict:
    """A train pod as kubectl shows it: GPUs requested, T4 node selector, GPU toleration."""
    resources = {"requests": {"nvidia.com/gpu": gpus}, "limits": {"nvidia.com/gpu": gpus}}
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "main", "resources": resources}],
        },
        "status": {"phase": phase},
    }


def cpu_pod(name: str) -> dict:
    return {
        "metadata": {"name": name},
        "status": {"phase": "Succeeded"},
        "spec": {"nodeName": "cxr-kfp-worker", "containers": [{"name": "main"}]},
    }


FAKE_KUBECTL = """#!{python}
# kubectl stand-in: answers what the kind scripts ask from FAKE_SCENARIO (JSON) and serves the fake KFP
# for port-forward, writing its pid to FAKE_PF_PID.
import json, os, sys
sys.path.insert(0, {root!r})
args = sys.argv[1:]
while args and args[0] in ("--context", "-n"):
    args = args[2:]
scenario = json.load(open(os.environ["FAKE_SCENARIO"]))
if args[:2] == ["get", "--raw"] or args[:2] == ["get", "service"]:
    sys.exit(0)
if args[0] == "port-forward":
    port = int(args[-1].split(":")[0])
    import threading
    from tests.fakes import fake_kfp, mlmd_answer, scenario_from
    from tests.test_kind_make import check_run
    with open(os.environ["FAKE_PF_PID"], "a") as pids:
        first = pids.tell() == 0
        pids.write(f"{{os.getpid()}}\\n")
    if scenario.get("port_busy"):
        sys.exit(f"unable to listen on port {{port}}: address already in use")
    with fake_kfp(scenario_from(scenario), mlmd=mlmd_answer(check_run), port=port):
        # The first forward can drop after a while, as a real one does when its connection ends.
        threading.Event().wait(scenario["drop_after"] if first and scenario.get("drop_after") else None)
    sys.exit("lost connection to pod")
if args[:2] == ["get", "nodes"]:
    node = {{"metadata": {{"name": "cxr-kfp-worker2"}},
             "status": {{"allocatable": {{"nvidia.com/gpu": scenario["node_gpus"]}}}}}}
    print(json.dumps({{"items": [node]}}))
    sys.exit(0)
if args[:2] == ["get", "pods"]:
    assert args[3] == "pipeline/runid=" + scenario["run_id"], args
    print(json.dumps({{"items": scenario["pods"]}}))
    sys.exit(0)
sys.exit("fake kubectl: unexpected " + " ".join(args))
"""

FAKE_SUBMIT = """#!{python}
# cxr submit stand-in: the port-forward must be up (and, after FAKE_SUBMIT_WAIT seconds, up again);
# prints the run as cxr submit does.
import json, os, sys, time, urllib.request
urllib.request.urlopen(sys.argv[1] + "/apis/v2beta1/healthz", timeout=5).read()
if os.environ.get("FAKE_SUBMIT_WAIT"):
    time.sleep(float(os.environ["FAKE_SUBMIT_WAIT"]))
    urllib.request.urlopen(sys.argv[1] + "/apis/v2beta1/healthz", timeout=5).read()
print(json.dumps({{"run_id": "run-1", "run_name": "r", "url": sys.argv[1], "state": "SUCCEEDED"}}, indent=2))
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_fakes(tmp_path: Path, scenario: dict) -> Path:
    """Writes the fake kubectl and submit commands and the scenario they read; returns the fake kubectl."""
    for name, source in (("kubectl", FAKE_KUBECTL), ("submit", FAKE_SUBMIT)):
        path = tmp_path / name
        path.write_text(source.format(python=sys.executable, root=str(ROOT)))
        path.chmod(0o755)
    (tmp_path / "scenario.json").write_text(json.dumps(scenario))
    return tmp_path / "kubectl"


def run_test_script(tmp_path: Path, scenario: dict, *check_args: str, **env_extra: str):
    """Runs run-test.sh against the fakes; returns its result and the pids of the port-forwards it started."""
    kubectl, port = write_fakes(tmp_path, scenario), free_port()
    env = {
        **os.environ,
        "KUBECTL": str(kubectl),
        "PYTHON": sys.executable,
        "KFP_PORT": str(port),
        "KIND_OUT": str(tmp_path / "out"),
        "FAKE_SCENARIO": str(tmp_path / "scenario.json"),
        "FAKE_PF_PID": str(tmp_path / "pf.pid"),
        "PYTHONPATH": str(ROOT),
        **BASH3_ENV,
        **env_extra,
    }
    result = subprocess.run(
        [
            str(KIND_DIR / "run-test.sh"),
            *check_args,
            "--",
            str(tmp_path / "submit"),
            f"http://127.0.0.1:{port}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    pids = [int(line) for line in (tmp_path / "pf.pid").read_text().split()]
    return result, pids


def assert_stopped(pids: list[int]):
    import time

    for pid in pids:
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"the port-forward (pid {pid}) is still running")


def test_run_test_script_forwards_submits_checks_and_stops(tmp_path):
    scenario = {
        **default_scenario(),
        "pods": [gpu_pod(f"train-{v}") for v in VARIANTS] + [cpu_pod("ingest"), cpu_pod("report")],
    }
    gpu_check = ("--gpu-node-label", "cxr-kfp/pool=gpu", "--gpu-count", "2")
    result, pids = run_test_script(tmp_path, scenario, *gpu_check)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "out" / "submit.json").read_text())["run_id"] == "run-1"
    check = json.loads((tmp_path / "out" / "check.json").read_text())
    assert check["accuracy"]["model3"] == 0.8
    assert check["gpu_placement"] == {
        "gpu_node": "cxr-kfp-worker2",
        "gpus_per_pod": 2,
        "train_pods": [f"train-{v}" for v in VARIANTS],
    }
    assert "passed the checks" in result.stderr
    assert len(pids) == 1
    assert_stopped(pids)


def test_run_test_script_forwards_again_when_the_port_forward_drops(tmp_path):
    """One kubectl port-forward for up to 90 minutes of waiting drops sooner or later: it is restarted."""
    scenario = {**default_scenario(), "drop_after": 1.0}
    result, pids = run_test_script(tmp_path, scenario, FAKE_SUBMIT_WAIT="3")
    assert result.returncode == 0, result.stderr
    assert len(pids) == 2, "one forward, dropped, then one more"
    assert "forwarding again" in (tmp_path / "out" / "port-forward.log").read_text()
    assert_stopped(pids)


def test_run_test_script_gives_up_on_a_port_forward_that_cannot_start(tmp_path):
    result, pids = run_test_script(tmp_path, {**default_scenario(), "port_busy": True})
    assert result.returncode != 0
    assert "port-forward keeps exiting (port" in result.stderr and "address already in use" in result.stderr
    assert not (tmp_path / "out" / "submit.json").exists(), "nothing is submitted without a tunnel"
    assert_stopped(pids)


@pytest.mark.parametrize(
    "pods,node_gpus,reason",
    [
        ([gpu_pod(f"t-{v}") for v in VARIANTS[:2]], "2", "2 pods of run run-1 request nvidia.com/gpu"),
        (
            [gpu_pod("a"), gpu_pod("b"), gpu_pod("c", node="cxr-kfp-worker")],
            "2",
            "pod c ran on cxr-kfp-worker",
        ),
        ([gpu_pod("a"), gpu_pod("b"), gpu_pod("c", gpus="1")], "2", "pod c asks for nvidia.com/gpu"),
        ([gpu_pod("a"), gpu_pod("b"), gpu_pod("c", phase="Pending")], "2", "pod c is Pending"),
        ([gpu_pod(f"t-{v}") for v in VARIANTS], "", "advertises nvidia.com/gpu="),
    ],
)
def test_gpu_placement_failures(tmp_path, monkeypatch, pods, node_gpus, reason):
    kubectl = write_fakes(tmp_path, {**default_scenario(), "pods": pods, "node_gpus": node_gpus})
    monkeypatch.setenv("FAKE_SCENARIO", str(tmp_path / "scenario.json"))
    with pytest.raises(check_run.CheckError, match=re.escape(reason)):
        check_run.check_gpu_placement(str(kubectl), "kind-cxr-kfp", "run-1", "cxr-kfp/pool=gpu", 2, 3)


def test_run_test_script_fails_and_still_stops_the_port_forward(tmp_path):
    scenario = {**default_scenario(), "pods": [gpu_pod("a")]}
    result, pids = run_test_script(tmp_path, scenario, "--gpu-node-label", "cxr-kfp/pool=gpu")
    assert result.returncode != 0
    assert "1 pods of run run-1 request nvidia.com/gpu, expected 3" in result.stderr
    assert_stopped(pids)


# --- up.sh, deploy-kfp.sh and fake-gpu.sh against stub tools that log their arguments

STUB = """#!/usr/bin/env bash
# Stand-in for docker, kind, kubectl and helm: logs each call, answers the few queries the scripts make.
name="$(basename "$0")"
echo "$name $*" >>"$STUB_LOG"
case "$name $*" in
    "docker image inspect "*) [[ -z "${STUB_NO_IMAGES:-}" ]] ;;
    "docker version "*) echo linux/arm64 ;;
    "docker image save "*)
        [[ -z "${STUB_SAVE_FAILS:-}" ]] || exit 1
        while (($#)) && [[ "$1" != -o ]]; do shift; done
        echo archive >"$2" ;;
    "kind load docker-image "*)
        [[ -z "${STUB_LOAD_FAILS:-}" ]] || { echo "ctr: content digest sha256:01: not found" >&2; exit 1; } ;;
    "kind load image-archive "*) [[ -s "${!#}" ]] && echo "archive ${!#} present" >>"$STUB_LOG" ;;
    "kind get clusters") echo "${STUB_CLUSTERS:-}" ;;
    *" get nodes -l "*" -o name") echo node/cxr-kfp-worker2 ;;
    *"jsonpath={.spec.taints"*) printf '%s' "${STUB_TAINT-NoSchedule}" ;;
    *"jsonpath={.metadata.labels"*) printf nvidia-tesla-t4 ;;
    *"jsonpath={.status.allocatable"*) printf 2 ;;
    *"jsonpath={.spec.template"*) printf '' ;;
    *) exit 0 ;;
esac
"""


def run_with_stubs(tmp_path: Path, script: str, *args: str, **env_extra: str):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("docker", "kind", "kubectl", "helm"):
        (bin_dir / tool).write_text(STUB)
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / "calls.log"
    log.touch()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STUB_LOG": str(log),
        "DOCKER": "docker",
        "KIND_CLUSTER_NAME": "cxr-kfp",
        **BASH3_ENV,
        **env_extra,
    }
    result = subprocess.run(
        [str(KIND_DIR / script), *args], env=env, capture_output=True, text=True, timeout=60
    )
    return result, log.read_text().splitlines()


def test_up_refuses_unbuilt_images(tmp_path):
    image = "localhost/cxr-kfp/cxr-kfp-cpu:abc"
    result, calls = run_with_stubs(tmp_path, "up.sh", image, STUB_NO_IMAGES="1")
    assert result.returncode != 0
    assert (
        f"image {image} is not built: run 'make build-image-cpu build-image-train-cpu' "
        "(no registry: 'make build-images-local')"
    ) in result.stderr
    assert not [c for c in calls if c.startswith("kind create")]


IMAGES = ("localhost/cxr-kfp/cxr-kfp-cpu:abc", "localhost/cxr-kfp/cxr-kfp-train-cpu:abc")


def test_up_creates_the_cluster_and_loads_the_images(tmp_path):
    result, calls = run_with_stubs(tmp_path, "up.sh", *IMAGES)
    assert result.returncode == 0, result.stderr
    assert f"kind create cluster --name cxr-kfp --config {KIND_DIR}/cluster.yaml --wait 300s" in calls
    assert f"kind load docker-image --name cxr-kfp {' '.join(IMAGES)}" in calls
    assert not [c for c in calls if "image-archive" in c or "image save" in c]
    result, calls = run_with_stubs(tmp_path / "existing", "up.sh", *IMAGES, STUB_CLUSTERS="cxr-kfp")
    assert result.returncode == 0, result.stderr
    assert not [c for c in calls if c.startswith("kind create")]
    assert f"kind load docker-image --name cxr-kfp {' '.join(IMAGES)}" in calls


def test_up_loads_a_saved_archive_when_kind_load_fails_under_the_containerd_image_store(tmp_path):
    """kind#3795: `kind load docker-image` says "content digest ... not found"."""
    result, calls = run_with_stubs(tmp_path, "up.sh", *IMAGES, STUB_LOAD_FAILS="1")
    assert result.returncode == 0, result.stderr
    assert "loading a saved archive instead" in result.stderr
    (save,) = [c.split() for c in calls if c.startswith("docker image save")]
    assert save[3:5] == ["--platform", "linux/arm64"] and save[-2:] == list(IMAGES)
    archive = save[save.index("-o") + 1]
    assert f"kind load image-archive --name cxr-kfp {archive}" in calls
    assert f"archive {archive} present" in calls, "the archive exists while kind loads it"
    assert not Path(archive).exists(), "and is removed afterwards"


def test_up_fails_when_neither_way_loads(tmp_path):
    result, calls = run_with_stubs(tmp_path, "up.sh", *IMAGES, STUB_LOAD_FAILS="1", STUB_SAVE_FAILS="1")
    assert result.returncode != 0
    assert not [c for c in calls if "image-archive" in c]


def test_deploy_installs_kfp_in_order_on_the_kind_context(tmp_path):
    result, calls = run_with_stubs(tmp_path, "deploy-kfp.sh")
    assert result.returncode == 0, result.stderr
    kubectl = [c for c in calls if c.startswith("kubectl ")]
    assert all(c.startswith("kubectl --context kind-cxr-kfp ") for c in kubectl), kubectl
    version = (ROOT / "manifests" / "kfp-version.env").read_text().split("KFP_BACKEND_VERSION=")[1].split()[0]
    base = "github.com/kubeflow/pipelines/manifests/kustomize"
    expected = [
        f"apply -k {base}/cluster-scoped-resources?ref={version}&timeout=300s",
        "wait --for condition=established --timeout=60s crd/applications.app.k8s.io",
        f"apply -k {base}/env/platform-agnostic?ref={version}&timeout=300s",
        f"apply -k {ROOT}/manifests/cluster",
        "set env deployment/ml-pipeline DEFAULTPIPELINERUNNERSERVICEACCOUNT=cxr-pipeline-runner",
        "wait --for=condition=Available --timeout=900s deployment/mysql",
        "wait --for=condition=Available --timeout=900s deployment/ml-pipeline",
        "wait --for=condition=Available --timeout=900s deployment --all",
    ]
    positions = [next(i for i, c in enumerate(kubectl) if c.endswith(e)) for e in expected]
    assert positions == sorted(positions)


def test_deploy_fetches_with_a_timeout_kustomize_accepts(tmp_path):
    """kustomize fetches a remote base in 27 s unless the URL says otherwise: the script's query string,
    on a local git repository laid out like KFP's, is fetched by the real kubectl kustomize.
    """
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed")
    result, calls = run_with_stubs(tmp_path, "deploy-kfp.sh", KIND_FETCH_TIMEOUT="120")
    assert result.returncode == 0, result.stderr
    urls = [c.split(" apply -k ")[1] for c in calls if " apply -k github.com/" in c]
    assert len(urls) == 2
    repo = tmp_path / "pipelines"
    for url in urls:
        path, query = url.split("github.com/kubeflow/pipelines/", 1)[1].split("?")
        assert dict(urllib.parse.parse_qsl(query)) == {"ref": "2.17.0", "timeout": "120s"}
        (repo / path).mkdir(parents=True)
        (repo / path / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
        name = path.split("/")[-1]
        (repo / path / "cm.yaml").write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "kfp"], ["tag", "2.17.0"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    for url in urls:
        path, query = url.split("github.com/kubeflow/pipelines/", 1)[1].split("?")
        built = subprocess.run(
            [kubectl, "kustomize", f"file://{repo}//{path}?{query}"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"},
        )
        assert built.returncode == 0, built.stderr
        assert f"name: {path.split('/')[-1]}" in built.stdout


def test_fake_gpu_installs_the_pinned_chart_on_the_node_the_cluster_tainted(tmp_path):
    result, calls = run_with_stubs(
        tmp_path,
        "fake-gpu.sh",
        FAKE_GPU_OPERATOR_VERSION="0.2.0",
        FAKE_GPU_OPERATOR_CHART="oci://charts.example/fake-gpu-operator",
    )
    assert result.returncode == 0, result.stderr
    assert (
        "kubectl --context kind-cxr-kfp label node cxr-kfp-worker2 --overwrite "
        "run.ai/simulated-gpu-node-pool=t4"
    ) in calls
    assert not [c for c in calls if " taint " in c], "the node is tainted when the cluster is created"
    (helm,) = [c for c in calls if c.startswith("helm ")]
    assert (
        "upgrade --install fake-gpu-operator oci://charts.example/fake-gpu-operator --version 0.2.0 "
        "--kube-context kind-cxr-kfp" in helm
    )
    assert "topology.nodePools.t4.gpuCount=2" in helm


def test_fake_gpu_refuses_a_cluster_made_before_the_gpu_worker_was_tainted(tmp_path):
    result, calls = run_with_stubs(
        tmp_path,
        "fake-gpu.sh",
        FAKE_GPU_OPERATOR_VERSION="0.2.0",
        FAKE_GPU_OPERATOR_CHART="oci://charts.example/fake-gpu-operator",
        STUB_TAINT="",
    )
    assert result.returncode != 0
    assert "is not labelled and tainted like a T4 node" in result.stderr
    assert "make kind-down kind-up" in result.stderr
    assert not [c for c in calls if c.startswith("helm ") or " taint " in c or " label " in c]
