#!/usr/bin/env python3
"""Black-box fuzz suite for every socket and HTTP port of Baton (needs pyzmq: Debian's python3-zmq, which
`scripts/install-deps.sh --test` installs).

Starts a real stack (logger, scheduler, algorithm, two processors; the services one by one, as
scripts/chaos.py does) on loopback ports and a temporary directory of its own, with one job every 200 ms whose
Python algorithm writes a deterministic result per run id. Then, one socket after the other, it sends malformed
messages to every socket a service binds (docs/CONFIGURATION.md, `endpoints`):

  logger     status_in (XSUB), status_out (XPUB), query (REP)
  scheduler  runs (PUSH), control (REP), reports (PULL)
  algorithm  results (PUSH), acks (PULL)

  * through a ZeroMQ peer of the matching type (receivers): random bytes, wrong frame counts, wrong protocol
    and kind frames, JSON that is not an object, is not JSON, is nested 100,000 deep, valid JSON with missing
    fields, wrong types, values out of range (docs/PROTOCOL.md: run ids, job names, states ...), huge JSON
    (1-8 MiB) and a few frames of --big-size (100 MiB); on status_out 64 KiB subscriptions, many random
    subscriptions and unsubscriptions, and non-subscription frames;
  * over raw TCP (every socket, also the PUSH ones): random bytes, broken ZMTP greetings, handshakes with an
    incompatible socket type, frames that a PUSH socket never expects, frame headers announcing a terabyte,
    and --big-size frames;

and to every service's HTTP port (`/metrics`, `/healthz`): garbage requests, 100 KiB request lines and headers,
a 100 MiB body, many idle connections and slow-loris connections (one byte a second), held to the end.

Every malformed message is built so that docs/PROTOCOL.md says it is malformed; the well-formed parts use a job
(`fuzzghost`) that does not exist, so nothing that slips through can touch real work.

Checks, while fuzzing and after (the oracle is the documentation and issue 11's promises, not the code):

  * every service process stays up (a service that dies is started again, and counted);
  * each service's RSS (VmRSS/VmHWM of /proc/PID/status) stays under its value at the start + --rss-bound MiB;
  * real work goes on: results keep being stored (no gap longer than --max-stall s), and after the fuzz the
    job is paused and the stack drained; every slot of the job's grid from its first fire to the pause was
    fired or recorded skipped (overlap forbid), and every fired slot is stored exactly once, byte for byte the
    algorithm's output; the scheduler had decided the slots up to --max-lag s before the pause;
  * `/healthz` of every service answers 200 throughout and after;
  * every request to a REP socket (query, control) is answered, with an error (huge JSON and --big-size frames
    excepted: a size limit may drop their connection instead);
  * a `message.rejected` event with attributes `socket` and `reason` is seen for the garbage sent to each
    receiving socket (status_in, query, control, reports, acks), and the events are rate-limited (at most
    max(100, 10 %) of the malformed messages sent to a socket);
  * a subscriber to the status bus decodes every event it receives (3 frames, `baton/1`, a JSON object with
    `type` equal to frame 0, `source`, `instance`, `seq`, `time` and the optional keys typed as
    docs/PROTOCOL.md says), and so does every line of the logger's `logs/events.jsonl`.

Exit status 0 only if every check passes; otherwise the failed checks are listed. `--json` prints the summary
as one JSON document on standard output (progress goes to standard error).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import re
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import curve_keys  # noqa: E402  (the stack's CURVE key pair for the fuzzer's own sockets)
import chaos  # noqa: E402  (the stack, /proc helpers, the deterministic algorithm and the store reader)

try:
    import zmq
except ImportError:
    print("fuzz: needs pyzmq (scripts/install-deps.sh --test installs python3-zmq)", file=sys.stderr)
    sys.exit(2)

MiB = 1 << 20
KiB = 1 << 10
JOB = "fuzz"
EVERY_MS = 200
ANCHOR = "2020-01-01T00:00:01Z"
ANCHOR_MS = int(dt.datetime(2020, 1, 1, 0, 0, 1, tzinfo=dt.timezone.utc).timestamp() * 1000)
PROCESSORS = 2
GHOST_JOB = "fuzzghost"
GHOST_RUN = GHOST_JOB + "@2026-01-01T00:00:00.000Z"
GHOST_TIME = "2026-01-01T00:00:00.000Z"

# socket name -> (binding service, socket type it binds)
SOCKETS = {
    "status_in": ("logger", "XSUB"),
    "status_out": ("logger", "XPUB"),
    "query": ("logger", "REP"),
    "control": ("scheduler", "REP"),
    "reports": ("scheduler", "PULL"),
    "runs": ("scheduler", "PUSH"),
    "acks": ("algorithm", "PULL"),
    "results": ("algorithm", "ROUTER"),
}
# the sockets a service reads messages from: garbage sent there must be answered by message.rejected
RECEIVERS = ["status_in", "query", "control", "reports", "acks", "results"]
# a peer type libzmq accepts for each bound type, and one it refuses
COMPATIBLE = {"XSUB": "PUB", "XPUB": "SUB", "REP": "DEALER", "PULL": "PUSH", "PUSH": "PULL", "ROUTER": "DEALER"}
INCOMPATIBLE = {"XSUB": "PULL", "XPUB": "PUSH", "REP": "REP", "PULL": "PULL", "PUSH": "PUB", "ROUTER": "PULL"}

T0 = time.time()


def log(msg: str) -> None:
    print(f"[fuzz {time.time() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def sample(items, n=6) -> str:
    return chaos.sample(items, n)


# ---------------------------------------------------------------------------------------------------------
# what a well-formed status event is (docs/PROTOCOL.md, "Status events")

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = {"trace", "debug", "info", "notice", "warning", "error", "critical"}


def event_body_problems(event, topic: str | None) -> list[str]:
    """Why a decoded event object is not well-formed; [] when it is."""
    if not isinstance(event, dict):
        return [f"not a JSON object but {type(event).__name__}"]
    out = []
    for key in ("type", "source", "instance", "time"):
        if not isinstance(event.get(key), str) or not event.get(key):
            out.append(f"`{key}` missing or not a non-empty string")
    seq = event.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        out.append("`seq` missing or not an integer >= 1")
    if isinstance(event.get("time"), str) and not TIME_RE.match(event["time"]):
        out.append(f"`time` {event['time'][:40]!r} is not ISO 8601 UTC with milliseconds")
    if topic is not None and isinstance(event.get("type"), str) and event["type"] != topic:
        out.append(f"`type` {event['type'][:40]!r} differs from frame 0 {topic[:40]!r}")
    for key in ("job", "run", "message"):
        if key in event and not isinstance(event[key], str):
            out.append(f"`{key}` is not a string")
    if "level" in event and event["level"] not in LEVELS:
        out.append(f"`level` {str(event['level'])[:20]!r} is not a level")
    if "part" in event and (not isinstance(event["part"], int) or isinstance(event["part"], bool) or event["part"] < 0):
        out.append("`part` is not an integer >= 0")
    if "attributes" in event:
        a = event["attributes"]
        if not isinstance(a, dict) or not all(isinstance(v, str) for v in a.values()):
            out.append("`attributes` is not an object of strings")
    return out


def event_problems(frames: list[bytes]) -> tuple[list[str], dict | None]:
    if len(frames) != 3:
        return [f"{len(frames)} frames instead of 3"], None
    if frames[1] != b"baton/1":
        return [f"frame 1 is {frames[1][:20]!r}, not baton/1"], None
    try:
        topic = frames[0].decode("utf-8")
        event = json.loads(frames[2].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        return [f"frame 0 or 2 does not decode: {str(e)[:80]}"], None
    problems = event_body_problems(event, topic)
    return problems, (event if isinstance(event, dict) else None)


# ---------------------------------------------------------------------------------------------------------
# malformed messages


def jdump(obj) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


class Garbage:
    """Generates malformed messages for one socket; every one is malformed by docs/PROTOCOL.md."""

    BAD_RUN_IDS = ["fuzzghost/x@2026-01-01T00:00:00.000Z", "fuzzghost@2026\u0000", "", "x" * 201 + "@" + GHOST_TIME]
    BAD_JOBS = ["", "bad/job", "x" * 101, "sp ace", "\u00fcml\u00e4ut", "a\u0000b"]
    WRONG = [12345, -1.5, True, [], {}, [1, "x"], {"a": 1}]

    def __init__(self, rng: random.Random):
        self.rng = rng

    def rbytes(self, lo=0, hi=2048) -> bytes:
        return self.rng.randbytes(self.rng.randint(lo, hi))

    def not_json(self) -> bytes:
        r = self.rng
        return r.choice([
            lambda: self.rbytes(1, 512),
            lambda: b'{"runId": "' + GHOST_RUN.encode(),                                # truncated
            lambda: b"{",
            lambda: b'{"a": NaN, "b": Infinity}',
            lambda: b'{"runId": "\xff\xfe\xfd"}',                                     # not UTF-8
            lambda: b"\xef\xbb\xbf" + b"\xff" * 8,
            lambda: b"[" * 100_000 + b"]" * 100_000,                                    # nested 100,000 deep
            lambda: b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
            lambda: b"",
            lambda: b"null",
            lambda: r.choice([b"[]", b"1", b'"status"', b"true", b"[{}]", b"-0.0e999"]),  # JSON, not an object
        ])()

    def mutate(self, obj: dict, required: list[str], typed: dict[str, str]) -> dict:
        """One or more mutations, each making the object malformed."""
        r = self.rng
        obj = json.loads(json.dumps(obj))
        for _ in range(r.choice([1, 1, 1, 2, 3])):
            how = r.randrange(5)
            key = r.choice(required)
            kind = typed.get(key, "str")
            if how == 0:
                obj.pop(key, None)                                              # missing
            elif how == 1:
                obj[key] = None                                                 # null where required
            elif how == 2:                                                      # wrong type
                if kind in ("int", "uint"):
                    obj[key] = r.choice(["0", 1.5, True, [], {}, "x"])
                elif kind == "bool":
                    obj[key] = r.choice(["true", 1, [], {}, "no"])
                else:
                    obj[key] = r.choice(self.WRONG)
            elif how == 3:                                                      # out of range
                if kind == "runid":
                    obj[key] = r.choice(self.BAD_RUN_IDS)
                elif kind == "job":
                    obj[key] = r.choice(self.BAD_JOBS)
                elif kind == "uint":
                    obj[key] = r.choice([-1, -(2 ** 40), 2 ** 70])
                elif kind == "int":
                    obj[key] = r.choice([2 ** 70, -(2 ** 70), 0.5])
                elif kind == "time":
                    obj[key] = r.choice(["yesterday", "2026-13-45T99:99:99.000Z", "", "2026-01-01 00:00:00"])
                elif kind.startswith("enum:"):
                    obj[key] = r.choice(["exploded", "", "FINISHED", "x" * 1000, "\u0000"])
                else:
                    obj[key] = r.choice(self.WRONG)
            else:                                                               # wrong type, deeper
                obj[key] = r.choice([[obj.get(key)], {"value": obj.get(key)}, 10 ** 30])
        return obj

    def huge_string(self) -> str:
        n = self.rng.randint(1 * MiB, 8 * MiB)
        return "A" * n


@dataclass
class SocketReport:
    name: str
    service: str
    bound_type: str
    app_messages: int = 0             # malformed messages sent through a ZeroMQ peer
    huge_json: int = 0                # 1-8 MiB JSON among them
    big_frames: int = 0               # --big-size frames sent (ZeroMQ peer or raw)
    big_frames_failed: int = 0
    raw_connections: int = 0          # raw TCP connections with broken ZMTP
    subscriptions: int = 0            # status_out: subscription / unsubscription messages
    send_timeouts: int = 0
    requests_expecting_reply: int = 0
    replies: int = 0
    replies_not_error: list[str] = field(default_factory=list)
    huge_replies: int = 0
    rejections: int = 0               # message.rejected events seen naming this socket
    rejection_samples: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def malformed_sent(self) -> int:
        return self.app_messages + self.big_frames + self.subscriptions


# ---------------------------------------------------------------------------------------------------------
# raw ZMTP


def zmtp_greeting(mechanism: bytes = b"NULL", major: int = 3, minor: int = 0) -> bytes:
    return b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([major, minor]) + mechanism.ljust(20, b"\x00")[:20] + b"\x00" + b"\x00" * 31


def zmtp_command(name: bytes, body: bytes) -> bytes:
    data = bytes([len(name)]) + name + body
    if len(data) <= 255:
        return bytes([0x04, len(data)]) + data
    return bytes([0x06]) + struct.pack(">Q", len(data)) + data


def zmtp_ready(socket_type: str) -> bytes:
    name, value = b"Socket-Type", socket_type.encode()
    return zmtp_command(b"READY", bytes([len(name)]) + name + struct.pack(">I", len(value)) + value)


def zmtp_frame(data: bytes, more: bool = False) -> bytes:
    flags = 0x01 if more else 0x00
    if len(data) <= 255:
        return bytes([flags, len(data)]) + data
    return bytes([flags | 0x02]) + struct.pack(">Q", len(data)) + data


def zmtp_message(frames: list[bytes]) -> bytes:
    return b"".join(zmtp_frame(f, i < len(frames) - 1) for i, f in enumerate(frames))


def raw_connect(port: int, timeout: float = 10.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def raw_send_and_close(port: int, data: bytes, linger_s: float = 0.0) -> None:
    s = raw_connect(port)
    try:
        s.sendall(data)
        if linger_s:
            s.settimeout(linger_s)
            try:
                s.recv(65536)
            except OSError:
                pass
    finally:
        s.close()


def send_big_raw(port: int, prefix: bytes, total: int, announced: int | None = None) -> None:
    """Sends `prefix`, a frame header announcing `announced` (default `total`) bytes, then `total` bytes."""
    s = raw_connect(port, timeout=20)
    try:
        size = announced if announced is not None else total
        s.sendall(prefix + bytes([0x02]) + struct.pack(">Q", size))
        chunk = b"\x5a" * MiB
        sent = 0
        while sent < total:
            n = min(len(chunk), total - sent)
            s.sendall(chunk[:n])
            sent += n
        s.settimeout(0.5)
        try:
            s.recv(65536)
        except OSError:
            pass
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------------------
# the stack


class FuzzStack(chaos.Stack):
    """chaos.py's stack with a 200 ms job (overlap forbid: a slot that comes while a run runs is skipped and
    recorded, so the stack keeps up on a loaded machine), two processors, on loopback TCP."""

    def setup(self, heartbeat: str = "1s", lease: str = "5s") -> None:
        super().setup(heartbeat, lease, job=JOB, every_ms=EVERY_MS, processors=PROCESSORS, linger_max=1.0,
                      concurrency=4)

    @property
    def store(self) -> str:
        return os.path.join(self.data_dir, "results.sqlite")


def read_rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in bytes; (0, 0) when the process is gone."""
    text = chaos.proc_read(pid, "status").decode(errors="replace")
    rss = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    hwm = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
    return (int(rss.group(1)) * 1024 if rss else 0, int(hwm.group(1)) * 1024 if hwm else 0)


def reset_hwm(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class ServiceWatch:
    name: str
    pid: int = 0
    baseline: int = 0
    baseline_at: float = 0.0
    peak: int = 0                  # max of sampled VmRSS and VmHWM since the baseline
    peak_phase: str = ""
    phase_peaks: dict[str, int] = field(default_factory=dict)
    deaths: list[str] = field(default_factory=list)
    hwm_resettable: bool = True


class Monitor(threading.Thread):
    """Samples every service's RSS, restarts (and counts) services that die, watches the store grow and probes
    every /healthz once a second."""

    def __init__(self, stack: FuzzStack):
        super().__init__(daemon=True)
        self.stack = stack
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.phase = "start"
        self.watch = {n: ServiceWatch(n) for n in stack.services}
        self.stored = 0
        self.last_store_change = time.time()
        self.max_stall = 0.0
        self.max_stall_phase = ""
        self.stall_tracking = False
        self.restart_at: dict[str, float] = {}

    def set_phase(self, phase: str) -> None:
        with self.lock:
            for w in self.watch.values():          # the old phase's peak up to now, then a fresh VmHWM
                if w.pid and w.baseline and w.hwm_resettable:
                    value = max(read_rss(w.pid))
                    w.phase_peaks[self.phase] = max(w.phase_peaks.get(self.phase, 0), value)
                    if value > w.peak:
                        w.peak, w.peak_phase = value, self.phase
                if w.pid and w.hwm_resettable:
                    w.hwm_resettable = reset_hwm(w.pid)
            self.phase = phase

    def take_baselines(self) -> None:
        with self.lock:
            for name, w in self.watch.items():
                pid = self.stack.service_pid(name)
                if pid:
                    w.pid = pid
                    w.baseline = read_rss(pid)[0]
                    w.baseline_at = time.time()
                    w.peak = w.baseline
                    w.peak_phase = "start"
                    w.hwm_resettable = reset_hwm(pid)

    def start_stall_tracking(self) -> None:
        with self.lock:
            self.stall_tracking = True
            self.last_store_change = time.time()

    def stop_stall_tracking(self) -> None:
        with self.lock:
            self.stall_tracking = False

    def run(self) -> None:
        next_store = 0.0
        while not self.stop_event.wait(0.05):
            t = time.time()
            with self.lock:
                for name, w in self.watch.items():
                    svc = self.stack.services[name]
                    if svc.proc is not None and svc.proc.poll() is not None and name not in self.restart_at:
                        w.deaths.append(f"{name} exited with status {svc.proc.returncode} while fuzzing {self.phase}")
                        log(f"!! {name} exited with status {svc.proc.returncode} (phase {self.phase}); starting it again")
                        self.restart_at[name] = t + 0.5
                    if name in self.restart_at and t >= self.restart_at[name]:
                        del self.restart_at[name]
                        self.stack.start_service(name)
                        w.pid = 0
                        w.baseline = 0
                    pid = self.stack.service_pid(name)
                    if not pid:
                        continue
                    if w.pid != pid:
                        w.pid = pid
                        w.baseline_at = t
                    if not w.baseline:
                        if t - w.baseline_at >= 2.0:       # a restarted service: its own start value
                            w.baseline = read_rss(pid)[0]
                            w.hwm_resettable = reset_hwm(pid)
                        continue
                    rss, hwm = read_rss(pid)
                    value = max(rss, hwm if w.hwm_resettable else 0)
                    if value > w.phase_peaks.get(self.phase, 0):
                        w.phase_peaks[self.phase] = value
                    if value > w.peak:
                        w.peak = value
                        w.peak_phase = self.phase
                if t >= next_store:
                    next_store = t + 0.5
                    count = chaos.stored_count(self.stack.store)
                    if count > self.stored:
                        self.stored = count
                        self.last_store_change = t
                    elif self.stall_tracking and t - self.last_store_change > self.max_stall:
                        self.max_stall = t - self.last_store_change
                        self.max_stall_phase = self.phase


class HealthProber(threading.Thread):
    def __init__(self, stack: FuzzStack, monitor: Monitor, timeout: float):
        super().__init__(daemon=True)
        self.stack, self.monitor, self.timeout = stack, monitor, timeout
        self.stop_event = threading.Event()
        self.ok: dict[str, int] = {n: 0 for n in stack.http_ports}
        self.failures: dict[str, list[str]] = {n: [] for n in stack.http_ports}
        self.max_latency: dict[str, float] = {n: 0.0 for n in stack.http_ports}
        self.threads = []

    def probe_loop(self, name: str, port: int) -> None:
        while not self.stop_event.is_set():
            started = time.time()
            phase = self.monitor.phase
            ok, why = healthz(port, self.timeout)
            latency = time.time() - started
            if ok:
                self.ok[name] += 1
            elif name not in self.monitor.restart_at and self.stack.service_pid(name):
                self.failures[name].append(f"{why} (while fuzzing {phase})")
            self.max_latency[name] = max(self.max_latency[name], latency)
            self.stop_event.wait(max(0.0, 1.0 - latency))

    def run(self) -> None:
        for name, port in self.stack.http_ports.items():
            t = threading.Thread(target=self.probe_loop, args=(name, port), daemon=True)
            t.start()
            self.threads.append(t)
        self.stop_event.wait()
        for t in self.threads:
            t.join(self.timeout + 1)


def healthz(port: int, timeout: float) -> tuple[bool, str]:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", "/healthz")
        r = c.getresponse()
        body = r.read(65536)
        c.close()
        if r.status != 200:
            return False, f"/healthz answered {r.status}"
        try:
            doc = json.loads(body)
            if doc.get("status") != "ok":
                return False, f"/healthz said {body[:80]!r}"
        except ValueError:
            return False, f"/healthz body is not JSON: {body[:80]!r}"
        return True, ""
    except (OSError, http.client.HTTPException) as e:
        return False, f"/healthz failed: {type(e).__name__}: {e}"


class BusSubscriber(threading.Thread):
    """A SUB on status_out that decodes every event it receives."""

    def __init__(self, ctx: zmq.Context, endpoint: str):
        super().__init__(daemon=True)
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(endpoint)
        self.stop_event = threading.Event()
        self.received = 0
        self.malformed = 0
        self.malformed_samples: list[str] = []
        self.malformed_bytes = 0
        self.events: list[dict] = []        # message.rejected and this job's run.scheduled
        self.types: dict[str, int] = {}

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self.stop_event.is_set():
            if not poller.poll(100):
                continue
            while True:
                try:
                    frames = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.received += 1
                problems, event = event_problems(frames)
                if problems:
                    self.malformed += 1
                    self.malformed_bytes += sum(len(f) for f in frames)
                    if len(self.malformed_samples) < 12:
                        shown = [f[:40] for f in frames[:4]]
                        self.malformed_samples.append(f"{'; '.join(problems[:2])}: {shown}")
                    continue
                t = event["type"]
                self.types[t] = self.types.get(t, 0) + 1
                if t == "message.rejected" or (t in ("run.scheduled", "run.skipped")
                                               and str(event.get("run", "")).startswith(JOB + "@")):
                    self.events.append(event)
        self.sock.close(0)


# ---------------------------------------------------------------------------------------------------------
# fuzzing the ZeroMQ sockets


class ZmqFuzzer:
    def __init__(self, stack: FuzzStack, ctx: zmq.Context, rng: random.Random, args):
        self.stack, self.ctx, self.rng, self.args = stack, ctx, rng, args
        self.g = Garbage(rng)

    def endpoint(self, name: str) -> str:
        return self.stack.endpoints[name]

    def peer(self, kind: int, name: str) -> zmq.Socket:
        s = self.ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 2000)
        s.setsockopt(zmq.SNDTIMEO, 5000)
        s.setsockopt(zmq.SNDHWM, 1000)
        s.connect(self.endpoint(name))
        return s

    def send(self, s: zmq.Socket, frames: list[bytes], rep: SocketReport) -> bool:
        try:
            s.send_multipart(frames, copy=len(frames) == 0 or max(len(f) for f in frames) < 64 * KiB)
            return True
        except zmq.Again:
            rep.send_timeouts += 1
            return False

    # --- the messages for each receiving socket ---------------------------------------------------------

    def p2p_body(self, name: str) -> tuple[bytes, bytes]:
        """(kind, header JSON) of a malformed point-to-point message for `name`."""
        g, r = self.g, self.rng
        if name == "reports":
            kind = b"report"
            obj = {"runId": GHOST_RUN, "job": GHOST_JOB, "state": "finished", "detail": "", "time": GHOST_TIME}
            req = ["runId", "job", "state", "time"]
            typed = {"runId": "runid", "job": "job", "state": "enum:state", "time": "time", "detail": "str"}
        elif name == "acks":
            kind = r.choice([b"ack", b"lease", b"nack"])
            obj = {"runId": GHOST_RUN, "part": 0, "processor": "fuzz"}
            req = ["runId", "part", "processor"]
            typed = {"runId": "runid", "part": "uint", "processor": "str", "duplicate": "bool", "handBack": "bool",
                     "reason": "str"}
            if kind == b"ack":
                obj["duplicate"] = False
            if kind == b"nack":
                obj.update({"reason": "fuzz", "handBack": False})
        elif name == "results":
            kind = b"ready"
            obj = {"processor": "fuzz", "seq": 1, "credit": 1}
            req = ["processor", "seq", "credit"]
            typed = {"processor": "str", "seq": "uint", "credit": "uint"}
        elif name == "control":
            kind = b"control"
            obj = r.choice([{"command": "jobs"}, {"command": "pause", "job": GHOST_JOB},
                            {"command": "cancel", "run": GHOST_RUN}])
            req = list(obj)
            typed = {"command": "enum:command", "job": "job", "run": "runid"}
        else:  # query
            kind = b"query"
            obj = {"what": "status"}
            req = ["what"]
            typed = {"what": "enum:what"}
        choice = r.random()
        if choice < 0.55:
            return kind, jdump(g.mutate(obj, req, typed))
        if choice < 0.85:
            return kind, g.not_json()
        # the header is well-formed but the kind is wrong (a kind of another socket, or none)
        wrong = r.choice([b"result", b"run", b"cancel", b"query.reply", b"control.reply", b"", b"REPORT", g.rbytes(1, 16)])
        if wrong == kind:
            wrong = b"nonsense"
        return wrong, jdump(obj) if name not in ("control",) else jdump({"command": "jobs"})

    def p2p_frames(self, name: str) -> list[bytes]:
        """A malformed [baton/1, kind, header] message, or one with the wrong protocol or frame count."""
        r = self.rng
        kind, body = self.p2p_body(name)
        choice = r.random()
        if choice < 0.70:
            return [b"baton/1", kind, body]
        if choice < 0.80:
            return [r.choice([b"baton/2", b"", b"BATON/1", b"baton/1\x00", b"baton/", self.g.rbytes(1, 32)]), kind, body]
        if choice < 0.90:                                                       # wrong frame count
            n = r.choice([1, 2, 4, 5, 8])
            frames = [b"baton/1", kind, body, self.g.rbytes(0, 64), b"", b"x", b"y", b"z"]
            return frames[:n]
        return [self.g.rbytes(0, 512) for _ in range(r.randint(1, 4))]          # random bytes

    def event_frames(self) -> list[bytes]:
        """A malformed status event for status_in (checked against event_problems)."""
        r, g = self.rng, self.g
        while True:
            topic = r.choice(["log.info", "run.started", "service.heartbeat", "result.stored"])
            obj = {"type": topic, "source": "fuzz", "instance": "fuzz:1", "seq": r.randint(1, 10 ** 6),
                   "time": GHOST_TIME, "job": GHOST_JOB, "message": "fuzz"}
            choice = r.random()
            if choice < 0.45:
                obj = g.mutate(obj, ["type", "source", "instance", "seq", "time"],
                               {"type": "str", "seq": "uint", "time": "time"})
                if r.random() < 0.3:
                    obj["attributes"] = r.choice([{"n": 1}, [], "attrs", {"a": None}, {"b": {"c": "d"}}])
                frames = [topic.encode(), b"baton/1", jdump(obj)]
            elif choice < 0.55:
                obj["attributes"] = r.choice([{"n": 1}, [], "attrs", {"a": None}, {"b": ["c"]}])
                frames = [topic.encode(), b"baton/1", jdump(obj)]
            elif choice < 0.62:
                obj["type"] = "run.finished"                                    # type differs from frame 0
                frames = [b"log.info", b"baton/1", jdump(obj)]
            elif choice < 0.72:
                frames = [topic.encode(), b"baton/1", g.not_json()]
            elif choice < 0.80:
                frames = [topic.encode(), r.choice([b"baton/2", b"", b"baton/1 ", g.rbytes(1, 16)]), jdump(obj)]
            elif choice < 0.90:
                n = r.choice([1, 2, 4, 5])
                frames = [topic.encode(), b"baton/1", jdump(obj), b"extra", b"more"][:n]
            else:
                frames = [g.rbytes(0, 512) for _ in range(r.randint(1, 4))]
            if event_problems(frames)[0]:
                return frames

    # --- per socket ---------------------------------------------------------------------------------

    def fuzz(self, name: str, rep: SocketReport) -> None:
        started = time.time()
        n = self.args.messages
        huge = max(2, n // 2000) if n else 0
        if name in ("reports", "acks", "results"):
            self.fuzz_pull(name, rep, n, huge)
        elif name in ("control", "query"):
            self.fuzz_rep(name, rep, n, huge)
        elif name == "status_in":
            self.fuzz_status_in(rep, n, huge)
        elif name == "status_out":
            self.fuzz_status_out(rep, n)
        # the big frames, on fresh peers (a service that enforces a size limit drops the connection)
        for i in range(self.args.big_frames):
            self.big_frame(name, rep, i)
        self.fuzz_raw(name, rep, max(10, n // 20) if n else 0)
        rep.seconds = time.time() - started

    def fuzz_pull(self, name: str, rep: SocketReport, n: int, huge: int) -> None:
        """Malformed messages into a socket that receives them: a PULL (a PUSH peer), or `results`' ROUTER (a
        DEALER peer, as a processor asking for work)."""
        peer = zmq.DEALER if name == "results" else zmq.PUSH
        s = self.peer(peer, name)
        timeouts_in_row = 0
        for i in range(n):
            if self.send(s, self.p2p_frames(name), rep):
                rep.app_messages += 1
                timeouts_in_row = 0
            else:
                timeouts_in_row += 1
                if timeouts_in_row >= 3:
                    rep.notes.append(f"sending blocked 3 times in a row after {i} messages; gave up the rest")
                    break
        s.close()
        # huge JSON on a peer of its own: a service that enforces a size limit may drop the connection
        s = self.peer(peer, name)
        for _ in range(huge):
            kind = b"report"
            if name == "reports":
                obj = {"runId": GHOST_RUN, "job": GHOST_JOB, "state": "failed", "detail": self.g.huge_string(),
                       "time": GHOST_TIME}
            else:
                obj = {"runId": GHOST_RUN, "part": 0, "processor": "fuzz", "reason": self.g.huge_string(),
                       "handBack": "not a bool"}
                kind = b"nack"
            if self.send(s, [b"baton/1", kind, jdump(obj)], rep):
                rep.app_messages += 1
                rep.huge_json += 1
        time.sleep(0.5)
        s.close()

    def fuzz_rep(self, name: str, rep: SocketReport, n: int, huge: int) -> None:
        s = self.peer(zmq.DEALER, name)
        s.setsockopt(zmq.RCVHWM, 0)
        received = [0]
        bad_replies: list[str] = []

        def drain(wait_s: float) -> None:
            """Reads the replies that came, then waits up to `wait_s` for the rest."""
            deadline = time.time() + wait_s
            while True:
                while True:
                    try:
                        frames = s.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    received[0] += 1
                    why = reply_problem(name, frames)
                    if why and len(bad_replies) < 8:
                        bad_replies.append(why)
                left = deadline - time.time()
                if received[0] >= rep.requests_expecting_reply or left <= 0 or not s.poll(int(left * 1000)):
                    return

        for i in range(n):
            frames = self.p2p_frames(name)
            # a few without the empty delimiter frame (and no empty frame at all): REP drops them unanswered
            no_envelope = self.rng.random() < 0.05
            msg = [f or b"x" for f in frames] if no_envelope else [b""] + frames
            if self.send(s, msg, rep):
                rep.app_messages += 1
                if not no_envelope:
                    rep.requests_expecting_reply += 1
            if i % 50 == 49:
                drain(0.0)
        drain(self.args.reply_timeout)
        last = received[0]
        while received[0] < rep.requests_expecting_reply:
            drain(self.args.reply_timeout)
            if received[0] == last:
                break
            last = received[0]
        rep.replies = received[0]
        rep.replies_not_error = bad_replies
        s.close(0)
        # huge JSON on a peer of its own, answered or not (a size limit may drop the connection instead)
        for _ in range(huge):
            if name == "query":
                obj = {"what": ["status"] * 10, "pad": self.g.huge_string()}
            else:
                obj = {"command": "jobs", "job": self.g.huge_string()}
            h = self.peer(zmq.DEALER, name)
            if self.send(h, [b"", b"baton/1", name.encode(), jdump(obj)], rep):
                rep.app_messages += 1
                rep.huge_json += 1
                if h.poll(5000):
                    h.recv_multipart()
                    rep.huge_replies += 1
            h.close(0)

    def fuzz_status_in(self, rep: SocketReport, n: int, huge: int) -> None:
        s = self.ctx.socket(zmq.XPUB)
        s.setsockopt(zmq.LINGER, 2000)
        s.setsockopt(zmq.SNDHWM, 100_000)
        s.connect(self.endpoint("status_in"))
        # a publisher learns that the logger is there from its subscription to everything (PROTOCOL.md)
        if s.poll(10_000):
            s.recv()
        else:
            rep.notes.append("the logger did not subscribe within 10 s")
        for _ in range(n):
            if self.send(s, self.event_frames(), rep):
                rep.app_messages += 1
        time.sleep(0.5)
        s.close()
        s = self.ctx.socket(zmq.XPUB)
        s.setsockopt(zmq.LINGER, 2000)
        s.setsockopt(zmq.SNDTIMEO, 5000)
        s.connect(self.endpoint("status_in"))
        if s.poll(10_000):
            s.recv()
        for _ in range(huge):
            obj = {"type": "log.info", "source": "fuzz", "instance": "fuzz:1", "seq": "1", "time": GHOST_TIME,
                   "message": self.g.huge_string()}
            if self.send(s, [b"log.info", b"baton/1", jdump(obj)], rep):
                rep.app_messages += 1
                rep.huge_json += 1
        time.sleep(0.5)
        s.close()

    def fuzz_status_out(self, rep: SocketReport, n: int) -> None:
        s = self.ctx.socket(zmq.XSUB)
        s.setsockopt(zmq.LINGER, 2000)
        s.setsockopt(zmq.RCVHWM, 10)
        s.setsockopt(zmq.SNDTIMEO, 5000)
        s.connect(self.endpoint("status_out"))
        time.sleep(0.3)
        r = self.rng
        subs: list[bytes] = []
        for _ in range(4):                                          # 64 KiB subscriptions
            topic = r.randbytes(64 * KiB)
            if self.send(s, [b"\x01" + topic], rep):
                rep.subscriptions += 1
                subs.append(topic)
        for i in range(n):
            choice = r.random()
            if choice < 0.6:                                        # many random subscriptions
                topic = r.randbytes(r.randint(1, 48))
                frames = [b"\x01" + topic]
                subs.append(topic)
            elif choice < 0.75:                                     # unsubscribe what was never subscribed
                frames = [b"\x00" + r.randbytes(r.randint(0, 48))]
            elif choice < 0.9:                                      # not a subscription at all
                frames = [bytes([r.randint(2, 255)]) + r.randbytes(r.randint(0, 512))]
            else:                                                   # several frames, or an empty one
                frames = [r.randbytes(r.randint(0, 64)) for _ in range(r.randint(0, 4))] or [b""]
            if self.send(s, frames, rep):
                rep.subscriptions += 1
            if i % 100 == 0:                                        # subscriptions matching events are delivered
                while True:
                    try:
                        s.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
        time.sleep(0.5)
        s.close()

    def big_frame(self, name: str, rep: SocketReport, i: int) -> None:
        size = self.args.big_size
        bound = SOCKETS[name][1]
        try:
            if bound in ("PUSH",):
                # a PUSH socket never expects a frame; a raw PULL peer sends one anyway
                send_big_raw(self.stack.ports[name], zmtp_greeting() + zmtp_ready("PULL"), size)
            elif name == "status_out":
                s = self.ctx.socket(zmq.XSUB)
                s.setsockopt(zmq.LINGER, 3000)
                s.setsockopt(zmq.SNDTIMEO, 20_000)
                s.connect(self.endpoint(name))
                s.send(b"\x02" + b"\x5a" * (size - 1), copy=False)
                time.sleep(0.5)
                s.close()
            else:
                if name == "status_in":
                    s = self.ctx.socket(zmq.XPUB)
                    s.connect(self.endpoint(name))
                    if s.poll(10_000):
                        s.recv()
                    body = b'{"type":"log.info","message":"' + b"A" * (size - 64) + b'"}'
                    frames = [b"log.info", b"baton/1", body]
                elif bound == "REP":
                    s = self.ctx.socket(zmq.DEALER)
                    s.connect(self.endpoint(name))
                    frames = [b"", b"baton/1", name.encode(), b'{"pad":"' + b"A" * (size - 16) + b'"}']
                else:
                    s = self.ctx.socket(zmq.DEALER if bound == "ROUTER" else zmq.PUSH)
                    s.connect(self.endpoint(name))
                    frames = [b"baton/1", b"report" if name == "reports" else b"ack",
                              b'{"runId":"' + b"A" * (size - 16) + b'"}']
                s.setsockopt(zmq.LINGER, 20_000)
                s.setsockopt(zmq.SNDTIMEO, 20_000)
                s.send_multipart(frames, copy=False)
                if bound == "REP" and s.poll(5000):
                    s.recv_multipart()
                time.sleep(0.5)
                s.close()
            rep.big_frames += 1
        except (OSError, zmq.ZMQError) as e:
            rep.big_frames_failed += 1
            rep.notes.append(f"big frame {i + 1}: {type(e).__name__}: {e}")

    def fuzz_raw(self, name: str, rep: SocketReport, count: int) -> None:
        port = self.stack.ports[name]
        bound = SOCKETS[name][1]
        r, g = self.rng, self.g
        for i in range(count):
            how = i % 8
            try:
                if how == 0:
                    data = g.rbytes(1, 4096)
                elif how == 1:
                    data = b"\xff" + g.rbytes(8, 8) + b"\x7f" + bytes([r.randint(0, 255), r.randint(0, 255)]) + g.rbytes(60, 60)
                elif how == 2:
                    data = zmtp_greeting(r.choice([b"CURVE", b"PLAIN", b"GSSAPI", b"GARBAGE", g.rbytes(1, 20)]))
                    data += zmtp_command(b"HELLO", g.rbytes(0, 200))
                elif how == 3:
                    data = zmtp_greeting() + zmtp_ready(INCOMPATIBLE[bound]) + zmtp_message([b"baton/1", b"x", b"{}"])
                elif how == 4:                                     # READY with broken properties, unknown commands
                    data = zmtp_greeting() + zmtp_command(b"READY", b"\x0bSocket-Type\xff\xff\xff\xff" + g.rbytes(0, 64))
                    data += zmtp_command(g.rbytes(1, 10), g.rbytes(0, 100))
                elif how == 5:                                     # a frame announcing a terabyte, then nothing
                    data = zmtp_greeting() + zmtp_ready(COMPATIBLE[bound]) + bytes([0x02]) + struct.pack(">Q", 1 << 40)
                elif how == 6:                                     # compatible peer, random frames with random flags
                    data = zmtp_greeting() + zmtp_ready(COMPATIBLE[bound])
                    for _ in range(r.randint(1, 20)):
                        data += bytes([r.choice([0, 1, 2, 3, 4, 0xff])]) + g.rbytes(0, 300)
                else:                                              # compatible peer, well-framed malformed messages
                    data = zmtp_greeting() + zmtp_ready(COMPATIBLE[bound])
                    for _ in range(r.randint(1, 10)):
                        if name == "status_in":
                            frames = self.event_frames()
                        elif name == "status_out":
                            frames = [b"\x01" + g.rbytes(1, 32)]
                        elif name == "runs":
                            frames = [b"baton/1", r.choice([b"run", b"result", b"ack"]), g.not_json()]
                        elif bound == "REP":
                            frames = [b""] + self.p2p_frames(name)
                        else:
                            frames = self.p2p_frames(name)
                        data += zmtp_message(frames)
                raw_send_and_close(port, data, linger_s=0.05 if how in (5, 6, 7) else 0.0)
                rep.raw_connections += 1
            except OSError as e:
                rep.notes.append(f"raw connection {i}: {type(e).__name__}: {e}")


def reply_problem(name: str, frames: list[bytes]) -> str:
    """Why a REP socket's answer to a malformed request is not a documented error reply; "" when it is one."""
    if frames and frames[0] == b"":
        frames = frames[1:]
    want = b"query.reply" if name == "query" else b"control.reply"
    if len(frames) != 3 or frames[0] != b"baton/1" or frames[1] != want:
        return f"reply frames {[f[:30] for f in frames[:4]]}"
    try:
        body = json.loads(frames[2])
    except ValueError:
        return f"reply body is not JSON: {frames[2][:60]!r}"
    if not isinstance(body, dict):
        return f"reply body is not an object: {frames[2][:60]!r}"
    if name == "query" and not body.get("error"):
        return f"query.reply to a malformed query without `error`: {frames[2][:80]!r}"
    if name == "control" and (body.get("ok") is not False):
        return f"control.reply to a malformed command without ok=false: {frames[2][:80]!r}"
    return ""


# ---------------------------------------------------------------------------------------------------------
# fuzzing the HTTP ports


@dataclass
class HttpReport:
    service: str
    port: int
    requests: int = 0
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)   # category -> outcome -> count
    idle_opened: int = 0
    idle_closed_by_server: int = 0
    idle_refused: int = 0
    slowloris_opened: int = 0
    slowloris_closed_by_server: int = 0
    slowloris_first_close_s: float | None = None
    notes: list[str] = field(default_factory=list)

    def outcome(self, category: str, what: str) -> None:
        d = self.outcomes.setdefault(category, {})
        d[what] = d.get(what, 0) + 1


def http_exchange(port: int, data: bytes, timeout: float = 5.0, body_stream: int = 0) -> str:
    """Sends raw bytes (and `body_stream` more bytes), returns `status NNN`, `closed`, `timeout` or an error."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as e:
        return f"connect failed ({type(e).__name__})"
    try:
        try:
            s.sendall(data)
            chunk = b"z" * MiB
            sent = 0
            while sent < body_stream:
                s.sendall(chunk[:min(len(chunk), body_stream - sent)])
                sent += len(chunk)
        except OSError:
            pass  # the server may close early; what it answered is still read
        try:
            head = s.recv(64)
        except socket.timeout:
            return "timeout"
        except OSError:
            return "closed"
        if not head:
            return "closed"
        m = re.match(rb"HTTP/\d\.\d (\d{3})", head)
        return f"status {m.group(1).decode()}" if m else "non-HTTP answer"
    finally:
        s.close()


class HttpFuzzer:
    def __init__(self, stack: FuzzStack, rng: random.Random, args):
        self.stack, self.rng, self.args = stack, rng, args
        self.idle: dict[str, list[socket.socket]] = {}
        self.slow: dict[str, list[socket.socket]] = {}
        self.slow_thread: threading.Thread | None = None
        self.stop_event = threading.Event()
        self.started = time.time()

    def garbage_request(self) -> tuple[str, bytes]:
        r = self.rng
        g = lambda lo, hi: r.randbytes(r.randint(lo, hi))  # noqa: E731
        choice = r.randrange(12)
        return [
            lambda: ("random bytes", g(1, 2048)),
            lambda: ("random bytes then CRLFCRLF", g(1, 512) + b"\r\n\r\n"),
            lambda: ("bad method", b"FROB /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            lambda: ("bad version", b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n"),
            lambda: ("NUL in request line", b"GET /heal\x00thz HTTP/1.1\r\n\r\n"),
            lambda: ("negative content-length", b"POST /metrics HTTP/1.1\r\nContent-Length: -5\r\n\r\nabc"),
            lambda: ("content-length overflow",
                     b"POST /metrics HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\nabc"),
            lambda: ("bad chunked body",
                     b"POST /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + g(0, 100) + b"\r\n"),
            lambda: ("header without colon", b"GET /metrics HTTP/1.1\r\nNoColonHere\r\n" + g(0, 50) + b"\r\n\r\n"),
            lambda: ("empty request", b"\r\n\r\n\r\n"),
            lambda: ("odd paths", r.choice([b"GET /../../../../etc/passwd HTTP/1.1\r\n\r\n",
                                            b"GET /metrics%00 HTTP/1.1\r\n\r\n",
                                            b"GET http://evil/healthz HTTP/1.1\r\n\r\n",
                                            b"GET * HTTP/1.1\r\n\r\n"])),
            lambda: ("duplicate and conflicting headers",
                     b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 30\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\nabc"),
        ][choice]()

    def open_idle_and_slow(self, reports: dict[str, HttpReport]) -> None:
        for name, port in self.stack.http_ports.items():
            rep = reports[name]
            self.idle[name] = []
            for _ in range(self.args.idle_connections):
                try:
                    s = socket.create_connection(("127.0.0.1", port), timeout=2)
                    s.setblocking(False)
                    self.idle[name].append(s)
                    rep.idle_opened += 1
                except OSError:
                    rep.idle_refused += 1
            self.slow[name] = []
            for i in range(self.args.slowloris):
                try:
                    s = socket.create_connection(("127.0.0.1", port), timeout=2)
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-%d: " % i)
                    s.setblocking(False)
                    self.slow[name].append(s)
                    rep.slowloris_opened += 1
                except OSError:
                    pass
        self.started = time.time()

        def drip():
            closed: set[int] = set()
            while not self.stop_event.wait(1.0):
                for name, socks in self.slow.items():
                    for s in socks:
                        if id(s) in closed:
                            continue
                        try:
                            s.send(b"a")
                            if s.recv(65536) == b"":       # the server closed it (or answered and closed)
                                raise ConnectionResetError
                        except (BlockingIOError, InterruptedError):
                            continue
                        except OSError:
                            closed.add(id(s))
                            rep = reports[name]
                            rep.slowloris_closed_by_server += 1
                            if rep.slowloris_first_close_s is None:
                                rep.slowloris_first_close_s = time.time() - self.started

        self.slow_thread = threading.Thread(target=drip, daemon=True)
        self.slow_thread.start()

    def fuzz_port(self, name: str, rep: HttpReport) -> None:
        port = rep.port
        n = max(20, self.args.messages // 20) if self.args.messages else 0
        long = b"a" * (100 * KiB)
        many = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 90) for i in range(1000))
        work = [self.garbage_request() + (3.0, 0) for _ in range(n)]
        for _ in range(3):
            work += [("100 KiB request line (query)", b"GET /metrics?" + long + b" HTTP/1.1\r\nHost: x\r\n\r\n", 5.0, 0),
                     ("100 KiB request line (path)", b"GET /" + long + b" HTTP/1.1\r\n\r\n", 5.0, 0),
                     ("100 KiB header", b"GET /healthz HTTP/1.1\r\nX-Big: " + long + b"\r\n\r\n", 5.0, 0),
                     ("1000 headers (100 KiB)", b"GET /healthz HTTP/1.1\r\n" + many + b"\r\n", 5.0, 0)]
        work.append(("100 MiB body", b"POST /metrics HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % self.args.big_size,
                     20.0, self.args.big_size))
        timeouts = 0
        for i, (category, data, timeout, body) in enumerate(work):
            # a port that has stopped answering altogether (three timeouts in a row, /healthz failing too) is not
            # sent the rest: the /healthz checks report it
            if timeouts >= 3 and not healthz(port, 2.0)[0]:
                rep.notes.append(f"gave up after {i} of {len(work)} requests: no answer, /healthz failing too")
                break
            outcome = http_exchange(port, data, timeout=timeout, body_stream=body)
            timeouts = timeouts + 1 if outcome == "timeout" else 0
            rep.outcome(category, outcome)
            rep.requests += 1

    def close_all(self, reports: dict[str, HttpReport]) -> None:
        self.stop_event.set()
        if self.slow_thread:
            self.slow_thread.join(5)
        for name, socks in self.idle.items():
            for s in socks:
                try:
                    if s.recv(1) == b"":
                        reports[name].idle_closed_by_server += 1
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    reports[name].idle_closed_by_server += 1
                s.close()
        for socks in self.slow.values():
            for s in socks:
                s.close()


# ---------------------------------------------------------------------------------------------------------
# the oracle for the job's results


def slots_from_ledger(data_dir: str) -> tuple[set[int], set[int]]:
    """(fired, skipped) slots of the job in the scheduler's ledger (ARCHITECTURE.md, Storage:
    `fires(run_id, state, ...)`, `state` a FireState)."""
    fired, skipped = set(), set()
    path = os.path.join(data_dir, "scheduler", "state.sqlite")
    if not os.path.exists(path):
        return fired, skipped
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            for run_id, state in con.execute("SELECT run_id, state FROM fires"):
                ms, suffix = chaos.slot_of_run(str(run_id))
                if not str(run_id).startswith(JOB + "@") or ms is None or suffix:
                    continue
                if state == "skipped":
                    skipped.add(ms)
                elif state not in ("queued", "cancelled"):
                    fired.add(ms)
        finally:
            con.close()
    except sqlite3.Error:
        pass
    return fired, skipped


def check_store(stack: FuzzStack, expected: set[int], skipped: set[int]) -> tuple[dict, list[str]]:
    fails = []
    runs, problems = chaos.read_store(stack.store)
    fails += [f"store: {p}" for p in problems]
    by_slot: dict[int, list[str]] = {}
    foreign, corrupted = [], []
    for run_id, r in runs.items():
        ms, suffix = chaos.slot_of_run(run_id)
        if not run_id.startswith(JOB + "@") or ms is None or (ms - ANCHOR_MS) % EVERY_MS or suffix:
            foreign.append(run_id)
            continue
        by_slot.setdefault(ms, []).append(run_id)
        parts = sorted(r.parts)
        if r.problems or parts != list(range(len(parts))) or any(r.parts[p] is None for p in parts):
            corrupted.append(f"{run_id}: {'; '.join(r.problems) or f'parts {parts}'}")
            continue
        got = b"".join(r.parts[p] for p in parts)
        want = chaos.expected_output(run_id)
        if got != want:
            corrupted.append(f"{run_id}: {len(got)} bytes stored, {len(want)} expected")
    missing = sorted(ms for ms in expected if ms not in by_slot)
    duplicated = sorted(f"{chaos.iso_ms(ms)}: {ids}" for ms, ids in by_slot.items() if len(ids) > 1)
    if missing:
        fails.append(f"{len(missing)} of {len(expected)} expected slots were not stored: "
                     f"{sample([chaos.iso_ms(m) for m in missing])}")
    if duplicated:
        fails.append(f"{len(duplicated)} slots stored more than once: {sample(duplicated)}")
    if corrupted:
        fails.append(f"{len(corrupted)} stored results differ from the algorithm's output: {sample(corrupted, 4)}")
    if foreign:
        fails.append(f"{len(foreign)} stored runs are not slots of the job's grid: {sample(foreign)}")
    both = sorted(chaos.iso_ms(ms) for ms in skipped if ms in by_slot)
    if both:
        fails.append(f"{len(both)} slots were both recorded skipped and stored: {sample(both)}")
    summary = {"expected": len(expected), "stored": len([m for m in expected if m in by_slot]),
               "skipped": len(skipped),
               "stored_total": len(runs), "missing": len(missing), "duplicated": len(duplicated),
               "corrupted": len(corrupted), "foreign": len(foreign)}
    return summary, fails


def log_file_problems(data_dir: str) -> tuple[int, int, list[str]]:
    """(lines, malformed lines, samples) of the logger's logs/events*.jsonl."""
    logs = os.path.join(data_dir, "logs")
    lines = bad = 0
    samples: list[str] = []
    if not os.path.isdir(logs):
        return 0, 0, []
    for n in sorted(os.listdir(logs)):
        if not re.match(r"^events(\.\d+)?\.jsonl$", n):
            continue
        with open(os.path.join(logs, n), "rb") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                lines += 1
                try:
                    e = json.loads(line)
                except (ValueError, RecursionError) as err:
                    problems = [f"not JSON ({str(err)[:40]})"]
                else:
                    if isinstance(e, dict) and "type" not in e and isinstance(e.get("event"), dict):
                        e = e["event"]
                    problems = event_body_problems(e, None)
                if problems:
                    bad += 1
                    if len(samples) < 6:
                        samples.append(f"{n}: {problems[0]}: {line[:100]!r}")
    return lines, bad, samples


def rejections_from_log(data_dir: str) -> list[dict]:
    return [e for e in chaos.read_events(data_dir) if e.get("type") == "message.rejected"]


def socket_of(event: dict, stack: FuzzStack) -> str | None:
    attrs = event.get("attributes") if isinstance(event.get("attributes"), dict) else {}
    value = str(attrs.get("socket", "")).lower().replace("-", "_")
    if not value:
        return None
    for name in SOCKETS:
        if value == name or value.endswith(name) or stack.endpoints[name] in value or str(stack.ports[name]) in value:
            return name
    return None


# ---------------------------------------------------------------------------------------------------------
# main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=10_000, help="malformed messages per socket (default 10000)")
    ap.add_argument("--duration", type=float, default=30.0,
                    help="the fuzz phase lasts at least this many seconds (the stack keeps working, idle and "
                         "slow-loris HTTP connections held open, until then); default 30")
    ap.add_argument("--bin", default=".build/debug", help="directory of the Baton executables (default .build/debug)")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON on standard output")
    ap.add_argument("--big-frames", type=int, default=2, help="frames of --big-size per socket (default 2)")
    ap.add_argument("--big-size", type=int, default=100 * MiB, help="size of the big frames in bytes (default 100 MiB)")
    ap.add_argument("--rss-bound", type=float, default=64, help="MiB a service's RSS may grow over its start value")
    ap.add_argument("--max-stall", type=float, default=15, help="longest time without a new stored result (s)")
    ap.add_argument("--max-lag", type=float, default=30,
                    help="how far (s) the scheduler's last decided slot may be behind the pause")
    ap.add_argument("--healthz-timeout", type=float, default=10, help="how long a /healthz probe may take (s)")
    ap.add_argument("--reply-timeout", type=float, default=10, help="silence after which REP replies are counted")
    ap.add_argument("--idle-connections", type=int, default=100, help="idle HTTP connections per port")
    ap.add_argument("--slowloris", type=int, default=20, help="slow-loris HTTP connections per port")
    ap.add_argument("--drain-timeout", type=float, default=120, help="longest wait for the stack to drain (s)")
    ap.add_argument("--sockets", default=",".join(SOCKETS), help="comma-separated sockets to fuzz (default all)")
    ap.add_argument("--no-http", action="store_true", help="leave the HTTP ports alone")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--workdir", default=None, help="where to make the temporary directory (default $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory even on success")
    args = ap.parse_args(argv)

    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    bindir = os.path.abspath(args.bin)
    if chaos.missing_executables(bindir, "fuzz"):
        return 2
    sockets = [s.strip() for s in args.sockets.split(",") if s.strip()]
    unknown = [s for s in sockets if s not in SOCKETS]
    if unknown:
        print(f"fuzz: unknown sockets {unknown}; known: {', '.join(SOCKETS)}", file=sys.stderr)
        return 2
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
    root = tempfile.mkdtemp(prefix="baton-fuzz-", dir=args.workdir)
    stack = FuzzStack(bindir, root, "services", "forbid", "tcp")
    fails: list[str] = []
    infos: list[str] = []
    # Every client socket uses the stack's CURVE key pair (made by the services at first start), so the
    # fuzzing reaches the services' decoders; a client without it is refused at the handshake.
    curve_keys.KEY_FILE = os.path.join(root, "data", "keys", "baton.key")  # chaos.Stack's data_dir
    ctx = curve_keys.StackContext()
    ctx.setsockopt(zmq.MAX_SOCKETS, 4096)

    chaos.interrupt_on_signals()

    reports = {n: SocketReport(n, *SOCKETS[n]) for n in sockets}
    http_reports: dict[str, HttpReport] = {}
    monitor: Monitor | None = None
    prober: HealthProber | None = None
    bus: BusSubscriber | None = None
    store_summary: dict = {}
    log_lines = log_bad = 0
    log_samples: list[str] = []
    rejection_events: dict[str, list[dict]] = {n: [] for n in SOCKETS}
    rejection_unattributed: list[dict] = []
    phase_times: dict[str, float] = {}
    try:
        stack.setup()
        log(f"seed {seed}, dir {root}, {args.messages} messages per socket, {args.big_frames} frames of "
            f"{args.big_size / MiB:.0f} MiB per socket, RSS bound +{args.rss_bound:.0f} MiB")
        stack.start_all()
        bus = BusSubscriber(ctx, stack.endpoints["status_out"])
        bus.start()
        if not chaos.wait_until_up(stack, 30):
            raise RuntimeError("the stack did not come up within 30 s")
        deadline = time.time() + 60
        while time.time() < deadline and chaos.stored_count(stack.store) < 3:
            time.sleep(0.2)
        if chaos.stored_count(stack.store) < 3:
            raise RuntimeError("fewer than 3 results stored within 60 s of the start; nothing flows, no fuzzing")
        time.sleep(1.0)
        monitor = Monitor(stack)
        monitor.take_baselines()
        monitor.start()
        prober = HealthProber(stack, monitor, args.healthz_timeout)
        prober.start()
        monitor.start_stall_tracking()
        log("results flow; baselines " + ", ".join(f"{n} {w.baseline / MiB:.1f} MiB" for n, w in monitor.watch.items()))
        fuzz_started = time.time()

        zf = ZmqFuzzer(stack, ctx, rng, args)
        for name in sockets:
            monitor.set_phase(name)
            log(f"fuzzing {name} ({SOCKETS[name][0]} {SOCKETS[name][1]})")
            zf.fuzz(name, reports[name])
            r = reports[name]
            phase_times[name] = r.seconds
            log(f"  {name}: {r.app_messages} messages ({r.huge_json} huge JSON), {r.subscriptions} subscription "
                f"messages, {r.big_frames} big frames, {r.raw_connections} raw connections in {r.seconds:.1f}s"
                + (f"; replies {r.replies}/{r.requests_expecting_reply}" if r.requests_expecting_reply else ""))

        hf = HttpFuzzer(stack, rng, args)
        if not args.no_http:
            monitor.set_phase("http")
            log(f"fuzzing the HTTP ports {stack.http_ports}")
            http_reports = {n: HttpReport(n, p) for n, p in stack.http_ports.items()}
            hf.open_idle_and_slow(http_reports)
            threads = [threading.Thread(target=hf.fuzz_port, args=(n, http_reports[n]), daemon=True)
                       for n in stack.http_ports]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        monitor.set_phase("hold")
        while time.time() - fuzz_started < args.duration:
            time.sleep(0.2)
        if not args.no_http:
            hf.close_all(http_reports)
        monitor.set_phase("after")
        log(f"fuzzing over after {time.time() - fuzz_started:.0f}s; waiting 5 s for the last events")
        time.sleep(5)
        monitor.stop_stall_tracking()

        # after: /healthz once more, and pause the job, drain, check the store
        after: dict[str, tuple[bool, str]] = {}
        probes = [threading.Thread(target=lambda n, p: after.__setitem__(n, healthz(p, args.healthz_timeout)),
                                   args=(n, p), daemon=True) for n, p in stack.http_ports.items()]
        for t in probes:
            t.start()
        for t in probes:
            t.join(args.healthz_timeout + 2)
        for name in stack.http_ports:
            ok, why = after.get(name, (False, "no answer"))
            if not ok:
                fails.append(f"/healthz of {name} does not answer after the fuzz: {why}")
        paused_at, last_err = stack.pause(JOB)
        if paused_at is None:
            fails.append(f"`baton pause {JOB}` did not succeed within 30 s after the fuzz: {last_err[:200]}")
            paused_at = time.time()
            log("the pause failed; draining all the same")
        else:
            log("job paused; draining")
        must_until = int((paused_at - 0.5) * 1000)

        def expected_slots() -> tuple[set[int], set[int]]:
            """(slots that must be stored, slots recorded skipped): every slot of the grid from the first one
            to the pause was fired or skipped (overlap forbid), and every fired one must be stored."""
            stored = {ms for ms in chaos.stored_slots(stack.store) if (ms - ANCHOR_MS) % EVERY_MS == 0}
            fired, skipped = slots_from_ledger(stack.data_dir)
            for e in bus.events:
                ms, suffix = chaos.slot_of_run(str(e.get("run", "")))
                if ms is not None and not suffix and e.get("type") == "run.scheduled":
                    fired.add(ms)
                if e.get("type") == "run.skipped":
                    lt = (e.get("attributes") or {}).get("logical_time")
                    ms = chaos.parse_iso_ms(lt) if isinstance(lt, str) else ms
                    if ms is not None:
                        skipped.add(ms)
            known = stored | fired | skipped
            first = min(known) if known else must_until
            last = ANCHOR_MS + ((must_until - ANCHOR_MS) // EVERY_MS) * EVERY_MS
            # slots after the scheduler's cursor are decided at the job's resume (ARCHITECTURE.md, "The
            # accounting invariant"): the grid ends at the last slot it fired or skipped
            decided = max(fired | skipped) if fired | skipped else first
            undecided[0] = len(range(decided + EVERY_MS, last + 1, EVERY_MS))
            grid = set(range(first, min(last, decided) + 1, EVERY_MS))
            return (grid - skipped) | fired, skipped

        undecided = [0]
        deadline = time.time() + args.drain_timeout
        last_count, last_change = -1, time.time()
        while time.time() < deadline:
            count = chaos.stored_count(stack.store)
            if count != last_count:
                last_count, last_change = count, time.time()
            outstanding = expected_slots()[0] - chaos.stored_slots(stack.store)
            if not outstanding and time.time() - last_change >= 3:
                break
            if outstanding and time.time() - last_change >= 30:
                log(f"nothing stored for 30 s with {len(outstanding)} slots missing; giving up the drain")
                break
            time.sleep(0.5)
        store_summary, store_fails = check_store(stack, *expected_slots())
        store_summary["undecided_at_pause"] = undecided[0]
        lag = undecided[0] * EVERY_MS / 1000
        if lag > args.max_lag:
            fails.append(f"the scheduler had decided no slot of the last {lag:.1f} s before the pause (fired or "
                         f"skipped; bound {args.max_lag:.0f} s): it fell behind its schedule")
        fails += store_fails
        log(f"store: {store_summary}")
    except KeyboardInterrupt as e:
        fails.append(f"interrupted ({e})")
    except Exception as e:  # a harness error is a failure, never a pass
        import traceback
        traceback.print_exc()
        fails.append(f"harness error: {e!r}")
    finally:
        if prober:
            prober.stop_event.set()
        if monitor:
            monitor.stop_event.set()
            monitor.join(2)
        if bus:
            bus.stop_event.set()
            bus.join(2)
        v = chaos.Verdict()
        try:
            chaos.stop_stack(stack, v)
        except Exception as e:  # noqa: BLE001
            v.fail(f"stopping the stack: {e!r}")
        fails += v.failures
        stack.kill_everything()
        ctx.destroy(0)

    # ---- the verdict -----------------------------------------------------------------------------------
    bound = int(args.rss_bound * MiB)
    rss_summary = {}
    if monitor:
        for name, w in monitor.watch.items():
            rss_summary[name] = {
                "start_mib": round(w.baseline / MiB, 1), "peak_mib": round(w.peak / MiB, 1),
                "growth_mib": round((w.peak - w.baseline) / MiB, 1) if w.baseline else None,
                "peak_while": w.peak_phase,
                "phases_over_bound": sorted(p for p, v in w.phase_peaks.items() if w.baseline and v > w.baseline + bound),
                "deaths": w.deaths,
            }
            for d in w.deaths:
                fails.append(f"service died: {d}")
            if w.baseline and w.peak > w.baseline + bound:
                over = ", ".join(f"{p} {(v - w.baseline) / MiB:+.0f} MiB" for p, v in sorted(w.phase_peaks.items())
                                 if v > w.baseline + bound)
                fails.append(f"RSS of {name} grew from {w.baseline / MiB:.1f} MiB to {w.peak / MiB:.1f} MiB, more than "
                             f"+{args.rss_bound:.0f} MiB (while fuzzing: {over})")
        if monitor.max_stall > args.max_stall:
            fails.append(f"no result was stored for {monitor.max_stall:.0f} s (while fuzzing {monitor.max_stall_phase}; "
                         f"bound {args.max_stall:.0f} s)")
    health_summary = {}
    if prober:
        for name in prober.ok:
            health_summary[name] = {"ok": prober.ok[name], "failed": len(prober.failures[name]),
                                    "max_latency_s": round(prober.max_latency[name], 2)}
            if prober.failures[name]:
                fails.append(f"/healthz of {name} failed {len(prober.failures[name])} times while fuzzing "
                             f"(of {prober.ok[name] + len(prober.failures[name])}): {sample(prober.failures[name], 3)}")

    # rejections: from the bus and the logger's file, one per (source, instance, seq)
    seen = set()
    all_rejections = []
    for e in (bus.events if bus else []) + (rejections_from_log(stack.data_dir) if stack.data_dir else []):
        if e.get("type") != "message.rejected":
            continue
        key = (e.get("source"), e.get("instance"), e.get("seq"))
        if key in seen:
            continue
        seen.add(key)
        all_rejections.append(e)
        name = socket_of(e, stack)
        if name:
            rejection_events[name].append(e)
        else:
            rejection_unattributed.append(e)
    for name, r in reports.items():
        r.rejections = len(rejection_events[name])
        r.rejection_samples = [{k: e.get(k) for k in ("source", "message", "attributes")}
                               for e in rejection_events[name][:2]]
    without_reason = [e for e in all_rejections
                      if not isinstance(e.get("attributes"), dict) or not e["attributes"].get("reason")]
    for name in RECEIVERS:
        if name not in reports:
            continue
        r = reports[name]
        if r.malformed_sent() and r.rejections == 0:
            fails.append(f"no message.rejected event names socket {name} ({r.service} {r.bound_type}) after "
                         f"{r.malformed_sent()} malformed messages")
        limit = max(100, r.malformed_sent() // 10)
        if r.rejections > limit:
            fails.append(f"message.rejected is not rate-limited on {name}: {r.rejections} events for "
                         f"{r.malformed_sent()} malformed messages (at most {limit})")
    if rejection_unattributed:
        fails.append(f"{len(rejection_unattributed)} message.rejected events name no socket of this stack in "
                     f"attributes.socket: {sample([e.get('attributes') for e in rejection_unattributed], 3)}")
    if without_reason:
        fails.append(f"{len(without_reason)} of {len(all_rejections)} message.rejected events have no `reason` "
                     f"attribute: {sample([e.get('attributes') for e in without_reason], 2)}")
    for name, r in reports.items():
        if r.requests_expecting_reply and r.replies < r.requests_expecting_reply:
            fails.append(f"{name}: {r.requests_expecting_reply - r.replies} of {r.requests_expecting_reply} requests "
                         f"were never answered")
        if r.replies_not_error:
            fails.append(f"{name}: answers to malformed requests are not error replies: {sample(r.replies_not_error, 3)}")
        if r.send_timeouts:
            fails.append(f"{name}: {r.send_timeouts} sends blocked for 5 s (the service stopped reading)")
    if bus:
        if bus.malformed:
            fails.append(f"the status bus delivered {bus.malformed} malformed events of {bus.received} "
                         f"({bus.malformed_bytes / MiB:.1f} MiB) to a subscriber: {sample(bus.malformed_samples, 4)}")
        if bus.received == 0:
            fails.append("a subscriber to status_out received nothing at all")
    if stack.data_dir:
        log_lines, log_bad, log_samples = log_file_problems(stack.data_dir)
        if log_bad:
            fails.append(f"{log_bad} of {log_lines} lines of logs/events*.jsonl are not well-formed events: "
                         f"{sample(log_samples, 3)}")

    summary = {
        "seed": seed, "directory": root, "messages_per_socket": args.messages, "big_frames_per_socket": args.big_frames,
        "big_size": args.big_size, "rss_bound_mib": args.rss_bound,
        "sockets": {n: {"service": r.service, "type": r.bound_type, "malformed_messages": r.app_messages,
                        "huge_json": r.huge_json, "subscription_messages": r.subscriptions,
                        "big_frames": r.big_frames, "big_frames_failed": r.big_frames_failed,
                        "raw_connections": r.raw_connections, "send_timeouts": r.send_timeouts,
                        "requests_expecting_reply": r.requests_expecting_reply, "replies": r.replies,
                        "huge_json_replies": r.huge_replies,
                        "rejections_seen": r.rejections, "rejection_samples": r.rejection_samples,
                        "seconds": round(r.seconds, 1), "notes": r.notes[:5]} for n, r in reports.items()},
        "rejections_unattributed": len(rejection_unattributed),
        "http": {n: {"port": h.port, "requests": h.requests, "outcomes": h.outcomes, "idle_opened": h.idle_opened,
                     "idle_refused": h.idle_refused, "idle_closed_by_server": h.idle_closed_by_server,
                     "slowloris_opened": h.slowloris_opened, "slowloris_closed_by_server": h.slowloris_closed_by_server,
                     "slowloris_first_close_s": (round(h.slowloris_first_close_s, 1)
                                                 if h.slowloris_first_close_s is not None else None),
                     "notes": h.notes}
                 for n, h in http_reports.items()},
        "rss": rss_summary, "healthz": health_summary,
        "bus": {"received": bus.received if bus else 0, "malformed": bus.malformed if bus else 0,
                "types": dict(sorted(bus.types.items())) if bus else {}},
        "event_log": {"lines": log_lines, "malformed": log_bad},
        "results": store_summary,
        "max_store_stall_s": round(monitor.max_stall, 1) if monitor else None,
        "failures": fails, "passed": not fails,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary, infos)
    if fails:
        print(f"fuzz: FAILED: {len(fails)} checks failed (kept {root})", file=sys.stderr)
        return 1
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def print_summary(s: dict, infos: list[str]) -> None:
    print("=" * 110)
    print(f"Baton fuzz summary (seed {s['seed']}, {s['messages_per_socket']} messages per socket, "
          f"{s['big_frames_per_socket']} x {s['big_size'] / MiB:.0f} MiB frames per socket)")
    print(f"directory: {s['directory']}")
    print(f"{'socket':<11} {'service':<10} {'type':<5} {'malformed':>9} {'huge':>5} {'subs':>6} {'big':>4} "
          f"{'raw conn':>8} {'replies':>13} {'rejected':>9} {'secs':>6}")
    for n, r in s["sockets"].items():
        replies = f"{r['replies']}/{r['requests_expecting_reply']}" if r["requests_expecting_reply"] else "-"
        print(f"{n:<11} {r['service']:<10} {r['type']:<5} {r['malformed_messages']:>9} {r['huge_json']:>5} "
              f"{r['subscription_messages']:>6} {r['big_frames']:>4} {r['raw_connections']:>8} {replies:>13} "
              f"{r['rejections_seen']:>9} {r['seconds']:>6}")
        for note in r["notes"]:
            print(f"    note: {note}")
    print(f"message.rejected events naming no socket of the stack: {s['rejections_unattributed']}")
    print(f"{'service':<12} {'RSS start':>10} {'peak':>10} {'growth':>10}  peak while / phases over the bound")
    for n, r in s["rss"].items():
        growth = f"{r['growth_mib']:+.1f}" if r["growth_mib"] is not None else "?"
        print(f"{n:<12} {r['start_mib']:>9.1f}M {r['peak_mib']:>9.1f}M {growth:>9}M  {r['peak_while']}"
              + (f" / over: {', '.join(r['phases_over_bound'])}" if r["phases_over_bound"] else ""))
    for n, h in s["http"].items():
        outcomes = "; ".join(f"{c}: {', '.join(f'{k} x{v}' for k, v in sorted(o.items()))}"
                             for c, o in sorted(h["outcomes"].items()) if not c.startswith("random") and c in (
                                 "100 KiB request line (query)", "100 KiB request line (path)", "100 KiB header",
                                 "1000 headers (100 KiB)", "100 MiB body"))
        print(f"http {n} :{h['port']}: {h['requests']} requests; idle {h['idle_opened']} "
              f"(refused {h['idle_refused']}, closed by server {h['idle_closed_by_server']}); slow-loris "
              f"{h['slowloris_opened']} (closed by server {h['slowloris_closed_by_server']}, first after "
              f"{h['slowloris_first_close_s']} s); {outcomes}")
        for note in h["notes"]:
            print(f"    note: {note}")
    for n, h in s["healthz"].items():
        print(f"healthz {n}: {h['ok']} ok, {h['failed']} failed, slowest {h['max_latency_s']} s")
    print(f"bus subscriber: {s['bus']['received']} messages, {s['bus']['malformed']} malformed; "
          f"events.jsonl: {s['event_log']['lines']} lines, {s['event_log']['malformed']} malformed")
    print(f"results: {s['results']}; longest time without a new result while fuzzing: {s['max_store_stall_s']} s")
    for line in infos:
        print(line)
    print("-" * 110)
    if s["failures"]:
        print(f"FAILED: {len(s['failures'])} checks failed")
        for f in s["failures"]:
            print("  ✗ " + f)
    else:
        print("PASSED: every check passed")


if __name__ == "__main__":
    sys.exit(main())
