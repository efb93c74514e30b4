"""Self-test of the local AWS emulator (moto_host.py), with boto3 and no Rust.

    target/emulators/venv/bin/python scripts/emulator/selftest.py [--keep DIR]

Starts a fresh emulator on a free port (tied to this process through its stdin), deploys a
Lambda function whose `bootstrap` is a Python custom runtime, invokes it directly (success,
error, timeout, crash, concurrency), exercises S3 with a large object, and runs Step
Functions state machines built from exactly the ASL features the deployment generator emits.
Prints what works, the measured latencies and what the execution history holds; exits
non-zero if a required check fails. Informational findings (features the generator does not
need) are printed as INFO and never fail the run.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = Path(__file__).resolve().parent
REGION = "us-east-1"
DETECTORS = ["freeze", "black"]
SEGMENTS = 6
MAP_CONCURRENCY = 4
BRANCH_SLEEP_S = 0.25

# The function under test: a custom runtime (the Runtime API client loop) in Python.
BOOTSTRAP = r'''#!PYTHON
import json, os, time, urllib.request

API = "http://%s/2018-06-01/runtime/invocation/" % os.environ["AWS_LAMBDA_RUNTIME_API"]


def handle(event, headers):
    if "group" in event:  # a detector branch inside the Map's Parallel
        start = time.time()
        time.sleep(float(os.environ["BRANCH_SLEEP_S"]))
        with open(os.environ["SELFTEST_TRACE"], "a") as trace:
            trace.write(json.dumps({"segment": event["segment"], "group": event["group"],
                                    "start": start, "end": time.time()}) + "\n")
        return {"segment": event["segment"], "group": event["group"],
                "detectors": event["detectors"]}
    if "aggregate" in event:
        return {"aggregated": event["aggregate"], "stream": event["stream"]}
    action = event.get("action")
    if action == "fail":
        raise ValueError("asked to fail for %s" % event.get("stream"))
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "crash":
        os._exit(3)
    if action == "s3put":
        import boto3  # from the emulator's venv; AWS_ENDPOINT_URL points it at the emulator
        boto3.client("s3").put_object(Bucket=event["bucket"], Key=event["key"], Body=b"hi")
        return {"put": event["key"]}
    if action == "env":
        return {name: os.environ.get(name) for name in event["names"]}
    if action == "convert":
        return {"handle": "h-" + event["stream"], "segments": list(range(event["segments"]))}
    return dict(event, echoed=True, pid=os.getpid(),
                headers={k: v for k, v in headers.items() if k.startswith("Lambda-Runtime")})


while True:
    with urllib.request.urlopen(API + "next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        headers = dict(response.headers)
        event = json.loads(response.read())
    try:
        body, outcome = handle(event, headers), "response"
    except Exception as error:
        body, outcome = {"errorType": type(error).__name__, "errorMessage": str(error)}, "error"
    urllib.request.urlopen(urllib.request.Request(
        API + request_id + "/" + outcome, data=json.dumps(body).encode(), method="POST")).read()
'''


class Checks:
    def __init__(self) -> None:
        self.failed: list[str] = []

    def require(self, name: str, ok: bool, detail: object = "") -> bool:
        print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f": {detail}" if detail != "" else ""))
        if not ok:
            self.failed.append(name)
        return ok

    @staticmethod
    def info(name: str, detail: object) -> None:
        print(f"INFO  {name}: {detail}")


def start_emulator(work: Path) -> tuple[subprocess.Popen, int]:
    ready = work / "ready"
    log = open(work / "moto_host.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "moto_host.py"), "--port", "0", "--dir", str(work / "run"),
         "--ready-file", str(ready), "--exit-with-stdin"],
        stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"emulator did not come up; see {work / 'moto_host.log'}:\n"
                     + (work / "moto_host.log").read_text()[-3000:])
        time.sleep(0.05)
    return proc, int(ready.read_text())


def zip_of(name: str, content: bytes, mode: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        info = zipfile.ZipInfo(name)
        info.external_attr = (0o100000 | mode) << 16  # a regular file with these permissions
        archive.writestr(info, content)
    return buf.getvalue()


def function_zip() -> bytes:
    return zip_of("bootstrap", BOOTSTRAP.replace("PYTHON", sys.executable, 1).encode(), 0o755)


def invoke(lam, arn: str, event: dict) -> tuple[dict, str | None, float]:
    t0 = time.perf_counter()
    resp = lam.invoke(FunctionName=arn, Payload=json.dumps(event).encode())
    elapsed = time.perf_counter() - t0
    return json.loads(resp["Payload"].read()), resp.get("FunctionError"), elapsed


def journal(work: Path) -> list[dict]:
    path = work / "run" / "invocations.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_lambda(checks: Checks, lam, arn: str, work: Path) -> None:
    out, err, cold_s = invoke(lam, arn, {"action": "echo", "n": 1})
    headers = out.get("headers", {})
    checks.require("direct invoke (cold) echoes the event", err is None and out.get("echoed")
                   and out.get("n") == 1, out)
    checks.require("Runtime API headers", all(f"Lambda-Runtime-{h}" in headers for h in (
        "Aws-Request-Id", "Deadline-Ms", "Invoked-Function-Arn", "Trace-Id")) and
        headers["Lambda-Runtime-Invoked-Function-Arn"] == arn, headers)
    warm = [invoke(lam, arn, {"action": "echo"}) for _ in range(20)]
    pids = {o["pid"] for o, _, _ in warm}
    checks.require("warm invokes reuse the process", pids == {out["pid"]}, pids)
    warm_ms = [s * 1000 for _, _, s in warm]
    records = journal(work)
    first = records[0]
    checks.require("journal records a cold start with init time",
                   first["cold"] and first["init_ms"] is not None and
                   not any(r["cold"] for r in records[1:]), first)
    checks.info("latency, client-side invoke", (
        f"cold {cold_s * 1000:.1f} ms (process init {first['init_ms']:.1f} ms), warm mean "
        f"{statistics.mean(warm_ms):.1f} ms / min {min(warm_ms):.1f} ms over {len(warm_ms)}; "
        f"in-function duration warm mean "
        f"{statistics.mean(r['duration_ms'] for r in records[1:]):.2f} ms"))
    checks.info("journal line", json.dumps(records[-1]))

    env_names = ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                 "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_LOG_GROUP_NAME",
                 "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_REGION", "AWS_DEFAULT_REGION", "_HANDLER",
                 "LAMBDA_TASK_ROOT", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "GREETING", "PATH"]
    env, err, _ = invoke(lam, arn, {"action": "env", "names": env_names})
    checks.require("process environment", err is None and all(env.get(n) for n in env_names)
                   and env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
                   and env["GREETING"] == "hello" and env["AWS_ACCESS_KEY_ID"] == "test"
                   and env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:"), env)

    out, err, _ = invoke(lam, arn, {"action": "fail", "stream": "s9"})
    checks.require("function error → Unhandled with errorType/errorMessage",
                   err == "Unhandled" and out.get("errorType") == "ValueError"
                   and "s9" in out.get("errorMessage", ""), (err, out))

    out, err, elapsed = invoke(lam, arn, {"action": "sleep", "seconds": 5})
    checks.require("timeout (2 s) kills the invocation",
                   err == "Unhandled" and out.get("errorType") == "Sandbox.Timedout"
                   and "Task timed out after 2.00 seconds" in out.get("errorMessage", "")
                   and 1.9 < elapsed < 3.5, (err, out, f"{elapsed:.2f} s"))
    out, err, _ = invoke(lam, arn, {"action": "echo"})
    timed_out, after = journal(work)[-2:]
    checks.require("invoke after a timeout gets a new process", err is None and after["cold"]
                   and after["pid"] != timed_out["pid"], (timed_out["pid"], after["pid"]))

    out, err, _ = invoke(lam, arn, {"action": "crash"})
    checks.require("process crash → Runtime.ExitError", err == "Unhandled" and
                   out.get("errorType") == "Runtime.ExitError", out)
    out, err, _ = invoke(lam, arn, {"action": "echo"})
    checks.require("invoke after a crash works (cold)", err is None and journal(work)[-1]["cold"])

    results: list = [None] * 4

    def sleeper(i: int) -> None:
        results[i] = invoke(lam, arn, {"action": "sleep", "seconds": 0.5})

    t0 = time.perf_counter()
    threads = [threading.Thread(target=sleeper, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    pids = {r[0]["pid"] for r in results if r and r[1] is None}
    checks.require("4 concurrent invokes run in 4 processes at once",
                   len(pids) == 4 and elapsed < 1.8, f"{len(pids)} pids, {elapsed:.2f} s")

    config = lam.get_function_configuration(FunctionName=arn)["Environment"]["Variables"]
    lam.update_function_configuration(FunctionName=arn, Environment={
        "Variables": dict(config, GREETING="updated")})
    out, err, _ = invoke(lam, arn, {"action": "env", "names": ["GREETING"]})
    checks.require("configuration update → new cold process with the new environment",
                   out == {"GREETING": "updated"} and journal(work)[-1]["cold"], out)

    big = {"action": "echo", "blob": "x" * (6 * 1024 * 1024 + 1)}
    try:
        lam.invoke(FunctionName=arn, Payload=json.dumps(big).encode())
        checks.require("request over 6 MiB rejected", False)
    except ClientError as e:
        checks.require("request over 6 MiB rejected", e.response["Error"]["Code"]
                       == "RequestEntityTooLargeException", e.response["Error"])


def test_s3(checks: Checks, s3) -> None:
    s3.create_bucket(Bucket="selftest-data")
    blob = os.urandom(32 * 1024 * 1024)
    t0 = time.perf_counter()
    s3.put_object(Bucket="selftest-data", Key="big/one", Body=blob)
    got = s3.get_object(Bucket="selftest-data", Key="big/one")["Body"].read()
    elapsed = time.perf_counter() - t0
    checks.require("S3 32 MiB object round-trips", got == blob, f"PUT+GET {elapsed:.2f} s")
    for i in range(3):
        s3.put_object(Bucket="selftest-data", Key=f"small/{i}", Body=b"x")
    resp = s3.delete_objects(Bucket="selftest-data", Delete={"Objects": [
        {"Key": k} for k in ("big/one", "small/0", "small/1", "small/2")]})
    left = s3.list_objects_v2(Bucket="selftest-data").get("KeyCount")
    checks.require("S3 DeleteObjects", len(resp.get("Deleted", [])) == 4 and left == 0,
                   f"deleted {len(resp.get('Deleted', []))}, left {left}")


def test_packaging(checks: Checks, lam, s3, arn: str, role_arn: str, code: bytes) -> None:
    s3.create_bucket(Bucket="selftest-code")
    s3.put_object(Bucket="selftest-code", Key="fn.zip", Body=code)
    lam.create_function(FunctionName="selftest-s3code", Runtime="provided.al2023",
                        Role=role_arn, Handler="bootstrap",
                        Code={"S3Bucket": "selftest-code", "S3Key": "fn.zip"})
    out, err, _ = invoke(lam, "selftest-s3code", {"action": "echo"})
    checks.require("function with code from S3", err is None and out.get("echoed"), out)

    out, err, _ = invoke(lam, arn, {"action": "s3put", "bucket": "selftest-data",
                                    "key": "from-lambda"})
    got = s3.get_object(Bucket="selftest-data", Key="from-lambda")["Body"].read()
    checks.require("function's own SDK reaches the emulator", err is None and got == b"hi", out)

    lam.create_function(FunctionName="selftest-nobootstrap", Runtime="provided.al2023",
                        Role=role_arn, Handler="bootstrap",
                        Code={"ZipFile": zip_of("handler.py", b"", 0o644)})
    out, err, _ = invoke(lam, "selftest-nobootstrap", {})
    checks.require("zip without bootstrap → Runtime.InvalidEntrypoint",
                   err == "Unhandled" and out.get("errorType") == "Runtime.InvalidEntrypoint",
                   out)


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for init to reap it."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def lambda_task(arn: str, payload: dict, **fields) -> dict:
    return {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": arn, **payload}, **fields}


def definition(arn: str, legacy_map: bool, fail_paths: bool) -> str:
    """The pipeline's shape: convert → Map over segments (Parallel of 3 detector groups) →
    aggregate, with the Catch of convert leading to a Fail state."""
    branches = [{"StartAt": f"Detect{g}", "States": {f"Detect{g}": lambda_task(arn, {"Payload": {
        "stream.$": "$.stream", "segment.$": "$.segment", "detectors": DETECTORS, "group": g}},
        End=True)}} for g in range(3)]
    processor = {"StartAt": "Detectors", "States": {
        "Detectors": {"Type": "Parallel", "Branches": branches, "ResultPath": None,
                      "End": True}}}
    selector = {"stream.$": "$.stream", "segment.$": "$$.Map.Item.Value",
                "config.$": "$.config"}
    map_state = {"Type": "Map", "ItemsPath": "$.converted.segments",
                 "MaxConcurrency": MAP_CONCURRENCY, "ResultPath": None, "Next": "Aggregate"}
    if legacy_map:
        map_state.update(Parameters=selector, Iterator=processor)
    else:
        map_state.update(ItemSelector=selector, ItemProcessor={
            "ProcessorConfig": {"Mode": "INLINE"}, **processor})
    failed = ({"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
              if fail_paths else
              {"Type": "Fail", "Error": "ConvertFailed", "Cause": "see execution history"})
    return json.dumps({"StartAt": "Convert", "States": {
        "Convert": lambda_task(arn, {"Payload.$": "$"},
                               ResultSelector={"handle.$": "$.Payload.handle",
                                               "segments.$": "$.Payload.segments"},
                               ResultPath="$.converted",
                               Retry=[{"ErrorEquals": [
                                   "Lambda.ServiceException", "Lambda.AWSLambdaException",
                                   "Lambda.SdkClientException",
                                   "Lambda.TooManyRequestsException"],
                                   "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 2}],
                               Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                                       "Next": "Failed"}],
                               Next="Segments"),
        "Segments": map_state,
        "Aggregate": lambda_task(arn, {"Payload": {"aggregate.$": "$.converted.handle",
                                                   "stream.$": "$.stream"}},
                                 ResultSelector={"report.$": "$.Payload"},
                                 ResultPath="$.result", OutputPath="$.result.report",
                                 End=True),
        "Failed": failed,
    }})


def run_execution(sfn, sm_arn: str, name: str, event: dict, limit_s: float = 60) -> dict:
    exec_arn = sfn.start_execution(stateMachineArn=sm_arn, name=name,
                                   input=json.dumps(event))["executionArn"]
    deadline = time.monotonic() + limit_s
    while True:
        desc = sfn.describe_execution(executionArn=exec_arn)
        if desc["status"] != "RUNNING" or time.monotonic() > deadline:
            return desc
        time.sleep(0.05)


def history(sfn, exec_arn: str) -> list[dict]:
    events, token = [], None
    while True:
        page = sfn.get_execution_history(executionArn=exec_arn, maxResults=1000,
                                         **({"nextToken": token} if token else {}))
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


def max_overlap(intervals: list[tuple[float, float, object]]) -> tuple[int, int]:
    """Peak number of intervals open at once, and of distinct keys among them."""
    peak = peak_keys = 0
    for start, _, _ in intervals:
        open_now = [key for s, e, key in intervals if s <= start < e]
        peak = max(peak, len(open_now))
        peak_keys = max(peak_keys, len(set(open_now)))
    return peak, peak_keys


def test_stepfunctions(checks: Checks, sfn, arn: str, role: str, work: Path) -> None:
    trace = work / "trace.jsonl"
    event = {"stream": "s1", "config": {"fps": 25}, "action": "convert", "segments": SEGMENTS}
    expected = {"aggregated": "h-s1", "stream": "s1"}

    def create(name: str, sm_type: str, legacy_map: bool = False,
               fail_paths: bool = True) -> str | None:
        try:
            return sfn.create_state_machine(
                name=name, roleArn=role, type=sm_type,
                definition=definition(arn, legacy_map, fail_paths))["stateMachineArn"]
        except ClientError as e:
            checks.info(f"CreateStateMachine {name}", e.response["Error"])
            return None

    standard = create("selftest-standard", "STANDARD")
    fail_paths = standard is not None
    if standard is None:
        standard = create("selftest-standard-static-fail", "STANDARD", fail_paths=False)
    checks.require("create STANDARD state machine", standard is not None)
    checks.info("Fail state with ErrorPath/CausePath accepted", fail_paths)

    trace.unlink(missing_ok=True)
    t0 = time.perf_counter()
    desc = run_execution(sfn, standard, "ok-1", event)
    elapsed = time.perf_counter() - t0
    output = json.loads(desc.get("output", "null"))
    checks.require("STANDARD execution: convert → Map(Parallel×3) → aggregate", desc["status"]
                   == "SUCCEEDED" and output == expected, (desc["status"], output,
                                                           desc.get("error"), desc.get("cause")))
    spans = [json.loads(line) for line in trace.read_text().splitlines()]
    peak, peak_segments = max_overlap([(s["start"], s["end"], s["segment"]) for s in spans])
    checks.require("Map ran every segment × group once",
                   sorted((s["segment"], s["group"]) for s in spans)
                   == [(i, g) for i in range(SEGMENTS) for g in range(3)])
    checks.require(f"Map+Parallel invoke concurrently, ≤ {MAP_CONCURRENCY} segments at once",
                   peak > 1 and peak_segments <= MAP_CONCURRENCY,
                   f"peak {peak} invocations in flight, {peak_segments} segments; "
                   f"execution {elapsed:.2f} s for {SEGMENTS * 3} × {BRANCH_SLEEP_S} s "
                   f"of handler sleep")

    events = history(sfn, desc["executionArn"])
    counts = collections.Counter(e["type"] for e in events)
    entered = sum(n for t, n in counts.items() if t.endswith("StateEntered"))
    expected_entered = 2 + SEGMENTS * 4 + 1  # Convert, Map, per item Parallel + 3 tasks, Agg.
    checks.require("GetExecutionHistory has real events", counts["ExecutionSucceeded"] == 1
                   and counts["TaskScheduled"] == 2 + 3 * SEGMENTS
                   and entered == expected_entered,
                   f"{len(events)} events, {entered} *StateEntered (expected "
                   f"{expected_entered})")
    checks.info("history event types", dict(sorted(counts.items())))

    before = sum(1 for r in journal(work) if r["error"] == "ValueError")
    desc = run_execution(sfn, standard, "fail-1", dict(event, action="fail"))
    errors = sum(1 for r in journal(work) if r["error"] == "ValueError") - before
    checks.require("function error → Catch → Fail → FAILED (no retry)",
                   desc["status"] == "FAILED" and errors == 1 and
                   (not fail_paths or (desc.get("error") == "ValueError"
                                       and "asked to fail for s1" in desc.get("cause", ""))),
                   (desc["status"], desc.get("error"), desc.get("cause"), f"{errors} invokes"))
    fail_events = collections.Counter(e["type"] for e in history(sfn, desc["executionArn"]))
    checks.info("history of the failed execution", dict(sorted(fail_events.items())))

    desc = run_execution(sfn, standard, "timeout-1", dict(event, action="sleep", seconds=5))
    checks.require("function timeout → Catch → FAILED", desc["status"] == "FAILED" and
                   (not fail_paths or (desc.get("error") == "Sandbox.Timedout" and
                                       "timed out after 2.00" in desc.get("cause", ""))),
                   (desc["status"], desc.get("error"), desc.get("cause")))

    express = create("selftest-express", "EXPRESS")
    if checks.require("create EXPRESS state machine", express is not None):
        desc = run_execution(sfn, express, "ok-express-1", event)
        checks.require("EXPRESS StartExecution(name) + DescribeExecution",
                       desc["status"] == "SUCCEEDED"
                       and json.loads(desc.get("output", "null")) == expected,
                       (desc["status"], desc.get("error")))
        sync = boto3.client("stepfunctions", endpoint_url=sfn.meta.endpoint_url,
                            region_name=REGION, aws_access_key_id="test",
                            aws_secret_access_key="test",
                            # else botocore sends it to sync-<host>
                            config=Config(inject_host_prefix=False))
        try:
            resp = sync.start_sync_execution(stateMachineArn=express, name="sync-1",
                                             input=json.dumps(event))
            checks.info("StartSyncExecution", (resp.get("status"), resp.get("output")))
        except ClientError as e:
            checks.info("StartSyncExecution", "not supported: HTTP "
                        f"{e.response['ResponseMetadata']['HTTPStatusCode']}")

    legacy = create("selftest-legacy-map", "STANDARD", legacy_map=True)
    if legacy is None:
        checks.info("Map with Parameters + Iterator", "rejected")
    else:
        desc = run_execution(sfn, legacy, "ok-legacy-1", event)
        checks.info("Map with Parameters + Iterator",
                    f"{desc['status']}, output {desc.get('output')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="run in DIR and keep it (logs, journal)")
    args = parser.parse_args()
    if args.keep:
        work = args.keep.resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="vqa-emulator-selftest-"))

    checks = Checks()
    t0 = time.perf_counter()
    proc, port = start_emulator(work)
    print(f"emulator on port {port}, up in {time.perf_counter() - t0:.2f} s, dir {work}")
    try:
        session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                region_name=REGION)
        endpoint = f"http://127.0.0.1:{port}"
        iam, lam, s3, sfn = (session.client(s, endpoint_url=endpoint)
                             for s in ("iam", "lambda", "s3", "stepfunctions"))
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]}}]}
        role_arn = iam.create_role(RoleName="selftest", AssumeRolePolicyDocument=json.dumps(
            trust))["Role"]["Arn"]
        code = function_zip()
        env = {"GREETING": "hello", "SELFTEST_TRACE": str(work / "trace.jsonl"),
               "BRANCH_SLEEP_S": str(BRANCH_SLEEP_S)}
        fn = lam.create_function(FunctionName="selftest-echo", Runtime="provided.al2023",
                                 Role=role_arn, Handler="bootstrap", Code={"ZipFile": code},
                                 Timeout=2, MemorySize=256, Environment={"Variables": env})
        arn = fn["FunctionArn"]
        checks.info("function ARN", arn)

        test_lambda(checks, lam, arn, work)
        test_s3(checks, s3)
        test_packaging(checks, lam, s3, arn, role_arn, code)
        test_stepfunctions(checks, sfn, arn, role_arn, work)

        pids = {r["pid"] for r in journal(work) if r["pid"] is not None}
    finally:
        proc.stdin.close()  # --exit-with-stdin: the emulator stops and kills its processes
        proc.wait(timeout=30)
    time.sleep(0.2)
    alive = [pid for pid in pids if running(pid)]
    checks.require("stdin EOF stopped the emulator and every bootstrap", proc.returncode == 0
                   and not alive, f"exit {proc.returncode}, alive {alive}")

    print(f"{'FAILED: ' + ', '.join(checks.failed) if checks.failed else 'all checks passed'}"
          f" ({time.perf_counter() - t0:.1f} s)")
    if not args.keep:
        if checks.failed:
            print(f"kept {work} for inspection")
        else:
            shutil.rmtree(work)
    sys.exit(1 if checks.failed else 0)


if __name__ == "__main__":
    main()
