#!/usr/bin/env python3
"""Trains the blockiness model on the natural corpus's training sources and writes its
weights as Rust (models/blockiness_natural.rs) and its figures (models/blockiness_natural.json).

    python scripts/corpus/train.py --corpus target/corpus --features BIN

BIN is the block_features example (crates/eval/examples/block_features.rs): the features are
computed by the detector's own code, so training and inference cannot disagree. Only frames
labelled 0 or 1 are used (labels.json, made by make_corpus.py); each damage type and the
clean frames weigh the same in the loss. The model is a 24-2-1 MLP (ReLU, sigmoid), trained
full-batch with Adam from a fixed seed in float64: reruns give the same weights.
The per-frame figures on the held-out evaluation sources are written beside the weights;
nothing from them is used in training or in choosing anything.
"""

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np

HIDDEN = 2
STEPS = 1500
L2 = 1e-2
NEG_WEIGHT = 2.0
NAMES = ["edge16", "edge8", "off1", "off2", "off3", "off4", "flat0", "flat", "smooth", "flat_step",
         "standing_out", "activity"]
FEATURE_NAMES = [f"{d}_{n}" for d in ("h", "v") for n in NAMES]


def features(binary, clip: Path):
    cache = clip.with_suffix(clip.suffix + ".features.tsv")
    if not cache.exists() or cache.stat().st_mtime < Path(binary).stat().st_mtime:
        r = subprocess.run([binary, str(clip)], capture_output=True, text=True, check=True)
        cache.write_text(r.stdout)
    rows = []
    for line in cache.read_text().splitlines():
        f = line.split("\t")
        rows.append((float(f[1]), [float(v) for v in f[2:]]))
    return rows


def load(corpus: Path, set_: str, binary):
    X, y, damage, source = [], [], [], []
    for lab in sorted((corpus / set_).glob("*/*.labels.json")):
        info = json.loads(lab.read_text())
        clip = lab.parent / info["clip"]
        labels = info["labels"]
        for t, f in features(binary, clip):
            i = int(round(t * info["fps"]))
            if i >= len(labels) or labels[i] is None:
                continue
            X.append(f)
            y.append(labels[i])
            damage.append(info["damage"])
            source.append(info["source"])
    return np.array(X, dtype=np.float64), np.array(y, dtype=np.float64), np.array(damage), np.array(source)


def forward(p, X):
    h = np.maximum(X @ p["W1"].T + p["B1"], 0.0)
    z = h @ p["W2"] + p["B2"]
    return h, 1.0 / (1.0 + np.exp(-z))


def train(X, y, w):
    rng = np.random.default_rng(15)
    n, d = X.shape
    p = {
        "W1": rng.normal(0, 1 / np.sqrt(d), (HIDDEN, d)),
        "B1": np.zeros(HIDDEN),
        "W2": rng.normal(0, 1 / np.sqrt(HIDDEN), HIDDEN),
        "B2": np.zeros(()),
    }
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    w = w / w.sum()
    for step in range(1, STEPS + 1):
        h, out = forward(p, X)
        g = (out - y) * w  # d(weighted log loss)/dz
        grads = {
            "W2": h.T @ g + L2 * p["W2"],
            "B2": np.array(g.sum()),
        }
        gh = np.outer(g, p["W2"]) * (h > 0)
        grads["W1"] = gh.T @ X + L2 * p["W1"]
        grads["B1"] = gh.sum(axis=0)
        lr = 0.01
        for k in p:
            m[k] = 0.9 * m[k] + 0.1 * grads[k]
            v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
            mh = m[k] / (1 - 0.9 ** step)
            vh = v[k] / (1 - 0.999 ** step)
            p[k] = p[k] - lr * mh / (np.sqrt(vh) + 1e-8)
    return p


def weights(y, damage):
    """Each damage type's positives weigh the same in total, and the negatives as much as
    all of them together (NEG_WEIGHT times): a false alarm costs more than a late find."""
    w = np.zeros(len(y))
    kinds = sorted(set(damage[y == 1]))
    for d in kinds:
        g = (y == 1) & (damage == d)
        w[g] = 1.0 / g.sum()
    w[y == 0] = NEG_WEIGHT * len(kinds) / max(1, (y == 0).sum())
    return w


def figures(y, pred, damage):
    out = {}
    neg = y == 0
    for d in sorted(set(damage)):
        pos = (y == 1) & (damage == d)
        if not pos.any():
            continue
        tp = int((pred & pos).sum())
        fn = int((~pred & pos).sum())
        fp = int((pred & neg & (damage == d)).sum())
        prec = tp / (tp + fp) if tp + fp else None
        rec = tp / (tp + fn)
        f1 = 2 * prec * rec / (prec + rec) if prec and rec else 0.0
        out[d] = {"positives": int(pos.sum()), "negatives": int((neg & (damage == d)).sum()),
                  "tp": tp, "fp": fp, "fn": fn, "precision": prec, "recall": rec, "f1": f1}
    out["clean_frames_flagged"] = float((pred & neg).sum() / max(1, neg.sum()))
    return out


def rust(p, mean, scale):
    def arr(a):
        return "[" + ", ".join(f"{float(x):.8e}" for x in a) + "]"
    lines = [
        "// Written by scripts/corpus/train.py; do not edit. The blockiness model: a 24-2-1 MLP",
        "// (ReLU, sigmoid) over crate::blockiness::block_features, standardised by MEAN/SCALE.",
        f"// Features: {', '.join(FEATURE_NAMES)}.",
        f"pub const FEATURES: usize = {len(mean)};",
        f"pub const HIDDEN: usize = {HIDDEN};",
        f"pub const MEAN: [f32; FEATURES] = {arr(mean)};",
        f"pub const SCALE: [f32; FEATURES] = {arr(scale)};",
        "pub const W1: [[f32; FEATURES]; HIDDEN] = [",
        *[f"    {arr(row)}," for row in p["W1"]],
        "];",
        f"pub const B1: [f32; HIDDEN] = {arr(p['B1'])};",
        f"pub const W2: [f32; HIDDEN] = {arr(p['W2'])};",
        f"pub const B2: f32 = {float(p['B2']):.8e};",
    ]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="target/corpus")
    ap.add_argument("--features", default="target/release/examples/block_features")
    ap.add_argument("--out", default="models/blockiness_natural.rs")
    ap.add_argument("--metrics", default="models/blockiness_natural.json")
    a = ap.parse_args()
    corpus = Path(a.corpus)
    X, y, damage, source = load(corpus, "train", a.features)
    mean = X.mean(axis=0)
    scale = X.std(axis=0) + 1e-6
    # Round to f32 first so that Rust, which standardises in f32, sees the same model.
    mean, scale = mean.astype(np.float32).astype(np.float64), scale.astype(np.float32).astype(np.float64)
    Xs = (X - mean) / scale
    p = train(Xs, y, weights(y, damage))
    p = {k: np.asarray(v, dtype=np.float32).astype(np.float64) for k, v in p.items()}
    _, out = forward(p, Xs)
    metrics = {
        "model": f"{X.shape[1]}-{HIDDEN}-1 MLP, {STEPS} Adam steps, L2 {L2}",
        "train": {"frames": int(len(y)), "sources": sorted(set(source)),
                  "per_frame": figures(y, out >= 0.5, damage)},
    }
    if (corpus / "eval").exists():
        Xe, ye, de, se = load(corpus, "eval", a.features)
        _, oe = forward(p, (Xe - mean) / scale)
        metrics["eval"] = {"frames": int(len(ye)), "sources": sorted(set(se)),
                           "per_frame": figures(ye, oe >= 0.5, de)}
    Path(a.out).write_text(rust(p, mean, scale))
    Path(a.metrics).write_text(json.dumps(metrics, indent=1) + "\n")
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
