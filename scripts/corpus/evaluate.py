#!/usr/bin/env python3
"""Scores the blockiness detector on the natural corpus's held-out sources, per damage type,
beside FFmpeg's blockdetect, with `vqa eval` (each damage directory is a `vqa eval` corpus:
truth = runs of frames labelled blocky; implied = frames whose label is ignored):

    python3 scripts/corpus/evaluate.py [--corpus target/corpus] [--vqa target/release/vqa]
        [--set eval] [--profile file_qc|broadcast] [--json OUT]

Prints a Markdown table: incidents found (TP), missed (FN), false alarms (FP), precision,
recall, F1, mean onset error; and the false alarms per hour of the clean clips.
"""

import argparse
import json
import subprocess
from pathlib import Path


def f1(p, r):
    return 2 * p * r / (p + r) if p and r else 0.0


def fmt(v, digits=2):
    return "–" if v is None else f"{v:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="target/corpus")
    ap.add_argument("--vqa", default="target/release/vqa")
    ap.add_argument("--set", default="eval")
    ap.add_argument("--profile", help="vqa's profile (default: vqa's own, file_qc); "
                    "broadcast raises blockiness after 1 s and joins runs within 5 s")
    ap.add_argument("--json")
    a = ap.parse_args()
    root = Path(a.corpus) / a.set
    rows = []
    results = {}
    for d in sorted(p for p in root.iterdir() if (p / "corpus.json").exists()):
        cmd = [a.vqa, "eval", str(d), "--format", "json", "--detectors", "blockiness"]
        if a.profile:
            cmd += ["--profile", a.profile]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"vqa eval {d}: {r.stderr}")
        e = json.loads(r.stdout)
        det = next(x for x in e["detectors"] if x["detector"] == "blockiness")
        frames = sum(len(json.loads(p.read_text())["labels"]) for p in d.glob("*.labels.json"))
        hours = frames / 25 / 3600
        results[d.name] = {"clips": e["clips"], "seconds": frames / 25, "vqa": det["vqa"],
                           "ffmpeg": det["ffmpeg"]}
        for who, s in (("vqa blockiness", det["vqa"]), ("FFmpeg blockdetect", det["ffmpeg"])):
            if s is None:
                continue
            rows.append((d.name, who, e["clips"], s["truth"], s["tp"], s["fn"], s["fp"],
                         s["precision"], s["recall"],
                         f1(s["precision"], s["recall"]) if s["truth"] else None,
                         s["mean_start_error_s"], s["fp"] / hours))
    print("| damage | detector | clips | truth runs | TP | FN | FP | precision | recall | F1 | onset error s | FP per hour |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        d, who, clips, truth, tp, fn, fp, p, r, f, onset, fph = row
        print(f"| {d} | {who} | {clips} | {truth} | {tp} | {fn} | {fp} | {fmt(p)} | {fmt(r)} | "
              f"{fmt(f)} | {fmt(onset)} | {fph:.0f} |")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
