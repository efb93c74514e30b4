"""Self-test of LocalStack on the host with the vqa-host Lambda runtime executor.

    VQA_EMULATOR=localstack scripts/emulators.sh selftest
    (or: target/emulators/localstack-venv/bin/python scripts/emulator/localstack_selftest.py
     with AWS_ENDPOINT_URL pointing at a running LocalStack)

Against a running LocalStack (`VQA_EMULATOR=localstack scripts/emulators.sh start`), creates
`provided.al2023` zip functions and checks each outcome as AWS reports it:
- real vqa bootstraps (target/debug/vqa-converter and vqa-detector, zipped as `bootstrap`
  the way deploy.py zips them; nothing is built here): the converter succeeds on an empty
  job; the detector rejects a task whose segment is not in S3 with its own error type,
  `vqa.Failed` (so it reached LocalStack's S3 with the credentials LocalStack gave it);
- a small `#!/bin/sh` bootstrap speaking the Runtime API with curl (a Python one if curl is
  missing): a function error, a timeout (`Sandbox.Timedout`) and a crash
  (`Runtime.ExitError`), each followed by a successful invocation (a fresh process), and
  concurrent invocations (one process each); a bootstrap that exits during init
  (`Runtime.ExitError`) and a zip without one (`Runtime.InvalidEntrypoint`);
- a Step Functions state machine whose Map runs a lambda:invoke Task per item with Catch
  clauses: the converter's success, the detector's `vqa.Failed`, a crash and a timeout;
- the invocations' START/REPORT lines in CloudWatch Logs.
Prints one PASS/FAIL line per case; exits non-zero if any failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import shutil
import sys
import time
import zipfile
from pathlib import Path

import boto3
from botocore.config import Config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
from deploy import bootstrap_zip  # noqa: E402  (the zip layout deploy.py uses)

PREFIX = "vqa-selftest-"
BUCKET = "vqa-selftest"
SHELL_TIMEOUT_S = 2

# The Runtime API client loop in POSIX sh with curl. Actions (by a word in the payload):
# "fail" posts a function error, "crash" exits 3, "sleep" sleeps `seconds`, else it echoes.
SHELL_BOOTSTRAP = r'''#!/bin/sh
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
while :; do
  resp=$(curl -sS -i "$api/next") || exit 1  # the Runtime API is gone
  resp=$(printf '%s\n' "$resp" | tr -d '\r')
  id=$(printf '%s\n' "$resp" | sed -n 's/^[Ll]ambda-[Rr]untime-[Aa]ws-[Rr]equest-[Ii]d: *//p')
  body=$(printf '%s\n' "$resp" | sed '1,/^$/d')
  case "$body" in
    *'"fail"'*)
      curl -sS -o /dev/null -X POST -H 'Lambda-Runtime-Function-Error-Type: Selftest.Boom' \
        -d '{"errorType":"Selftest.Boom","errorMessage":"asked to fail"}' "$api/$id/error" ;;
    *'"crash"'*)
      exit 3 ;;
    *'"sleep"'*)
      sleep "$(printf '%s' "$body" | sed 's/.*"seconds": *\([0-9.]*\).*/\1/')"
      curl -sS -o /dev/null -X POST -d "{\"slept\":true,\"pid\":$$}" "$api/$id/response" ;;
    *)
      curl -sS -o /dev/null -X POST -d "{\"echo\":$body,\"pid\":$$}" "$api/$id/response" ;;
  esac
done
'''

PYTHON_BOOTSTRAP = r'''#!PYTHON
import json, os, sys, time, urllib.request
api = "http://%s/2018-06-01/runtime/invocation/" % os.environ["AWS_LAMBDA_RUNTIME_API"]
def post(path, body, headers={}):
    urllib.request.urlopen(urllib.request.Request(api + path, json.dumps(body).encode(), headers))
while True:
    with urllib.request.urlopen(api + "next") as r:
        rid, event = r.headers["Lambda-Runtime-Aws-Request-Id"], json.loads(r.read())
    action = event.get("action")
    if action == "fail":
        post(rid + "/error", {"errorType": "Selftest.Boom", "errorMessage": "asked to fail"},
             {"Lambda-Runtime-Function-Error-Type": "Selftest.Boom"})
    elif action == "crash":
        sys.exit(3)
    elif action == "sleep":
        time.sleep(float(event["seconds"]))
        post(rid + "/response", {"slept": True, "pid": os.getpid()})
    else:
        post(rid + "/response", {"echo": event, "pid": os.getpid()})
'''


class Results:
    def __init__(self) -> None:
        self.failed = 0

    def check(self, name: str, ok: bool, detail: str) -> bool:
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
        self.failed += not ok
        return ok


def script_zip(text: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, text)
    return out.getvalue()


def clients(endpoint: str):
    cfg = Config(retries={"max_attempts": 1}, read_timeout=120, max_pool_connections=32)
    make = lambda name: boto3.client(name, endpoint_url=endpoint, config=cfg)  # noqa: E731
    return make("lambda"), make("iam"), make("s3"), make("stepfunctions"), make("logs")


def create_function(lam, role: str, name: str, code: bytes, timeout: int, env: dict) -> str:
    try:
        lam.delete_function(FunctionName=name)
    except lam.exceptions.ResourceNotFoundException:
        pass
    arn = lam.create_function(
        FunctionName=name, Runtime="provided.al2023", Handler="bootstrap", Role=role,
        Code={"ZipFile": code}, Timeout=timeout, MemorySize=512,
        Environment={"Variables": env}, Architectures=["x86_64"])["FunctionArn"]
    deadline = time.monotonic() + 60
    while True:
        cfg = lam.get_function_configuration(FunctionName=name)
        if cfg["State"] == "Active":
            return arn
        if cfg["State"] == "Failed" or time.monotonic() > deadline:
            raise RuntimeError(f"{name}: state {cfg['State']}: {cfg.get('StateReason')}")
        time.sleep(0.1)


def invoke(lam, name: str, payload: dict) -> tuple[str | None, dict, float]:
    start = time.monotonic()
    r = lam.invoke(FunctionName=name, Payload=json.dumps(payload).encode())
    body = r["Payload"].read()
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = {"raw": body.decode(errors="replace")}
    return r.get("FunctionError"), parsed, time.monotonic() - start


def short(value: object, limit: int = 160) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + "..."


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin-dir", type=Path, default=ROOT / "target" / "debug",
                   help="where vqa-converter and vqa-detector are (default target/debug)")
    args = p.parse_args()
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        print("localstack_selftest.py: AWS_ENDPOINT_URL is not set; start LocalStack first: "
              'eval "$(VQA_EMULATOR=localstack scripts/emulators.sh start)"', file=sys.stderr)
        return 2
    for name in ("vqa-converter", "vqa-detector"):
        if not (args.bin_dir / name).is_file():
            print(f"localstack_selftest.py: {args.bin_dir / name} is missing; build it first "
                  "(cargo build -p vqa-deploy-lambda --bins)", file=sys.stderr)
            return 2
    res = Results()
    lam, iam, s3, sfn, logs = clients(endpoint)

    try:
        role = iam.get_role(RoleName=PREFIX + "role")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(RoleName=PREFIX + "role", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {
                    "Service": ["lambda.amazonaws.com", "states.amazonaws.com"]}}]}),
        )["Role"]["Arn"]
    try:
        s3.create_bucket(Bucket=BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass

    vqa_env = {"VQA_BUCKET": BUCKET, "VQA_PREFIX": "vqa/", "RUST_LOG": "info"}
    t0 = time.monotonic()
    converter = create_function(lam, role, PREFIX + "converter",
                                bootstrap_zip(str(args.bin_dir / "vqa-converter")), 30, vqa_env)
    detector = create_function(lam, role, PREFIX + "detector",
                               bootstrap_zip(str(args.bin_dir / "vqa-detector")), 30, vqa_env)
    if shutil.which("curl"):
        shell_kind, shell_code = "sh+curl", SHELL_BOOTSTRAP
    else:
        shell_kind = "python"
        shell_code = PYTHON_BOOTSTRAP.replace("PYTHON", sys.executable, 1)
    shell = create_function(lam, role, PREFIX + "shell", script_zip(shell_code),
                            SHELL_TIMEOUT_S, {})
    res.check("create", True, f"3 provided.al2023 functions Active in "
              f"{time.monotonic() - t0:.1f} s (vqa-converter, vqa-detector, {shell_kind} bootstrap)")

    # --- real vqa bootstraps
    job = {"stream": "selftest", "input": "", "input_name": "none.ts", "config": {},
           "transport": {"bucket": BUCKET, "prefix": "vqa/"},
           "results": {"bucket": BUCKET, "key": "results/selftest.json"}}
    err, out, secs = invoke(lam, PREFIX + "converter", job)
    res.check("vqa success", err is None and out.get("segments") == [],
              f"vqa-converter on an empty job: FunctionError={err} in {secs * 1000:.0f} ms "
              f"(cold), payload {short(out)}")
    err, out, secs = invoke(lam, PREFIX + "converter", job)
    res.check("vqa warm", err is None and out.get("segments") == [],
              f"again, warm: FunctionError={err} in {secs * 1000:.0f} ms")

    detect_task = {
        "segment": {"key": {"stream": "selftest", "segment": 0, "name": "segment"},
                    "location": f"s3://{BUCKET}/vqa/missing"},
        "group": 0, "detectors": ["freeze"], "config": {},
        "transport": {"bucket": BUCKET, "prefix": "vqa/"}}
    err, out, _ = invoke(lam, PREFIX + "detector", detect_task)
    res.check("vqa function error",
              err == "Unhandled" and out.get("errorType") == "vqa.Failed"
              and bool(out.get("errorMessage")),
              f"vqa-detector on a segment not in S3: FunctionError={err}, {short(out)}")

    # --- the shell bootstrap: function error, timeout, crash, each followed by a success
    err, out, _ = invoke(lam, PREFIX + "shell", {"action": "fail"})
    res.check("function error", err == "Unhandled" and out == {
        "errorType": "Selftest.Boom", "errorMessage": "asked to fail"},
        f"FunctionError={err}, {short(out)}")

    err, out, secs = invoke(lam, PREFIX + "shell", {"action": "sleep", "seconds": 30})
    msg = out.get("errorMessage", "")
    res.check("timeout", err == "Unhandled" and out.get("errorType") == "Sandbox.Timedout"
              and msg.startswith("RequestId: ")
              and msg.endswith(f"Error: Task timed out after {SHELL_TIMEOUT_S:.2f} seconds")
              and SHELL_TIMEOUT_S <= secs < SHELL_TIMEOUT_S + 3,
              f"FunctionError={err} after {secs:.2f} s, {short(out)}")
    err, out, _ = invoke(lam, PREFIX + "shell", {"action": "echo"})
    res.check("after timeout", err is None and out.get("echo") == {"action": "echo"},
              f"next invocation: FunctionError={err}, {short(out)}")

    err, out, _ = invoke(lam, PREFIX + "shell", {"action": "crash"})
    msg = out.get("errorMessage", "")
    res.check("crash", err == "Unhandled" and out.get("errorType") == "Runtime.ExitError"
              and msg.startswith("RequestId: ")
              and msg.endswith("Error: Runtime exited with error: exit status 3"),
              f"FunctionError={err}, {short(out)}")
    err, out, _ = invoke(lam, PREFIX + "shell", {"action": "echo"})
    res.check("after crash", err is None and out.get("echo") == {"action": "echo"},
              f"next invocation: FunctionError={err}, {short(out)}")

    # --- a bootstrap that exits during init, and a zip without a bootstrap
    create_function(lam, role, PREFIX + "initcrash",
                    script_zip("#!/bin/sh\necho 'cannot start' >&2\nexit 1\n"), 5, {})
    err, out, _ = invoke(lam, PREFIX + "initcrash", {})
    msg = out.get("errorMessage", "")
    res.check("init crash", err == "Unhandled" and out.get("errorType") == "Runtime.ExitError"
              and msg.startswith("RequestId: ")
              and msg.endswith("Error: Runtime exited with error: exit status 1"),
              f"FunctionError={err}, {short(out)}")
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("README", "no bootstrap here\n")
    create_function(lam, role, PREFIX + "noboot", empty.getvalue(), 5, {})
    err, out, _ = invoke(lam, PREFIX + "noboot", {})
    res.check("no bootstrap", err == "Unhandled"
              and out.get("errorType") == "Runtime.InvalidEntrypoint",
              f"FunctionError={err}, {short(out)}")

    # --- concurrency: one environment (process) per concurrent invocation
    n = 6
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        outs = list(pool.map(lambda _: invoke(lam, PREFIX + "shell",
                                              {"action": "sleep", "seconds": 1}), range(n)))
    wall = time.monotonic() - start
    pids = {o.get("pid") for _, o, _ in outs}
    res.check("concurrent", all(e is None and o.get("slept") for e, o, _ in outs)
              and len(pids) == n and wall < 1 + 2.5,
              f"{n} invocations sleeping 1 s at once: {wall:.2f} s wall, {len(pids)} processes")

    # --- Step Functions: a Map whose Task invokes functions, with Catch
    definition = {
        "StartAt": "Each",
        "States": {"Each": {
            "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 0, "End": True,
            "Iterator": {"StartAt": "Invoke", "States": {
                "Invoke": {
                    "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName.$": "$.fn", "Payload.$": "$.payload"},
                    "ResultSelector": {"payload.$": "$.Payload"}, "ResultPath": "$.result",
                    "Catch": [
                        {"ErrorEquals": ["vqa.Failed"], "ResultPath": "$.rejected",
                         "Next": "Rejected"},
                        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                         "Next": "Caught"}],
                    "End": True},
                "Rejected": {"Type": "Pass", "End": True},
                "Caught": {"Type": "Pass", "End": True}}}}}}
    sm_name = PREFIX + "map"
    arn = next((m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]
                if m["name"] == sm_name), None)
    if arn:
        sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(definition),
                                 roleArn=role)
    else:
        arn = sfn.create_state_machine(name=sm_name, definition=json.dumps(definition),
                                       roleArn=role)["stateMachineArn"]
    items = [{"fn": converter, "payload": job},
             {"fn": detector, "payload": detect_task},
             {"fn": shell, "payload": {"action": "crash"}},
             {"fn": shell, "payload": {"action": "sleep", "seconds": 30}}]
    start = time.monotonic()
    execution = sfn.start_execution(stateMachineArn=arn, name=f"selftest-{int(time.time())}",
                                    input=json.dumps({"items": items}))["executionArn"]
    while True:
        desc = sfn.describe_execution(executionArn=execution)
        if desc["status"] != "RUNNING" or time.monotonic() - start > 60:
            break
        time.sleep(0.2)
    wall = time.monotonic() - start
    out = json.loads(desc.get("output") or "null") or [{}] * len(items)
    res.check("sfn execution", desc["status"] == "SUCCEEDED",
              f"Map of {len(items)} lambda:invoke Tasks with Catch: {desc['status']} in "
              f"{wall:.2f} s")
    if len(out) == len(items):
        res.check("sfn success", out[0].get("result", {}).get("payload", {}).get("segments") == [],
                  f"vqa-converter item: {short(out[0].get('result'))}")
        rejected = out[1].get("rejected", {})
        res.check("sfn vqa.Failed", rejected.get("Error") == "vqa.Failed"
                  and json.loads(rejected.get("Cause") or "{}").get("errorType") == "vqa.Failed",
                  f"vqa-detector item caught by its vqa.Failed Catch: {short(rejected)}")
        caught = out[2].get("error", {})
        res.check("sfn crash", caught.get("Error") == "Runtime.ExitError",
                  f"crash caught by States.ALL: {short(caught)}")
        caught = out[3].get("error", {})
        res.check("sfn timeout", caught.get("Error") == "Sandbox.Timedout",
                  f"timeout caught by States.ALL: {short(caught)}")
    else:
        res.check("sfn output", False, f"unexpected output {short(out, 400)}")

    # --- CloudWatch Logs: START/END/REPORT per invocation, as AWS writes them
    group = f"/aws/lambda/{PREFIX}converter"
    text = ""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            events = logs.filter_log_events(logGroupName=group)["events"]
            text = "\n".join(e["message"] for e in events)
        except logs.exceptions.ResourceNotFoundException:
            pass
        if "REPORT RequestId" in text and "Init Duration" in text:
            break
        time.sleep(0.3)
    res.check("logs", "START RequestId" in text and "REPORT RequestId" in text
              and "Init Duration" in text,
              f"{group}: {text.count('REPORT RequestId')} REPORT lines")

    print(f"{'PASS' if not res.failed else 'FAIL'}: {res.failed} failed", flush=True)
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
