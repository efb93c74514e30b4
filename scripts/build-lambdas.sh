#!/usr/bin/env bash
# Builds the three Lambda handlers as self-contained `bootstrap` executables for the
# `provided.al2023` runtime (or any Linux): statically linked — glibc included (crt-static),
# FFmpeg from Debian's source trimmed to what the converter decodes
# (scripts/build-ffmpeg-static.sh) — so each runs in a root holding nothing but itself (no
# /lib, no shell). Laid out the way `cargo lambda build` does:
# target/lambda/<name>/bootstrap and target/lambda/<name>/bootstrap.zip (stripped), ready for
# `aws lambda create-function --zip-file`, infra/distributed.yaml or the local emulator.
#
#   scripts/build-lambdas.sh [release|dev]     # default: release
#
# Its own target directory (target/lambda-build), so the development build (which links
# Debian's FFmpeg dynamically) is left alone. The first build compiles every dependency for
# this configuration and FFmpeg: several minutes on 2 cores, and it says so.
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${1:-release}"
case "$profile" in
  release) dir=release ;;
  dev) dir=debug ;;
  *) echo "build-lambdas.sh: unknown profile $profile (release or dev)" >&2; exit 2 ;;
esac
ffmpeg_dir="$(bash scripts/build-ffmpeg-static.sh)"
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || { echo "build-lambdas.sh: $ca is missing; apt-get install ca-certificates" >&2; exit 1; }
triple="$(rustc -vV | sed -n 's/^host: //p')"
build_dir="$PWD/target/lambda-build"
[ -d "$build_dir/$triple/$dir" ] \
  || echo "build-lambdas.sh: first self-contained build of the handlers (several minutes on 2 cores)" >&2
# crt-static: glibc linked in, so the binaries do not depend on the runtime's glibc (2.34 on
# provided.al2023; this machine's is 2.36). Since glibc 2.34 its `files` and `dns` name
# services are part of libc itself, so name resolution works without NSS modules. Linked by
# GNU ld, not Rust's default lld: lld lays out static glibc's _init so that these binaries
# crash before main (a small program does not show it; the handlers did).
# No debug info: the bootstraps are stripped anyway, and it halves the build's disk and time.
FFMPEG_DIR="$ffmpeg_dir" CARGO_TARGET_DIR="$build_dir" CARGO_PROFILE_DEV_DEBUG=0 \
  CARGO_PROFILE_RELEASE_DEBUG=0 \
  RUSTFLAGS="-C target-feature=+crt-static -C linker-features=-lld -C link-arg=-latomic ${RUSTFLAGS:-}" \
  cargo build --profile "$profile" -p vqa-deploy-lambda --bins --features static-ffmpeg \
  --target "$triple" >&2
for name in vqa-converter vqa-detector vqa-aggregator; do
  out="target/lambda/$name"
  bin="$build_dir/$triple/$dir/$name"
  # A program interpreter (ld-linux) or a NEEDED library would have to come from the runtime.
  if readelf -ld "$bin" | grep -qE "program interpreter|\(NEEDED\)"; then
    echo "build-lambdas.sh: $bin is not self-contained: $(readelf -d "$bin" | grep NEEDED | head -3 | tr '\n' ' ')" >&2
    exit 1
  fi
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
