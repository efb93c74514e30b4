#!/usr/bin/env bash
# Builds FFmpeg from Debian 12's own source package (5.1.x, Debian's patches applied) as static
# libraries trimmed to what vqa decodes: no programs, no external codec libraries, only the
# demuxers, parsers and decoders of the inputs vqa supports, swscale and swresample, and the
# protocols of the live inputs `vqa analyze`/`vqa monitor` read by URL (udp, rtp, tcp, http,
# https/tls, HLS, rtmp/rtmps, srt, crypto for encrypted HLS; the Lambda converter reads S3
# through its own I/O and uses none of them). TLS is OpenSSL 3 and SRT is libsrt, both from
# Debian's static archives (libssl-dev, libsrt-openssl-dev). One build serves the Lambda
# bootstraps (scripts/build-lambdas.sh) and the ECS image's vqa (scripts/build-ecs-image.sh),
# so they need nothing of the machine they run on.
#
#   scripts/build-ffmpeg-static.sh        # prints the install prefix (FFMPEG_DIR) on stdout
#
# $prefix/link-libs holds the libraries FFmpeg's own ones need after them on the link line
# (ffmpeg-sys links only FFmpeg's archives when FFMPEG_DIR is set); scripts/static-build.sh
# passes them on.
#
# Cached: the result in target/ffmpeg-static is reused while this script is unchanged (the
# first build takes a minute or two on 2 cores and says so).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
prefix="$root/target/ffmpeg-static"
work="$root/target/ffmpeg-src"
stamp="$(sha256sum "$0" | cut -c1-16)"

mkdir -p "$root/target"
# One build at a time: the Lambda bundles and the ECS image may ask for it at once (from two
# shells), and a second build would delete the first one's tree under it.
exec 9>"$root/target/ffmpeg-static.lock"
flock 9
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
command -v g++ >/dev/null || need+=(g++)
[ -f /usr/lib/"$(gcc -print-multiarch)"/libssl.a ] || need+=(libssl-dev)
[ -f /usr/lib/"$(gcc -print-multiarch)"/libsrt.a ] || need+=(libsrt-openssl-dev)
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
  dsc=$(find . -maxdepth 1 -name 'ffmpeg_5.1*.dsc' | head -1)
  [ -n "$dsc" ] || { echo "build-ffmpeg-static.sh: Debian's ffmpeg source is not 5.1 ($(ls))" >&2; exit 1; }
  dpkg-source --no-check -x "$dsc" src >/dev/null
)

decoders=h264,hevc,mpeg1video,mpeg2video,mpeg4,vp8,vp9,mjpeg,prores,dnxhd
decoders+=,aac,aac_latm,ac3,eac3,mp1,mp2,mp3,opus,vorbis,flac,alac
decoders+=,pcm_s16le,pcm_s16be,pcm_s24le,pcm_s24be,pcm_s32le,pcm_f32le,pcm_f64le,pcm_u8,pcm_alaw,pcm_mulaw,pcm_dvd,pcm_bluray
demuxers=mov,matroska,mpegts,mpegps,mpegvideo,avi,wav,flv,ogg,aac,ac3,eac3,mp3,flac,h264,hevc,m4v,mjpeg
# Live inputs: HLS playlists, RTP (and its SDP description).
demuxers+=,hls,rtp,sdp
parsers=h264,hevc,mpegvideo,mpeg4video,vp8,vp9,mjpeg,aac,aac_latm,ac3,mpegaudio,opus,vorbis,flac,dnxhd
# ConverterConfig::allowed_protocols's defaults (core/src/config.rs) plus local files and pipes;
# libsrt is FFmpeg's srt://.
protocols=file,pipe,tcp,udp,rtp,http,https,tls,hls,crypto,rtmp,rtmps,libsrt
# What the archives above need after FFmpeg's on the link line: libsrt is C++, and SRT's
# encryption and FFmpeg's TLS are OpenSSL's. They come after rustc's own -lc/-lgcc_eh, so
# static glibc and libgcc follow them again, in a group (they refer to each other). Named as
# archives: rustc ends its libraries with -Bdynamic, so a plain -lssl would find libssl.so.
link_libs="-Wl,--start-group -l:libsrt.a -l:libssl.a -l:libcrypto.a -l:libstdc++.a"
link_libs+=" -l:libgcc_eh.a -l:libgcc.a -l:libc.a -Wl,--end-group"
(
  cd "$work/src"
  ./configure --prefix="$prefix" \
    --disable-everything --disable-autodetect --disable-programs --disable-doc \
    --disable-avdevice --disable-avfilter --disable-postproc \
    --enable-static --disable-shared --enable-pic \
    --enable-swscale --enable-swresample \
    --enable-network --enable-openssl --enable-libsrt \
    --enable-decoder="$decoders" --enable-demuxer="$demuxers" --enable-parser="$parsers" \
    --enable-protocol="$protocols" \
    --extra-version=vqa-static >"$work/configure.log" 2>&1 \
    || { tail -20 "$work/configure.log" >&2; exit 1; }
  # configure drops a component whose dependency is missing without failing: insist on each.
  for p in ${protocols//,/ }; do
    grep -q "^#define CONFIG_${p^^}_PROTOCOL 1" config_components.h \
      || { echo "build-ffmpeg-static.sh: FFmpeg's configure left out the $p protocol (see $work/configure.log)" >&2; exit 1; }
  done
  make -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -30 "$work/make.log" >&2; exit 1; }
  make install >>"$work/make.log" 2>&1
)
echo "$link_libs" >"$prefix/link-libs"
echo "$stamp" >"$prefix/.stamp"
rm -rf "$work"
echo "build-ffmpeg-static.sh: $prefix in $(( $(date +%s) - started )) s" >&2
echo "$prefix"
