#!/usr/bin/env bash
# Builds the single-process (ECS) topology's image without a Docker daemon: `vqa` linked
# statically like the Lambda bootstraps (scripts/static-build.sh; FFmpeg with the live inputs'
# network protocols), on a scratch-style root holding only
#   /usr/local/bin/vqa, /etc/ssl/certs/ca-certificates.crt (HTTPS to AWS), /tmp (1777),
#   /etc/passwd and /etc/group naming nobody (65534), which the image runs as,
# written as an OCI image layout (scripts/oci-layout.py), and as an oci-archive tarball:
#   target/ecs-image/oci            layout, tag `latest`   (skopeo/umoci: oci:target/ecs-image/oci:latest)
#   target/ecs-image/vqa.oci.tar    the same as one file   (oci-archive:target/ecs-image/vqa.oci.tar)
# infra/README.md shows how to push it to ECR and load it into Docker with skopeo.
#
#   scripts/build-ecs-image.sh [release|dev]     # default: release
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/static-build.sh
. scripts/static-build.sh

profile="${1:-release}"
for tool in python3 readelf strip tar; do
  command -v "$tool" >/dev/null \
    || { echo "build-ecs-image.sh: $tool is missing; run scripts/install-deps.sh (or apt-get install python3 binutils tar)" >&2; exit 1; }
done
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || { echo "build-ecs-image.sh: $ca is missing; apt-get install ca-certificates" >&2; exit 1; }
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) echo "build-ecs-image.sh: no OCI architecture name for $(uname -m)" >&2; exit 1 ;;
esac

static_build_deliverables "$profile"
static_require_self_contained "$static_bin_dir/vqa"

out=target/ecs-image
root="$out/rootfs"
layout="$out/oci"
rm -rf "$out"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
strip -o "$root/usr/local/bin/vqa" "$static_bin_dir/vqa"
install -m 0644 "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"
# The commit's time on every file and in the config, so a rebuild of the same commit makes
# the same layer.
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
epoch="$(git log -1 --format=%ct 2>/dev/null || echo 0)"
created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"
find "$root" -exec touch -h -d "@$epoch" {} +

# org.opencontainers.image.source: VQA_IMAGE_SOURCE, else the origin remote's URL, else none
# (a checkout without a remote has no address to give).
source_url="${VQA_IMAGE_SOURCE:-$(git remote get-url origin 2>/dev/null || true)}"
labels=(--label "org.opencontainers.image.revision=$revision" --label org.opencontainers.image.title=vqa)
[ -z "$source_url" ] || labels+=(--label "org.opencontainers.image.source=$source_url")
layer_size=$(python3 scripts/oci-layout.py "$root" "$layout" --created "$created" --epoch "$epoch" \
  --arch "$arch" --user 65534:65534 --workdir /tmp --env PATH=/usr/local/bin \
  --entrypoint /usr/local/bin/vqa --cmd=--help "${labels[@]}" --tag latest \
  --created-by "scripts/build-ecs-image.sh $profile")
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
  -C "$layout" -cf "$out/vqa.oci.tar" .
unpacked_kib=$(du -sk "$root" | cut -f1)
rm -rf "$root"
echo "build-ecs-image.sh: $layout (tag latest) and $out/vqa.oci.tar ($(du -k "$out/vqa.oci.tar" | cut -f1) KiB): one layer, $((layer_size / 1024)) KiB compressed, $unpacked_kib KiB unpacked" >&2
