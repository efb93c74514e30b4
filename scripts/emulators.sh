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

stop() {
  local pid
  pid="$(running_pid)"
  if [ -z "$pid" ]; then
    say "not running"
    rm -f "$pid_file" "$ready_file"
    return
  fi
  local old_port
  old_port="$(cat "$ready_file" 2>/dev/null)" || true
  # SIGTERM: moto_host kills its function processes itself.
  kill -TERM "$pid"
  local deadline=$((SECONDS + 10))
  # running_pid, not kill -0: an exited process stays a zombie until init reaps it.
  while [ -n "$(running_pid)" ] && ((SECONDS < deadline)); do sleep 0.1; done
  if [ -n "$(running_pid)" ]; then
    say "pid $pid ignored SIGTERM; killing it and its function processes"
    local child
    # Each function process leads its own process group (see moto_host.py).
    for child in $(pgrep -P "$pid" || true); do kill -KILL -- "-$child" 2>/dev/null || true; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # A process leaves /proc/PID/cmdline empty before it has closed its sockets: wait until
  # the port is free, so that a start right after a stop finds it free.
  if [ -n "$old_port" ]; then
    deadline=$((SECONDS + 10))
    while port_busy "$old_port" && ((SECONDS < deadline)); do sleep 0.1; done
  fi
  rm -f "$pid_file" "$ready_file"
  say "stopped"
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
    --converter "$root/target/lambda/vqa-converter/bootstrap" \
    --detector "$root/target/lambda/vqa-detector/bootstrap" \
    --aggregator "$root/target/lambda/vqa-aggregator/bootstrap")"
  eval "$exports"
  print_env
  echo "$exports"
  # A Standard and an Express state machine over the same functions: `vqa bench` compares them.
  "$root/target/$dir/vqa" deploy "$@"
  "$root/target/$dir/vqa" deploy --name vqa-express --type express "$@"
}

mkdir -p "$state"
# One start/stop at a time per checkout (parallel test jobs may all call start).
exec 9>"$state/lock"
flock 9

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) show_env ;;
  install) install ;;
  deploy) shift; deploy "$@" ;;
  *) die "usage: $0 start|stop|env|install|deploy [vqa deploy flags]" ;;
esac
