"""Local AWS emulator: moto's server in-process, with Lambda functions run as host processes.

moto emulates S3, IAM, Step Functions and the Lambda control plane, but runs function code
only in Docker, which these machines lack. This script starts moto's server in this process,
switches on its real Step Functions interpreter, and replaces Lambda's invoke with a runner
that unzips the function's code and runs its `bootstrap` (a custom-runtime executable, e.g.
a Rust `lambda_runtime` binary built for the host) as a host process, serving it the Lambda
Runtime API from this process. Warm processes are pooled per function, so Step Functions'
concurrent Map/Parallel invocations each get their own process, as on AWS. EventBridge rules
that target a state machine start its executions (moto's rules do not), so a bucket's
"Object Created" events reach Step Functions as on AWS.

    python moto_host.py --port P --dir RUN_DIR [--ready-file F] [--exit-with-stdin]

RUN_DIR receives `invocations.jsonl` (one JSON line per invocation: cold start, init and
run times, billed duration, peak memory, error), `logs/<function>.log` (the bootstrap's
stdout/stderr plus START/END/REPORT lines like CloudWatch's) and `code/` (unzipped code,
one directory per function and code version). Once the server answers, the actual port is
written to the ready file (useful with `--port 0`).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import http.client
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from io import BytesIO
from pathlib import Path

from lambda_runtime_api import Invocation, RuntimeApiServer, error_payload, json_field
from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import LambdaFunction
from moto.moto_api._internal.models import moto_api_backend
from moto.server import ThreadedMotoServer

# Warm processes kept per function (and so the concurrency one function can reach).
MAX_PROCESSES_PER_FUNCTION = 16
# AWS gives a cold process this long to reach its first /next before the invocation's own
# timeout starts.
INIT_LIMIT_S = 10.0
# AWS's limit on a synchronous invocation's request payload (moto checks only responses).
MAX_SYNC_REQUEST_BYTES = 6 * 1024 * 1024



class RequestTooLarge(LambdaClientError):
    code = 413

    def __init__(self, size: int) -> None:
        super().__init__(
            "RequestEntityTooLargeException",
            f"{size} byte payload is too large for the RequestResponse invocation type "
            f"(limit {MAX_SYNC_REQUEST_BYTES} bytes)",
        )


class Worker:
    """One bootstrap process and its Runtime API server. Runs one invocation at a time."""

    def __init__(self, pool: "FunctionPool") -> None:
        self.pool = pool
        self.cond = threading.Condition()
        self.pending: Invocation | None = None  # waiting for the process's /next
        self.current: Invocation | None = None  # handed out, waiting for its result
        self.alive = True
        self.exit_status = ""
        self.init_error: tuple[bytes, str] | None = None  # what /init/error reported
        self.ready_at: float | None = None  # monotonic, first /next
        self.server = RuntimeApiServer(self)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        env = pool.process_env(f"127.0.0.1:{self.server.server_address[1]}")
        self.started_at = time.monotonic()
        try:
            # VQA_LAMBDA_CHROOT=1 (root only): the bootstrap runs in a root holding nothing
            # but its unzipped code, no /lib, no shell: a self-contained bootstrap's test.
            if os.environ.get("VQA_LAMBDA_CHROOT") == "1":
                command, cwd = ["chroot", str(pool.task_root), "/bootstrap"], "/"
            else:
                command, cwd = [str(pool.task_root / "bootstrap")], pool.task_root
            self.proc = subprocess.Popen(
                command, cwd=cwd, env=env,
                stdin=subprocess.DEVNULL, stdout=pool.log, stderr=pool.log,
                # Own process group: a timeout kills whatever the handler started too.
                start_new_session=True)
        except OSError:
            self._shutdown_server()
            raise
        threading.Thread(target=self._watch, daemon=True).start()

    def _shutdown_server(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _watch(self) -> None:
        """Fails the in-flight invocation when the process exits, like AWS's Runtime.ExitError,
        and drops the worker so the next invoke starts a fresh process."""
        code = self.proc.wait()
        with self.cond:
            self.alive = False
            # Worded as AWS words it (Go's exec errors): "signal: killed", "exit status 1".
            self.exit_status = (f"signal: {(signal.strsignal(-code) or -code)}".lower()
                                if code < 0 else f"exit status {code}")
            for inv in (self.current, self.pending):
                if inv is not None:
                    self._fail_dead(inv)
            self.cond.notify_all()
        self.pool.discard(self)
        self._shutdown_server()

    def _fail_dead(self, inv: Invocation) -> None:
        if self.init_error is not None:
            inv.finish(*self.init_error)
        else:
            inv.finish(error_payload("Runtime.ExitError", (
                f"RequestId: {inv.request_id} Error: Runtime exited with error: "
                f"{self.exit_status}")), "Runtime.ExitError")

    def kill(self) -> None:
        # Unusable from now on, before the process is seen to exit: release() must not
        # offer it to the next invocation.
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

    def next_invocation(self) -> Invocation | None:
        with self.cond:
            if self.ready_at is None:
                self.ready_at = time.monotonic()
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
        with self.cond:
            self.pending = inv
            self.cond.notify_all()
            while not inv.done:
                if not self.alive:  # exited between being picked and being handed `inv`
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


class FunctionPool:
    """Warm bootstrap processes of one function version with one code and configuration."""

    def __init__(self, host: "LambdaHost", fn: LambdaFunction) -> None:
        self.host = host
        self.name = fn.function_name
        self.arn = fn.function_arn
        self.version = str(fn.version)
        self.region = fn.region
        self.timeout_s = float(fn.timeout)
        self.memory_mb = int(fn.memory_size)
        self.handler = fn.handler or ""
        self.env_vars = {k: str(v) for k, v in (fn.environment_vars or {}).items()}
        self.fingerprint = LambdaHost.fingerprint(fn)
        self.task_root = host.unpack(fn)
        logs = host.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log = open(logs / f"{self.name}.log", "ab", buffering=0)
        self.cond = threading.Condition()
        self.workers: set[Worker] = set()  # running processes, idle or busy
        self.idle: list[Worker] = []
        self.starting = 0
        self.retired = False

    def process_env(self, runtime_api: str) -> dict[str, str]:
        today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y/%m/%d")
        env = {
            # Defaults a function's own configuration may override: point AWS SDKs in the
            # function at this emulator.
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.host.moto_port}",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
        }
        env.update(self.env_vars)
        env.update({
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": self.version,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{today}/[{self.version}]{uuid.uuid4().hex}",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "_HANDLER": self.handler,
            "LAMBDA_TASK_ROOT": str(self.task_root),
            "TZ": ":UTC",
        })
        for name in ("PATH", "LD_LIBRARY_PATH"):
            if name in os.environ:
                env[name] = os.environ[name]
        return env

    def acquire(self) -> tuple[Worker, bool]:
        """An idle warm worker, else a new (cold) one, else waits for one to be released
        (AWS would throttle instead; queueing keeps a busy 2-core machine from failing)."""
        with self.cond:
            while True:
                while self.idle:
                    worker = self.idle.pop()
                    if worker.alive:  # else killed or exited, and about to be discarded
                        return worker, False
                if len(self.workers) + self.starting < MAX_PROCESSES_PER_FUNCTION:
                    self.starting += 1
                    break
                self.cond.wait()
        worker = None
        try:
            worker = Worker(self)
        finally:
            with self.cond:
                self.starting -= 1
                # A process that died at once was already discarded by its watcher.
                if worker is not None and worker.alive:
                    self.workers.add(worker)
                self.cond.notify()
        return worker, True

    def release(self, worker: Worker) -> None:
        with self.cond:
            if worker.alive and not self.retired:
                # Most recently used last, to be reused first: surplus processes stay idle.
                self.idle.append(worker)
                self.cond.notify()
                return
        worker.kill()  # its watcher discards it

    def discard(self, worker: Worker) -> None:
        with self.cond:
            self.workers.discard(worker)
            if worker in self.idle:
                self.idle.remove(worker)
            self.cond.notify()

    def log_line(self, line: str) -> None:
        self.log.write(line.encode() + b"\n")

    def retire(self, busy_too: bool = False) -> None:
        """Idle processes go now; busy ones when they finish, or now with `busy_too`."""
        with self.cond:
            self.retired = True
            doomed = list(self.workers) if busy_too else self.idle
            self.idle = []
        for worker in doomed:
            worker.kill()


class LambdaHost:
    """Runs invocations of moto's Lambda functions in host processes and records them."""

    def __init__(self, run_dir: Path, moto_port: int) -> None:
        self.run_dir = run_dir
        self.moto_port = moto_port
        self.lock = threading.Lock()
        self.pools: dict[tuple[str, str], FunctionPool] = {}
        self.retired: list[FunctionPool] = []  # replaced pools whose busy processes may live
        self.journal = open(run_dir / "invocations.jsonl", "a", buffering=1)
        self.faults_lock = threading.Lock()

    def injected_fault(self, fn: LambdaFunction, payload: bytes) -> str | None:
        """A failure a test asked for in RUN_DIR/faults.json: a list of {"function": part of
        the function's name, "chunk": the chunk index in the payload (optional), "times": how
        many invocations fail, "error": the function error type to fail with (optional; by
        default the bootstrap crashes)}. Returns the error type for a matching invocation."""
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
                if (rule.get("times", 0) > 0 and rule.get("function", "") in fn.function_name
                        and rule.get("chunk", chunk) == chunk):
                    rule["times"] -= 1
                    path.write_text(json.dumps(rules))
                    return rule.get("error", "Runtime.ExitError")
        return None

    @staticmethod
    def fingerprint(fn: LambdaFunction) -> tuple:
        # last_modified changes on every update and on delete + create under the same name.
        return (fn.code_sha_256, fn.handler, fn.memory_size, fn.timeout,
                json.dumps(fn.environment_vars or {}, sort_keys=True), fn.last_modified)

    def unpack(self, fn: LambdaFunction) -> Path:
        """Unzips the code once per code version, keeping the zip's permission bits so that
        `bootstrap` stays executable."""
        digest = base64.b64decode(fn.code_sha_256).hex()[:16]
        root = self.run_dir / "code" / f"{fn.function_name}-{digest}"
        if root.is_dir():
            return root
        partial = root.with_name(f"{root.name}.{uuid.uuid4().hex}.partial")
        with zipfile.ZipFile(BytesIO(fn.code_bytes)) as archive:
            for info in archive.infolist():
                path = Path(archive.extract(info, partial))
                mode = info.external_attr >> 16 & 0o777
                if mode:
                    path.chmod(mode)
        partial.rename(root)
        return root

    def pool_for(self, fn: LambdaFunction) -> FunctionPool:
        key = (fn.function_arn, str(fn.version))
        with self.lock:
            pool = self.pools.get(key)
            if pool is not None and pool.fingerprint == self.fingerprint(fn):
                return pool
            if pool is not None:
                pool.retire()
                self.retired.append(pool)
            pool = self.pools[key] = FunctionPool(self, fn)
            return pool

    def invoke(self, fn: LambdaFunction, payload: bytes) -> tuple[bytes, str | None]:
        """Returns the response payload and the error type (None on success)."""
        pool = self.pool_for(fn)
        inv = Invocation(payload, pool.arn, pool.timeout_s)
        start = time.time()
        pool.log_line(f"START RequestId: {inv.request_id} Version: {pool.version}")
        fault = self.injected_fault(fn, payload)
        if fault is not None:
            # What AWS reports for a bootstrap that dies during an invocation, or the
            # function error asked for.
            message = (f"RequestId: {inv.request_id} Error: Runtime exited with error: "
                       "signal: killed (a crash the test injected)"
                       if fault == "Runtime.ExitError" else "a failure the test injected")
            inv.finish(error_payload(fault, message), fault)
            self._record(pool, None, inv, False, start, None)
            return inv.result, inv.error_type
        try:
            worker, cold = pool.acquire()
        except OSError as err:
            # What AWS reports for a missing or non-executable bootstrap.
            inv.finish(error_payload("Runtime.InvalidEntrypoint", str(err)),
                       "Runtime.InvalidEntrypoint")
            self._record(pool, None, inv, True, start, None)
            return inv.result, inv.error_type
        rss = worker.run(inv)
        pool.release(worker)
        self._record(pool, worker, inv, cold, start, rss)
        return inv.result, inv.error_type

    def _record(self, pool: FunctionPool, worker: Worker | None, inv: Invocation, cold: bool,
                start: float, rss: float | None) -> None:
        handed = inv.handed_at if inv.handed_at is not None else inv.finished_at
        duration_ms = (inv.finished_at - handed) * 1000
        # Provided runtimes are billed by the started millisecond.
        billed_ms = max(1, math.ceil(duration_ms))
        init_ms = None
        if cold and worker is not None and worker.ready_at is not None:
            init_ms = round((worker.ready_at - worker.started_at) * 1000, 3)
        report = (f"REPORT RequestId: {inv.request_id}\tDuration: {duration_ms:.2f} ms\t"
                  f"Billed Duration: {billed_ms} ms\tMemory Size: {pool.memory_mb} MB\t"
                  f"Max Memory Used: {round(rss) if rss is not None else '-'} MB")
        if init_ms is not None:
            report += f"\tInit Duration: {init_ms:.2f} ms"
        pool.log_line(f"END RequestId: {inv.request_id}\n{report}")
        record = {
            "function": pool.name,
            "request_id": inv.request_id,
            "pid": worker.proc.pid if worker is not None else None,
            "cold": cold,
            "init_ms": init_ms,
            "start": start,
            "duration_ms": round(duration_ms, 3),
            "billed_ms": billed_ms,
            "memory_mb": pool.memory_mb,
            "max_rss_mb": rss,
            "error": inv.error_type,
            "request_bytes": len(inv.payload),
            "response_bytes": len(inv.result),
        }
        with self.lock:
            self.journal.write(json.dumps(record) + "\n")

    def shutdown(self) -> None:
        with self.lock:
            pools = list(self.pools.values()) + self.retired
        for pool in pools:
            pool.retire(busy_too=True)


def patch_lambda_invoke(host: LambdaHost) -> None:
    """Every invoke path of moto (the API, Step Functions via the API, event sources) goes
    through LambdaFunction.invoke; replacing it (rather than _invoke_lambda) also lets a
    function error come back as AWS reports it: X-Amz-Function-Error: Unhandled."""

    def invoke(self: LambdaFunction, body: str | bytes | None, request_headers,
               response_headers) -> bytes:
        payload = (body.encode() if isinstance(body, str) else body) or b"{}"
        invocation_type = request_headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "DryRun":
            return b""
        if invocation_type == "Event":
            threading.Thread(target=host.invoke, args=(self, payload), daemon=True).start()
            return b""
        if len(payload) > MAX_SYNC_REQUEST_BYTES:
            raise RequestTooLarge(len(payload))
        result, error_type = host.invoke(self, payload)
        if error_type is not None:
            response_headers["x-amz-function-error"] = "Unhandled"
        response_headers["x-amz-executed-version"] = str(self.version)
        return result

    LambdaFunction.invoke = invoke


def patch_event_targets() -> None:
    """EventBridge rules whose target is a state machine start an execution with the
    target's InputTransformer applied, as on AWS (moto delivers rule targets to logs, SQS
    and event buses only, and skips the transformer for S3's events). This is the path a
    packager's S3 "Object Created" event takes (infra/packager-trigger.yaml)."""
    from moto.events.models import Rule
    from moto.events.utils import EventTemplateParser
    from moto.stepfunctions.responses import get_backend

    deliver = Rule.send_to_targets

    def send_to_targets(self: Rule, event, transform_input: bool = True) -> None:
        if not self.event_pattern.matches_event(event):
            return
        machines = [t for t in self.targets if ":states:" in t["Arn"]]
        # S3's events reach rules without the ingestion time the transformer may name.
        event = dict(event)
        event.setdefault("ingestion-time", event.get("time"))
        for target in machines:
            transformer = target.get("InputTransformer", {})
            execution_input = EventTemplateParser.parse(
                input_template=transformer.get("InputTemplate"),
                input_paths_map=transformer.get("InputPathsMap", {}),
                event=event,
            )
            _, _, _, region, account, *_ = target["Arn"].split(":")
            try:
                get_backend(account, region).start_execution(
                    target["Arn"], name=str(uuid.uuid4()),
                    execution_input=json.dumps(execution_input))
            except Exception as e:  # noqa: BLE001 - delivery is asynchronous on AWS too
                print(f"moto_host: rule {self.name} could not start {target['Arn']}: {e}",
                      file=sys.stderr, flush=True)
        others = [t for t in self.targets if ":states:" not in t["Arn"]]
        if others:
            everything = self.targets
            self.targets = others
            try:
                deliver(self, event, transform_input)
            finally:
                self.targets = everything

    Rule.send_to_targets = send_to_targets


def wait_until_answering(port: int, limit_s: float = 30) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/moto-api/data.json")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--dir", type=Path, required=True, help="run directory")
    parser.add_argument("--ready-file", type=Path,
                        help="receives the port once the server answers")
    parser.add_argument("--exit-with-stdin", action="store_true",
                        help="exit when stdin reaches EOF (the spawning harness is gone)")
    args = parser.parse_args()

    run_dir = args.dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    # moto's Step Functions interpreter calls Lambda (and aws-sdk tasks) through
    # http://localhost:$MOTO_PORT, so it must name this server's actual port.
    os.environ["MOTO_PORT"] = str(port)
    moto_api_backend.set_config({"stepfunctions": {"execute_state_machine": True}})
    host = LambdaHost(run_dir, port)
    patch_lambda_invoke(host)
    patch_event_targets()
    wait_until_answering(port)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.exit_with_stdin:
        def watch_stdin() -> None:
            while sys.stdin.buffer.read(65536):
                pass
            stop.set()
        threading.Thread(target=watch_stdin, daemon=True).start()

    if args.ready_file:
        partial = args.ready_file.with_name(args.ready_file.name + ".partial")
        partial.write_text(f"{port}\n")
        partial.rename(args.ready_file)
    print(f"moto_host: ready on 127.0.0.1:{port}, run dir {run_dir}", file=sys.stderr,
          flush=True)

    while not stop.wait(3600):
        pass
    print("moto_host: stopping", file=sys.stderr, flush=True)
    host.shutdown()
    # Not server.stop(): it waits for open keep-alive requests; the process exit ends them.
    os._exit(0)


if __name__ == "__main__":
    main()
