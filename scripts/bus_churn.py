#!/usr/bin/env python3
"""Status-bus churn check for Baton (needs pyzmq: `pip install pyzmq`).

With a stack running (`--config FILE`), or one this script starts itself (`--start`, the same stack as
scripts/chaos.py, without chaos), a full subscriber records every event on `status_out` while a second
subscriber with a topic prefix (`run.` by default) connects, receives a little and disconnects, 100 times.
Meanwhile `baton status --json` is polled. Checks (expectations from docs/PROTOCOL.md):

  * for each publisher (`source`, `instance`) the `seq` numbers seen by the full subscriber have no gaps
    (a publisher seen starting again at 1 is a new incarnation, not a gap);
  * the full subscriber keeps receiving events (no silence longer than 3 heartbeat intervals + 1 s);
  * `baton status --json` never shows a service down (or missing) during the churn and a settle period after.

Exit status 0 only if every check passes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

try:
    import zmq
except ImportError:
    print("bus_churn: needs pyzmq (pip install pyzmq)", file=sys.stderr)
    sys.exit(2)


def log(msg: str) -> None:
    print(f"[bus_churn {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def yaml_value(text: str, section: str, key: str) -> str | None:
    """A scalar `key:` inside the top-level mapping `section:` (just enough YAML for a Baton config)."""
    inside = False
    for line in text.splitlines():
        if re.match(r"^\S", line):
            inside = line.split(":", 1)[0].strip() == section
            continue
        if inside:
            m = re.match(r"^\s+" + re.escape(key) + r"\s*:\s*(.+?)\s*(#.*)?$", line)
            if m:
                return m.group(1).strip().strip('"').strip("'")
    return None


def duration_s(text: str) -> float:
    total, found = 0.0, False
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?", text):
        found = True
        total += float(num) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "": 1}[unit]
    return total if found else 5.0


class FullSubscriber(threading.Thread):
    def __init__(self, ctx: zmq.Context, endpoint: str):
        super().__init__(daemon=True)
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.connect(endpoint)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.last: dict[tuple[str, str], int] = {}
        self.gaps: list[str] = []
        self.restarts: list[str] = []
        self.count = 0
        self.types: dict[str, int] = {}
        self.last_receive = time.time()
        self.longest_silence = 0.0
        self.silences: list[str] = []

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self.stop.is_set():
            if not poller.poll(100):
                continue
            frames = self.sock.recv_multipart()
            t = time.time()
            with self.lock:
                silence = t - self.last_receive
                if silence > self.longest_silence:
                    self.longest_silence = silence
                if silence > 2.0:
                    self.silences.append(f"{silence:.1f}s without any event before {time.strftime('%H:%M:%S')}")
                self.last_receive = t
                if len(frames) != 3 or frames[1] != b"baton/1":
                    self.gaps.append(f"malformed event {frames[:2]!r}")
                    continue
                try:
                    e = json.loads(frames[2])
                except ValueError:
                    self.gaps.append("event body is not JSON")
                    continue
                self.count += 1
                self.types[e.get("type", "?")] = self.types.get(e.get("type", "?"), 0) + 1
                key = (str(e.get("source")), str(e.get("instance")))
                seq = e.get("seq")
                if not isinstance(seq, int):
                    self.gaps.append(f"{key}: seq {seq!r} is not an integer")
                    continue
                prev = self.last.get(key)
                if prev is not None:
                    if seq == 1 and prev != 0:
                        self.restarts.append(f"{key} started again at seq 1 after {prev}")
                    elif seq != prev + 1:
                        self.gaps.append(f"{key}: seq {prev} then {seq} ({seq - prev - 1} lost)"
                                         if seq > prev else f"{key}: seq {prev} then {seq} (went back)")
                self.last[key] = seq
        self.sock.close(linger=0)


class StatusPoller(threading.Thread):
    def __init__(self, baton: str, config: str, interval: float = 1.0):
        super().__init__(daemon=True)
        self.baton, self.config, self.interval = baton, config, interval
        self.stop = threading.Event()
        self.polls = 0
        self.problems: list[str] = []
        self.seen: set[tuple[str, str]] = set()

    def run(self) -> None:
        while not self.stop.is_set():
            t = time.strftime("%H:%M:%S")
            try:
                r = subprocess.run([self.baton, "status", "--json", "--config", self.config],
                                   capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
                status = json.loads(r.stdout)
                self.polls += 1
                now_seen = set()
                for s in status.get("services", []):
                    key = (s.get("service"), s.get("instance"))
                    now_seen.add(key)
                    if s.get("state") != "up":
                        self.problems.append(f"{t}: {key[0]}/{key[1]} is {s.get('state')} "
                                             f"(last seen {s.get('lastSeen')})")
                for key in self.seen - now_seen:
                    self.problems.append(f"{t}: {key[0]}/{key[1]} no longer listed")
                self.seen |= now_seen
            except subprocess.TimeoutExpired:
                self.problems.append(f"{t}: baton status --json did not answer within 10 s")
            except ValueError:
                self.problems.append(f"{t}: baton status --json printed no JSON "
                                     f"(status {r.returncode}): {(r.stdout + r.stderr)[:200]!r}")
            self.stop.wait(self.interval)


def churn(config: str, baton: str, rounds: int, prefix: str, settle: float | None) -> int:
    text = open(config).read()
    status_out = os.environ.get("BATON_ENDPOINT_STATUS_OUT") or yaml_value(text, "endpoints", "status_out") \
        or "tcp://127.0.0.1:7606"
    heartbeat = duration_s(yaml_value(text, "log", "heartbeat") or "5s")
    if settle is None:
        settle = 3 * heartbeat + 2
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import curve_keys  # the stack's CURVE key pair for these subscribers (docs/SECURITY.md)
    top = re.search(r"^data_dir:\s*(\S+)", text, re.MULTILINE)
    data_dir = os.environ.get("BATON_DATA_DIR") or (top.group(1).strip("\"'") if top else "./data")
    curve_keys.KEY_FILE = os.path.join(data_dir, "keys", "baton.key")
    ctx = curve_keys.StackContext()
    full = FullSubscriber(ctx, status_out)
    full.start()
    poller = StatusPoller(baton, config)
    # a little time to hear from every publisher before the churn starts
    time.sleep(max(2.0, heartbeat * 1.5))
    poller.start()
    log(f"churning {rounds} prefix subscribers ({prefix!r}) on {status_out}; heartbeat {heartbeat}s")
    received_by_churn, empty_rounds = 0, 0
    for i in range(rounds):
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        sub.connect(status_out)
        got = 0
        deadline = time.time() + 0.3 + (i % 5) * 0.1
        while time.time() < deadline and got < 5:
            if sub.poll(50):
                frames = sub.recv_multipart()
                if not frames[0].startswith(prefix.encode()):
                    full.gaps.append(f"prefix subscriber got {frames[0]!r}")
                got += 1
        received_by_churn += got
        empty_rounds += got == 0
        if i % 3 == 0:
            sub.disconnect(status_out)      # explicit disconnect, then close
        elif i % 3 == 1:
            sub.setsockopt(zmq.UNSUBSCRIBE, prefix.encode())
        sub.close(linger=0)                 # (and plain close without either)
    log(f"churn done; watching for {settle:.0f}s more")
    time.sleep(settle)
    poller.stop.set()
    full.stop.set()
    poller.join(15)
    full.join(5)
    silence_now = time.time() - full.last_receive
    ctx.term()

    failures = []
    if full.count == 0:
        failures.append("the full subscriber received no event at all")
    if full.gaps:
        failures.append(f"{len(full.gaps)} seq gaps or bad events: {full.gaps[:8]}")
    limit = 3 * heartbeat + 1
    if full.longest_silence > limit or silence_now > limit:
        failures.append(f"the bus went silent: longest silence {max(full.longest_silence, silence_now):.1f}s "
                        f"(limit {limit:.1f}s)")
    if poller.polls == 0:
        failures.append("baton status --json never answered")
    if poller.problems:
        failures.append(f"{len(poller.problems)} status problems: {poller.problems[:8]}")
    print("=" * 100)
    print(f"bus churn summary: {rounds} prefix subscribers ({prefix!r}) received {received_by_churn} events "
          f"({empty_rounds} rounds got none); full subscriber {full.count} events from {len(full.last)} "
          f"publishers; longest silence {full.longest_silence:.1f}s; status polled {poller.polls} times")
    print(f"event types: {dict(sorted(full.types.items()))}")
    if full.restarts:
        print(f"publishers restarted (not gaps): {full.restarts}")
    if failures:
        print(f"FAILED: {len(failures)} checks failed")
        for f in failures:
            print("  ✗ " + f)
        return 1
    print("PASSED: no seq gaps, the bus kept flowing, no service shown down")
    return 0


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="the running stack's configuration file")
    ap.add_argument("--start", action="store_true", help="start a stack (like scripts/chaos.py) and churn it")
    ap.add_argument("--bin", default=os.path.join(repo, ".build", "debug"))
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--prefix", default="run.")
    ap.add_argument("--settle", type=float, default=None, help="seconds to keep watching after the churn")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--transport", choices=["tcp", "ipc"], default="tcp")
    args = ap.parse_args()

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    baton = os.path.join(os.path.abspath(args.bin), "baton")
    if not args.start:
        if not args.config:
            ap.error("give --config FILE of a running stack, or --start")
        return churn(args.config, baton, args.rounds, args.prefix, args.settle)

    sys.dont_write_bytecode = True
    sys.path.insert(0, here)
    import chaos  # the same stack as the chaos harness
    import shutil
    import tempfile
    root = tempfile.mkdtemp(prefix="baton-churn-", dir=args.workdir)
    stack = chaos.Stack(os.path.abspath(args.bin), root, "services", "allow", args.transport)
    code = 1
    try:
        stack.setup(heartbeat="500ms")
        stack.start_all()
        deadline = time.time() + 30
        store = os.path.join(stack.data_dir, "results.sqlite")
        while time.time() < deadline and chaos.stored_count(store) < 3:
            time.sleep(0.2)
        if chaos.stored_count(store) < 3:
            print("FAILED: the stack started by --start stored nothing within 30 s")
            return 1
        code = churn(stack.config, baton, args.rounds, args.prefix, args.settle)
    except KeyboardInterrupt:
        code = 1
    finally:
        stack.kill_everything()
        if code == 0:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"(kept {root} for inspection)")
    return code


if __name__ == "__main__":
    sys.exit(main())
