# shellcheck shell=bash
# The self-contained build both deliverables share, sourced by scripts/build-lambdas.sh (the
# Lambda bootstraps) and scripts/build-ecs-image.sh (the ECS image's vqa): statically linked —
# glibc included (crt-static), FFmpeg from Debian's source (scripts/build-ffmpeg-static.sh) —
# so the binaries run in a root holding nothing but themselves (no /lib, no shell).
#
#   static_build <release|dev> <cargo build arguments...>   # sets static_bin_dir
#   static_require_self_contained <binary>                  # fails if it needs ld.so or a .so
#
# Its own target directory (target/lambda-build), so the development build (which links
# Debian's FFmpeg dynamically) is left alone; the handlers and vqa share its dependencies.

# static_build PROFILE ARGS...: cargo build ARGS in the static configuration; the binaries
# land in $static_bin_dir.
static_build() {
  local profile="$1" dir
  shift
  case "$profile" in
    release) dir=release ;;
    dev) dir=debug ;;
    *) echo "${0##*/}: unknown profile $profile (release or dev)" >&2; return 2 ;;
  esac
  local ffmpeg_dir triple build_dir
  ffmpeg_dir="$(bash scripts/build-ffmpeg-static.sh)"
  triple="$(rustc -vV | sed -n 's/^host: //p')"
  build_dir="$PWD/target/lambda-build"
  [ -d "$build_dir/$triple/$dir" ] \
    || echo "${0##*/}: first self-contained build (several minutes on 2 cores)" >&2
  # crt-static: glibc linked in, so the binaries do not depend on the runtime's glibc (2.34 on
  # provided.al2023; this machine's is 2.36). Since glibc 2.34 its `files` and `dns` name
  # services are part of libc itself, so name resolution works without NSS modules. Linked by
  # GNU ld, not Rust's default lld: lld lays out static glibc's _init so that these binaries
  # crash before main (a small program does not show it; the handlers did).
  # ffmpeg-sys links only FFmpeg's own archives; what they need (OpenSSL, libsrt and its C++
  # runtime) follows them as link arguments, which come last on the line.
  local rustflags="-C target-feature=+crt-static -C linker-features=-lld -C link-arg=-latomic"
  local libs lib
  read -ra libs <"$ffmpeg_dir/link-libs"
  for lib in "${libs[@]}"; do
    rustflags+=" -C link-arg=$lib"
  done
  # No debug info: the binaries are stripped anyway, and it halves the build's disk and time.
  FFMPEG_DIR="$ffmpeg_dir" CARGO_TARGET_DIR="$build_dir" CARGO_PROFILE_DEV_DEBUG=0 \
    CARGO_PROFILE_RELEASE_DEBUG=0 RUSTFLAGS="$rustflags ${RUSTFLAGS:-}" \
    cargo build --profile "$profile" --target "$triple" "$@" >&2
  # shellcheck disable=SC2034 # the result, read by the script that sources this
  static_bin_dir="$build_dir/$triple/$dir"
}

# static_build_deliverables PROFILE: the Lambda handlers and vqa (the ECS image's), in one
# cargo invocation, so the two share every dependency built with the same features: built
# apart, the crates whose features differ between the two (hyper, tower, the AWS SDK's
# runtime and everything above them) were built twice, 8 of CI's minutes. Whichever script
# runs second finds everything built.
static_build_deliverables() {
  static_build "$1" -p vqa-deploy-lambda -p vqa-cli --bins \
    --features vqa-deploy-lambda/static-ffmpeg,vqa-cli/static-ffmpeg
}

# static_require_self_contained BINARY: a program interpreter (ld-linux) or a NEEDED library
# would have to come from the root it runs in.
static_require_self_contained() {
  if readelf -ld "$1" | grep -qE "program interpreter|\(NEEDED\)"; then
    echo "${0##*/}: $1 is not self-contained: $(readelf -ld "$1" | grep -E "interpreter|NEEDED" | head -3 | tr '\n' ' ')" >&2
    return 1
  fi
}
