#!/usr/bin/env bash
# Builds FFmpeg from Debian 12's own source package (5.1.x, Debian's patches applied) as static
# libraries trimmed to what the Lambda converter decodes: no programs, no external codec
# libraries, no network protocols (the converter reads S3 through its own I/O), only the
# demuxers, parsers and decoders of the inputs vqa supports, swscale and swresample.
# The Lambda bootstraps link it (scripts/build-lambdas.sh), so they need nothing of the
# machine they run on.
#
#   scripts/build-ffmpeg-static.sh        # prints the install prefix (FFMPEG_DIR) on stdout
#
# Cached: the result in target/ffmpeg-static is reused while this script is unchanged (the
# first build takes a minute or two on 2 cores and says so).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
prefix="$root/target/ffmpeg-static"
work="$root/target/ffmpeg-src"
stamp="$(sha256sum "$0" | cut -c1-16)"

if [ -f "$prefix/.stamp" ] && [ "$(cat "$prefix/.stamp")" = "$stamp" ]; then
  echo "$prefix"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
need=()
command -v nasm >/dev/null || need+=(nasm)
command -v dpkg-source >/dev/null || need+=(dpkg-dev)
command -v make >/dev/null || need+=(make)
command -v xz >/dev/null || need+=(xz-utils)
if [ ${#need[@]} -gt 0 ]; then
  echo "build-ffmpeg-static.sh: installing ${need[*]}" >&2
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

# Debian's source packages: the system's deb entries, as deb-src.
if ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  src=/etc/apt/sources.list.d/vqa-deb-src.sources
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources | $sudo tee "$src" >/dev/null
  else
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      | $sudo tee "$src" >/dev/null
  fi
  $sudo apt-get update -qq >&2
fi

echo "build-ffmpeg-static.sh: building FFmpeg from Debian's source (first time only, about 1-2 minutes on 2 cores)" >&2
started=$(date +%s)
rm -rf "$work" "$prefix"
mkdir -p "$work"
(
  cd "$work"
  # As root apt warns that the download is not sandboxed: harmless here.
  apt-get source --download-only ffmpeg >/dev/null 2>&1 || apt-get source --download-only ffmpeg >&2
  dsc=$(ls ffmpeg_5.1*.dsc | head -1)
  [ -n "$dsc" ] || { echo "build-ffmpeg-static.sh: Debian's ffmpeg source is not 5.1 ($(ls))" >&2; exit 1; }
  dpkg-source --no-check -x "$dsc" src >/dev/null
)

decoders=h264,hevc,mpeg1video,mpeg2video,mpeg4,vp8,vp9,mjpeg,prores,dnxhd
decoders+=,aac,aac_latm,ac3,eac3,mp1,mp2,mp3,opus,vorbis,flac,alac
decoders+=,pcm_s16le,pcm_s16be,pcm_s24le,pcm_s24be,pcm_s32le,pcm_f32le,pcm_f64le,pcm_u8,pcm_alaw,pcm_mulaw,pcm_dvd,pcm_bluray
demuxers=mov,matroska,mpegts,mpegps,mpegvideo,avi,wav,flv,ogg,aac,ac3,eac3,mp3,flac,h264,hevc,m4v,mjpeg
parsers=h264,hevc,mpegvideo,mpeg4video,vp8,vp9,mjpeg,aac,aac_latm,ac3,mpegaudio,opus,vorbis,flac,dnxhd
(
  cd "$work/src"
  ./configure --prefix="$prefix" \
    --disable-everything --disable-autodetect --disable-programs --disable-doc \
    --disable-network --disable-avdevice --disable-avfilter --disable-postproc \
    --enable-static --disable-shared --enable-pic \
    --enable-swscale --enable-swresample \
    --enable-decoder="$decoders" --enable-demuxer="$demuxers" --enable-parser="$parsers" \
    --enable-protocol=file,pipe \
    --extra-version=vqa-static >"$work/configure.log" 2>&1 \
    || { tail -20 "$work/configure.log" >&2; exit 1; }
  make -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -30 "$work/make.log" >&2; exit 1; }
  make install >>"$work/make.log" 2>&1
)
echo "$stamp" >"$prefix/.stamp"
rm -rf "$work"
echo "build-ffmpeg-static.sh: $prefix in $(( $(date +%s) - started )) s" >&2
echo "$prefix"
