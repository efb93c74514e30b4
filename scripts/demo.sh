#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds vqa, makes a small clip with known defects and
# analyses it. The clip's ground truth is printed first, so the two can be compared.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo build --release --quiet --bin vqa --bin vqa-make-clip

mkdir -p target/demo
echo "== ground truth of target/demo/demo.mp4 (what was injected)"
target/release/vqa-make-clip target/demo/demo.mp4
echo "== vqa analyze target/demo/demo.mp4"
target/release/vqa analyze target/demo/demo.mp4 --out target/demo/report.json
echo "== the JSON report is in target/demo/report.json"
