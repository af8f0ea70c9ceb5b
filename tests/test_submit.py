"""`cxr submit` against a local HTTP server that plays the KFP API and records what kfp.Client sends."""

import json

import pytest
import yaml

from pipelines import submit as submit_module
from pipelines.cli import main
from tests.fakes import KfpScenario, fake_kfp

REGISTRY = "registry.example/team"
FINGERPRINT = ("--set", "study.dataset_fingerprint=fp-1")  # the cluster profile's gs:// source is cached


@pytest.fixture
def kfp_server(monkeypatch):
    monkeypatch.setattr("pipelines.submit.time.sleep", lambda s: None)
    for var in ("KFP_HOST", "KFP_TOKEN", "KFP_COOKIE", "IMAGE_TAG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("IMAGE_REGISTRY", REGISTRY)  # the cluster profile refuses a localhost one
    with fake_kfp(KfpScenario(running_polls=1)) as served:
        yield served


def run_request(scenario: KfpScenario) -> dict:
    return next(
        r for r in scenario.requests if r["method"] == "POST" and r["path"].startswith("/apis/v2beta1/runs")
    )


def test_submit_sends_spec_parameters_and_experiment(kfp_server, monkeypatch, capsys):
    kfp_server, scenario = kfp_server
    monkeypatch.setenv("KFP_TOKEN", "secret-token")
    monkeypatch.setenv("IMAGE_TAG", "abc123")
    code = main(
        [
            "submit",
            "--host",
            kfp_server,
            "--experiment",
            "nightly",
            "--set",
            "study.epochs=7",
            "--set",
            "study.source=gs://bucket/cxr",
            *FINGERPRINT,
            "--wait",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["state"] == "SUCCEEDED" and out["url"] == f"{kfp_server}/#/runs/details/run-1"
    experiment = next(r for r in scenario.requests if r["method"] == "POST" and "experiments" in r["path"])
    assert experiment["body"]["display_name"] == "nightly"
    run = run_request(scenario)["body"]
    assert run["experiment_id"] == "exp-1"
    assert run["service_account"] == "cxr-pipeline-runner"
    assert "abc123" in run["display_name"]
    params = run["runtime_config"]["parameters"]
    assert params["epochs"] == 7 and params["source"] == "gs://bucket/cxr"
    assert params["variants"] == ["model1", "model2", "model3"]
    spec = run["pipeline_spec"]["pipeline_spec"]
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {f"{REGISTRY}/cxr-kfp-cpu:abc123", f"{REGISTRY}/cxr-kfp-train:abc123"}
    assert all(r["auth"] == "Bearer secret-token" for r in scenario.requests)


def test_wait_fails_when_the_run_fails(kfp_server, capsys):
    kfp_server, scenario = kfp_server
    scenario.final_state = "FAILED"
    code = main(["submit", "--host", kfp_server, "--set", "images.tag=t1", *FINGERPRINT, "--wait"])
    assert code != 0
    assert "run run-1 ended FAILED" in capsys.readouterr().err


def test_wait_rides_out_a_short_outage_of_the_api(kfp_server, capsys, monkeypatch):
    kfp_server, scenario = kfp_server
    scenario.failing_polls, scenario.running_polls = 2, 1
    code = main(["submit", "--host", kfp_server, "--set", "images.tag=t1", *FINGERPRINT, "--wait"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "HTTP 503" in err and "asking again" in err and "SUCCEEDED" in err


def test_wait_gives_up_on_a_long_outage_with_one_line(kfp_server, capsys, monkeypatch):
    kfp_server, scenario = kfp_server
    scenario.failing_polls = 10**6
    monkeypatch.setattr(submit_module, "WAIT_OUTAGE_SECONDS", 0.3)
    code = main(["submit", "--host", kfp_server, "--set", "images.tag=t1", *FINGERPRINT, "--wait"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("cxr: lost track of run run-1") and "Kubeflow UI" in err


def test_refused_request_is_one_clear_line(kfp_server, capsys):
    kfp_server, scenario = kfp_server
    scenario.refuse = True
    assert main(["submit", "--host", kfp_server, "--set", "images.tag=t1", *FINGERPRINT]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("cxr: KFP endpoint") and "HTTP 403" in err
    assert all(r["path"] == "/apis/v2beta1/healthz" for r in scenario.requests)


def test_unreachable_host_is_one_clear_line(capsys):
    assert main(["submit", "--host", "http://127.0.0.1:9", "--set", "images.tag=t1", *FINGERPRINT]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("cxr: KFP endpoint http://127.0.0.1:9 is unreachable")


def test_missing_host_names_kfp_host(monkeypatch, capsys):
    monkeypatch.delenv("KFP_HOST", raising=False)
    assert main(["submit", "--set", "images.tag=t1"]) == 2
    assert "KFP_HOST" in capsys.readouterr().err


def test_compiled_yaml_is_what_submit_sends(kfp_server, tmp_path):
    kfp_server, scenario = kfp_server
    assert main(["compile", "--output", str(tmp_path / "p.yaml"), "--set", "images.tag=t1"]) == 0
    main(["submit", "--host", kfp_server, "--set", "images.tag=t1", *FINGERPRINT])
    pipeline_spec, platform_spec = yaml.safe_load_all((tmp_path / "p.yaml").read_text())
    sent = run_request(scenario)["body"]["pipeline_spec"]
    assert sent["pipeline_spec"]["deploymentSpec"] == pipeline_spec["deploymentSpec"]
    assert sent["platform_spec"] == platform_spec


def test_a_cluster_run_refuses_images_it_cannot_pull(kfp_server, monkeypatch, capsys):
    monkeypatch.setenv("IMAGE_REGISTRY", "localhost/cxr-kfp")
    kfp_server, scenario = kfp_server
    assert main(["submit", "--host", kfp_server, "--set", "images.tag=t1", *FINGERPRINT]) == 2
    assert "a cluster cannot pull from it; set IMAGE_REGISTRY" in capsys.readouterr().err
    monkeypatch.setenv("IMAGE_REGISTRY", REGISTRY)
    assert main(["submit", "--host", kfp_server, "--set", "images.tag=abc-dirty", *FINGERPRINT]) == 2
    assert "names uncommitted code" in capsys.readouterr().err
    assert not any(r["path"].startswith("/apis/v2beta1/runs") for r in scenario.requests)


def test_a_cached_bucket_run_gets_a_fingerprint_or_is_refused(kfp_server, capsys):
    kfp_server, scenario = kfp_server
    code = main(
        ["submit", "--host", kfp_server, "--set", "images.tag=t1", "--set", "study.source=gs://nowhere/x"]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "study.dataset_fingerprint is empty for gs://nowhere/x with caching on" in err
    assert "cxr fingerprint gs://nowhere/x" in err and "placement.caching=false" in err
    assert (
        main(
            [
                "submit",
                "--host",
                kfp_server,
                "--set",
                "images.tag=t1",
                "--set",
                "study.source=gs://nowhere/x",
                "--set",
                "placement.caching=false",
            ]
        )
        == 0
    )
