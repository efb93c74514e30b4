"""A LocalStack Lambda runtime executor that runs `provided.*` bootstraps as host processes.

LocalStack's own executor starts a Docker container per execution environment and talks to
its init binary inside it; these machines have no Docker. This executor (plugin name
`vqa-host`, LAMBDA_RUNTIME_EXECUTOR=vqa-host) instead unzips the function's code (LocalStack's
own code cache, under $TMPDIR/lambda), serves the Lambda Runtime API itself on 127.0.0.1 (one
port per process, because runtime clients cannot be told apart otherwise) and runs the
zip's `bootstrap` with AWS_LAMBDA_RUNTIME_API pointing at it, as moto_host.py does for moto.
It never uses LocalStack's init binary or its `/_localstack_lambda` callback protocol.

Outcomes are reported as AWS reports them (the payload, and `FunctionError: Unhandled` which
LocalStack adds for every error result):
- the handler's error: the body the runtime posted to /invocation/<id>/error, verbatim
  (`{"errorType": ..., "errorMessage": ...}`);
- a timeout: `Sandbox.Timedout`, "RequestId: <id> Error: Task timed out after N.NN seconds";
  the process group is killed and the next invocation starts a fresh process;
- a crash: `Runtime.ExitError`, "RequestId: <id> Error: Runtime exited with error: exit
  status N" (or "signal: killed"); an error the runtime posted to /init/error before exiting;
- a missing or non-executable bootstrap: `Runtime.InvalidEntrypoint`.

Concurrency: LocalStack makes one executor (execution environment) per concurrent invocation
of a function version and reuses idle ones, so one executor runs at most one process and one
invocation at a time. Live processes are capped per function version
(VQA_LAMBDA_MAX_PROCESSES, default 16, as moto_host.py): beyond it an idle environment's
process is stopped (it restarts, cold, if LocalStack reuses that environment) or the
invocation waits for one to finish, instead of overloading a small machine.

Records, in $VQA_EMULATOR_DIR (as moto_host.py): `invocations.jsonl` (one JSON line per
invocation), `logs/<function>/<environment id>.log` (the bootstrap's stdout/stderr with
START/END/REPORT lines; each invocation's part also goes to CloudWatch Logs through
LocalStack), `pids/<pid>` (live bootstrap processes, for `emulators.sh stop`), and reads
`faults.json` (failures a test injects; same format as moto_host.py's).
"""

from __future__ import annotations

import datetime
import errno
import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# The Runtime API server it shares with moto_host.py (scripts/emulator/lambda_runtime_api.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lambda_runtime_api import Invocation, RuntimeApiServer, error_payload, json_field  # noqa: E402
from localstack import config
from localstack.services.lambda_.invocation.lambda_models import (
    FunctionVersion,
    InvocationResult,
)
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

LOG = logging.getLogger(__name__)

# Live bootstrap processes per function version (and so the concurrency one function reaches).
MAX_PROCESSES = max(1, int(os.environ.get("VQA_LAMBDA_MAX_PROCESSES") or 16))
# AWS gives a cold process this long to reach its first /next before the invocation's own
# timeout starts.
INIT_LIMIT_S = 10.0
# How much of an environment's log get_logs() returns (LocalStack prints it on failures).
LOG_TAIL_BYTES = 64 * 1024



def run_dir() -> Path:
    path = Path(os.environ.get("VQA_EMULATOR_DIR")
                or os.path.join(tempfile.gettempdir(), "vqa-host-executor"))
    path.mkdir(parents=True, exist_ok=True)
    return path


class BootstrapProcess:
    """One bootstrap process and its Runtime API server; one invocation at a time."""

    def __init__(self, executor: "HostRuntimeExecutor", env: dict[str, str]) -> None:
        self.executor = executor
        self.cond = threading.Condition()
        self.pending: Invocation | None = None  # waiting for the process's /next
        self.current: Invocation | None = None  # handed out, waiting for its result
        self.alive = True
        self.exit_status = ""
        self.init_error: tuple[bytes, str] | None = None  # what /init/error reported
        self.ready_at: float | None = None  # monotonic, first /next
        self.invocations = 0
        self.server = RuntimeApiServer(self)
        threading.Thread(target=self.server.serve_forever, daemon=True,
                         name=f"vqa-host-api-{executor.id[:8]}").start()
        env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{self.server.server_address[1]}")
        task_root = executor.task_root
        self.started_at = time.monotonic()
        # VQA_LAMBDA_CHROOT=1 (root only; as moto_host.py): the bootstrap runs in a root
        # holding nothing but its unzipped code, no /lib, no shell: a self-contained
        # bootstrap's test.
        if os.environ.get("VQA_LAMBDA_CHROOT") == "1":
            command, cwd = ["chroot", str(task_root), "/bootstrap"], "/"
        else:
            command, cwd = [str(task_root / "bootstrap")], task_root
        try:
            if not os.access(task_root / "bootstrap", os.X_OK):
                # chroot would start and fail later: report it as the missing entrypoint.
                raise FileNotFoundError(errno.ENOENT, "No such file or directory",
                                        str(task_root / "bootstrap"))
            self.proc = subprocess.Popen(
                command, cwd=cwd, env=env,
                stdin=subprocess.DEVNULL, stdout=executor.log, stderr=executor.log,
                # Own process group: a timeout kills whatever the handler started too.
                start_new_session=True)
        except OSError:
            self._shutdown_server()
            raise
        self.pid_file = executor.pids_dir / str(self.proc.pid)
        self.pid_file.write_text(f"{executor.function_name} {executor.id}\n")
        threading.Thread(target=self._watch, daemon=True,
                         name=f"vqa-host-watch-{self.proc.pid}").start()

    def _shutdown_server(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _watch(self) -> None:
        """Fails the in-flight invocation when the process exits, like AWS's Runtime.ExitError."""
        code = self.proc.wait()
        self.pid_file.unlink(missing_ok=True)
        with self.cond:
            self.alive = False
            # Worded as AWS words it (Go's exec errors): "signal: killed", "exit status 1".
            self.exit_status = (f"signal: {(signal.strsignal(-code) or -code)}".lower()
                                if code < 0 else f"exit status {code}")
            for inv in (self.current, self.pending):
                if inv is not None:
                    self._fail_dead(inv)
            self.cond.notify_all()
        self.executor.process_exited(self)
        self._shutdown_server()

    def _fail_dead(self, inv: Invocation) -> None:
        if self.init_error is not None:
            inv.finish(*self.init_error)
        else:
            inv.finish(error_payload("Runtime.ExitError", (
                f"RequestId: {inv.request_id} Error: Runtime exited with error: "
                f"{self.exit_status}")), "Runtime.ExitError")

    def kill(self) -> None:
        with self.cond:
            self.alive = False
            self.cond.notify_all()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def max_rss_mb(self) -> float | None:
        """The process's peak resident memory so far (its lifetime high-water mark)."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        return round(int(match.group(1)) / 1024, 1) if match else None

    def wait_ready(self, limit_s: float) -> None:
        """Until the process asks for its first event, fails, or `limit_s` passes."""
        deadline = time.monotonic() + limit_s
        with self.cond:
            while self.ready_at is None and self.alive and self.init_error is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self.cond.wait(remaining)

    def next_invocation(self) -> Invocation | None:
        with self.cond:
            if self.ready_at is None:
                self.ready_at = time.monotonic()
                self.cond.notify_all()
            while self.pending is None and self.alive:
                self.cond.wait()
            inv, self.pending = self.pending, None
            if inv is not None:
                inv.handed_at = time.monotonic()
                self.current = inv
            self.cond.notify_all()
            return inv

    def complete(self, request_id: str, body: bytes, error_type: str | None) -> bool:
        with self.cond:
            inv = self.current
            if inv is None or inv.request_id != request_id:
                return False
            inv.finish(body, error_type)
            self.current = None
            self.cond.notify_all()
            return True

    def init_failed(self, body: bytes, header_type: str | None) -> None:
        """AWS ends a process whose runtime reported an init error; the waiting invocation
        fails with that error."""
        error_type = json_field(body, "errorType") or header_type or "Runtime.InitError"
        with self.cond:
            self.init_error = (body, error_type)
            for inv in (self.current, self.pending):
                if inv is not None:
                    self._fail_dead(inv)
            self.cond.notify_all()
        self.kill()

    def run(self, inv: Invocation) -> float | None:
        """Runs `inv` to completion or timeout; returns the peak RSS seen at its end."""
        timed_out = False
        queued_at = time.monotonic()
        self.invocations += 1
        with self.cond:
            self.pending = inv
            self.cond.notify_all()
            while not inv.done:
                if not self.alive:
                    self._fail_dead(inv)
                    break
                if inv.handed_at is not None:
                    deadline = inv.handed_at + inv.timeout_s
                else:
                    # Not picked up yet: a cold process may still be initialising; a warm
                    # one (started long ago) gets its time from now, not from its start.
                    deadline = max(self.started_at, queued_at) + INIT_LIMIT_S + inv.timeout_s
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    inv.finish(error_payload("Sandbox.Timedout", (
                        f"RequestId: {inv.request_id} Error: Task timed out after "
                        f"{inv.timeout_s:.2f} seconds")), "Sandbox.Timedout")
                    break
                self.cond.wait(remaining)
            self.pending = self.current = None
        rss = self.max_rss_mb()
        if timed_out:
            self.kill()
        return rss


class FunctionSlots:
    """Caps the live bootstrap processes of one function version; see the module's doc."""

    _registry: dict[tuple[str, str], "FunctionSlots"] = {}
    _registry_lock = threading.Lock()

    @classmethod
    def of(cls, function_version: FunctionVersion) -> "FunctionSlots":
        key = (function_version.qualified_arn, function_version.config.internal_revision)
        with cls._registry_lock:
            slots = cls._registry.get(key)
            if slots is None:
                slots = cls._registry[key] = FunctionSlots()
            return slots

    @classmethod
    def forget(cls, function_version: FunctionVersion) -> None:
        key = (function_version.qualified_arn, function_version.config.internal_revision)
        with cls._registry_lock:
            cls._registry.pop(key, None)

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.live: set[HostRuntimeExecutor] = set()

    def acquire(self, executor: "HostRuntimeExecutor", block: bool) -> bool:
        """A slot for `executor`'s process; stops an idle environment's process if that makes
        room. Called with self.cond held."""
        while True:
            if executor in self.live or len(self.live) < MAX_PROCESSES:
                self.live.add(executor)
                return True
            idle = [e for e in self.live if not e.busy]
            if idle:
                victim = idle[0]
                self.live.discard(victim)
                if victim.process is not None:
                    victim.process.kill()
                LOG.debug("vqa-host: stopped idle environment %s to make room", victim.id)
                continue
            if not block:
                return False
            self.cond.wait()


class HostRuntimeExecutor(RuntimeExecutor):
    """One LocalStack execution environment: at most one bootstrap process at a time."""

    journal_lock = threading.Lock()
    faults_lock = threading.Lock()

    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id, function_version)
        self.function_name = function_version.id.function_name
        self.task_root = Path(function_version.config.code.get_unzipped_code_location())
        self.timeout_s = float(function_version.config.timeout)
        self.memory_mb = int(function_version.config.memory_size)
        self.slots = FunctionSlots.of(function_version)
        self.env: dict[str, str] = {}
        self.process: BootstrapProcess | None = None
        self.busy = False  # in invoke(); guarded by self.slots.cond
        self.stopped = False
        self.run_dir = run_dir()
        self.pids_dir = self.run_dir / "pids"
        self.pids_dir.mkdir(exist_ok=True)
        logs = self.run_dir / "logs" / self.function_name
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"{id}.log"
        self.log = open(self.log_path, "ab", buffering=0)

    # -- LocalStack's RuntimeExecutor interface

    def start(self, env_vars: dict[str, str]) -> None:
        env = {k: str(v) for k, v in env_vars.items()
               if k not in ("LOCALSTACK_RUNTIME_ENDPOINT", "LOCALSTACK_RUNTIME_ID")}
        env["LAMBDA_TASK_ROOT"] = str(self.task_root)
        env["LAMBDA_RUNTIME_DIR"] = str(self.task_root)
        for name in ("PATH", "LD_LIBRARY_PATH"):
            if name in os.environ:
                env[name] = os.environ[name]
        self.env = env
        # Start the process now if there is room (a failure is reported by the invocation,
        # which knows its request id, as AWS does); else invoke() waits for room.
        try:
            process = self._spawn(block=False)
        except OSError:
            return
        if process is not None:
            process.wait_ready(INIT_LIMIT_S)

    def stop(self) -> None:
        self.stopped = True
        with self.slots.cond:
            process, self.process = self.process, None
            self.slots.live.discard(self)
            self.slots.cond.notify_all()
        if process is not None:
            process.kill()
        try:
            self.log.close()
        except OSError:
            pass

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        request_id = payload["invoke-id"]
        body = payload.get("payload") or "{}"
        inv = Invocation(body.encode() if isinstance(body, str) else body,
                         payload["invoked-function-arn"], self.timeout_s,
                         request_id=request_id, trace_id=payload.get("trace-id") or None)
        wall_start = time.time()
        log_offset = self._log_size()
        self._log_line(f"START RequestId: {request_id} Version: "
                       f"{self.function_version.id.qualifier}")
        with self.slots.cond:
            self.busy = True
        process = None
        cold = False
        rss = None
        try:
            fault = self._injected_fault(inv.payload)
            if fault is not None:
                message = (f"RequestId: {request_id} Error: Runtime exited with error: "
                           "signal: killed (a crash the test injected)"
                           if fault == "Runtime.ExitError" else "a failure the test injected")
                inv.finish(error_payload(fault, message), fault)
            else:
                process = self.process
                if process is None or not process.alive:
                    try:
                        process = self._spawn(block=True)
                    except OSError as err:
                        # What AWS reports for a missing or non-executable bootstrap.
                        inv.finish(error_payload("Runtime.InvalidEntrypoint", (
                            f"RequestId: {request_id} Error: Couldn't find valid bootstrap(s): "
                            f"[{self.task_root / 'bootstrap'}]: {err.strerror or err}")),
                            "Runtime.InvalidEntrypoint")
                        process = None
                if process is not None:
                    cold = process.invocations == 0
                    rss = process.run(inv)
        finally:
            with self.slots.cond:
                self.busy = False
                self.slots.cond.notify_all()
        if not inv.done:  # not reached; keeps the result well-formed whatever happens
            inv.finish(error_payload("Runtime.Unknown", "no result"), "Runtime.Unknown")
        logs = self._finish_logs(inv, process, cold, rss, log_offset)
        self._record(inv, process, cold, wall_start, rss)
        return InvocationResult(request_id, inv.result, is_error=inv.error_type is not None,
                                logs=logs)

    def get_logs(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, self._log_size() - LOG_TAIL_BYTES))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        # The function's AWS_ENDPOINT_URL: LocalStack's gateway, on this host.
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        # LocalStack's callback endpoint for its init binary, which this executor never uses.
        return (f"http://127.0.0.1:{config.GATEWAY_LISTEN[0].port}"
                f"/_localstack_lambda/{self.id}")

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        cfg = function_version.config
        if cfg.package_type != "Zip" or cfg.code is None:
            raise LambdaRuntimeException(
                "the vqa-host executor runs zip functions only (no container images)")
        if not (cfg.runtime or "").startswith("provided"):
            raise LambdaRuntimeException(
                f"the vqa-host executor runs provided.* functions only, not {cfg.runtime}")
        if cfg.layers:
            raise LambdaRuntimeException("the vqa-host executor does not support layers")
        cfg.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        FunctionSlots.forget(function_version)

    @classmethod
    def validate_environment(cls) -> bool:
        LOG.info("vqa-host: provided.* functions run as host processes (records in %s)",
                 run_dir())
        return True

    # -- the rest

    def _spawn(self, block: bool) -> BootstrapProcess | None:
        """A new process in a slot; None if `block` is false and there is no room."""
        with self.slots.cond:
            if self.stopped:
                raise OSError(f"environment {self.id} was stopped")
            if not self.slots.acquire(self, block):
                return None
            try:
                self.process = BootstrapProcess(self, self.env)
            except OSError:
                self.process = None
                self.slots.live.discard(self)
                self.slots.cond.notify_all()
                raise
            return self.process

    def process_exited(self, process: BootstrapProcess) -> None:
        with self.slots.cond:
            if self.process is process:
                self.slots.live.discard(self)
            self.slots.cond.notify_all()

    def _log_size(self) -> int:
        try:
            return os.fstat(self.log.fileno()).st_size
        except (OSError, ValueError):
            return 0

    def _log_line(self, line: str) -> None:
        try:
            self.log.write(line.encode() + b"\n")
        except (OSError, ValueError):
            pass

    def _finish_logs(self, inv: Invocation, process: BootstrapProcess | None, cold: bool,
                     rss: float | None, offset: int) -> str:
        handed = inv.handed_at if inv.handed_at is not None else inv.finished_at
        duration_ms = (inv.finished_at - handed) * 1000
        billed_ms = max(1, math.ceil(duration_ms))
        report = (f"REPORT RequestId: {inv.request_id}\tDuration: {duration_ms:.2f} ms\t"
                  f"Billed Duration: {billed_ms} ms\tMemory Size: {self.memory_mb} MB\t"
                  f"Max Memory Used: {round(rss) if rss is not None else '-'} MB")
        init_ms = self._init_ms(process, cold)
        if init_ms is not None:
            report += f"\tInit Duration: {init_ms:.2f} ms"
        if inv.error_type == "Sandbox.Timedout":
            self._log_line(f"{datetime.datetime.now(datetime.timezone.utc).isoformat()} "
                           f"{inv.request_id} Task timed out after {inv.timeout_s:.2f} seconds")
        self._log_line(f"END RequestId: {inv.request_id}")
        self._log_line(report)
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    @staticmethod
    def _init_ms(process: BootstrapProcess | None, cold: bool) -> float | None:
        if cold and process is not None and process.ready_at is not None:
            return round((process.ready_at - process.started_at) * 1000, 3)
        return None

    def _record(self, inv: Invocation, process: BootstrapProcess | None, cold: bool,
                start: float, rss: float | None) -> None:
        handed = inv.handed_at if inv.handed_at is not None else inv.finished_at
        duration_ms = (inv.finished_at - handed) * 1000
        record = {
            "function": self.function_name,
            "request_id": inv.request_id,
            "pid": process.proc.pid if process is not None else None,
            "environment": self.id,
            "cold": cold,
            "init_ms": self._init_ms(process, cold),
            "start": start,
            "duration_ms": round(duration_ms, 3),
            "billed_ms": max(1, math.ceil(duration_ms)),
            "memory_mb": self.memory_mb,
            "max_rss_mb": rss,
            "error": inv.error_type,
            "request_bytes": len(inv.payload),
            "response_bytes": len(inv.result),
        }
        with self.journal_lock:
            with open(self.run_dir / "invocations.jsonl", "a") as journal:
                journal.write(json.dumps(record) + "\n")

    def _injected_fault(self, payload: bytes) -> str | None:
        """A failure a test asked for in RUN_DIR/faults.json (moto_host.py's format): a list of
        {"function": part of the function's name, "chunk": the chunk index in the payload
        (optional), "times": how many invocations fail, "error": the function error type
        (optional; by default a crash, Runtime.ExitError)}."""
        path = self.run_dir / "faults.json"
        with self.faults_lock:
            if not path.exists():
                return None
            try:
                rules = json.loads(path.read_text())
                chunk = (json.loads(payload or b"{}").get("chunk") or {}).get("index")
            except (ValueError, AttributeError):
                return None
            for rule in rules:
                if (rule.get("times", 0) > 0 and rule.get("function", "") in self.function_name
                        and rule.get("chunk", chunk) == chunk):
                    rule["times"] -= 1
                    path.write_text(json.dumps(rules))
                    return rule.get("error", "Runtime.ExitError")
        return None
