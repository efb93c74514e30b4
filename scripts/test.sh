#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, cfn-lint on the infrastructure templates, unit
# tests, the integration tests that decode real clips made with the ffmpeg CLI, and the
# distributed topology's tests against the local AWS emulator (which they start themselves).
# Installs what it needs first (Debian packages, the emulator's and cfn-lint's Python venvs).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/emulators.sh install
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy 2>/dev/null || true

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
bash scripts/lint-infra.sh
# The Lambda handlers as they deploy: self-contained bundles (glibc linked in, FFmpeg built
# from Debian's source, trimmed and static; both cached under target/ after the first run),
# each run by the emulator in a root holding nothing but its unzipped bundle (as root).
bash scripts/build-lambdas.sh dev
export VQA_LAMBDA_BUNDLES=1
if [ "$(id -u)" -eq 0 ]; then export VQA_LAMBDA_CHROOT=1; fi
cargo test --workspace
