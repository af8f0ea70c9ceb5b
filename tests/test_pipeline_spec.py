"""Golden tests on the compiled pipeline: fan-out, GPU placement, retries, images, caching.

tests/golden/placement.json holds, per executor, the fields that decide where and how a task runs.
A change to placement shows up as a diff of that file: UPDATE_GOLDEN=1 rewrites it and fails the
test, so the new file is reviewed (and committed) before the test can pass again.
"""

import json
import os
from pathlib import Path

import pytest
import yaml

from pipelines.compile import compile_pipeline
from pipelines.config import CONFIG_DIR, load_config

GOLDEN = Path(__file__).parent / "golden" / "placement.json"
REGISTRY = "registry.example/team"


def compiled(tmp_path, config_name="cluster.yaml", overrides=()):
    config = load_config(
        CONFIG_DIR / config_name, ["images.tag=0123abcd", f"images.registry={REGISTRY}", *overrides], env={}
    )
    path = compile_pipeline(config, tmp_path / "pipeline.yaml")
    documents = list(yaml.safe_load_all(path.read_text()))
    pipeline_spec = documents[0]
    platform_spec = (
        documents[1]
        if len(documents) > 1
        else {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {}}}}}
    )
    return pipeline_spec, platform_spec


def placement_summary(pipeline_spec, platform_spec) -> dict:
    k8s = platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    summary = {}
    for name, executor in sorted(pipeline_spec["deploymentSpec"]["executors"].items()):
        container = executor["container"]
        resources = container.get("resources", {})
        summary[name] = {
            "image": container["image"],
            "accelerator": resources.get("accelerator"),
            "cpu": [resources.get("resourceCpuRequest"), resources.get("resourceCpuLimit")],
            "memory": [resources.get("resourceMemoryRequest"), resources.get("resourceMemoryLimit")],
            "kubernetes": k8s.get(name),
        }
    return summary


def tasks_by_name(pipeline_spec) -> dict:
    """Every task of every DAG in the spec, keyed by task name, with its DAG's component name."""
    components = pipeline_spec["components"]
    dags = {"root": pipeline_spec["root"]} | {n: c for n, c in components.items() if "dag" in c}
    return {
        task: dict(spec, dag=dag) for dag, comp in dags.items() for task, spec in comp["dag"]["tasks"].items()
    }


def test_placement_matches_golden(tmp_path):
    summary = placement_summary(*compiled(tmp_path))
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        pytest.fail(
            f"golden updated: review the diff of {GOLDEN} (git diff), then run again without UPDATE_GOLDEN"
        )
    assert summary == json.loads(GOLDEN.read_text())


def test_train_alone_gets_two_gpus_node_selector_and_toleration(tmp_path):
    summary = placement_summary(*compiled(tmp_path))
    train = summary.pop("exec-train-op")
    assert train["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert train["accelerator"]["resourceCount"] == "2"
    assert train["kubernetes"]["nodeSelector"]["labels"] == {
        "cloud.google.com/gke-accelerator": "nvidia-tesla-t4"
    }
    assert train["kubernetes"]["tolerations"] == [
        {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}
    ]
    for name, other in summary.items():
        assert other["accelerator"] is None, name
        assert set(other["kubernetes"]) == {"securityContext"}, name
        assert other["cpu"][0] and other["memory"][0], name


def test_three_variants_fan_out_in_one_loop_of_parallelism_three(tmp_path):
    pipeline_spec, _ = compiled(tmp_path)
    loops = [t for t in pipeline_spec["root"]["dag"]["tasks"].values() if "parameterIterator" in t]
    assert len(loops) == 1
    loop = loops[0]
    assert loop["iteratorPolicy"]["parallelismLimit"] == 3
    assert pipeline_spec["root"]["inputDefinitions"]["parameters"]["variants"]["defaultValue"] == [
        "model1",
        "model2",
        "model3",
    ]
    tasks = tasks_by_name(pipeline_spec)
    loop_dag = loop["componentRef"]["name"]
    assert tasks["train-op"]["dag"] == loop_dag and tasks["evaluate-op"]["dag"] == loop_dag
    variant_input = tasks["train-op"]["inputs"]["parameters"]["variant"]["componentInputParameter"]
    assert variant_input.endswith("variants-loop-item")
    assert tasks["evaluate-op"]["dependentTasks"] == ["train-op"]
    assert (
        tasks["report-op"]["inputs"]["artifacts"]["evaluations"]["taskOutputArtifact"]["producerTask"]
        == "for-loop-1"
    )
    assert [t for t, s in tasks.items() if s["dag"] == "root"] == [
        "for-loop-1",
        "ingest-op",
        "report-op",
        "split-op",
    ]


def test_retries_on_train_only_and_caching_everywhere(tmp_path):
    tasks = tasks_by_name(compiled(tmp_path)[0])
    assert tasks["train-op"]["retryPolicy"]["maxRetryCount"] == 2
    assert [t for t, s in tasks.items() if "retryPolicy" in s] == ["train-op"]
    assert all(s["cachingOptions"] == {"enableCache": True} for t, s in tasks.items() if t.endswith("-op"))
    tasks = tasks_by_name(compiled(tmp_path, overrides=["placement.caching=false"])[0])
    assert all(
        s["cachingOptions"] == {} or s["cachingOptions"].get("enableCache") is not True
        for t, s in tasks.items()
        if t.endswith("-op")
    )


def test_images_are_pinned_from_configuration(tmp_path):
    executors = compiled(tmp_path)[0]["deploymentSpec"]["executors"].values()
    images = {e["container"]["image"] for e in executors}
    assert images == {f"{REGISTRY}/cxr-kfp-cpu:0123abcd", f"{REGISTRY}/cxr-kfp-train:0123abcd"}
    assert not any(i.endswith(":latest") or ":dev" in i for i in images)


def test_components_do_not_install_kfp_at_start(tmp_path):
    for executor in compiled(tmp_path)[0]["deploymentSpec"]["executors"].values():
        assert "pip install" not in " ".join(executor["container"]["command"])


def test_cpu_profile_has_no_gpu_anywhere(tmp_path):
    summary = placement_summary(*compiled(tmp_path, "kind.yaml"))
    gpu_keys = {"nodeSelector", "tolerations", "emptyDirMounts"}
    assert all(s["accelerator"] is None for s in summary.values())
    assert all(not gpu_keys & set(s["kubernetes"] or {}) for s in summary.values())


def test_train_checkpoints_under_the_pipeline_root_keyed_by_run(tmp_path):
    """A preempted train task's retry finds its checkpoints: a gs:// prefix per run and variant."""
    spec, _ = compiled(tmp_path, overrides=["kfp.pipeline_root=gs://bucket/root"])
    params = tasks_by_name(spec)["train-op"]["inputs"]["parameters"]
    assert params["checkpoint_root"]["runtimeValue"]["constant"] == "gs://bucket/root/checkpoints"
    assert params["run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
    spec, _ = compiled(tmp_path, overrides=["kfp.checkpoint_root=gs://other/ckpt/"])
    params = tasks_by_name(spec)["train-op"]["inputs"]["parameters"]
    assert params["checkpoint_root"]["runtimeValue"]["constant"] == "gs://other/ckpt"


def test_every_task_runs_as_the_images_non_root_user(tmp_path):
    summary = placement_summary(*compiled(tmp_path))
    contexts = {name: (s["kubernetes"] or {}).get("securityContext") for name, s in summary.items()}
    assert all(
        c == {"runAsUser": "1000", "runAsGroup": "1000", "runAsNonRoot": True} for c in contexts.values()
    ), contexts


def test_no_credential_reaches_the_compiled_pipeline(tmp_path, monkeypatch):
    monkeypatch.setenv("KFP_TOKEN", "secret-token-1234")
    monkeypatch.setenv("KFP_COOKIE", "authservice_session=cookie-5678")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "key.json"))
    (tmp_path / "key.json").write_text('{"private_key": "-----BEGIN PRIVATE KEY-----"}')
    config = load_config(
        CONFIG_DIR / "cluster.yaml",
        ["images.tag=0123abcd", f"images.registry={REGISTRY}"],
        env=dict(os.environ),
    )
    text = compile_pipeline(config, tmp_path / "pipeline.yaml").read_text()
    for secret in ("secret-token-1234", "cookie-5678", "key.json", "PRIVATE KEY"):
        assert secret not in text
