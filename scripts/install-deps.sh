#!/usr/bin/env bash
# Installs what building and testing vqa needs on Debian 12: FFmpeg 5.1's libraries and
# headers (for ffmpeg-next), clang (for bindgen), pkg-config, the ffmpeg CLI (test clips), and
# umoci and runc (tests/tests/ecs_image.rs unpacks the ECS image with umoci and runs it with
# runc; the TLS test makes its certificate with the openssl CLI), and chromium (the HTML
# report's test renders the page headless and checks the screenshot), and zzuf (the media
# fuzzing campaign, scripts/fuzz-media.sh, and its short run in the tests).
# Idempotent: does nothing when everything is already there.
set -euo pipefail

packages=(libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
          pkg-config clang libclang-dev ffmpeg python3-venv binutils umoci runc openssl chromium zzuf)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "error: not root and no sudo; install as root: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || {
  echo "error: cargo not found; install Rust (https://rustup.rs), then run this again" >&2
  exit 1
}
