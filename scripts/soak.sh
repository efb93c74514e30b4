#!/usr/bin/env bash
# Soak of `vqa monitor` (issue 17): N live UDP streams on loopback for M minutes, their sources
# killed and restarted at random, the stream list edited, a webhook that fails; RSS, open fds
# and threads sampled every 10 s must stay flat after the warm-up, every incident opened must
# be closed and every report written. See docs/soak.md.
#
#   scripts/soak.sh [--minutes M] [--streams N] [--out DIR] [--vqa PATH] [--seed S]
#
# Defaults: 60 min, 8 streams, OUT=target/soak-<time>, the release vqa (built when missing).
# Time scales follow M: warm-up max(150, 5M) s, windows compared max(60, 10M) s, each source
# killed about every max(45, 4M) s, the list edited every max(30, 3M) s, the webhook down for
# max(10, M/3) s every max(50, 5M) s (60 min: 5 min warm-up, 10-minute windows, kills every
# ~4 min, edits every 3 min, the webhook down 20 s every 5 min). The summary is in
# OUT/summary.txt (and .json); the exit status is non-zero if a check failed.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=60 streams=8 out="" vqa="" seed=1
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --streams) streams="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --vqa) vqa="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$vqa" ]; then
  vqa=target/release/vqa
  [ -x "$vqa" ] || cargo build --release -p vqa-cli
fi
[ -x "$vqa" ] || { echo "soak.sh: $vqa is not an executable" >&2; exit 2; }
command -v ffmpeg >/dev/null || { echo "soak.sh: needs the ffmpeg CLI (scripts/install-deps.sh)" >&2; exit 2; }
out="${out:-target/soak-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# The clip every source loops: 60 s of 320x240 25 fps test pattern with 48 kHz MP2 audio,
# frozen at 3-15 s, silent at 20-32 s, black at 36-48 s: each lasts past the broadcast
# profile's 10 s raise-after time, and each clears before the loop comes round, so every
# stream opens and closes three incidents a minute. PCR every 20 ms, keyframes every second.
clip="$out/clip.ts"
if [ ! -s "$clip" ]; then
  ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=320x240:rate=25:duration=60" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=60" \
    -filter_complex "[0:v]loop=loop=299:size=1:start=75,trim=duration=60,setpts=N/25/TB,drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='between(t,36,48)'[v];[1:a]volume=volume=0:enable='between(t,20,32)'[a]" \
    -map "[v]" -map "[a]" -c:v libx264 -preset veryfast -g 25 -pix_fmt yuv420p \
    -c:a mp2 -b:a 128k -pcr_period 20 -f mpegts "$clip.tmp"
  mv "$clip.tmp" "$clip"
fi

# max(FLOOR, PER_MINUTE x minutes)
scale() { python3 -c "import sys; m=float(sys.argv[1]); print(f'{max($1, $2 * m):g}')" "$minutes"; }
echo "soak: $streams streams for $minutes min with $vqa; output in $out" >&2
status=0
python3 scripts/soak/drive.py --vqa "$vqa" --clip "$clip" --out "$out" \
  --minutes "$minutes" --streams "$streams" --seed "$seed" \
  --warmup "$(scale 150 5)" --window "$(scale 60 10)" \
  --kill-every "$(scale 45 4)" --edit-every "$(scale 30 3)" \
  --webhook-every "$(scale 50 5)" --webhook-down "$(scale 10 0.3333)" || status=$?
if [ "$status" -ne 0 ]; then
  echo "soak: the run did not complete (status $status); see $out" >&2
  exit "$status"
fi
python3 scripts/soak/check.py "$out"
