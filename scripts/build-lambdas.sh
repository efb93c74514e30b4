#!/usr/bin/env bash
# Builds the three Lambda handlers and lays them out the way `cargo lambda build` does:
# target/lambda/<name>/bootstrap and target/lambda/<name>/bootstrap.zip (stripped), ready for
# `aws lambda create-function --zip-file` or the local emulator (scripts/emulators.sh deploy).
#
#   scripts/build-lambdas.sh [release|dev]     # default: release
#
# The binaries link this machine's FFmpeg and glibc (Debian 12). On AWS, deploy them as the
# container image infra/lambda/Dockerfile builds (same Debian base), not as provided.al2023
# zips: Amazon Linux 2023 has neither FFmpeg 5.1 nor Debian 12's glibc.
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${1:-release}"
case "$profile" in
  release) dir=release ;;
  dev) dir=debug ;;
  *) echo "build-lambdas.sh: unknown profile $profile (release or dev)" >&2; exit 2 ;;
esac
cargo build --profile "$profile" -p vqa-deploy-lambda --bins >&2
for name in vqa-converter vqa-detector vqa-aggregator; do
  out="target/lambda/$name"
  mkdir -p "$out"
  strip -o "$out/bootstrap" "target/$dir/$name"
  rm -f "$out/bootstrap.zip"
  python3 - "$out" <<'PY'
import os, sys, zipfile
out = sys.argv[1]
with zipfile.ZipFile(os.path.join(out, "bootstrap.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    info = zipfile.ZipInfo("bootstrap")
    info.external_attr = 0o755 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(os.path.join(out, "bootstrap"), "rb") as f:
        z.writestr(info, f.read())
PY
  echo "build-lambdas.sh: $out/bootstrap.zip ($(du -h "$out/bootstrap.zip" | cut -f1))" >&2
done
