#!/usr/bin/env python3
"""Drives one soak of `vqa monitor` (scripts/soak.sh starts it; see docs/soak.md).

Starts the webhook receiver (webhook.py), writes the stream list, starts the monitor and one
looping `ffmpeg -re` UDP source per stream, then for --minutes: kills each source at random
(SIGKILL) and restarts it after a few seconds, edits the list (a stream removed, added back,
a detector setting changed), kills the webhook receiver for a while (connections refused),
and samples the monitor's RSS, open file descriptors and threads every --sample-every
seconds. At the end it stops the monitor with SIGTERM. Everything goes to --out:

  samples.tsv    t (s since the monitor started), rss_kb, fds, threads, streams (listed in
                 /metrics), up (streams whose input is up)
  events.jsonl   what the driver did, one JSON line each, with t
  notes.jsonl    the monitor's notifications (--notify)
  webhook.jsonl  what the receiver got (webhook.py)
  monitor.log    the monitor's stderr (-v)
  reports/       the monitor's reports; removed/ holds each removed stream's final report
  run.json       the parameters and how the monitor ended

check.py reads them.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
# A source sends nothing for this long before the monitor calls it lost.
READ_TIMEOUT = 2.0
# The setting an edit changes: black's raise-after time, between the broadcast default and 8 s.
BLACK_RAISE = (10.0, 8.0)


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Run:
    def __init__(self, args):
        self.args = args
        self.out = args.out
        self.rng = random.Random(args.seed)
        self.t0 = time.monotonic()
        self.events = open(os.path.join(self.out, "events.jsonl"), "a", buffering=1)
        self.streams = [f"s{i}" for i in range(args.streams)]
        self.ports = {s: free_port(socket.SOCK_DGRAM) for s in self.streams}
        self.listed = set(self.streams)
        self.black = {s: BLACK_RAISE[0] for s in self.streams}
        self.sources = {}
        self.webhook_port = free_port()
        self.webhook = None
        self.metrics_port = free_port()
        self.monitor = None
        self.list_path = os.path.join(self.out, "streams.toml")
        self.removals = 0
        # Removed streams whose final report the driver still waits for: id -> (t, n).
        self.pending_reports = {}

    def now(self):
        return time.monotonic() - self.t0

    def event(self, kind, **fields):
        fields = {"t": round(self.now(), 2), "event": kind, **fields}
        self.events.write(json.dumps(fields) + "\n")

    # The stream list: written to a temporary file and renamed, so the monitor never reads
    # half of it.
    def write_list(self):
        lines = [
            "[monitor]",
            "reconnect_min = 0.5",
            "reconnect_max = 4.0",
            f"report_every = {self.args.report_every}",
            "",
            "[defaults]",
            f"converter = {{ read_timeout = {READ_TIMEOUT} }}",
            "",
        ]
        for s in self.streams:
            if s not in self.listed:
                continue
            lines += [
                "[[stream]]",
                f'id = "{s}"',
                f'url = "udp://127.0.0.1:{self.ports[s]}"',
                "[stream.config]",
                f"black = {{ min_duration = {self.black[s]} }}",
                "",
            ]
        tmp = self.list_path + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines))
        os.replace(tmp, self.list_path)

    def start_webhook(self):
        self.webhook = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "webhook.py"), "--port", str(self.webhook_port),
             "--log", os.path.join(self.out, "webhook.jsonl")],
            stdout=subprocess.PIPE, stderr=open(os.path.join(self.out, "webhook.err"), "a"),
        )
        self.webhook.stdout.readline()  # "listening"

    def stop_webhook(self):
        if self.webhook is not None:
            self.webhook.kill()
            self.webhook.wait()
            self.webhook = None

    def start_source(self, s):
        self.sources[s] = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
             "-i", self.args.clip, "-c", "copy", "-pcr_period", "20", "-f", "mpegts",
             f"udp://127.0.0.1:{self.ports[s]}?pkt_size=1316"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.out, "sources.err"), "a"),
        )

    def kill_source(self, s):
        p = self.sources.pop(s, None)
        if p is not None:
            p.kill()
            p.wait()

    def start_monitor(self):
        self.monitor = subprocess.Popen(
            [self.args.vqa, "monitor", self.list_path,
             "--notify", os.path.join(self.out, "notes.jsonl"),
             "--reports", os.path.join(self.out, "reports"),
             "--listen", f"127.0.0.1:{self.metrics_port}",
             "--webhook", f"http://127.0.0.1:{self.webhook_port}/hook", "-v"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.out, "monitor.log"), "w"),
        )
        deadline = time.monotonic() + 30
        while self.metrics() is None:
            if self.monitor.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("soak: the monitor did not start; see monitor.log")
            time.sleep(0.2)

    def metrics(self):
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read().decode()
        except OSError:
            return None

    def sample(self, out):
        pid = self.monitor.pid
        status = {}
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    status[key] = value.split()
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            return
        text = self.metrics() or ""
        ups = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vqa_stream_up{")]
        out.write(f"{self.now():.1f}\t{status['VmRSS'][0]}\t{fds}\t{status['Threads'][0]}"
                  f"\t{len(ups)}\t{int(sum(ups))}\n")
        out.flush()

    def uptime(self):
        """How long a source runs before it is killed: around --kill-every."""
        return self.rng.uniform(0.5, 1.5) * self.args.kill_every

    def downtime(self):
        return self.rng.uniform(2 * READ_TIMEOUT, 4 * READ_TIMEOUT + 4)

    def edit(self, n):
        """The n-th edit: remove a stream, add it back, change a setting, in turn."""
        step = n % 3
        if step == 0:
            s = self.rng.choice(sorted(self.listed))
            self.listed.discard(s)
            self.write_list()
            self.removals += 1
            self.pending_reports[s] = (self.now(), self.removals)
            self.event("edit_remove", stream=s)
        elif step == 1:
            removed = sorted(set(self.streams) - self.listed)
            if not removed:
                return
            s = removed[0]
            if s in self.pending_reports:
                # Not yet seen its final report: look once more before it is overwritten.
                self.poll_reports(final=True)
            self.listed.add(s)
            self.write_list()
            self.event("edit_add", stream=s)
        else:
            s = self.rng.choice(sorted(self.listed))
            self.black[s] = BLACK_RAISE[1] if self.black[s] == BLACK_RAISE[0] else BLACK_RAISE[0]
            self.write_list()
            self.event("edit_change", stream=s, black_min_duration=self.black[s])

    def poll_reports(self, final=False):
        """A removed stream's report is final once it no longer says it is still monitored."""
        for s, (t, n) in list(self.pending_reports.items()):
            path = os.path.join(self.out, "reports", f"{s}.json")
            try:
                with open(path) as f:
                    report = json.load(f)
                # Written since the removal (file times lag the clock by up to a tick).
                fresh = os.path.getmtime(path) >= time.time() - (self.now() - t) - 1.0
            except (OSError, ValueError):
                report, fresh = None, False
            if fresh and report is not None and "still monitored" not in json.dumps(report["warnings"]):
                shutil.copy(path, os.path.join(self.out, "reports", "removed", f"{s}-{n}.json"))
                del self.pending_reports[s]
                self.event("removed_report", stream=s, found=True, after=round(self.now() - t, 2))
            elif final or self.now() - t > 30:
                del self.pending_reports[s]
                self.event("removed_report", stream=s, found=False)

    def run(self):
        a = self.args
        os.makedirs(os.path.join(self.out, "reports", "removed"), exist_ok=True)
        self.start_webhook()
        self.write_list()
        self.start_monitor()
        started_wall = time.time()
        self.t0 = time.monotonic()
        self.event("monitor_started", pid=self.monitor.pid)
        next_kill = {}
        restart_at = {}
        for i, s in enumerate(self.streams):
            # Spread over the first seconds, as channels come up.
            restart_at[s] = 0.5 * i
        end = a.minutes * 60
        next_sample = 0.0
        next_edit = a.edit_every
        edits = 0
        next_webhook_down = a.webhook_every
        webhook_back = None
        with open(os.path.join(self.out, "samples.tsv"), "w") as samples:
            samples.write("t\trss_kb\tfds\tthreads\tstreams\tup\n")
            while self.now() < end:
                now = self.now()
                if self.monitor.poll() is not None:
                    self.event("monitor_died", code=self.monitor.returncode)
                    break
                if now >= next_sample:
                    self.sample(samples)
                    next_sample += a.sample_every
                for s in self.streams:
                    if s in restart_at and now >= restart_at[s]:
                        del restart_at[s]
                        self.start_source(s)
                        next_kill[s] = now + self.uptime()
                        self.event("source_start", stream=s)
                    elif s in next_kill and now >= next_kill[s]:
                        del next_kill[s]
                        self.kill_source(s)
                        restart_at[s] = now + self.downtime()
                        self.event("source_kill", stream=s)
                if now >= next_edit:
                    self.edit(edits)
                    edits += 1
                    next_edit += a.edit_every
                if self.pending_reports:
                    self.poll_reports()
                if webhook_back is None and now >= next_webhook_down:
                    self.stop_webhook()
                    webhook_back = now + a.webhook_down
                    self.event("webhook_down")
                elif webhook_back is not None and now >= webhook_back:
                    self.start_webhook()
                    webhook_back = None
                    next_webhook_down = now + a.webhook_every
                    self.event("webhook_up")
                time.sleep(0.2)
            if self.webhook is None:
                self.start_webhook()
                self.event("webhook_up")
            # The last sample, then a clean stop.
            self.sample(samples)
        self.poll_reports(final=True)
        stop_wall = time.time()
        self.event("sigterm")
        self.monitor.send_signal(signal.SIGTERM)
        try:
            code = self.monitor.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.monitor.kill()
            code = None
        self.event("monitor_exited", code=code)
        for s in list(self.sources):
            self.kill_source(s)
        self.stop_webhook()
        run = {
            "minutes": a.minutes, "streams": self.streams, "final_list": sorted(self.listed),
            "warmup": a.warmup, "window": a.window, "sample_every": a.sample_every,
            "kill_every": a.kill_every, "edit_every": a.edit_every,
            "webhook_every": a.webhook_every, "webhook_down": a.webhook_down,
            "seed": a.seed, "vqa": a.vqa, "exit_code": code,
            "stopped_unix": stop_wall, "started_unix": started_wall,
            "stop_seconds": round(self.now() - end, 1),
        }
        with open(os.path.join(self.out, "run.json"), "w") as f:
            json.dump(run, f, indent=1)

    def cleanup(self):
        for s in list(self.sources):
            self.kill_source(s)
        self.stop_webhook()
        if self.monitor is not None and self.monitor.poll() is None:
            self.monitor.kill()
            self.monitor.wait()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--vqa", required=True)
    p.add_argument("--clip", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, required=True)
    p.add_argument("--streams", type=int, required=True)
    p.add_argument("--warmup", type=float, required=True)
    p.add_argument("--window", type=float, required=True)
    p.add_argument("--kill-every", type=float, required=True)
    p.add_argument("--edit-every", type=float, required=True)
    p.add_argument("--webhook-every", type=float, required=True)
    p.add_argument("--webhook-down", type=float, required=True)
    p.add_argument("--sample-every", type=float, default=10.0)
    p.add_argument("--report-every", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=1)
    run = Run(p.parse_args())

    def interrupted(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        run.run()
    except KeyboardInterrupt:
        run.event("interrupted")
        run.cleanup()
        return 130
    finally:
        run.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
