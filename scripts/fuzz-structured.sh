#!/usr/bin/env bash
# Structured fuzzing campaign: libFuzzer, coverage-guided, on the stable toolchain, over
# everything vqa parses that another process wrote (crates/fuzz: the wire form, S3 objects,
# Step Functions payloads, configuration, stream lists and shards files, notifications,
# shard reports). Builds the harness (crates/fuzz/libfuzzer) with sanitizer-coverage
# instrumentation into target/fuzz-structured, writes each target's seeds (made by vqa's own
# encoders), then runs each target for N executions and keeps every input that panics,
# times out or runs out of memory.
#
#   bash scripts/fuzz-structured.sh [--runs N] [--target T] [--jobs J] [--out DIR] [--timeout S]
#
#   --runs N      executions per target (default 1000000)
#   --target T    only this target (default: all; names in crates/fuzz/src/lib.rs, `Target`)
#   --jobs J      targets fuzzed at once, one libFuzzer process each (default 1)
#   --out DIR     corpora, findings, logs and the summary (default target/fuzz-structured/run);
#                 a corpus grows across campaigns in the same DIR
#   --timeout S   an input running longer than S seconds is a hang (default 10)
#
# Findings go to DIR/found/<target>/{crash,timeout,oom,slow-unit}-<sha1>; DIR/summary.txt
# has per target the executions, seconds, coverage (edges, features) and findings. Exit
# status 0 when nothing was found, 1 when something was (or the campaign could not run).
# Reproduce one finding with
#   VQA_FUZZ_TARGET=<target> target/fuzz-structured/x86_64-unknown-linux-gnu/fuzz/vqa-fuzz-target FILE
# and once fixed, keep it as a regression: crates/fuzz/regressions/<target>/<name> (cargo
# test replays them). The instrumented build needs no nightly: sanitizer coverage is
# `-Cpasses=sancov-module` and `-Cllvm-args`, both stable; libFuzzer itself comes from the
# libfuzzer-sys crate (built with the system's C++ compiler). See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=1000000
only=""
out=target/fuzz-structured/run
timeout=10
jobs=1
while (($#)); do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --target) only="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "fuzz-structured.sh: unknown argument '$1'; see --help" >&2; exit 1 ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ && "$timeout" =~ ^[1-9][0-9]*$ && "$jobs" =~ ^[1-9][0-9]*$ ]] || {
  echo "fuzz-structured.sh: --runs, --jobs and --timeout take positive whole numbers" >&2; exit 1; }

targets=(wire s3_object sfn_payload config stream_list notification stream_report)
if [[ -n "$only" ]]; then
  [[ " ${targets[*]} " == *" $only "* ]] || {
    echo "fuzz-structured.sh: no target '$only'; one of: ${targets[*]}" >&2; exit 1; }
  targets=("$only")
fi

# libFuzzer is C++: the cc crate uses `c++`, which a machine with clang alone may lack.
command -v c++ >/dev/null || export CXX=clang++
triple=x86_64-unknown-linux-gnu
# With an explicit --target, RUSTFLAGS reach the harness and its dependencies but not build
# scripts or proc macros.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
-Cdebug-assertions"
echo "fuzz-structured.sh: building the instrumented harness (the first build takes a while)" >&2
cargo build --quiet --manifest-path crates/fuzz/libfuzzer/Cargo.toml --profile fuzz \
  --target "$triple" --target-dir target/fuzz-structured
bin=target/fuzz-structured/$triple/fuzz/vqa-fuzz-target

mkdir -p "$out/stats"
summary="$out/summary.txt"

# One target's run: its line of the summary in DIR/stats/<target>.
fuzz_target() {
  local t="$1"
  local seeds="$out/seeds/$t" corpus="$out/corpus/$t" found="$out/found/$t" log="$out/logs/$t.log"
  rm -rf "$seeds"
  mkdir -p "$corpus" "$found" "$out/logs"
  VQA_FUZZ_TARGET="$t" VQA_FUZZ_SEEDS_TO="$seeds" "$bin"
  echo "fuzz-structured.sh: $t: $runs executions" >&2
  local start status=0
  start=$(date +%s)
  # rss_limit_mb bounds the process: an input that makes a parser believe a length prefix
  # and allocate gigabytes is an `oom` finding.
  VQA_FUZZ_TARGET="$t" "$bin" "$corpus" "$seeds" -runs="$runs" -timeout="$timeout" \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$found/" > "$log" 2>&1 || status=$?
  local seconds=$(($(date +%s) - start)) execs last edges features corp findings
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  edges=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  features=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  findings=$(find "$found" -type f | wc -l)
  if ((status != 0 || findings > 0)); then
    echo "fuzz-structured.sh: $t: libFuzzer exit $status, $findings finding(s) in $found; log $log" >&2
  fi
  printf '%-14s %10s %8s %8s %8s %8s %s\n' "$t" "${execs:-?}" "$seconds" "${edges:-?}" \
    "${features:-?}" "${corp:-?}" "$findings" > "$out/stats/$t"
  echo "$status $findings" > "$out/stats/$t.exit"
}

for t in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
  rm -f "$out/stats/$t" "$out/stats/$t.exit"
  fuzz_target "$t" &
done
wait
failed=0
for t in "${targets[@]}"; do
  [[ "$(cat "$out/stats/$t.exit" 2>/dev/null)" == "0 0" ]] || failed=1
done
{
  printf '%-14s %10s %8s %8s %8s %8s %s\n' target executions seconds edges features corpus findings
  for t in "${targets[@]}"; do cat "$out/stats/$t" 2>/dev/null || echo "$t: did not run"; done
} > "$summary"
cat "$summary"
exit "$failed"
