"""An HTTP proxy on 127.0.0.1 in front of the GCS emulator that injects storage faults on request.

Each request takes the next fault of `faults` whose `match` occurs in its path and query (then
consumed), or passes through: "503" (a Service Unavailable answer), "reset" (the connection dropped
before any answer), "slow" (the answer held back `slow_seconds`), "truncate" (the full Content-Length
announced, half the body sent), "corrupt" (one byte of the body flipped). `always` makes one fault
permanent (a storage outage). Every request is counted in `requests`.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Fault:
    """One fault for the next request whose path contains `match`."""

    kind: str
    match: str = ""


@dataclass
class FaultPlan:
    """What the proxy does; tests change it between calls."""

    faults: list[Fault] = field(default_factory=list)
    always: str = ""
    slow_seconds: float = 3.0
    requests: int = 0
    injected: list[str] = field(default_factory=list)

    def take(self, path: str) -> str:
        self.requests += 1
        if self.always:
            return self.always
        for i, fault in enumerate(self.faults):
            if fault.match in path:
                del self.faults[i]
                self.injected.append(fault.kind)
                return fault.kind
        return ""


class FaultProxy:
    """Starts on a free port; `url` goes into STORAGE_EMULATOR_HOST."""

    def __init__(self, upstream: str):
        self.plan = FaultPlan()
        upstream_host = urlsplit(upstream)
        plan = self.plan

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _forward(self):
                fault = plan.take(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if fault == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault == "503":
                    self._answer(503, {"Content-Type": "application/json"}, b'{"error": {"code": 503}}')
                    return
                if fault == "slow":
                    time.sleep(plan.slow_seconds)
                conn = http.client.HTTPConnection(upstream_host.hostname, upstream_host.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                response = conn.getresponse()
                data = response.read()
                out_headers = {
                    k: v
                    for k, v in response.getheaders()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection")
                }
                conn.close()
                if fault == "corrupt" and data:
                    data = (
                        data[: len(data) // 2]
                        + bytes([data[len(data) // 2] ^ 0xFF])
                        + data[len(data) // 2 + 1 :]
                    )
                if fault == "truncate" and data:
                    self.send_response(response.status)
                    for k, v in out_headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._answer(response.status, out_headers, data)

            def _answer(self, status, headers, data):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class SilentServer:
    """Accepts connections on 127.0.0.1 and never answers: an endpoint that hangs."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        while True:
            try:
                conn, _ = self.socket.accept()
            except OSError:
                return
            self.held.append(conn)

    def __enter__(self) -> SilentServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.socket.close()
        for conn in self.held:
            conn.close()
