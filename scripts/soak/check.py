#!/usr/bin/env python3
"""Checks one soak's output directory (drive.py's) and prints its summary.

    python3 scripts/soak/check.py OUT

Writes OUT/summary.txt and OUT/summary.json and exits 1 if a check failed. The checks:

- stopped: the monitor exited 0 on SIGTERM, without dying before.
- incidents: every `opened` notification has its `closed` (same stream, kind, channel and
  start), none closed without being opened, and none left open after the stop.
- reports: every stream listed at the end has a final report (not a running snapshot)
  written at the stop, and every stream removed during the run left its final report.
- edits: every edit of the list was applied (the monitor's log names the stream as added,
  removed or restarted after it).
- webhooks: every notification was delivered or counted as undelivered by the monitor (none
  lost silently), and the receiver got no more distinct notifications than were sent.
- flat: after the warm-up, the medians of RSS, open fds and threads over the last window
  against those over the first window: RSS grows by at most max(RSS_GROWTH_MB, RSS_GROWTH x
  first), fds and threads by at most FD_SLACK and THREAD_SLACK (a stream being reconnected or
  restarted while sampled).
"""

import json
from collections import Counter
import os
import re
import statistics
import sys

RSS_GROWTH_MB = 16.0
RSS_GROWTH = 0.10
FD_SLACK = 2
THREAD_SLACK = 2


def read_jsonl(path):
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def stats(values):
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}


def main():
    out = sys.argv[1]
    run = json.load(open(os.path.join(out, "run.json")))
    events = read_jsonl(os.path.join(out, "events.jsonl"))
    notes = read_jsonl(os.path.join(out, "notes.jsonl"))
    hooks = read_jsonl(os.path.join(out, "webhook.jsonl"))
    log = open(os.path.join(out, "monitor.log"), errors="replace").read()
    checks = []

    def check(name, ok, detail):
        checks.append({"check": name, "ok": bool(ok), "detail": detail})

    count = lambda kind: sum(1 for e in events if e["event"] == kind)  # noqa: E731

    # The stop.
    died = [e for e in events if e["event"] == "monitor_died"]
    check("stopped", run["exit_code"] == 0 and not died,
          f"exit code {run['exit_code']} on SIGTERM, {run['stop_seconds']} s after the end"
          + (f"; died during the run: {died}" if died else ""))

    # Incidents: opened and closed pair up.
    open_now = {}
    opened = closed = orphans = 0
    by_kind = {}
    for n in notes:
        if n["event"] not in ("opened", "closed"):
            continue
        key = (n["stream"], n["kind"], n.get("channel"), n["start"])
        k = by_kind.setdefault(n["kind"], [0, 0])
        if n["event"] == "opened":
            opened += 1
            k[0] += 1
            open_now[key] = open_now.get(key, 0) + 1
        else:
            closed += 1
            k[1] += 1
            if open_now.get(key, 0) > 0:
                open_now[key] -= 1
            else:
                orphans += 1
    left_open = [k for k, v in open_now.items() for _ in range(v)]
    check("incidents", opened > 0 and not left_open and orphans == 0,
          f"{opened} opened, {closed} closed, {len(left_open)} left open {left_open[:5]}, "
          f"{orphans} closed without opening")

    # Reports.
    missing = []
    for s in run["final_list"]:
        path = os.path.join(out, "reports", f"{s}.json")
        try:
            report = json.load(open(path))
            final = "still monitored" not in json.dumps(report["warnings"])
            # Written at the stop (file times lag the clock by up to a tick).
            fresh = os.path.getmtime(path) >= run["stopped_unix"] - 1.0
        except (OSError, ValueError, KeyError):
            final = fresh = False
        if not (final and fresh):
            missing.append(s)
    removed = [e for e in events if e["event"] == "removed_report"]
    lost = [e["stream"] for e in removed if not e["found"]]
    check("reports", not missing and not lost and len(removed) == count("edit_remove"),
          f"{len(run['final_list'])} final reports at the stop (missing: {missing}); "
          f"{len(removed) - len(lost)} of {count('edit_remove')} removed streams' reports "
          f"(missing: {lost})")

    # Edits applied: the monitor logs `LIST: added [..], removed [..], restarted [..]`.
    applied_lines = re.findall(r"added \[(.*?)\], removed \[(.*?)\], restarted \[(.*?)\]", log)
    applied = {"edit_add": [], "edit_remove": [], "edit_change": []}
    for added, rem, restarted in applied_lines:
        applied["edit_add"] += re.findall(r'"([^"]+)"', added)
        applied["edit_remove"] += re.findall(r'"([^"]+)"', rem)
        applied["edit_change"] += re.findall(r'"([^"]+)"', restarted)
    not_applied = []
    for kind, seen in applied.items():
        wanted = [e["stream"] for e in events if e["event"] == kind]
        for s in wanted:
            if s in seen:
                seen.remove(s)
            else:
                not_applied.append((kind, s))
    edits = count("edit_add") + count("edit_remove") + count("edit_change")
    check("edits", not not_applied,
          f"{edits} edits ({count('edit_remove')} removals, {count('edit_add')} additions, "
          f"{count('edit_change')} setting changes), not applied: {not_applied}")

    # Webhooks.
    sent = len(notes)
    m = re.search(r"webhook \S+: (\d+) of (\d+) notifications not delivered", log)
    undelivered, total = (int(m.group(1)), int(m.group(2))) if m else (0, sent)
    # Counted as multisets: a stream removed and added back starts its timeline again, so two
    # notifications can be alike (its input_loss opened at 0.0, say); each delivered one is
    # answered ok once (only a hang's answer comes after the monitor stopped waiting).
    key = lambda body: json.dumps(body, sort_keys=True)  # noqa: E731
    received = Counter(key(h["body"]) for h in hooks if h["outcome"] in ("ok", "slow_ok"))
    emitted = Counter(key(n) for n in notes)
    unexpected = received - emitted
    got = list(received.elements())
    outcomes = {}
    for h in hooks:
        outcomes[h["outcome"]] = outcomes.get(h["outcome"], 0) + 1
    gave_up = len(re.findall(r"notification not delivered after", log))
    check("webhooks", total == sent and len(got) >= total - undelivered and not unexpected,
          f"{sent} notifications, {total} sent to the webhook, {undelivered} undelivered "
          f"({gave_up} given up after retries), {len(got)} received, {sum(unexpected.values())} "
          f"never emitted; receiver "
          f"answers {outcomes}, {count('webhook_down')} times down (refused)")

    # The curves.
    rows = []
    with open(os.path.join(out, "samples.tsv")) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            rows.append(dict(zip(header, map(float, line.split("\t")))))
    end = run["minutes"] * 60
    warm, window = run["warmup"], run["window"]
    spans = {
        "first 10 min": (0, 600),
        "first window": (warm, warm + window),
        "last window": (end - window, end + 1),
    }
    curves = {}
    for col, unit in (("rss_kb", 1 / 1024), ("fds", 1), ("threads", 1), ("up", 1)):
        curves[col] = {
            name: stats([r[col] * unit for r in rows if lo <= r["t"] < hi])
            for name, (lo, hi) in spans.items()
        }
    first, last = curves["rss_kb"]["first window"], curves["rss_kb"]["last window"]
    flat_detail = []
    flat_ok = first is not None and last is not None
    if flat_ok:
        bound = max(RSS_GROWTH_MB, RSS_GROWTH * first["median"])
        growth = last["median"] - first["median"]
        flat_ok &= growth <= bound
        flat_detail.append(f"RSS median {first['median']:.1f} -> {last['median']:.1f} MB "
                           f"({growth:+.1f}, bound +{bound:.1f})")
        for col, slack in (("fds", FD_SLACK), ("threads", THREAD_SLACK)):
            a, b = curves[col]["first window"]["median"], curves[col]["last window"]["median"]
            flat_ok &= b - a <= slack
            flat_detail.append(f"{col} median {a:g} -> {b:g} (bound +{slack})")
    check("flat", flat_ok, "; ".join(flat_detail) or "not enough samples")

    counts = {
        "source_kills": count("source_kill"),
        "source_starts": count("source_start"),
        "edits": edits,
        "removals": count("edit_remove"),
        "additions": count("edit_add"),
        "setting_changes": count("edit_change"),
        "webhook_downs": count("webhook_down"),
        "webhook_500": outcomes.get("500", 0),
        "webhook_hang": outcomes.get("hang", 0),
        "webhook_slow_ok": outcomes.get("slow_ok", 0),
        "webhook_undelivered": undelivered,
        "notifications": sent,
        "opened": opened,
        "closed": closed,
        "by_kind": by_kind,
        "samples": len(rows),
    }
    ok = all(c["ok"] for c in checks)
    summary = {"ok": ok, "checks": checks, "counts": counts, "curves": curves, "run": run}
    json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)

    lines = [f"soak of {run['minutes']:g} min, {len(run['streams'])} streams: "
             + ("PASSED" if ok else "FAILED")]
    for c in checks:
        lines.append(f"  {'ok  ' if c['ok'] else 'FAIL'} {c['check']}: {c['detail']}")
    lines.append(f"  {counts['source_kills']} source kills, incidents by kind (opened/closed): "
                 + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(by_kind.items())))
    lines.append(f"  curves (min / median / max; warm-up {warm:g} s, windows of {window:g} s):")
    lines.append(f"    {'':14}" + "".join(f"{name:>26}" for name in spans))
    for col, label in (("rss_kb", "RSS MB"), ("fds", "open fds"), ("threads", "threads"),
                       ("up", "streams up")):
        cells = []
        for name in spans:
            s = curves[col][name]
            cells.append("-" if s is None else f"{s['min']:.1f} / {s['median']:.1f} / {s['max']:.1f}")
        lines.append(f"    {label:14}" + "".join(f"{c:>26}" for c in cells))
    # The curves minute by minute (medians of the minute's samples): the first and the last
    # 10 minutes.
    minutes = int(-(-end // 60))
    shown = sorted(set(range(min(10, minutes))) | set(range(max(0, minutes - 10), minutes)))
    lines.append("  minute by minute (medians): minute, RSS MB, open fds, threads, streams up")
    previous = None
    for m in shown:
        in_minute = [r for r in rows if m * 60 <= r["t"] < (m + 1) * 60]
        if not in_minute:
            continue
        if previous is not None and m != previous + 1:
            lines.append("    ...")
        previous = m
        med = lambda col: statistics.median(r[col] for r in in_minute)  # noqa: E731
        lines.append(f"    {m:3d}  {med('rss_kb') / 1024:7.1f}  {med('fds'):4g}  {med('threads'):4g}"
                     f"  {med('up'):3g}")
    text = "\n".join(lines) + "\n"
    open(os.path.join(out, "summary.txt"), "w").write(text)
    sys.stdout.write(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
