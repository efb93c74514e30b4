#!/usr/bin/env bash
# Builds the three Lambda handlers as self-contained `bootstrap` executables for the
# `provided.al2023` runtime (or any Linux): statically linked (scripts/static-build.sh), so
# each runs in a root holding nothing but itself (no /lib, no shell). Laid out the way
# `cargo lambda build` does: target/lambda/<name>/bootstrap and
# target/lambda/<name>/bootstrap.zip (stripped), ready for `aws lambda create-function
# --zip-file`, infra/distributed.yaml or the local emulator.
#
#   scripts/build-lambdas.sh [release|dev]     # default: release
#
# The first build compiles every dependency for this configuration and FFmpeg: several
# minutes on 2 cores, and it says so.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/static-build.sh
. scripts/static-build.sh

profile="${1:-release}"
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || { echo "build-lambdas.sh: $ca is missing; apt-get install ca-certificates" >&2; exit 1; }
static_build_deliverables "$profile"
for name in vqa-converter vqa-detector vqa-aggregator; do
  out="target/lambda/$name"
  bin="$static_bin_dir/$name"
  static_require_self_contained "$bin"
  mkdir -p "$out"
  strip -o "$out/bootstrap" "$bin"
  # The CA certificates travel with it (for HTTPS to AWS where the root has none; the
  # handlers use them when /etc/ssl/certs is missing).
  cp "$ca" "$out/ca-certificates.crt"
  rm -f "$out/bootstrap.zip"
  python3 - "$out" <<'PY'
import os, sys, zipfile
out = sys.argv[1]
with zipfile.ZipFile(os.path.join(out, "bootstrap.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    for name, mode in (("bootstrap", 0o755), ("ca-certificates.crt", 0o644)):
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(os.path.join(out, name), "rb") as f:
            z.writestr(info, f.read())
PY
  echo "build-lambdas.sh: $out/bootstrap.zip ($(du -h "$out/bootstrap.zip" | cut -f1) zipped, $(du -ch "$out/bootstrap" "$out/ca-certificates.crt" | tail -1 | cut -f1) unzipped)" >&2
done
