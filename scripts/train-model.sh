#!/usr/bin/env bash
# Regenerates models/blockiness.onnx and models/blockiness.json from scratch:
# makes a Python venv, installs the pinned packages, renders training clips with the ffmpeg
# CLI (lavfi sources only, nothing downloaded), trains the CNN with numpy and exports and
# verifies the ONNX model. Deterministic (bit-identical reruns); about 12 minutes on 2 cores.
#   bash scripts/train-model.sh            # VENV=/path to reuse a venv elsewhere
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-target/blockiness/venv}"
WORK="target/blockiness"
PY="${PYTHON:-python3}"

apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "$@"
}
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v "$PY" >/dev/null || need+=(python3)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

if [ ! -x "$VENV/bin/python" ]; then
    rm -rf "$VENV"
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        apt_install python3-venv
        "$PY" -m venv "$VENV"
    fi
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r models/train/requirements.txt

mkdir -p "$WORK"
start=$(date +%s)
"$VENV/bin/python" models/train/gen_data.py --out "$WORK/data.npz" --work "$WORK/work"
gen=$(date +%s)
"$VENV/bin/python" models/train/train.py --data "$WORK/data.npz" \
    --out models/blockiness.onnx --metrics models/blockiness.json \
    --command "bash scripts/train-model.sh"
end=$(date +%s)
echo "data generation $((gen - start)) s, training $((end - gen)) s"
