#!/usr/bin/env bash
# Local AWS emulator for the Lambda + Step Functions topology, without Docker: moto's server
# (S3, IAM, Lambda, Step Functions with real execution) with Lambda functions run as host
# processes by scripts/emulator/moto_host.py (see its header for what it records).
#
#   eval "$(scripts/emulators.sh start)"   # install if needed, start, export its environment
#   scripts/emulators.sh env               # the exports again, for the running emulator
#   scripts/emulators.sh stop              # stop it and every function process it started
#   scripts/emulators.sh install           # only create the Python environment (CI, up front)
#   eval "$(scripts/emulators.sh deploy)"  # build and deploy vqa's functions, buckets and state
#                                          # machine to the running emulator; export their names
#
# `deploy` makes a Standard state machine `vqa` and an Express one `vqa-express` (exported as
# VQA_STATE_MACHINE_ARN and VQA_EXPRESS_STATE_MACHINE_ARN) and takes `vqa deploy`'s other
# flags after it (e.g. --detector-groups all, --detectors freeze,black);
# VQA_PROFILE=release|dev (default dev) picks the build.
#
# `start` prints, on stdout and nothing else:
#   export AWS_ENDPOINT_URL=http://127.0.0.1:5001  AWS_ACCESS_KEY_ID=test
#   AWS_SECRET_ACCESS_KEY=test  AWS_REGION=us-east-1  AWS_DEFAULT_REGION=us-east-1
#   VQA_EMULATOR_DIR=<absolute run dir: invocations.jsonl, logs/, code/>
# Status messages go to stderr. The port is ${VQA_EMULATOR_PORT:-5001} (0: any free port).
# Starting while this checkout's emulator runs on that port only prints the environment; a
# fresh start empties the run dir. The server's own log is target/emulators/moto_host.log.
#
# The Python environment is a venv at target/emulators/venv, from PyPI only, resolved with uv
# as of a fixed date so that every machine gets the same, tested package versions.
#
# VQA_EMULATOR=localstack (default: moto) runs LocalStack's community runtime on the host
# instead (no Docker), with Lambda functions run as host processes by the `vqa-host` runtime
# executor plugin (scripts/emulator/localstack_executor/). Same commands and contract:
#   install  a separate venv, target/emulators/localstack-venv
#   start    prints the same exports (port ${VQA_EMULATOR_PORT:-4566}) plus
#            VQA_EMULATOR=localstack; VQA_EMULATOR_DIR is target/emulators/localstack/run
#            (invocations.jsonl, logs/, faults.json as with moto); LocalStack's own state,
#            cache and temp files (TMPDIR, so not /tmp/lambda) stay under
#            target/emulators/localstack; its log is target/emulators/localstack.log
#   env, stop   as with moto (stop also ends every function process)
#   selftest    scripts/emulator/localstack_selftest.py against the running LocalStack
#   deploy [Key=Value ...]
#            builds the Lambda bundles (scripts/build-lambdas.sh, VQA_PROFILE dev by default)
#            and deploys infra/distributed.yaml as it is, with those parameter overrides,
#            through LocalStack's CloudFormation, as a user deploys it to AWS
#            (VQA_SKIP_BUILD=1: use the bundles already in target/lambda):
#            `aws cloudformation package` (bundles and state machine to a bucket) then
#            `aws cloudformation deploy`; stack ${VQA_STACK:-vqa}. Prints the stack's
#            environment for the CLI (VQA_STATE_MACHINE_ARN, VQA_BUCKET, VQA_PREFIX,
#            VQA_RESULTS_BUCKET) and the function ARNs. VQA_LOCALSTACK_ENDPOINT deploys to
#            another LocalStack instead, e.g. the official container on http://localhost:4566.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
state="$root/target/emulators"
venv="$state/venv"
run_dir="$state/run"
pid_file="$state/moto_host.pid"
ready_file="$state/ready"
log_file="$state/moto_host.log"
port="${VQA_EMULATOR_PORT:-5001}"
region="us-east-1"

requirements=('moto[server]==5.2.5' 'boto3')
# Newer releases of moto's dependencies have broken it before; this date pins the set tested.
exclude_newer="2026-11-20"

die() { echo "emulators.sh: error: $*" >&2; exit 1; }
say() { echo "emulators.sh: $*" >&2; }

install() {
  local stamp="$venv/.vqa-requirements" want="${requirements[*]} exclude-newer=$exclude_newer"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return
  fi
  say "installing the emulator's Python environment in $venv"
  rm -rf "$venv"
  mkdir -p "$state"
  python3 -m venv "$venv" >&2 || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install -q --disable-pip-version-check uv >&2
  "$venv/bin/uv" pip install -q --python "$venv/bin/python" --exclude-newer "$exclude_newer" \
    "${requirements[@]}" >&2
  echo "$want" >"$stamp"
}

# The pid of this checkout's emulator if it runs (checked against its command line, so a
# recycled pid is not mistaken for it), else nothing.
running_pid() {
  local pid
  pid="$(cat "$pid_file" 2>/dev/null)" || return 0
  # Read first, then match: `tr | grep -q` under pipefail fails at random when grep exits
  # before tr has written everything (SIGPIPE).
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || true
  if [ -n "$pid" ] && [[ "$cmdline" == *moto_host.py* ]]; then
    echo "$pid"
  fi
}

# Whether something accepts connections on a local port.
port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

print_env() {
  local actual
  actual="$(cat "$ready_file")"
  printf 'export %s=%q\n' \
    AWS_ENDPOINT_URL "http://127.0.0.1:$actual" \
    AWS_ACCESS_KEY_ID test \
    AWS_SECRET_ACCESS_KEY test \
    AWS_REGION "$region" \
    AWS_DEFAULT_REGION "$region" \
    VQA_EMULATOR_DIR "$run_dir"
}

start() {
  install
  local pid
  pid="$(running_pid)"
  if [ -n "$pid" ] && [ -f "$ready_file" ]; then
    if [ "$port" = 0 ] || [ "$port" = "$(cat "$ready_file")" ]; then
      say "already running (pid $pid, port $(cat "$ready_file"))"
      print_env
      return
    fi
    die "this checkout's emulator already runs on port $(cat "$ready_file"); run '$0 stop' first"
  fi
  if [ "$port" != 0 ] && port_busy "$port"; then
    # An emulator that was just stopped may still be closing it.
    local deadline=$((SECONDS + 5))
    while port_busy "$port" && ((SECONDS < deadline)); do sleep 0.1; done
    port_busy "$port" &&
      die "port $port is taken by another program; set VQA_EMULATOR_PORT to another port"
  fi
  rm -rf "$run_dir" "$ready_file"
  mkdir -p "$run_dir"
  # setsid: not stopped by the starting terminal's Ctrl-C or hang-up. No inherited stdout,
  # so `eval "$(... start)"` does not wait for the server, and not the lock (fd 9).
  setsid "$venv/bin/python" "$root/scripts/emulator/moto_host.py" --port "$port" \
    --dir "$run_dir" --ready-file "$ready_file" \
    </dev/null >"$log_file" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$pid_file"
  local deadline=$((SECONDS + 60))
  until [ -f "$ready_file" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      die "the emulator exited during start; see $log_file:
$(tail -n 20 "$log_file")"
    fi
    if ((SECONDS >= deadline)); then
      kill "$pid" 2>/dev/null || true
      die "the emulator did not come up within 60 s; see $log_file"
    fi
    sleep 0.1
  done
  say "running (pid $pid, port $(cat "$ready_file"), run dir $run_dir, log $log_file)"
  print_env
}

# Stops a server this script started and waits until its port is free.
#   stop_server LABEL RUNNING PID_FILE READY_FILE GRACE BEFORE_KILL AFTER
# RUNNING prints its pid while it runs; after SIGTERM it has GRACE seconds, then
# BEFORE_KILL PID runs and the server gets SIGKILL; AFTER runs in any case (even when it was
# not running: function processes a killed server left).
stop_server() {
  local label="$1" running="$2" pidf="$3" readyf="$4" grace="$5" before_kill="$6" after="$7"
  local pid old_port deadline
  pid="$("$running")"
  if [ -z "$pid" ]; then
    say "$label is not running"
    "$after"
    rm -f "$pidf" "$readyf"
    return
  fi
  old_port="$(cat "$readyf" 2>/dev/null)" || true
  kill -TERM "$pid"
  deadline=$((SECONDS + grace))
  # "$running", not kill -0: an exited process stays a zombie until init reaps it.
  while [ -n "$("$running")" ] && ((SECONDS < deadline)); do sleep 0.1; done
  if [ -n "$("$running")" ]; then
    say "$label (pid $pid) ignored SIGTERM; killing it and its function processes"
    "$before_kill" "$pid"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  "$after"
  # A process leaves /proc/PID/cmdline empty before it has closed its sockets: wait until
  # the port is free, so that a start right after a stop finds it free.
  if [ -n "$old_port" ]; then
    deadline=$((SECONDS + 10))
    while port_busy "$old_port" && ((SECONDS < deadline)); do sleep 0.1; done
  fi
  rm -f "$pidf" "$readyf"
  say "$label stopped"
}

# Each moto_host function process leads its own process group (see moto_host.py).
kill_moto_children() {
  local child
  for child in $(pgrep -P "$1" || true); do kill -KILL -- "-$child" 2>/dev/null || true; done
}

nothing() { :; }

# SIGTERM: moto_host kills its function processes itself.
stop() {
  stop_server "the emulator" running_pid "$pid_file" "$ready_file" 10 kill_moto_children nothing
}

show_env() {
  if [ -z "$(running_pid)" ] || [ ! -f "$ready_file" ]; then
    die "not running; start it with: eval \"\$($0 start)\""
  fi
  print_env
}

deploy() {
  [ -n "$(running_pid)" ] || die "not running; start it first: eval \"\$($0 start)\""
  local profile="${VQA_PROFILE:-dev}" dir=debug
  [ "$profile" = release ] && dir=release
  eval "$(print_env)"
  "$root/scripts/build-lambdas.sh" "$profile"
  cargo build -q --profile "$profile" -p vqa-cli --bin vqa >&2
  local exports
  exports="$("$venv/bin/python" "$root/scripts/emulator/deploy.py" \
    --converter "$root/target/lambda/vqa-converter/bootstrap.zip" \
    --detector "$root/target/lambda/vqa-detector/bootstrap.zip" \
    --aggregator "$root/target/lambda/vqa-aggregator/bootstrap.zip")"
  eval "$exports"
  print_env
  echo "$exports"
  # A Standard and an Express state machine over the same functions: `vqa bench` compares them.
  "$root/target/$dir/vqa" deploy "$@"
  "$root/target/$dir/vqa" deploy --name vqa-express --type express "$@"
}

# --- LocalStack (VQA_EMULATOR=localstack) ---------------------------------------------------

ls_dir="$state/localstack"
ls_venv="$state/localstack-venv"
ls_run="$ls_dir/run"
ls_pid_file="$ls_dir/localstack.pid"
ls_ready_file="$ls_dir/ready"
ls_log="$state/localstack.log"
ls_executor="$root/scripts/emulator/localstack_executor"
# localstack-core 4.9.2 is the last release that runs on Python 3.11 (newer ones need 3.12+);
# plain pip resolves dependencies too new for it (cbor2 6, pyOpenSSL 26), hence the date.
ls_requirements=('localstack-core[runtime]==4.9.2' 'boto3==1.40.40')
ls_exclude_newer="2025-10-07"
# What vqa's templates and tests use; VQA_LOCALSTACK_SERVICES overrides.
ls_services="${VQA_LOCALSTACK_SERVICES:-s3,stepfunctions,lambda,iam,sts,logs,cloudformation,sns,events,secretsmanager}"

ls_install() {
  local stamp="$ls_venv/.vqa-requirements"
  local want="${ls_requirements[*]} exclude-newer=$ls_exclude_newer"
  if [ -x "$ls_venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return
  fi
  say "installing LocalStack's Python environment in $ls_venv"
  rm -rf "$ls_venv"
  mkdir -p "$state"
  python3 -m venv "$ls_venv" >&2 ||
    die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  "$ls_venv/bin/pip" install -q --disable-pip-version-check uv >&2 ||
    die "could not install uv from PyPI into $ls_venv"
  "$ls_venv/bin/uv" pip install -q --python "$ls_venv/bin/python" \
    --exclude-newer "$ls_exclude_newer" "${ls_requirements[@]}" >&2 ||
    die "could not install ${ls_requirements[*]} from PyPI into $ls_venv"
  echo "$want" >"$stamp"
}

ls_running_pid() {
  local pid cmdline
  pid="$(cat "$ls_pid_file" 2>/dev/null)" || return 0
  # 2>/dev/null first: it must also cover the redirection of a pid that no longer exists.
  cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || true
  if [ -n "$pid" ] && [[ "$cmdline" == *localstack.runtime.main* ]]; then
    echo "$pid"
  fi
}

ls_print_env() {
  local actual
  actual="$(cat "$ls_ready_file")"
  printf 'export %s=%q\n' \
    AWS_ENDPOINT_URL "http://127.0.0.1:$actual" \
    AWS_ACCESS_KEY_ID test \
    AWS_SECRET_ACCESS_KEY test \
    AWS_REGION "$region" \
    AWS_DEFAULT_REGION "$region" \
    VQA_EMULATOR_DIR "$ls_run" \
    VQA_EMULATOR localstack
}

# Function processes the executor started that outlived LocalStack (it was killed): each
# leads its own process group and is recorded in run/pids/ (see the executor's doc).
ls_kill_functions() {
  local f pid cwd
  for f in "$ls_run"/pids/*; do
    [ -e "$f" ] || continue
    pid="${f##*/}"
    cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null)" || true
    # Only a process running from LocalStack's code cache under this checkout's state dir.
    if [[ "$cwd" == "$ls_dir"/* ]]; then
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
}

ls_start() {
  ls_install
  local pid ls_port="${VQA_EMULATOR_PORT:-4566}"
  pid="$(ls_running_pid)"
  if [ -n "$pid" ] && [ -f "$ls_ready_file" ]; then
    if [ "$ls_port" = 0 ] || [ "$ls_port" = "$(cat "$ls_ready_file")" ]; then
      say "LocalStack already running (pid $pid, port $(cat "$ls_ready_file"))"
      ls_print_env
      return
    fi
    die "this checkout's LocalStack already runs on port $(cat "$ls_ready_file"); run 'VQA_EMULATOR=localstack $0 stop' first"
  fi
  if [ "$ls_port" = 0 ]; then
    ls_port="$("$ls_venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  elif port_busy "$ls_port"; then
    local deadline=$((SECONDS + 5))
    while port_busy "$ls_port" && ((SECONDS < deadline)); do sleep 0.1; done
    port_busy "$ls_port" &&
      die "port $ls_port is taken by another program; set VQA_EMULATOR_PORT to another port"
  fi
  # The executor plugin must be discoverable, or LocalStack silently falls back to Docker.
  PYTHONPATH="$ls_executor" "$ls_venv/bin/python" -c '
import sys
from importlib.metadata import entry_points
names = [e.name for e in entry_points(group="localstack.lambda.runtime_executor")]
sys.exit(0 if "vqa-host" in names else 1)' ||
    die "LocalStack cannot find the vqa-host executor plugin in $ls_executor"
  ls_kill_functions
  # A fresh start: no state survives (LocalStack keeps none without PERSISTENCE either).
  rm -rf "$ls_run" "$ls_ready_file" "$ls_dir/tmp" "$ls_dir/filesystem"
  mkdir -p "$ls_run" "$ls_dir/tmp" "$ls_dir/filesystem" "$ls_dir/cache" "$ls_dir/config"
  # OVERRIDE_IN_DOCKER=0: LocalStack takes any container (such as a CI job's) for its own
  # image and would use /var/lib/localstack; in host mode everything is under
  # FILESYSTEM_ROOT. TMPDIR: Lambda code lands in $TMPDIR/lambda. XDG_CACHE_HOME: plux's
  # plugin index. LOCALSTACK_HOST: URLs it hands out name 127.0.0.1, not a DNS name.
  # SKIP_SSL_CERT_DOWNLOAD, DISABLE_EVENTS: no network beyond this machine.
  (
    cd "$ls_dir"
    export GATEWAY_LISTEN="127.0.0.1:$ls_port" LOCALSTACK_HOST="127.0.0.1:$ls_port" \
      SERVICES="$ls_services" DISABLE_EVENTS=1 DNS_ADDRESS=0 SKIP_SSL_CERT_DOWNLOAD=1 \
      OVERRIDE_IN_DOCKER=0 FILESYSTEM_ROOT="$ls_dir/filesystem" TMPDIR="$ls_dir/tmp" \
      XDG_CACHE_HOME="$ls_dir/cache" CONFIG_DIR="$ls_dir/config" \
      LAMBDA_RUNTIME_EXECUTOR=vqa-host PYTHONPATH="$ls_executor" VQA_EMULATOR_DIR="$ls_run"
    exec setsid "$ls_venv/bin/python" -m localstack.runtime.main \
      </dev/null >"$ls_log" 2>&1 9>&-
  ) &
  pid=$!
  echo "$pid" >"$ls_pid_file"
  local deadline=$((SECONDS + 90))
  until grep -q '^Ready\.' "$ls_log" 2>/dev/null && port_busy "$ls_port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      die "LocalStack exited during start; see $ls_log:
$(tail -n 20 "$ls_log")"
    fi
    if ((SECONDS >= deadline)); then
      kill "$pid" 2>/dev/null || true
      die "LocalStack did not come up within 90 s; see $ls_log"
    fi
    sleep 0.2
  done
  echo "$ls_port" >"$ls_ready_file"
  say "LocalStack running (pid $pid, port $ls_port, run dir $ls_run, log $ls_log)"
  ls_print_env
}

# SIGTERM: LocalStack stops its Lambda environments, and so the executor its processes.
ls_stop() {
  stop_server LocalStack ls_running_pid "$ls_pid_file" "$ls_ready_file" 20 nothing ls_kill_functions
}

ls_show_env() {
  if [ -z "$(ls_running_pid)" ] || [ ! -f "$ls_ready_file" ]; then
    die "LocalStack is not running; start it with: eval \"\$(VQA_EMULATOR=localstack $0 start)\""
  fi
  ls_print_env
}

ls_deploy() {
  local endpoint="${VQA_LOCALSTACK_ENDPOINT:-}"
  ls_install
  if [ -z "$endpoint" ]; then
    ls_show_env >/dev/null
    eval "$(ls_print_env)"
  else
    export AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
      AWS_REGION="$region" AWS_DEFAULT_REGION="$region"
  fi
  # The lock is for start/stop only; a deploy builds and waits for the stack.
  flock -u 9
  local aws="$ls_venv/bin/aws" stack="${VQA_STACK:-vqa}" artifacts=vqa-deploy-artifacts
  local packaged="$ls_dir/distributed.packaged.yaml" out pair
  for pair in "$@"; do
    [[ "$pair" == ?*=* ]] || die "deploy takes the template's parameters as Key=Value, not '$pair'"
  done
  # VQA_SKIP_BUILD=1: the bundles are built already (the test suite builds them first).
  if [ "${VQA_SKIP_BUILD:-0}" != 1 ]; then
    bash "$root/scripts/build-lambdas.sh" "${VQA_PROFILE:-dev}"
  fi
  local name
  for name in converter detector aggregator; do
    [ -f "$root/target/lambda/vqa-$name/bootstrap.zip" ] ||
      die "target/lambda/vqa-$name/bootstrap.zip is missing; build it with scripts/build-lambdas.sh dev"
  done
  mkdir -p "$ls_dir"
  "$aws" s3api head-bucket --bucket "$artifacts" >/dev/null 2>&1 ||
    out="$("$aws" s3api create-bucket --bucket "$artifacts" 2>&1)" ||
    die "cannot create the artifact bucket $artifacts at $AWS_ENDPOINT_URL: $(echo "$out" | tail -1)"
  out="$("$aws" cloudformation package --template-file "$root/infra/distributed.yaml" \
    --s3-bucket "$artifacts" --output-template-file "$packaged" 2>&1 >/dev/null)" ||
    die "aws cloudformation package failed: $(echo "$out" | grep -v '^Uploading' | tail -1)"
  say "deploying stack $stack (infra/distributed.yaml) to $AWS_ENDPOINT_URL"
  local started=$SECONDS
  if ! out="$("$aws" cloudformation deploy --template-file "$packaged" --stack-name "$stack" \
    --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-fail-on-empty-changeset \
    ${1:+--parameter-overrides "$@"} 2>&1)"; then
    local reasons
    reasons="$("$aws" cloudformation describe-stack-events --stack-name "$stack" \
      --query "StackEvents[?contains(ResourceStatus, 'FAILED')].[LogicalResourceId, ResourceStatusReason]" \
      --output text 2>/dev/null | head -3 | tr '\t\n' ': ')" || true
    die "stack $stack failed to deploy: ${reasons:-$(echo "$out" | grep -v '^$' | tail -1)}; see 'aws cloudformation describe-stack-events --stack-name $stack'"
  fi
  say "stack $stack deployed in $((SECONDS - started)) s"
  local outputs
  outputs="$("$aws" cloudformation describe-stacks --stack-name "$stack" \
    --query 'Stacks[0].Outputs[].[OutputKey, OutputValue]' --output text)"
  local cli
  cli="$(awk -F'\t' '$1 == "CliEnvironment" { print $2 }' <<<"$outputs")"
  [ -n "$cli" ] || die "stack $stack has no CliEnvironment output"
  # "export A=1 B=2" -> one export per line, as the moto deploy prints them.
  local word
  for word in ${cli#export }; do echo "export $word"; done
  awk -F'\t' '$1 ~ /FunctionArn$/ {
    name = toupper(substr($1, 1, length($1) - length("FunctionArn")))
    print "export VQA_" name "_ARN=" $2 }' <<<"$outputs"
  echo "export VQA_STACK=$stack"
}

ls_selftest() {
  ls_show_env >/dev/null
  eval "$(ls_print_env)"
  # The lock is for start/stop only; the self-test may take a while.
  flock -u 9
  "$ls_venv/bin/python" "$root/scripts/emulator/localstack_selftest.py" "$@"
}

mkdir -p "$state"
# One start/stop at a time per checkout (parallel test jobs may all call start).
exec 9>"$state/lock"
flock 9

case "${VQA_EMULATOR:-moto}" in
  moto) ;;
  localstack)
    case "${1:-}" in
      start) ls_start ;;
      stop) ls_stop ;;
      env) ls_show_env ;;
      install) ls_install ;;
      selftest) shift; ls_selftest "$@" ;;
      deploy) shift; ls_deploy "$@" ;;
      *) die "usage: VQA_EMULATOR=localstack $0 start|stop|env|install|selftest|deploy" ;;
    esac
    exit 0
    ;;
  *) die "VQA_EMULATOR must be moto (the default) or localstack, not '$VQA_EMULATOR'" ;;
esac

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) show_env ;;
  install) install ;;
  deploy) shift; deploy "$@" ;;
  *) die "usage: $0 start|stop|env|install|deploy [vqa deploy flags]" ;;
esac
