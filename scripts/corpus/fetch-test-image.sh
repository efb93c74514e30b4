#!/usr/bin/env bash
# Prints the path of a natural photograph for the blockiness tests, fetching it first if
# needed: scikit-learn's china.jpg (CC-BY 2.0, 640x427) from Debian's python3-sklearn,
# downloaded with apt-get and unpacked without installing, cached under target/corpus/test.
# It is neither a training nor an evaluation source of the natural corpus.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir="target/corpus/test"
image="$dir/china.jpg"
if [ ! -s "$image" ]; then
    mkdir -p "$dir"
    (
        cd "$dir"
        rm -f python3-sklearn_*.deb
        apt-get download -q python3-sklearn=1.2.1+dfsg-1 >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 && apt-get download -q python3-sklearn=1.2.1+dfsg-1 >/dev/null; }
        dpkg-deb --fsys-tarfile python3-sklearn_*.deb |
            tar -xO ./usr/lib/python3/dist-packages/sklearn/datasets/images/china.jpg >china.jpg.part
        mv china.jpg.part china.jpg
        rm -f python3-sklearn_*.deb
    )
fi
echo "$PWD/$image"
