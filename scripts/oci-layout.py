"""Writes a one-layer OCI image layout from a root directory (scripts/build-ecs-image.sh).

    python3 scripts/oci-layout.py ROOT LAYOUT --created RFC3339 --epoch SECONDS --arch ARCH \
        --user UID:GID --entrypoint PATH --cmd ARG --workdir DIR --env K=V --label K=V ... \
        --tag TAG --created-by TEXT

Deterministic: directory by directory in name order, owned by 0:0, every time the given epoch, gzip without a
time stamp, JSON with sorted keys — the same root and arguments make the same digests.
Written here rather than by umoci: Debian 12's umoci (0.4.7) ends its layer tars without the
end-of-archive blocks (umoci issue 436), which GNU tar and image scanners reject. Prints the
layer's compressed size in bytes.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import tarfile

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("layout")
    parser.add_argument("--created", required=True)
    parser.add_argument("--epoch", type=int, required=True)
    parser.add_argument("--arch", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--entrypoint", required=True)
    parser.add_argument("--cmd", action="append", default=[])
    parser.add_argument("--workdir", default="/")
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--label", action="append", default=[])
    parser.add_argument("--tag", default="latest")
    parser.add_argument("--created-by", default="")
    args = parser.parse_args()

    blobs = os.path.join(args.layout, "blobs", "sha256")
    os.makedirs(blobs)

    def put(data, media_type):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}

    def owned_by_root(info):
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = args.epoch
        return info

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(args.root):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                path = os.path.join(dirpath, name)
                tar.add(path, arcname=os.path.relpath(path, args.root), recursive=False,
                        filter=owned_by_root)
    raw = raw.getvalue()
    layer = put(gzip.compress(raw, compresslevel=6, mtime=0), LAYER)

    config = {
        "created": args.created,
        "architecture": args.arch,
        "os": "linux",
        "config": {
            "User": args.user,
            "Env": args.env,
            "WorkingDir": args.workdir,
            "Entrypoint": [args.entrypoint],
            "Cmd": args.cmd,
            "Labels": dict(label.split("=", 1) for label in args.label),
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
        "history": [{"created": args.created, "created_by": args.created_by}],
    }
    config = put(json.dumps(config, sort_keys=True).encode(), CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": [layer]}
    manifest = put(json.dumps(manifest, sort_keys=True).encode(), MANIFEST)
    manifest["annotations"] = {"org.opencontainers.image.ref.name": args.tag}
    with open(os.path.join(args.layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [manifest]}, f, sort_keys=True)
    with open(os.path.join(args.layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    print(layer["size"])


if __name__ == "__main__":
    main()
