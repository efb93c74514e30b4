#!/usr/bin/env python3
"""A webhook receiver that fails on purpose, for scripts/soak.sh.

Each POST is answered by its number n (counted from 1, on from the log's lines when the
receiver is restarted):
  n % 6 == 0    HTTP 500 (the monitor retries)
  n % 101 == 0  no answer for 12 s (past the monitor's 10 s timeout: it retries)
  n % 20 == 0   answered 200 after 1 s (slow, delivered)
  otherwise     200 at once
About 0.25 s per request on average: the monitor's single delivery thread keeps up with 8
streams' notifications (about 80 a minute) with room to drain what queues while this is down.
Every request is one JSON line in --log: {"t": unix time, "n", "outcome": "ok" | "slow_ok" |
"500" | "hang", "body": the notification}. The soak kills and restarts this process, so
connections are also refused while it is down.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    try:
        with open(args.log) as f:
            seen = sum(1 for _ in f)
    except OSError:
        seen = 0
    log = open(args.log, "a", buffering=1)
    lock = threading.Lock()
    counter = [seen]

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            with lock:
                counter[0] += 1
                n = counter[0]
            if n % 6 == 0:
                outcome, delay, status = "500", 0.0, 500
            elif n % 101 == 0:
                outcome, delay, status = "hang", 12.0, 200
            elif n % 20 == 0:
                outcome, delay, status = "slow_ok", 1.0, 200
            else:
                outcome, delay, status = "ok", 0.0, 200
            try:
                body_json = json.loads(body)
            except ValueError:
                body_json = body
            with lock:
                log.write(json.dumps({"t": time.time(), "n": n, "outcome": outcome, "body": body_json}) + "\n")
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:
                pass  # the monitor gave up waiting (the 12 s case)

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Hook)
    server.daemon_threads = True
    print("listening", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
