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

HIDDEN = 8
STEPS = 1500
L2 = 1e-2
NEG_WEIGHT = 2.0
# The raise threshold chosen by leave-one-source-out (--cv), folded into the output bias so
# that the detector's own thresholds (0.5 raise, 0.3 clear) apply unchanged: the model's 0.5
# is the trained network's THRESHOLD, and its 0.3 the network's logit(THRESHOLD) + logit(0.3).
THRESHOLD = 0.76
# The damage types whose blocky frames are trained as positives (the others' are left out).
TRAINED = ("mpeg2", "x264", "x265")
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


def load(corpus: Path, set_: str, binary, keep_ignored=False):
    """Features, labels, damage, source and clip per frame, clip by clip in picture order.
    Ignored frames are left out, or with `keep_ignored` kept with the label -1 (for
    simulating incidents over whole clips)."""
    X, y, damage, source, clips = [], [], [], [], []
    for lab in sorted((corpus / set_).glob("*/*.labels.json")):
        info = json.loads(lab.read_text())
        clip = lab.parent / info["clip"]
        labels = info["labels"]
        for t, f in features(binary, clip):
            i = int(round(t * info["fps"]))
            label = labels[i] if i < len(labels) else None
            if label is None and not keep_ignored:
                continue
            X.append(f)
            y.append(-1 if label is None else label)
            damage.append(info["damage"])
            source.append(info["source"])
            clips.append(str(clip))
    return (np.array(X, dtype=np.float64), np.array(y, dtype=np.float64), np.array(damage),
            np.array(source), np.array(clips))


def forward(p, X):
    h = np.maximum(X @ p["W1"].T + p["B1"], 0.0)
    z = h @ p["W2"] + p["B2"]
    return h, 1.0 / (1.0 + np.exp(-z))


def train(X, y, w, hidden=None, l2=None):
    hidden = HIDDEN if hidden is None else hidden
    l2 = L2 if l2 is None else l2
    rng = np.random.default_rng(15)
    n, d = X.shape
    p = {
        "W1": rng.normal(0, 1 / np.sqrt(d), (hidden, d)),
        "B1": np.zeros(hidden),
        "W2": rng.normal(0, 1 / np.sqrt(hidden), hidden),
        "B2": np.zeros(()),
    }
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    w = w / w.sum()
    for step in range(1, STEPS + 1):
        h, out = forward(p, X)
        g = (out - y) * w  # d(weighted log loss)/dz
        grads = {
            "W2": h.T @ g + l2 * p["W2"],
            "B2": np.array(g.sum()),
        }
        gh = np.outer(g, p["W2"]) * (h > 0)
        grads["W1"] = gh.T @ X + l2 * p["W1"]
        grads["B1"] = gh.sum(axis=0)
        lr = 0.01
        for k in p:
            m[k] = 0.9 * m[k] + 0.1 * grads[k]
            v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
            mh = m[k] / (1 - 0.9 ** step)
            vh = v[k] / (1 - 0.999 ** step)
            p[k] = p[k] - lr * mh / (np.sqrt(vh) + 1e-8)
    return p


def weights(y, damage, neg_weight=None, trained=None):
    """Each damage type's positives weigh the same in total, and the negatives as much as
    all of them together (NEG_WEIGHT times): a false alarm costs more than a late find."""
    neg_weight = NEG_WEIGHT if neg_weight is None else neg_weight
    trained = TRAINED if trained is None else trained
    w = np.zeros(len(y))
    kinds = sorted(set(damage[y == 1]) & set(trained))
    for d in kinds:
        g = (y == 1) & (damage == d)
        w[g] = 1.0 / g.sum()
    w[y == 0] = neg_weight * len(kinds) / max(1, (y == 0).sum())
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


def segment_runs(levels, a, b, want, fps):
    """Runs of `levels == want` inside the segment [a, b): (start s, end s, from its first
    picture, to its last picture)."""
    out, start = [], None
    for i in range(a, b + 1):
        on = i < b and levels[i] == want
        if on and start is None:
            start = i
        elif not on and start is not None:
            out.append((start / fps, i / fps, start == a, i == b))
            start = None
    return out


def detector_scores(prob, raise_at=0.5, clear_at=0.3, segment=25, stride=4):
    """The scores the detector gives (crates/detectors/src/blockiness.rs, `scores`): per
    segment, one picture in `stride` and the last are scored; a picture between two scored
    ones on the same level takes the nearer one's score, else its own."""
    level = lambda v: int(v >= raise_at) + int(v >= clear_at)
    out = np.array(prob, dtype=np.float64)
    for a in range(0, len(prob), segment):
        b = min(len(prob), a + segment)
        anchors = list(range(a, b, stride))
        if anchors[-1] != b - 1:
            anchors.append(b - 1)
        for i, j in zip(anchors, anchors[1:]):
            if level(prob[i]) == level(prob[j]):
                for k in range(i + 1, j):
                    out[k] = prob[i] if k - i <= j - k else prob[j]
    return out


def incidents(prob, raise_at=0.5, clear_at=0.3, min_duration=0.5, clear_after=0.0, fps=25,
              segment=25):
    """The incidents the detector and the aggregator make of one clip's per-picture
    probabilities (crates/detectors/src/runs.rs, crates/core/src/aggregate.rs): the scores
    the detector's stride gives, then per 1 s segment, runs at the raise level kept when at least `min_duration` long or touching the
    segment's edges, runs at the hold level always; the aggregator opens on a raise, joins
    findings starting within `clear_after` of the open run's end once the run is raised (at
    once before), and reports a run raised for at least `min_duration`. Returns [(start s, end s)]."""
    prob = detector_scores(prob, raise_at, clear_at, segment)
    levels = (prob >= raise_at).astype(int) + (prob >= clear_at).astype(int)
    eps = 1e-9
    out, run = [], None  # run: [start, end, raised_until]

    def close():
        if run is not None and run[2] - run[0] >= min_duration - eps:
            out.append((run[0], run[1]))

    n = len(prob)
    for a in range(0, n, segment):
        b = min(n, a + segment)
        found = []
        for want in (2, 1):
            for s0, e0, first, last in segment_runs(levels, a, b, want, fps):
                if want == 1 or first or last or e0 - s0 >= min_duration - eps:
                    found.append((s0, e0, want, last))
        found.sort()
        for s0, e0, want, _ in found:
            # Only a raised run bridges gaps with the clear-after time (aggregate.rs, bridge).
            bridge = clear_after if run is not None and run[2] - run[0] >= min_duration - eps else 0.0
            if run is not None and s0 <= run[1] + bridge + eps:
                run[1] = max(run[1], e0)
                if want == 2:
                    run[2] = max(run[2], e0)
            else:
                close()
                run = [s0, e0, e0] if want == 2 else None
        if run is not None and not any(last for *_, last in found):
            bridge = clear_after if run[2] - run[0] >= min_duration - eps else 0.0
            if run[1] + bridge <= b / fps + eps:
                close()
                run = None
    close()
    return out


PROFILES = {"file_qc": (0.5, 0.0), "broadcast": (1.0, 5.0)}  # min_duration, clear_after


def clip_incident_figures(prob, y, damage, clips, raise_at, clear_at=0.3):
    """Per profile: incidents on clean clips (and on which clips), false alarms on all clips
    (overlapping no frame labelled 1 or ignored), and truth runs found per damage type."""
    out = {}
    for name, (min_d, clear_after) in PROFILES.items():
        clean, fa, found, truth, where = 0, 0, {}, {}, []
        for c in dict.fromkeys(clips):
            m = clips == c
            lab = y[m]
            inc = incidents(prob[m], raise_at, clear_at, min_d, clear_after)
            d = damage[m][0]
            runs = segment_runs(np.where(lab == 1, 1, 0), 0, len(lab), 1, 25)
            busy = segment_runs(np.where(lab != 0, 1, 0), 0, len(lab), 1, 25)
            for s0, e0 in inc:
                if not any(s0 < e1 and s1 < e0 for s1, e1, *_ in busy):
                    fa += 1
                    if d == "clean":
                        clean += 1
                        where.append(f"{Path(c).name} {s0:.2f}-{e0:.2f}s")
            truth[d] = truth.get(d, 0) + len(runs)
            found[d] = found.get(d, 0) + sum(
                1 for s1, e1, *_ in runs if any(s0 < e1 and s1 < e0 for s0, e0 in inc))
        out[name] = {"clean_incidents": clean, "false_alarms": fa, "clean_where": where,
                     "recall": {d: found[d] / truth[d] for d in truth if truth[d]}}
    return out


def cross_validate(X, y, damage, source, clips, configs, thresholds):
    """Leave one training source out: train on the others, predict the left-out source's
    every picture; then, per configuration and raise threshold, the share of clean frames
    flagged, the simulated incidents on the clean clips in both profiles, and recall."""
    results = []
    for hidden, l2, neg_weight, trained in configs:
        z = np.zeros(len(y))
        for s in sorted(set(source)):
            tr = (source != s) & (y >= 0)
            mean, scale = X[tr].mean(axis=0), X[tr].std(axis=0) + 1e-6
            p = train((X[tr] - mean) / scale, y[tr],
                      weights(y[tr], damage[tr], neg_weight, trained), hidden, l2)
            te = source == s
            h = np.maximum((X[te] - mean) / scale @ p["W1"].T + p["B1"], 0.0)
            z[te] = h @ p["W2"] + p["B2"]
        prob = 1.0 / (1.0 + np.exp(-z))
        for t in thresholds:
            # The threshold is folded into the model's bias, so the detector's thresholds
            # (0.5 and 0.3) apply: the clear level moves with it (logit(t) + logit(0.3)).
            shifted = 1.0 / (1.0 + np.exp(-(z - np.log(t / (1 - t)))))
            flagged = {s: float((shifted[(source == s) & (damage == "clean")] >= 0.5).mean())
                       for s in sorted(set(source))}
            lab = y >= 0
            rec = {d: float((shifted[(y == 1) & (damage == d)] >= 0.5).mean())
                   for d in sorted(set(damage[y == 1]))}
            inc = clip_incident_figures(shifted, y, damage, clips, 0.5)
            r = {"hidden": hidden, "l2": l2, "neg_weight": neg_weight, "trained": list(trained),
                 "threshold": t,
                 "clean_flagged": float((shifted[lab & (y == 0) & (damage == "clean")] >= 0.5).mean()),
                 "clean_flagged_by_source": flagged, "frame_recall": rec,
                 "mean_frame_recall": float(np.mean(list(rec.values()))), "incidents": inc}
            results.append(r)
            fq, bc = inc["file_qc"], inc["broadcast"]
            print(f"hidden {hidden:2d} L2 {l2:g} neg {neg_weight:g} {'+'.join(trained)} t {t:.2f}: clean flagged "
                  f"{r['clean_flagged']:.3f}, clean incidents {fq['clean_incidents']}/"
                  f"{bc['clean_incidents']} (file_qc/broadcast), FAs {fq['false_alarms']}/"
                  f"{bc['false_alarms']}, frame recall {r['mean_frame_recall']:.2f}, incident recall "
                  + " ".join(f"{d} {v:.2f}" for d, v in fq["recall"].items()), flush=True)
    return results


def rust(p, mean, scale):
    def arr(a):
        return "[" + ", ".join(f"{float(x):.8e}" for x in a) + "]"
    lines = [
        f"// Written by scripts/corpus/train.py; do not edit. The blockiness model: a 24-{HIDDEN}-1 MLP",
        "// (ReLU, sigmoid) over crate::blockiness::block_features, standardised by MEAN/SCALE.",
        f"// B2 includes -logit({THRESHOLD}): the trained network's {THRESHOLD} is this model's 0.5.",
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
    ap.add_argument("--cv", help="write leave-one-source-out figures (training sources only) "
                    "for a grid of sizes, L2, negative weights and thresholds to this JSON "
                    "file, and stop")
    a = ap.parse_args()
    corpus = Path(a.corpus)
    if a.cv:
        Xa, ya, da, sa, ca = load(corpus, "train", a.features, keep_ignored=True)
        blocking = ("mpeg2", "x264", "x265")
        configs = [(4, 1e-2, 2.0, blocking), (2, 1e-2, 2.0, blocking), (8, 1e-2, 2.0, blocking),
                   (2, 1e-2, 2.0, TRAINED), (4, 1e-2, 2.0, TRAINED), (8, 1e-2, 2.0, TRAINED),
                   (2, 1e-2, 1.0, TRAINED), (4, 1e-2, 1.0, TRAINED)]
        res = []
        for c in configs:  # written after each, so that a partial run can be read
            res += cross_validate(Xa, ya, da, sa, ca, [c], [0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
            Path(a.cv).write_text(json.dumps(res, indent=1) + "\n")
        return
    X, y, damage, source, _ = load(corpus, "train", a.features)
    mean = X.mean(axis=0)
    scale = X.std(axis=0) + 1e-6
    # Round to f32 first so that Rust, which standardises in f32, sees the same model.
    mean, scale = mean.astype(np.float32).astype(np.float64), scale.astype(np.float32).astype(np.float64)
    Xs = (X - mean) / scale
    p = train(Xs, y, weights(y, damage))
    p["B2"] = p["B2"] - np.log(THRESHOLD / (1 - THRESHOLD))
    p = {k: np.asarray(v, dtype=np.float32).astype(np.float64) for k, v in p.items()}
    _, out = forward(p, Xs)
    metrics = {
        "model": f"{X.shape[1]}-{HIDDEN}-1 MLP, {STEPS} Adam steps, L2 {L2}, negatives x{NEG_WEIGHT}, "
                 f"threshold {THRESHOLD} folded into the output bias",
        "train": {"frames": int(len(y)), "sources": sorted(set(source)),
                  "per_frame": figures(y, out >= 0.5, damage)},
    }
    if (corpus / "eval").exists():
        Xe, ye, de, se, _ = load(corpus, "eval", a.features)
        _, oe = forward(p, (Xe - mean) / scale)
        metrics["eval"] = {"frames": int(len(ye)), "sources": sorted(set(se)),
                           "per_frame": figures(ye, oe >= 0.5, de)}
    Path(a.out).write_text(rust(p, mean, scale))
    Path(a.metrics).write_text(json.dumps(metrics, indent=1) + "\n")
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
