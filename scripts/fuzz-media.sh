#!/usr/bin/env bash
# Media fuzzing campaign: mutates a seed corpus covering every container and codec vqa reads
# with zzuf, runs `vqa analyze` on each mutated input under time limits, and keeps every
# input that panics or crashes, hangs, or exits with a status outside the documented ones (0
# analysed, 1 could not be analysed, 3 analysed in part; 2 is a bad command line, which a
# file never is). A hang is judged on CPU time, so that a machine busy with something else
# cannot fake one: an input hangs when it uses 10 times its seed's clean CPU time (at least
# 5 s), or, stuck without using the CPU, runs 10 times that CPU limit in wall time (at least
# 60 s), and again for 4 times that on a second run.
#
#   bash scripts/fuzz-media.sh [--inputs N] [--jobs J] [--out DIR] [--vqa PATH] [--seed S]
#
#   --inputs N   mutated inputs to run, spread evenly over the seeds (default 1000)
#   --jobs J     inputs run at once (default: the number of cores)
#   --out DIR    seeds, findings and the log (default target/fuzz-media)
#   --vqa PATH   the vqa binary (default: target/release/vqa, built if missing)
#   --seed S     first zzuf seed (default 1): a campaign is reproducible from its seeds
#
# Findings go to DIR/found/{crash,hang,status}/<seed>-<zzuf seed>.<ext> with the stderr
# next to them (.txt); DIR/summary.txt has the counts. Exit status 0 when nothing was
# found, 1 when something was (or the campaign could not run). Reproduce one input with
#   zzuf -s <zzuf seed> -r <ratio> < DIR/seeds/<seed> > input   (the ratio is in the log)
set -euo pipefail
cd "$(dirname "$0")/.."

inputs=1000
jobs=$(nproc)
out=target/fuzz-media
vqa=""
first_seed=1
while (($#)); do
  case "$1" in
    --inputs) inputs="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --vqa) vqa="$2"; shift 2 ;;
    --seed) first_seed="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "fuzz-media.sh: unknown argument '$1'; see --help" >&2; exit 1 ;;
  esac
done
[[ "$inputs" =~ ^[0-9]+$ && "$jobs" =~ ^[1-9][0-9]*$ && "$first_seed" =~ ^[0-9]+$ ]] || {
  echo "fuzz-media.sh: --inputs, --jobs and --seed take whole numbers" >&2
  exit 1
}

for tool in zzuf ffmpeg python3 timeout prlimit awk; do
  command -v "$tool" >/dev/null || {
    echo "fuzz-media.sh: $tool is missing; run bash scripts/install-deps.sh" >&2
    exit 1
  }
done
if [ -z "$vqa" ]; then
  vqa=target/release/vqa
  if [ ! -x "$vqa" ]; then
    echo "fuzz-media.sh: building vqa (release; a first build takes several minutes)" >&2
    cargo build --release --quiet -p vqa-cli --bin vqa
  fi
fi
[ -x "$vqa" ] || { echo "fuzz-media.sh: no vqa binary at $vqa; build it or pass --vqa" >&2; exit 1; }
vqa=$(realpath "$vqa")

mkdir -p "$out/seeds" "$out/found/crash" "$out/found/hang" "$out/found/status" "$out/work"
out=$(realpath "$out")

# --- Seeds: 2 s, small pictures, one file per container/codec pair -------------------------
seed() { # name, then ffmpeg output arguments
  local name="$1"; shift
  [ -s "$out/seeds/$name" ] && return 0
  ffmpeg -v error -y -f lavfi -i "testsrc2=size=176x144:rate=10:duration=2" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=2" \
    -shortest "$@" "$out/seeds/$name"
}
seed h264-aac.mp4 -c:v libx264 -preset ultrafast -g 10 -c:a aac -ac 2
seed hevc-ac3.mkv -c:v libx265 -preset ultrafast -x265-params log-level=none -g 10 -c:a ac3 -ac 2
seed mpeg2-mp2.ts -c:v mpeg2video -g 10 -c:a mp2 -ac 2 -f mpegts
seed mpeg2-mp2.mpg -c:v mpeg2video -g 10 -c:a mp2 -ac 2 -f mpeg
seed vp9-opus.webm -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -g 10 -c:a libopus -ac 2
seed av1-opus.mkv -c:v libaom-av1 -cpu-used 8 -usage realtime -g 10 -c:a libopus -ac 2
seed mjpeg-pcm.avi -c:v mjpeg -q:v 5 -c:a pcm_s16le -ac 2
seed h264-aac-51.ts -c:v libx264 -preset ultrafast -g 10 -c:a aac -ac 6 -f mpegts
if [ ! -s "$out/seeds/float-nan.wav" ]; then
  # 32-bit float PCM with NaN, +Inf and -Inf among the samples: what a broken mixer writes.
  python3 - "$out/seeds/float-nan.wav" <<'PY'
import math, struct, sys
rate, n = 48000, 48000 * 2
samples = []
for i in range(n):
    v = 0.3 * math.sin(2 * math.pi * 440 * i / rate)
    if i % 4801 == 0:
        v = float("nan")
    elif i % 7919 == 0:
        v = float("inf") if i % 2 else float("-inf")
    samples += [v, v]
data = struct.pack("<%df" % len(samples), *samples)
fmt = struct.pack("<HHIIHH", 3, 2, rate, rate * 8, 8, 32)
body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
open(sys.argv[1], "wb").write(b"RIFF" + struct.pack("<I", len(body)) + body)
PY
fi
mapfile -t seeds < <(cd "$out/seeds" && ls)

# vqa analyze on one input, stopped by SIGXCPU after a CPU time limit and killed after a
# wall time limit (whole seconds); stderr to a file, no core file. Returns vqa's exit status:
# 152 past the CPU limit, 137 past the wall limit.
analyze() { # CPU limit, wall limit, input, stderr file
  timeout -s KILL "$2" prlimit --core=0 --cpu="$1:$(($1 + 1))" \
    "$vqa" analyze --no-progress --format json "$3" >/dev/null 2>"$4"
}

# --- Each seed's clean CPU time: the CPU limit is 10x it (at least 5 s) ----------------------
declare -A limit
TIMEFORMAT='%U %S'
for s in "${seeds[@]}"; do
  status=0
  { time analyze 120 600 "$out/seeds/$s" "$out/work/clean.err"; } 2>"$out/work/clean.time" || status=$?
  if [ "$status" -ne 0 ]; then
    echo "fuzz-media.sh: the clean seed $s exits $status: $(head -c 300 "$out/work/clean.err")" >&2
    exit 1
  fi
  limit[$s]=$(awk '{ l = ($1 + $2) * 10; if (l < 5) l = 5; printf "%d", l + 0.999 }' "$out/work/clean.time")
done

# --- The campaign ---------------------------------------------------------------------------
log="$out/log.tsv"
printf 'seed\tzzuf_seed\tratio\tstatus\tseconds\toutcome\n' >"$log"
export vqa out
run_one() { # seed file, zzuf seed, ratio, CPU limit
  local s="$1" z="$2" r="$3" cpu="$4"
  local ext="${s##*.}" input="$out/work/$s-$z.$ext" err="$out/work/$s-$z.err"
  local wall=$((cpu * 10 < 60 ? 60 : cpu * 10))
  zzuf -s "$z" -r "$r" <"$out/seeds/$s" >"$input"
  local start status=0 took outcome
  start=$(date +%s.%N)
  analyze "$cpu" "$wall" "$input" "$err" || status=$?
  took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  if [ "$status" -eq 137 ]; then
    # Past the wall limit without reaching the CPU limit: confirmed by a second run with 4
    # times the time, since a machine busy with something else can stall a run that long.
    status=0
    analyze "$cpu" "$((wall * 4))" "$input" "$err" || status=$?
  fi
  case "$status" in
    0|1|3) outcome=ok ;;
    152|137) outcome=hang ;;  # past the CPU limit (SIGXCPU) or the wall limit (killed)
    101|134|139|136|135|132) outcome=crash ;;  # panic, abort, SIGSEGV, SIGFPE, SIGBUS, SIGILL
    *) outcome=status ;;
  esac
  if [ "$outcome" != ok ]; then
    mv "$input" "$out/found/$outcome/$s-$z.$ext"
    { echo "seed $s, zzuf -s $z -r $r, exit status $status after ${took}s"; cat "$err"; } \
      >"$out/found/$outcome/$s-$z.txt"
  else
    rm -f "$input"
  fi
  rm -f "$err"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$z" "$r" "$status" "$took" "$outcome"
}
export -f analyze run_one

ratios=(0.00001 0.0001 0.001 0.004 0.01)
started=$(date +%s)
{
  for ((i = 0; i < inputs; i++)); do
    s="${seeds[i % ${#seeds[@]}]}"
    z=$((first_seed + i))
    r="${ratios[(i / ${#seeds[@]}) % ${#ratios[@]}]}"
    printf '%s %s %s %s\n' "$s" "$z" "$r" "${limit[$s]}"
  done
} | xargs -P "$jobs" -n 4 bash -c 'run_one "$@"' _ >>"$log"
elapsed=$(($(date +%s) - started))

found=$(awk -F'\t' 'NR > 1 && $6 != "ok"' "$log" | wc -l)
{
  echo "inputs: $inputs over ${#seeds[@]} seeds, $jobs at once, ${elapsed}s ($(awk -v n="$inputs" -v t="$elapsed" 'BEGIN { printf "%.1f", n / (t + 0.001) }') inputs/s)"
  echo "outcomes:"
  awk -F'\t' 'NR > 1 { n[$6]++ } END { for (k in n) printf "  %s %d\n", k, n[k] }' "$log" | sort
  echo "exit statuses:"
  awk -F'\t' 'NR > 1 { n[$4]++ } END { for (k in n) printf "  %s %d\n", k, n[k] }' "$log" | sort -n -k1
  echo "found: $found (in $out/found)"
} | tee "$out/summary.txt"
[ "$found" -eq 0 ]
