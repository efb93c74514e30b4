"""The Lambda Runtime API a bootstrap process talks to, served by the emulators' hosts:
moto_host.py (for moto) and the vqa-host LocalStack executor (localstack_executor/). One
server and port per process, because runtime clients cannot be told apart otherwise.

The server's `process` provides what the API needs of one bootstrap process:
`next_invocation()` (blocks; None once the process is being stopped), `complete(request_id,
body, error_type)` (False when the id is not the current invocation's) and
`init_failed(body, error_type)`.
"""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from typing import Protocol

RUNTIME_PREFIX = "/2018-06-01/runtime"
RESULT_PATH = re.compile(RUNTIME_PREFIX + r"/invocation/([^/]+)/(response|error)$")


def error_payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def json_field(body: bytes, name: str) -> str | None:
    try:
        value = json.loads(body).get(name)
        return value if isinstance(value, str) else None
    except (ValueError, AttributeError):
        return None


class Invocation:
    """One event on its way through a bootstrap process; finished exactly once."""

    def __init__(self, payload: bytes, function_arn: str, timeout_s: float,
                 request_id: str | None = None, trace_id: str | None = None) -> None:
        self.request_id = request_id or str(uuid.uuid4())
        self.payload = payload
        self.function_arn = function_arn
        self.trace_id = (trace_id
                         or f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0")
        self.timeout_s = timeout_s
        self.handed_at: float | None = None  # monotonic, when /next returned the event
        self.finished_at: float | None = None
        self.result = b""
        self.error_type: str | None = None

    @property
    def done(self) -> bool:
        return self.finished_at is not None

    def finish(self, result: bytes, error_type: str | None) -> None:
        if not self.done:
            self.result, self.error_type = result, error_type
            self.finished_at = time.monotonic()


class BootstrapProcess(Protocol):
    def next_invocation(self) -> Invocation | None: ...

    def complete(self, request_id: str, body: bytes, error_type: str | None) -> bool: ...

    def init_failed(self, body: bytes, error_type: str | None) -> None: ...


class RuntimeApiHandler(BaseHTTPRequestHandler):
    """The Lambda Runtime API for one bootstrap process."""

    # Keep-alive: runtime clients reuse one connection for /next and the result.
    protocol_version = "HTTP/1.1"
    # Headers and body in one segment, sent at once: with Nagle's algorithm, a body written
    # after the headers waits for the client's delayed ACK (~40 ms on loopback).
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    server: "RuntimeApiServer"

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"{}", headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            # hyper (the Rust runtime client) streams bodies of unknown length in chunks.
            body = BytesIO()
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body.write(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return body.getvalue()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        if self.path != RUNTIME_PREFIX + "/invocation/next":
            return self._reply(404, error_payload("NotFound", self.path))
        inv = self.server.process.next_invocation()
        if inv is None:  # the process is being shut down
            return self._reply(410, error_payload("Gone", "process stopped"))
        deadline_ms = int((time.time() + inv.timeout_s) * 1000)
        self._reply(200, inv.payload, {
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": inv.function_arn,
            "Lambda-Runtime-Trace-Id": inv.trace_id,
        })

    def do_POST(self) -> None:
        body = self._read_body()
        process = self.server.process
        if self.path == RUNTIME_PREFIX + "/init/error":
            process.init_failed(body, self.headers.get("Lambda-Runtime-Function-Error-Type"))
            return self._reply(202, b'{"status":"OK"}')
        match = RESULT_PATH.match(self.path)
        if not match:
            return self._reply(404, error_payload("NotFound", self.path))
        request_id, kind = match.groups()
        error_type = None
        if kind == "error":
            error_type = (json_field(body, "errorType")
                          or self.headers.get("Lambda-Runtime-Function-Error-Type")
                          or "Unhandled")
            if json_field(body, "errorType") is None:
                # What AWS returns for an error body that is not an error object.
                body = error_payload(error_type, body.decode(errors="replace"))
        if not process.complete(request_id, body, error_type):
            return self._reply(400, error_payload(
                "InvalidRequestID", f"{request_id} is not the current invocation"))
        self._reply(202, b'{"status":"OK"}')


class RuntimeApiServer(ThreadingHTTPServer):
    """Serves the Runtime API to one bootstrap process on a free loopback port."""

    daemon_threads = True

    def __init__(self, process: BootstrapProcess) -> None:
        super().__init__(("127.0.0.1", 0), RuntimeApiHandler)
        self.process = process

    def handle_error(self, request, client_address) -> None:
        # A killed bootstrap (timeout, stop) drops its connection mid-request: not an error.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)
