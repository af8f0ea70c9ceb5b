"""`cxr submit` against a local HTTP server that plays the KFP API and records what kfp.Client sends."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from pipelines.cli import main


class FakeKfp(BaseHTTPRequestHandler):
    """Just enough of the KFP v2beta1 REST API for kfp.Client: healthz, experiments, runs."""

    requests: list = []
    final_state = "SUCCEEDED"
    refuse = False
    polls = 0

    def _reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        type(self).requests.append({"method": self.command, "path": self.path, "body": body,
                                    "auth": self.headers.get("Authorization")})
        return body

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._record()
        if self.refuse:
            return self._reply(403, {"error": "forbidden", "code": 7})
        if self.path.startswith("/apis/v2beta1/healthz"):
            return self._reply(200, {"multi_user": False})
        if self.path.startswith("/apis/v2beta1/experiments"):
            return self._reply(200, {"experiments": [], "total_size": 0})
        if self.path.startswith("/apis/v2beta1/runs/run-1"):
            type(self).polls += 1
            state = "RUNNING" if self.polls < 2 else self.final_state
            return self._reply(200, {"run_id": "run-1", "display_name": "r", "state": state})
        return self._reply(404, {"error": f"no route {self.path}"})

    def do_POST(self):  # noqa: N802
        body = self._record()
        if self.refuse:
            return self._reply(403, {"error": "forbidden", "code": 7})
        if self.path.startswith("/apis/v2beta1/experiments"):
            return self._reply(200, {"experiment_id": "exp-1", "display_name": body["display_name"]})
        if self.path.startswith("/apis/v2beta1/runs"):
            return self._reply(200, {"run_id": "run-1", "display_name": body["display_name"],
                                     "experiment_id": body.get("experiment_id"), "state": "PENDING"})
        return self._reply(404, {"error": f"no route {self.path}"})

    def log_message(self, *args):
        pass


@pytest.fixture
def kfp_server(monkeypatch):
    FakeKfp.requests, FakeKfp.polls, FakeKfp.final_state, FakeKfp.refuse = [], 0, "SUCCEEDED", False
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKfp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr("pipelines.submit.time.sleep", lambda s: None)
    for var in ("KFP_HOST", "KFP_TOKEN", "KFP_COOKIE", "IMAGE_REGISTRY", "IMAGE_TAG"):
        monkeypatch.delenv(var, raising=False)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_request():
    return next(r for r in FakeKfp.requests
                if r["method"] == "POST" and r["path"].startswith("/apis/v2beta1/runs"))


def test_submit_sends_spec_parameters_and_experiment(kfp_server, monkeypatch, capsys):
    monkeypatch.setenv("KFP_TOKEN", "secret-token")
    monkeypatch.setenv("IMAGE_TAG", "abc123")
    code = main(["submit", "--host", kfp_server, "--experiment", "nightly", "--set", "study.epochs=7",
                 "--set", "study.source=gs://bucket/cxr", "--wait"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["state"] == "SUCCEEDED" and out["url"] == f"{kfp_server}/#/runs/details/run-1"
    experiment = next(r for r in FakeKfp.requests if r["method"] == "POST" and "experiments" in r["path"])
    assert experiment["body"]["display_name"] == "nightly"
    run = run_request()["body"]
    assert run["experiment_id"] == "exp-1"
    assert run["service_account"] == "cxr-pipeline-runner"
    assert "abc123" in run["display_name"]
    params = run["runtime_config"]["parameters"]
    assert params["epochs"] == 7 and params["source"] == "gs://bucket/cxr"
    assert params["variants"] == ["model1", "model2", "model3"]
    spec = run["pipeline_spec"]["pipeline_spec"]
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"localhost/cxr-kfp/cxr-kfp-cpu:abc123", "localhost/cxr-kfp/cxr-kfp-train:abc123"}
    assert all(r["auth"] == "Bearer secret-token" for r in FakeKfp.requests)


def test_wait_fails_when_the_run_fails(kfp_server, capsys):
    FakeKfp.final_state = "FAILED"
    code = main(["submit", "--host", kfp_server, "--set", "images.tag=t1", "--wait"])
    assert code != 0
    assert "run run-1 ended FAILED" in capsys.readouterr().err


def test_refused_request_is_one_clear_line(kfp_server, capsys):
    FakeKfp.refuse = True
    assert main(["submit", "--host", kfp_server, "--set", "images.tag=t1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("cxr: KFP endpoint") and "HTTP 403" in err
    assert all(r["path"] == "/apis/v2beta1/healthz" for r in FakeKfp.requests)


def test_unreachable_host_is_one_clear_line(capsys):
    assert main(["submit", "--host", "http://127.0.0.1:9", "--set", "images.tag=t1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("cxr: KFP endpoint http://127.0.0.1:9 is unreachable")


def test_missing_host_names_kfp_host(monkeypatch, capsys):
    monkeypatch.delenv("KFP_HOST", raising=False)
    assert main(["submit", "--set", "images.tag=t1"]) == 2
    assert "KFP_HOST" in capsys.readouterr().err


def test_compiled_yaml_is_what_submit_sends(kfp_server, tmp_path):
    assert main(["compile", "--output", str(tmp_path / "p.yaml"), "--set", "images.tag=t1"]) == 0
    main(["submit", "--host", kfp_server, "--set", "images.tag=t1"])
    pipeline_spec, platform_spec = yaml.safe_load_all((tmp_path / "p.yaml").read_text())
    sent = run_request()["body"]["pipeline_spec"]
    assert sent["pipeline_spec"]["deploymentSpec"] == pipeline_spec["deploymentSpec"]
    assert sent["platform_spec"] == platform_spec
