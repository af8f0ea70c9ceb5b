"""A fake Kubeflow Pipelines endpoint for the tests: a real HTTP server on 127.0.0.1.

It answers what `kfp.Client` (cxr submit) and manifests/kind/check_run.py ask of a KFP UI port: the
v2beta1 REST API (healthz, experiments, runs) and ML Metadata over grpc-web. A `KfpScenario` decides
the answers and records every request, so a test states the situation and checks what was sent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VARIANTS = ("model1", "model2", "model3")
COMPLETE = 3  # ml_metadata.Execution.State.COMPLETE


@dataclass
class KfpScenario:
    """What the fake answers, and what it was asked (`requests`)."""

    run_id: str = "run-1"
    final_state: str = "SUCCEEDED"
    running_polls: int = 0  # GETs of the run answered RUNNING before final_state
    failing_polls: int = 0  # GETs of the run answered 503 first (an API server restarting)
    refuse: bool = False  # every request gets HTTP 403
    report_state: int = COMPLETE
    evaluate_states: list[int] = field(default_factory=lambda: [COMPLETE] * 3)
    accuracy: dict[str, float] = field(default_factory=lambda: dict.fromkeys(VARIANTS, 0.8))
    best_variant: str = "model2"
    requests: list[dict] = field(default_factory=list)
    polls: int = 0


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _send(self, status: int, body: bytes, content_type: str = "application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, body: dict):
        self._send(status, json.dumps(body).encode())

    def _record(self) -> bytes:
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = None
        if data and self.headers.get("Content-Type", "").startswith("application/json"):
            body = json.loads(data)
        self.server.scenario.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "body": body,
                "auth": self.headers.get("Authorization"),
            }
        )
        return data

    def do_GET(self):  # noqa: N802 (http.server's naming)
        s = self.server.scenario
        self._record()
        if s.refuse:
            return self._json(403, {"error": "forbidden", "code": 7})
        if self.path.startswith("/apis/v2beta1/healthz"):
            return self._json(200, {"multi_user": False})
        if self.path.startswith("/apis/v2beta1/experiments"):
            return self._json(200, {"experiments": [], "total_size": 0})
        if self.path.startswith(f"/apis/v2beta1/runs/{s.run_id}"):
            if s.failing_polls:
                s.failing_polls -= 1
                return self._json(503, {"error": "upstream connect error", "code": 14})
            s.polls += 1
            state = "RUNNING" if s.polls <= s.running_polls else s.final_state
            tasks = [
                {"display_name": "report", "state": "SUCCEEDED" if s.report_state == COMPLETE else "FAILED"},
                {"display_name": "evaluate", "state": "SUCCEEDED"},
            ]
            return self._json(
                200,
                {
                    "run_id": s.run_id,
                    "display_name": "r",
                    "state": state,
                    "run_details": {"task_details": tasks},
                },
            )
        return self._json(404, {"error": f"no route {self.path}"})

    def do_POST(self):  # noqa: N802
        s = self.server.scenario
        data = self._record()
        if s.refuse:
            return self._json(403, {"error": "forbidden", "code": 7})
        body = self.server.scenario.requests[-1]["body"]
        if self.path.startswith("/apis/v2beta1/experiments"):
            return self._json(200, {"experiment_id": "exp-1", "display_name": body["display_name"]})
        if self.path.startswith("/apis/v2beta1/runs"):
            return self._json(
                200,
                {
                    "run_id": s.run_id,
                    "display_name": body["display_name"],
                    "experiment_id": body.get("experiment_id"),
                    "state": "PENDING",
                },
            )
        if self.path.startswith("/ml_metadata.MetadataStoreService/") and self.server.mlmd:
            return self._send(
                200, self.server.mlmd(self.path.rsplit("/", 1)[-1], data, s), "application/grpc-web+proto"
            )
        return self._json(404, {"error": f"no route {self.path}"})

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    scenario: KfpScenario
    mlmd: Callable[[str, bytes, KfpScenario], bytes] | None


def scenario_from(values: dict) -> KfpScenario:
    """A KfpScenario from a dict that may hold other keys too (a fake kubectl's, say)."""
    names = {f.name for f in dataclasses.fields(KfpScenario)}
    return KfpScenario(**{k: v for k, v in values.items() if k in names})


def mlmd_answer(check_run) -> Callable[[str, bytes, KfpScenario], bytes]:
    """The ML Metadata (grpc-web) answers for a scenario, built with check_run.py's own messages."""

    def answer(method: str, data: bytes, s: KfpScenario) -> bytes:
        messages = check_run.mlmd_messages()
        assert data[0] == 0, "a grpc-web data frame"
        request = messages[f"{method}Request"].FromString(data[5:])
        response = messages[f"{method}Response"]()
        if method == "GetContextByTypeAndName":
            if request.type_name == "system.PipelineRun" and request.context_name == s.run_id:
                response.context.id, response.context.name = 7, s.run_id
        elif method == "GetExecutionsByContext":
            assert request.context_id == 7
            runs = [("report", s.report_state)] + [("evaluate", state) for state in s.evaluate_states]
            for i, (name, state) in enumerate(runs):
                execution = response.executions.add(id=i + 1, last_known_state=state)
                execution.custom_properties["display_name"].string_value = name
        elif method == "GetArtifactsByContext":
            for i, (variant, accuracy) in enumerate(s.accuracy.items()):
                artifact = response.artifacts.add(id=10 + i, uri=f"minio://mlpipeline/{variant}/metrics")
                artifact.custom_properties["display_name"].string_value = "metrics"
                artifact.custom_properties["variant"].string_value = variant
                artifact.custom_properties["accuracy"].double_value = accuracy
            report = response.artifacts.add(id=99)
            report.custom_properties["best_variant"].string_value = s.best_variant
        trailer = b"grpc-status:0\r\ngrpc-message:\r\n"
        return check_run.grpc_web_frame(response.SerializeToString()) + check_run.grpc_web_frame(
            trailer, trailer=True
        )

    return answer


@contextlib.contextmanager
def fake_kfp(
    scenario: KfpScenario | None = None, *, mlmd=None, port: int = 0
) -> Iterator[tuple[str, KfpScenario]]:
    """Serves a scenario on 127.0.0.1 (`port` 0: any free port); yields (URL, scenario).

    Args:
        scenario: the answers; a default one (a succeeded run) when omitted.
        mlmd: answers ML Metadata calls (see mlmd_answer); without it they get HTTP 404.
        port: the port to listen on.
    """
    scenario = scenario or KfpScenario()
    server = _Server(("127.0.0.1", port), _Handler)
    server.scenario = scenario
    server.mlmd = mlmd
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", scenario
    finally:
        server.shutdown()
        server.server_close()
