#!/usr/bin/env python3
"""Black-box chaos harness for Baton.

Starts a Baton stack (the services one by one, or `baton up`) on loopback TCP or ipc endpoints in a temporary
directory, runs one job every 150 ms with an external Python algorithm whose output is a deterministic function
of BATON_RUN_ID, and for --duration seconds SIGKILLs services (and, in --mode up, `baton up` itself), restarts
them and SIGSTOPs processors. Then it pauses the job, lets the stack drain, stops it with SIGTERM and checks,
with its own oracle derived from the user documentation only:

  * every slot of the job's grid (anchor + n * every) from the first fired slot up to the pause is stored
    exactly once, byte for byte equal to the algorithm's deterministic output (results.sqlite);
  * with overlap: forbid, every slot not stored was skipped (run.skipped in logs/events.jsonl) for overlap
    while an earlier run of the job was really still running, and no run was fired while another ran;
  * `baton audit --config FILE` exits 0;
  * every event in the logger's event log matches docs/protocol.schema.json (python3-jsonschema);
  * no process carrying the test directory in its command line or environment survives the stop, and no
    algorithm command (or child of one) outlived an algorithm that was SIGKILLed by more than 2 s;
  * no `*.partial` file remains under the data directory;
  * beside that job, a pipelined one (parts, a per-part stage, a merge, the store; scripts/chaos_pipeline.py,
    unless --no-pipeline): every fired run has exactly one stored merged row, byte for byte its own oracle.

Python 3 standard library only. Exit status 0 only if every check passes.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import chaos_pipeline  # scripts/chaos_pipeline.py: the pipelined job, its scripts and its oracle

JOB = "chaos"
EVERY_MS = 150
ORPHAN_GRACE_S = 2.0  # how long after a SIGKILLed algorithm its command may still be seen alive
# Whole second not on the 150 ms grid counted from 1970: checks that the anchor is honoured.
ANCHOR = "2020-01-01T00:00:01Z"
ANCHOR_MS = int(dt.datetime(2020, 1, 1, 0, 0, 1, tzinfo=dt.timezone.utc).timestamp() * 1000)
PROCESSORS = 3
LINGER_MAX_S = 2.5  # the algorithm's forked child lives at most this long

ALGORITHM_SCRIPT = r'''
import hashlib, json, os, subprocess, sys, time

def output_for(run_id):
    h = hashlib.sha256(run_id.encode()).digest()
    r = int.from_bytes(h[0:4], "big") % 1000
    if r < 20:
        size = 1_000_000 + int.from_bytes(h[4:8], "big") % 48_577        # ~2 %: close to 1 MiB
    elif r < 200:
        size = 1 + int.from_bytes(h[4:8], "big") % 64                    # a few bytes
    else:
        size = 256 + int.from_bytes(h[4:8], "big") % 8000                # a few KiB
    kind = h[8] % 3
    if kind == 0:                                                        # binary, sha256 counter bytes
        out = bytearray()
        i = 0
        while len(out) < size:
            out += hashlib.sha256(h + i.to_bytes(8, "big")).digest()
            i += 1
        return bytes(out[:size])
    if kind == 1:                                                        # JSON lines
        lines = []
        total = 0
        i = 0
        while total < size:
            line = json.dumps({"run": run_id, "i": i, "v": hashlib.sha256(h + i.to_bytes(8, "big")).hexdigest()})
            lines.append(line)
            total += len(line) + 1
            i += 1
        return ("\n".join(lines) + "\n").encode()
    text = (run_id + " " + h.hex() + " ") * (size // 100 + 1)            # text, no final newline
    return text[:size].encode()

def main():
    run_id = os.environ["BATON_RUN_ID"]
    h = hashlib.sha256(run_id.encode()).digest()
    if h[9] < 26:                                                        # ~10 %: a child that lingers
        linger = 0.5 + (h[10] / 255.0) * (LINGER_MAX - 0.5)
        subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(float(sys.argv[1]))",
                          str(linger), "chaos-linger", TAG])
    time.sleep(0.01 + (h[11] / 255.0) * 0.05)                            # tens of ms of "work"
    data = output_for(run_id)
    with open(os.environ["BATON_OUTPUT"], "wb") as f:
        f.write(data)
    print("baton:progress 100% done", flush=True)

if __name__ == "__main__":
    main()
'''


def expected_output(run_id: str) -> bytes:
    """The oracle's own copy of the algorithm's output (the script above is executed for its function)."""
    return _ALGO_NS["output_for"](run_id)


_ALGO_NS: dict = {}
exec(compile(ALGORITHM_SCRIPT.replace("__main__", "__never__"), "<algorithm>", "exec"), _ALGO_NS)


# ---------------------------------------------------------------------------------------------------------
# small helpers


def missing_executables(bindir: str, tool: str) -> bool:
    """True (and says so on stderr) when a Baton executable is not in `bindir`."""
    for exe in ("baton", "baton-logger", "baton-scheduler", "baton-algorithm", "baton-processor"):
        if not os.access(os.path.join(bindir, exe), os.X_OK):
            print(f"{tool}: {os.path.join(bindir, exe)} is missing (build first, or give --bin)", file=sys.stderr)
            return True
    return False


def interrupt_on_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt, so the stack is cleaned up (also when started with
    SIGINT ignored, as a background job is)."""
    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)


def now() -> float:
    return time.time()


T0 = now()


def log(msg: str) -> None:
    print(f"[chaos {now() - T0:7.1f}s] {msg}", flush=True)


def iso_ms(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_iso_ms(s: str) -> int | None:
    m = re.match(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:?\d\d)?$", s.strip())
    if not m:
        return None
    y, mo, d, h, mi, se, frac, tz = m.groups()
    t = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(se), tzinfo=dt.timezone.utc)
    ms = int(t.timestamp()) * 1000
    if frac:
        ms += int((frac + "000")[:3])
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        hh, mm = int(tz[1:3]), int(tz[-2:])
        ms -= sign * (hh * 3600 + mm * 60) * 1000
    return ms


def slot_of_run(run_id: str) -> tuple[int | None, str]:
    """(logical time in ms, suffix) from `<job>@<logical time>[~x]`."""
    if "@" not in run_id:
        return None, ""
    rest = run_id.split("@", 1)[1]
    suffix = ""
    if "~" in rest:
        rest, suffix = rest.split("~", 1)
    return parse_iso_ms(rest), suffix


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port_run(n: int) -> int:
    for _ in range(200):
        base = free_port()
        if base + n < 65535 and all(port_is_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no run of free ports")


def proc_read(pid: int, name: str) -> bytes:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return b""


def proc_ppid(pid: int) -> int | None:
    stat = proc_read(pid, "stat")
    if not stat:
        return None
    try:
        return int(stat[stat.rindex(b")") + 2:].split()[1])
    except (ValueError, IndexError):
        return None


def proc_state(pid: int) -> str:
    stat = proc_read(pid, "stat")
    if not stat:
        return ""
    try:
        return stat[stat.rindex(b")") + 2:].split()[0].decode()
    except (ValueError, IndexError):
        return ""


def proc_start(pid: int) -> int | None:
    stat = proc_read(pid, "stat")
    if not stat:
        return None
    try:
        return int(stat[stat.rindex(b")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def alive(pid: int, start: int | None = None) -> bool:
    st = proc_state(pid)
    if not st or st == "Z":
        return False
    return start is None or proc_start(pid) == start


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def children_map() -> dict[int, list[int]]:
    m: dict[int, list[int]] = {}
    for pid in all_pids():
        pp = proc_ppid(pid)
        if pp is not None:
            m.setdefault(pp, []).append(pid)
    return m


def descendants(pid: int, cmap: dict[int, list[int]] | None = None) -> list[int]:
    cmap = cmap if cmap is not None else children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in cmap.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def cmdline(pid: int) -> str:
    return proc_read(pid, "cmdline").replace(b"\0", b" ").decode(errors="replace").strip()


def marked_processes(marker: str, exclude: set[int]) -> list[int]:
    """Processes with `marker` in their command line or environment (zombies excluded)."""
    mb = marker.encode()
    out = []
    for pid in all_pids():
        if pid in exclude:
            continue
        if mb in proc_read(pid, "cmdline") or mb in proc_read(pid, "environ"):
            if alive(pid):
                out.append(pid)
    return out


# ---------------------------------------------------------------------------------------------------------
# the stack


@dataclass
class Service:
    name: str          # logger, scheduler, algorithm, processor-1 ...
    binary: str
    args: list[str]
    proc: subprocess.Popen | None = None
    starts: int = 0


@dataclass
class Stack:
    bindir: str
    root: str                      # the test's temporary directory
    mode: str                      # services | up
    overlap: str
    transport: str
    config: str = ""
    data_dir: str = ""
    services: dict[str, Service] = field(default_factory=dict)
    up: subprocess.Popen | None = None
    up_starts: int = 0
    all_popen: list[subprocess.Popen] = field(default_factory=list)
    logdir: str = ""

    def setup(self, heartbeat: str = "1s", lease: str = "2s", *, job: str = JOB, every_ms: int = EVERY_MS,
              processors: int = PROCESSORS, linger_max: float = LINGER_MAX_S, concurrency: int = 3,
              pipeline: bool = False) -> None:
        """Writes the config and the algorithm (and, with `pipeline`, the pipelined job of chaos_pipeline.py),
        and names the services. Sets `endpoints`, `ports` (each bound
        socket's TCP port; empty over ipc), `metrics` and `http_ports` (each service's /metrics port)."""
        self.data_dir = os.path.join(self.root, "data")
        self.logdir = os.path.join(self.root, "out")
        os.makedirs(self.data_dir, exist_ok=True)
        os.makedirs(self.logdir, exist_ok=True)
        algo = os.path.join(self.root, "algorithm.py")
        with open(algo, "w") as f:
            f.write(f"LINGER_MAX = {linger_max}\nTAG = {self.root!r}\n" + ALGORITHM_SCRIPT)
        names = ["runs", "control", "results", "acks", "status_in", "status_out", "query", "reports", "algorithm_control"]
        if self.transport == "ipc":
            os.makedirs(os.path.join(self.root, "ipc"), exist_ok=True)
            self.ports = {}
            endpoints = {n: f"ipc://{self.root}/ipc/{n}" for n in names}
        else:
            ports: set[int] = set()
            while len(ports) < len(names):
                ports.add(free_port())
            self.ports = dict(zip(names, sorted(ports)))
            endpoints = {n: f"tcp://127.0.0.1:{p}" for n, p in self.ports.items()}
        self.endpoints = endpoints
        self.metrics = {"logger": free_port(), "scheduler": free_port(), "algorithm": free_port(),
                        "processor": free_port_run(processors)}
        lines = [
            f"data_dir: {self.data_dir}",
            "endpoints:",
            *[f"  {n}: {e}" for n, e in endpoints.items()],
            "processor:",
            f"  count: {processors}",
            "  timeout: 1m",
            f"  lease: {lease}",
            "  retries: 1000",
            "  backoff: 200ms",
            "  backoff_max: 2s",
            "retention:",
            "  max_age: forever",
            "algorithm:",
            f"  concurrency: {concurrency}",
            "log:",
            "  level: info",
            f"  heartbeat: {heartbeat}",
            "metrics:",
            "  host: 127.0.0.1",
            *[f"  {k}: {v}" for k, v in self.metrics.items()],
            "jobs:",
            f"  - name: {job}",
            f"    every: {every_ms}ms",
            f'    anchor: "{ANCHOR}"',
            "    misfire: all",
            f"    overlap: {self.overlap}",
            f"    command: [{sys.executable}, {algo}]",
            "    timeout: 1m",
            "    retries: 100",
        ]
        if pipeline:
            lines += chaos_pipeline.job_yaml(self.root, sys.executable, ANCHOR, self.overlap)
        self.config = os.path.join(self.root, "baton.yaml")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        b = lambda n: os.path.join(self.bindir, n)  # noqa: E731
        cfg = ["--config", self.config]
        self.services = {
            "logger": Service("logger", b("baton-logger"), cfg),
            "scheduler": Service("scheduler", b("baton-scheduler"), cfg),
            "algorithm": Service("algorithm", b("baton-algorithm"), cfg),
        }
        self.http_ports = {n: self.metrics[n] for n in ("logger", "scheduler", "algorithm")}
        for i in range(1, processors + 1):
            port = self.metrics["processor"] + i - 1
            self.services[f"processor-{i}"] = Service(
                f"processor-{i}", b("baton-processor"), cfg + ["--name", f"processor-{i}", "--metrics-port", str(port)])
            self.http_ports[f"processor-{i}"] = port

    def env(self) -> dict[str, str]:
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("BATON_"):
                del e[k]
        e["BATON_CONFIG"] = self.config
        e["BATON_CHAOS_DIR"] = self.root
        return e

    def _spawn(self, argv: list[str], logname: str) -> subprocess.Popen:
        out = open(os.path.join(self.logdir, logname), "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             env=self.env(), cwd=self.root, start_new_session=True)
        out.close()
        self.all_popen.append(p)
        return p

    # services mode -------------------------------------------------------------------------------------
    def start_service(self, name: str) -> None:
        s = self.services[name]
        s.starts += 1
        s.proc = self._spawn([s.binary] + s.args, f"{name}.log")

    def service_pid(self, name: str) -> int | None:
        if self.mode == "services":
            s = self.services[name]
            if s.proc is not None and s.proc.poll() is None:
                return s.proc.pid
            return None
        return self.up_children().get(name)

    # up mode -------------------------------------------------------------------------------------------
    def start_up(self) -> None:
        self.up_starts += 1
        self.up = self._spawn([os.path.join(self.bindir, "baton"), "up", "--config", self.config], "up.log")

    def up_children(self) -> dict[str, int]:
        """name -> pid of the services `baton up` runs (found through /proc, named by BATON_INSTANCE)."""
        if self.up is None or self.up.poll() is not None:
            return {}
        out = {}
        cmap = children_map()
        for pid in descendants(self.up.pid, cmap):
            argv = proc_read(pid, "cmdline").split(b"\0")
            exe = os.path.basename(argv[0].decode(errors="replace")) if argv else ""
            if not exe.startswith("baton-") or not alive(pid):
                continue
            service = exe[len("baton-"):]
            name = service
            if service == "processor":
                env = proc_read(pid, "environ").split(b"\0")
                inst = [x.split(b"=", 1)[1].decode() for x in env if x.startswith(b"BATON_INSTANCE=")]
                name = inst[0] if inst else f"processor-?{pid}"
                if "--name" in [a.decode(errors="replace") for a in argv]:
                    i = [a.decode() for a in argv].index("--name")
                    if i + 1 < len(argv):
                        name = argv[i + 1].decode()
            out[name] = pid
        return out

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([os.path.join(self.bindir, "baton"), *args, "--config", self.config],
                              stdin=subprocess.DEVNULL, capture_output=True, env=self.env(), cwd=self.root,
                              timeout=timeout)

    def pause(self, job: str, within: float = 30) -> tuple[float | None, str]:
        """`baton pause JOB`, retried for `within` seconds while services restart: (when the successful attempt
        was sent, or None, and the last error seen)."""
        last_err = ""
        deadline = time.time() + within
        while time.time() < deadline:
            sent = time.time()
            try:
                r = self.cli("pause", job, timeout=10)
                if r.returncode == 0:
                    return sent, ""
                last_err = (r.stdout + r.stderr).decode(errors="replace").strip()
            except subprocess.TimeoutExpired:
                last_err = "timed out"
            time.sleep(1)
        return None, last_err

    def start_all(self) -> None:
        if self.mode == "up":
            self.start_up()
            return
        self.start_service("logger")
        time.sleep(0.3)
        for name in self.services:
            if name != "logger":
                self.start_service(name)
                time.sleep(0.1)

    def kill_everything(self) -> None:
        """Last-resort cleanup: SIGKILL every process group we started and anything carrying our directory."""
        for p in self.all_popen:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGCONT)
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
        for p in self.all_popen:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for _ in range(3):
            pids = marked_processes(self.root, {os.getpid()})
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.3)


# ---------------------------------------------------------------------------------------------------------
# chaos


@dataclass
class ChaosStats:
    kills: dict[str, int] = field(default_factory=dict)
    algorithm_kills_during_command: int = 0
    up_kills: int = 0
    stops: int = 0
    stopped_seconds: float = 0.0
    orphans: list[str] = field(default_factory=list)
    survived_supervisor: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def algorithm_commands(stack: Stack, apid: int) -> list[tuple[int, int | None, str]]:
    """(pid, start time, command line) of every descendant of the algorithm service."""
    return [(p, proc_start(p), cmdline(p)) for p in descendants(apid)]


def run_chaos(stack: Stack, duration: float, rng: random.Random, stats: ChaosStats) -> None:
    end = now() + duration
    names = list(stack.services)
    stopped: dict[int, float] = {}           # pid -> SIGCONT time
    pending_restart: dict[str, float] = {}   # services mode: name -> restart time
    orphan_watch: list[tuple[float, list[tuple[int, int | None, str]]]] = []
    next_kill = now() + rng.uniform(0.5, 3.0)
    next_stop = now() + rng.uniform(1.0, 6.0)
    up_restart_at: float | None = None
    up_old_children: list[tuple[int, int | None, str]] = []

    while now() < end:
        t = now()
        # SIGCONT processors whose pause is over
        for pid, until in list(stopped.items()):
            if t >= until:
                try:
                    os.kill(pid, signal.SIGCONT)
                except OSError:
                    pass
                del stopped[pid]
        # a service that ended without being killed is a finding; it is started again
        if stack.mode == "services":
            for name, svc in stack.services.items():
                if svc.proc is not None and name not in pending_restart and svc.proc.poll() is not None:
                    stats.crashes.append(f"{name} exited on its own with status {svc.proc.returncode}")
                    log(f"{name} exited on its own with status {svc.proc.returncode}; starting it again")
                    pending_restart[name] = t + 0.5
        # restarts (services mode)
        for name, when in list(pending_restart.items()):
            if t >= when:
                stack.start_service(name)
                del pending_restart[name]
        # orphan checks: descendants of a SIGKILLed algorithm still alive 2 s later (the guard kills them at once;
        # 2 s leaves room for a loaded machine, as the issue allows `baton up`'s children)
        for entry in list(orphan_watch):
            when, procs = entry
            if t >= when:
                orphan_watch.remove(entry)
                for pid, start, cl in procs:
                    if alive(pid, start):
                        stats.orphans.append(f"pid {pid}: {cl}")
        # `baton up` restart once its old services are gone
        if up_restart_at is not None and t >= up_restart_at:
            still = [(p, s, c) for p, s, c in up_old_children if alive(p, s)]
            if still and t < up_restart_at + 15:
                pass
            else:
                for p, s, c in still:
                    stats.survived_supervisor.append(f"pid {p}: {c}")
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
                stack.start_up()
                up_restart_at = None
        # SIGSTOP one processor for 5-40 s
        if t >= next_stop and not stopped:
            procs = [n for n in names if n.startswith("processor-") and stack.service_pid(n)]
            if procs:
                victim = rng.choice(procs)
                pid = stack.service_pid(victim)
                pause = rng.uniform(5, 40)
                if pid:
                    try:
                        os.kill(pid, signal.SIGSTOP)
                        stopped[pid] = t + pause
                        stats.stops += 1
                        stats.stopped_seconds += pause
                        log(f"SIGSTOP {victim} (pid {pid}) for {pause:.1f}s")
                    except OSError:
                        pass
            next_stop = t + rng.uniform(8, 20)
        # SIGKILL one or two services (or `baton up` itself)
        if t >= next_kill and up_restart_at is None:
            next_kill = t + rng.uniform(0.5, 3.0)
            if stack.mode == "up" and rng.random() < 0.12 and stack.up is not None and stack.up.poll() is None:
                cmap = children_map()
                up_old_children = [(p, proc_start(p), cmdline(p)) for p in descendants(stack.up.pid, cmap)]
                os.kill(stack.up.pid, signal.SIGKILL)
                stack.up.wait()
                stats.up_kills += 1
                for pid in list(stopped):  # a stopped process could not act on its parent's death
                    try:
                        os.kill(pid, signal.SIGCONT)
                    except OSError:
                        pass
                    del stopped[pid]
                log(f"SIGKILL baton up (pid {stack.up.pid}); {len(up_old_children)} descendants should stop")
                up_restart_at = t + rng.uniform(0.2, 1.5)
                continue
            count = 1 if rng.random() < 0.6 else 2
            victims = rng.sample(names, count)
            for victim in victims:
                pid = stack.service_pid(victim)
                if pid is None:
                    continue
                during_command = False
                if victim == "algorithm":
                    # preferably while its command runs: wait up to 1 s for a child process
                    deadline = now() + 1.0
                    while now() < deadline:
                        if descendants(pid):
                            during_command = True
                            break
                        time.sleep(0.01)
                    watch = algorithm_commands(stack, pid)
                try:
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    continue
                stopped.pop(pid, None)
                stats.kills[victim] = stats.kills.get(victim, 0) + 1
                if victim == "algorithm":
                    if during_command:
                        stats.algorithm_kills_during_command += 1
                    orphan_watch.append((now() + ORPHAN_GRACE_S, watch))
                log(f"SIGKILL {victim} (pid {pid})" + (" while its command ran" if during_command else ""))
                if stack.mode == "services":
                    svc = stack.services[victim]
                    if svc.proc is not None:
                        svc.proc.wait()
                    pending_restart[victim] = now() + rng.uniform(0.0, 1.5)
        time.sleep(0.02)

    # end of chaos: everything running again
    for pid in list(stopped):
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            pass
    time.sleep(0.6)
    for entry in orphan_watch:
        for pid, start, cl in entry[1]:
            if alive(pid, start):
                stats.orphans.append(f"pid {pid}: {cl}")
    if stack.mode == "services":
        for name in pending_restart:
            stack.start_service(name)
    elif up_restart_at is not None or stack.up is None or stack.up.poll() is not None:
        deadline = now() + 15
        while now() < deadline and any(alive(p, s) for p, s, _ in up_old_children):
            time.sleep(0.1)
        for p, s, c in up_old_children:
            if alive(p, s):
                stats.survived_supervisor.append(f"pid {p}: {c}")
                os.kill(p, signal.SIGKILL)
        stack.start_up()


# ---------------------------------------------------------------------------------------------------------
# reading what Baton wrote


def read_events(data_dir: str) -> list[dict]:
    logs = os.path.join(data_dir, "logs")
    files = []
    if os.path.isdir(logs):
        for n in os.listdir(logs):
            m = re.match(r"^events(?:\.(\d+))?\.jsonl$", n)
            if m:
                files.append((-(int(m.group(1)) if m.group(1) else 0), n))
    events = []
    for _, n in sorted(files):  # events.N (oldest) ... events.1, events.jsonl
        with open(os.path.join(logs, n), "rb") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if isinstance(e, dict) and "type" not in e and isinstance(e.get("event"), dict):
                    e = e["event"]
                if isinstance(e, dict) and "type" in e:
                    events.append(e)
    return events


def schema_failures(events: list[dict]) -> list[str]:
    """Events that do not match $defs/event of docs/protocol.schema.json (needs python3-jsonschema)."""
    import protocol_check  # scripts/protocol_check.py, next to this file
    schema_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "protocol.schema.json")
    with open(schema_path) as f:
        validator = protocol_check.validators(json.load(f))("event")
    failures = []
    for event in events:
        errors = list(validator.iter_errors(event))
        if errors:
            failures.append(f"{event.get('type')} seq {event.get('seq')}: {errors[0].message[:160]}")
    return failures


@dataclass
class StoredRun:
    run_id: str
    parts: dict[int, bytes | None] = field(default_factory=dict)   # None: could not reconstruct
    problems: list[str] = field(default_factory=list)


def read_store(path: str) -> tuple[dict[str, StoredRun], list[str]]:
    """Every run in the built-in store with its bytes, reconstructed from `results.blob` or `records`."""
    runs: dict[str, StoredRun] = {}
    problems: list[str] = []
    if not os.path.exists(path):
        return runs, [f"{path} does not exist"]
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        cols = [r[1] for r in con.execute("PRAGMA table_info(results)")]
        if not cols:
            return runs, ["results table missing"]
        has_records = bool(list(con.execute("PRAGMA table_info(records)")))
        records: dict[tuple[str, int], list[tuple[int, bytes]]] = {}
        if has_records:
            for run_id, part, line, data in con.execute("SELECT run_id, part, line, data FROM records"):
                if isinstance(data, str):
                    data = data.encode()
                records.setdefault((run_id, part), []).append((line, data))
        want = ["run_id", "part", "size", "sha256", "blob"]
        missing = [c for c in want if c not in cols]
        if missing:
            return runs, [f"results table lacks columns {missing}"]
        for run_id, part, size, sha, blob in con.execute(
                "SELECT run_id, part, size, sha256, blob FROM results"):
            r = runs.setdefault(run_id, StoredRun(run_id))
            if part in r.parts:
                r.problems.append(f"part {part} stored twice")
            data: bytes | None = None
            if isinstance(blob, str):
                blob = blob.encode()
            if blob is not None and len(blob) > 0:
                data = bytes(blob)
            else:
                lines = sorted(records.get((run_id, part), []))
                numbers = [n for n, _ in lines]
                if len(set(numbers)) != len(numbers):
                    r.problems.append(f"part {part}: a records line stored twice")
                body = [d for _, d in lines]
                candidates = [b"\n".join(body) + b"\n", b"\n".join(body), b"".join(body)]
                if not body:
                    candidates = [b""]
                for c in candidates:
                    if sha and hashlib.sha256(c).hexdigest() == str(sha).lower():
                        data = c
                        break
                if data is None:
                    r.problems.append(f"part {part}: records do not add up to its sha256")
            if data is not None:
                if sha and hashlib.sha256(data).hexdigest() != str(sha).lower():
                    r.problems.append(f"part {part}: stored bytes do not match the stored sha256")
                if size is not None and int(size) != len(data):
                    r.problems.append(f"part {part}: stored size {size} but {len(data)} bytes")
            r.parts[part] = data
    finally:
        con.close()
    return runs, problems


def ledger_events(data_dir: str) -> list[dict]:
    """Status events can be lost (a publisher killed before it flushed; PROTOCOL.md counts them as seq gaps),
    and a skip's reason is only on the bus and in the scheduler's ledger. So the events the log lacks are
    filled from the services' own records (ARCHITECTURE.md, "Storage"): the scheduler's fires (a slot fired or
    skipped, when and why) and the algorithm's run ledger (when a run ended). These only ever explain a slot
    that is not stored; what must be stored is still derived from the slot grid alone."""
    out: list[dict] = []
    fires = os.path.join(data_dir, "scheduler", "state.sqlite")
    ledger = os.path.join(data_dir, "algorithm", "outbox.sqlite")
    try:
        if os.path.exists(fires):
            con = sqlite3.connect(f"file:{fires}?mode=ro", uri=True, timeout=5)
            try:
                for run_id, state, detail, fired_at, logical_time in con.execute(
                        "SELECT run_id, state, detail, fired_at, logical_time FROM fires WHERE job = ?", (JOB,)):
                    if state == "skipped":
                        out.append({"type": "run.skipped", "job": JOB, "run": run_id, "time": fired_at,
                                    "message": detail, "attributes": {"logical_time": logical_time},
                                    "from_ledger": True})
                    elif state != "queued":
                        out.append({"type": "run.scheduled", "job": JOB, "run": run_id, "time": fired_at,
                                    "attributes": {"logical_time": logical_time, "trigger": "schedule"},
                                    "from_ledger": True})
            finally:
                con.close()
        if os.path.exists(ledger):
            con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5)
            try:
                for run_id, state, updated_at in con.execute(
                        "SELECT run_id, state, updated_at FROM runs WHERE job = ? AND state IN ('finished', 'cancelled')",
                        (JOB,)):
                    out.append({"type": "run.finished" if state == "finished" else "run.cancelled", "job": JOB,
                                "run": run_id, "time": updated_at, "from_ledger": True})
            finally:
                con.close()
    except sqlite3.Error:
        pass
    return out


def stored_count(path: str, job: str | None = None) -> int:
    """Runs in the store (of `job` only, when given)."""
    if not os.path.exists(path):
        return 0
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(DISTINCT run_id) FROM results WHERE run_id LIKE ?",
                               (job + "@%" if job else "%",)).fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return -1


def stored_slots(path: str, job: str | None = None) -> set[int]:
    """Logical times of the runs in the store (of `job` only, when given)."""
    out = set()
    if not os.path.exists(path):
        return out
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            for (run_id,) in con.execute("SELECT DISTINCT run_id FROM results WHERE run_id LIKE ?",
                                         (job + "@%" if job else "%",)):
                ms, _ = slot_of_run(run_id)
                if ms is not None:
                    out.add(ms)
        finally:
            con.close()
    except sqlite3.Error:
        pass
    return out


# ---------------------------------------------------------------------------------------------------------
# the oracle


@dataclass
class Verdict:
    failures: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def fail(self, msg: str) -> None:
        self.failures.append(msg)

    def info(self, msg: str) -> None:
        self.lines.append(msg)


def sample(items, n=8) -> str:
    items = list(items)
    s = ", ".join(str(x) for x in items[:n])
    return s + (f", … ({len(items)} in all)" if len(items) > n else "")


def check_results(stack: Stack, must_until_ms: int, v: Verdict) -> dict:
    store = os.path.join(stack.data_dir, "results.sqlite")
    runs, problems = read_store(store)
    for p in problems:
        v.fail(f"store: {p}")
    events = read_events(stack.data_dir)
    v.info(f"events in the log: {len(events)}")

    # slots of the job: stored runs, fired runs and skipped slots
    by_slot: dict[int, list[str]] = {}
    off_grid, foreign, corrupted = [], [], []
    for run_id, r in runs.items():
        if run_id.startswith(chaos_pipeline.JOB + "@"):
            continue  # checked by chaos_pipeline.check
        if not run_id.startswith(JOB + "@"):
            foreign.append(run_id)
            continue
        ms, suffix = slot_of_run(run_id)
        if ms is None or (ms - ANCHOR_MS) % EVERY_MS != 0:
            off_grid.append(run_id)
            continue
        by_slot.setdefault(ms, []).append(run_id)
        if r.problems:
            corrupted.append(f"{run_id}: {'; '.join(r.problems)}")
            continue
        parts = sorted(r.parts)
        if parts != list(range(len(parts))):
            corrupted.append(f"{run_id}: parts {parts} are not 0..n-1")
            continue
        if any(r.parts[p] is None for p in parts):
            corrupted.append(f"{run_id}: a part could not be read")
            continue
        got = b"".join(r.parts[p] for p in parts)
        base = run_id.split("~", 1)[0]
        want = expected_output(run_id)
        if got != want and got != expected_output(base):
            corrupted.append(f"{run_id}: {len(got)} bytes stored (sha256 {hashlib.sha256(got).hexdigest()[:12]}), "
                             f"expected {len(want)} bytes (sha256 {hashlib.sha256(want).hexdigest()[:12]})")

    # raw files (documented as <data_dir>/raw/<job>/<run>.result) must hold the same bytes
    raw_bad = []
    raw_dir = os.path.join(stack.data_dir, "raw", JOB)
    raw_count = 0
    if os.path.isdir(raw_dir):
        for n in os.listdir(raw_dir):
            if not n.endswith(".result"):
                continue
            raw_count += 1
            run_id = n[:-len(".result")]
            with open(os.path.join(raw_dir, n), "rb") as f:
                data = f.read()
            if data != expected_output(run_id) and data != expected_output(run_id.split("~", 1)[0]):
                raw_bad.append(f"{run_id}: {len(data)} bytes, expected {len(expected_output(run_id))}")

    # events the log lacks (lost on the bus) are taken from the ledgers; the log's own come first
    logged_runs = {(e.get("type"), e.get("run")) for e in events}
    filler = [e for e in ledger_events(stack.data_dir) if (e["type"], e["run"]) not in logged_runs]
    if filler:
        v.info(f"{len(filler)} fire/skip/end events missing from the event log were read from the services' ledgers")
    events = events + filler
    scheduled: dict[str, dict] = {}      # run id -> first run.scheduled event
    skipped: dict[int, list[dict]] = {}  # slot -> run.skipped events
    ended: dict[str, float] = {}         # run id -> time of its terminal event
    terminal_types = {"run.finished", "run.cancelled"}
    for e in events:
        if e.get("job") not in (None, JOB) and not str(e.get("run", "")).startswith(JOB + "@"):
            continue
        typ = e.get("type")
        run = e.get("run")
        attrs = e.get("attributes") or {}
        t = parse_iso_ms(e.get("time", "")) if e.get("time") else None
        if typ == "run.scheduled" and run:
            scheduled.setdefault(run, e)
        elif typ == "run.skipped":
            lt = attrs.get("logical_time")
            ms = parse_iso_ms(lt) if lt else (slot_of_run(run)[0] if run else None)
            if ms is not None:
                skipped.setdefault(ms, []).append(e)
        elif run and t is not None and (typ in terminal_types or
                                        (typ == "run.failed" and str(attrs.get("retry", "")).lower() != "true")):
            ended[run] = min(ended.get(run, t), t)

    fired_slots = set()
    for run in scheduled:
        ms, _ = slot_of_run(run)
        if ms is not None:
            fired_slots.add(ms)
    candidates = [s for s in list(by_slot) + list(fired_slots) + list(skipped)]
    if not candidates:
        v.fail("nothing was fired, stored or skipped at all")
        return {}
    first = min(candidates)
    last = ANCHOR_MS + ((must_until_ms - ANCHOR_MS) // EVERY_MS) * EVERY_MS
    expected = list(range(first, last + 1, EVERY_MS))
    v.info(f"slot grid: anchor {ANCHOR}, every {EVERY_MS} ms; expected slots {iso_ms(first)} .. {iso_ms(last)}")

    missing, duplicated, skipped_ok, skipped_bad = [], [], [], []
    both = []
    skip_reasons: dict[str, int] = {}
    for ms in expected:
        stored = by_slot.get(ms, [])
        sk = skipped.get(ms, [])
        for e in sk:
            reason = (e.get("message") or "").strip() or "(no message)"
            key = re.sub(r"[0-9T:.\-Z@~]{6,}", "…", reason)[:90]
            skip_reasons[key] = skip_reasons.get(key, 0) + 1
        if len(stored) > 1:
            duplicated.append(f"{iso_ms(ms)} stored as {stored}")
        if stored and sk:
            both.append(iso_ms(ms))
        if stored:
            continue
        if stack.overlap == "allow" or not sk:
            missing.append(iso_ms(ms))
            continue
        # forbid: a skip is justified only for overlap while an earlier run was really still running
        e = sk[0]
        msg = (e.get("message") or "").lower()
        t_skip = parse_iso_ms(e.get("time", "")) or ms
        if "overlap" not in msg and "running" not in msg and "still" not in msg:
            skipped_bad.append(f"{iso_ms(ms)}: skipped for another reason: {e.get('message')!r}")
            continue
        tol = 1000  # the scheduler learns of an end through the reports channel, a little later
        running = []
        for run, se in scheduled.items():
            rms, _ = slot_of_run(run)
            if rms is None or rms >= ms:
                continue
            t_fired = parse_iso_ms(se.get("time", "")) or rms
            t_end = ended.get(run)
            # running when the slot came due, or when the scheduler decided (it learns of ends a little late)
            if t_fired <= max(t_skip, ms) and (t_end is None or t_end >= ms or t_end >= t_skip - tol):
                running.append(run)
        if running:
            skipped_ok.append(iso_ms(ms))
        else:
            prev = [r for r in scheduled if (slot_of_run(r)[0] or 0) < ms]
            latest = max(prev, key=lambda r: slot_of_run(r)[0]) if prev else None
            skipped_bad.append(f"{iso_ms(ms)}: skipped at {iso_ms(t_skip)} ({e.get('message')!r}) but no earlier "
                               f"run was running then" + (f" (the latest, {latest}, ended at "
                                                          f"{iso_ms(ended[latest]) if latest in ended else '?'})"
                                                          if latest else ""))

    # forbid: no run may be fired while an earlier one runs (first fire of each run, by event times)
    overlap_violations = []
    if stack.overlap == "forbid":
        fires = sorted(((parse_iso_ms(e.get("time", "")) or 0, run) for run, e in scheduled.items()
                        if (e.get("attributes") or {}).get("trigger", "schedule") == "schedule"))
        for t_fire, run in fires:
            rms, _ = slot_of_run(run)
            for other, oe in scheduled.items():
                oms, _ = slot_of_run(other)
                if oms is None or rms is None or oms >= rms:
                    continue
                t_ofire = parse_iso_ms(oe.get("time", "")) or 0
                t_oend = ended.get(other)
                if t_ofire < t_fire and t_oend is not None and t_oend > t_fire + 100:
                    overlap_violations.append(f"{run} fired at {iso_ms(t_fire)} while {other} ran until "
                                              f"{iso_ms(t_oend)}")
                    break

    # every fired run must reach a terminal state (run.finished, run.cancelled, or run.failed without retry)
    # (a stored run evidently finished: its missing event is a lost event, counted below, not a stuck run)
    unended = sorted(run for run in scheduled if run not in ended and (slot_of_run(run)[0] or 0) <= last)
    unended_stored = [run for run in unended if run in runs]
    unended = [run for run in unended if run not in runs]
    if unended_stored:
        v.info(f"{len(unended_stored)} stored runs have no terminal event in the log (lost events): "
               f"{sample(unended_stored, 4)}")
    if unended:
        v.fail(f"{len(unended)} fired runs were neither stored nor reached a terminal state: {sample(unended, 5)}")

    # seq gaps in the event log (PROTOCOL.md: per publisher 1, 2, 3 ...; a new instance starts at 1)
    last_seq: dict[tuple, int] = {}
    lost: dict[str, int] = {}
    restarts = 0
    for e in events:
        key = (e.get("source"), e.get("instance"))
        seq = e.get("seq")
        if not isinstance(seq, int):
            continue
        prev = last_seq.get(key)
        if prev is not None:
            if seq == 1:
                restarts += 1
            elif seq > prev + 1:
                lost[f"{key[0]}/{key[1]}"] = lost.get(f"{key[0]}/{key[1]}", 0) + seq - prev - 1
        last_seq[key] = seq if prev is None or seq == 1 else max(prev, seq)
    reported = sum(1 for e in events if "lost status events" in str(e.get("message", "")))
    v.info(f"event log: {sum(lost.values())} events missing by seq from {len(lost)} publishers "
           f"({sample(sorted(lost.items()), 4) or 'none'}); {restarts} publishers restarted at seq 1 under the "
           f"same instance name; 'lost status events' warnings: {reported}")

    # stored runs after the must-store range are checked for correctness and uniqueness too
    for ms, stored in by_slot.items():
        if ms > last and len(stored) > 1:
            duplicated.append(f"{iso_ms(ms)} stored as {stored}")

    summary = {
        "expected": len(expected), "stored": sum(1 for ms in expected if by_slot.get(ms)),
        "stored_total": len(runs), "missing": len(missing), "duplicated": len(duplicated),
        "corrupted": len(corrupted), "skipped_justified": len(skipped_ok), "skipped_unjustified": len(skipped_bad),
        "raw_files": raw_count, "raw_corrupted": len(raw_bad),
    }
    v.info(f"slots expected {summary['expected']}, stored {summary['stored']} (store holds {len(runs)} runs), "
           f"missing {len(missing)}, duplicated {len(duplicated)}, corrupted {len(corrupted)}")
    v.info(f"skipped: {len(skipped_ok)} justified (overlap while a run was running), {len(skipped_bad)} not; "
           f"skip reasons seen: {skip_reasons if skip_reasons else 'none'}")
    v.info(f"raw result files: {raw_count}, not matching the algorithm's output: {len(raw_bad)}")
    if missing:
        # a run id a millisecond or two off the grid is the slot stored under a wrong logical time
        near = {}
        for run_id in off_grid:
            ms, _ = slot_of_run(run_id)
            if ms is not None:
                g = ANCHOR_MS + round((ms - ANCHOR_MS) / EVERY_MS) * EVERY_MS
                if abs(g - ms) <= 2:
                    near[g] = run_id
        misnamed = [s for s in missing if parse_iso_ms(s) in near]
        truly = [s for s in missing if parse_iso_ms(s) not in near]
        v.fail(f"{len(missing)} slots neither stored nor (justifiably) skipped: {sample(missing)}")
        if misnamed:
            v.info(f"  of the missing slots, {len(misnamed)} were stored under a run id a millisecond off the grid "
                   f"(e.g. {near[parse_iso_ms(misnamed[0])]} for {misnamed[0]}); {len(truly)} were not run at all: "
                   f"{sample(truly)}")
        missing = truly or missing
        # group the missing slots into runs of consecutive slots, with what the log says about them
        groups, cur = [], []
        for s in missing:
            ms = parse_iso_ms(s)
            if cur and ms - cur[-1] == EVERY_MS:
                cur.append(ms)
            else:
                if cur:
                    groups.append(cur)
                cur = [ms]
        if cur:
            groups.append(cur)
        for g in groups[:10]:
            fired = sum(1 for ms in g if ms in fired_slots)
            v.info(f"  missing {iso_ms(g[0])} .. {iso_ms(g[-1])} ({len(g)} slots; run.scheduled seen for {fired})")
    if duplicated:
        v.fail(f"{len(duplicated)} slots stored more than once: {sample(duplicated)}")
    if corrupted:
        v.fail(f"{len(corrupted)} stored results differ from the algorithm's output: {sample(corrupted, 5)}")
    if raw_bad:
        v.fail(f"{len(raw_bad)} raw result files differ from the algorithm's output: {sample(raw_bad, 5)}")
    if skipped_bad:
        v.fail(f"{len(skipped_bad)} unjustified skips: {sample(skipped_bad, 5)}")
    if both:
        v.fail(f"{len(both)} slots both stored and recorded skipped: {sample(both)}")
    if overlap_violations:
        v.fail(f"overlap forbid violated {len(overlap_violations)} times: {sample(overlap_violations, 3)}")
    if off_grid:
        v.fail(f"{len(off_grid)} stored runs off the slot grid: {sample(off_grid)}")
    if foreign:
        v.fail(f"{len(foreign)} stored runs of an unknown job: {sample(foreign)}")
    return summary


# ---------------------------------------------------------------------------------------------------------
# main


def wait_for_store(stack: Stack, deadline: float, slots_needed: set[int], stable_s: float,
                   justified: callable = None, give_up_s: float = 45.0) -> bool:
    last_count, last_change = -2, now()
    while now() < deadline:
        count = stored_count(os.path.join(stack.data_dir, "results.sqlite"), JOB)
        if count != last_count:
            last_count, last_change = count, now()
        have = stored_slots(os.path.join(stack.data_dir, "results.sqlite"), JOB)
        outstanding = slots_needed - have
        if outstanding and justified is not None:
            outstanding = justified(outstanding)
        if not outstanding and now() - last_change >= stable_s:
            return True
        if outstanding and now() - last_change >= give_up_s:
            log(f"nothing stored for {give_up_s:.0f}s and {len(outstanding)} expected slots still missing; "
                f"giving up the drain")
            return False
        time.sleep(0.5)
    return False


def stop_stack(stack: Stack, v: Verdict) -> None:
    if stack.mode == "up":
        if stack.up is not None and stack.up.poll() is None:
            os.kill(stack.up.pid, signal.SIGTERM)
            try:
                stack.up.wait(timeout=45)
                if stack.up.returncode != 0:
                    v.fail(f"baton up exited with status {stack.up.returncode} after SIGTERM")
            except subprocess.TimeoutExpired:
                v.fail("baton up did not stop within 45 s of SIGTERM")
        return
    order = [n for n in stack.services if n != "logger"] + ["logger"]
    for group in (order[:-1], order[-1:]):
        for n in group:
            p = stack.services[n].proc
            if p is not None and p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for n in group:
            p = stack.services[n].proc
            if p is None:
                continue
            try:
                p.wait(timeout=30)
                if p.returncode not in (0, -signal.SIGTERM):
                    v.fail(f"{n} exited with status {p.returncode} after SIGTERM")
            except subprocess.TimeoutExpired:
                v.fail(f"{n} did not stop within 30 s of SIGTERM")


def wait_until_up(stack: Stack, timeout: float) -> bool:
    deadline = now() + timeout
    while now() < deadline:
        if stack.mode == "up":
            kids = stack.up_children()
            if stack.up is not None and stack.up.poll() is None and len(kids) >= 3 + PROCESSORS:
                return True
        elif all(stack.service_pid(n) for n in stack.services):
            return True
        time.sleep(0.2)
    return False


def main(argv: list[str] | None = None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=300, help="seconds of chaos (default 300)")
    ap.add_argument("--overlap", choices=["allow", "forbid"], default="allow")
    ap.add_argument("--mode", choices=["services", "up"], default="services")
    ap.add_argument("--bin", default=os.path.join(repo, ".build", "debug"), help="directory of the executables")
    ap.add_argument("--workdir", default=None, help="where the temporary directory is made (default: $TMPDIR)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--transport", choices=["tcp", "ipc"], default="tcp")
    ap.add_argument("--drain-timeout", type=float, default=180, help="longest wait for the stack to drain")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory even on success")
    ap.add_argument("--no-pipeline", action="store_true",
                    help="leave out the pipelined job (scripts/chaos_pipeline.py)")
    ap.add_argument("--no-chaos", action="store_true",
                    help="baseline: run for --duration without killing or stopping anything, then check the same")
    args = ap.parse_args(argv)

    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    bindir = os.path.abspath(args.bin)
    if missing_executables(bindir, "chaos"):
        return 2
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
    root = tempfile.mkdtemp(prefix="baton-chaos-", dir=args.workdir)
    stack = Stack(bindir, root, args.mode, args.overlap, args.transport)
    stats = ChaosStats()
    v = Verdict()
    cleaned = False

    def cleanup():
        nonlocal cleaned
        if not cleaned:
            cleaned = True
            stack.kill_everything()

    atexit.register(cleanup)

    interrupt_on_signals()
    summary: dict = {}
    audit_out = ""
    leftovers: list[str] = []
    partials: list[str] = []
    try:
        stack.setup(pipeline=not args.no_pipeline)
        log(f"seed {seed}, mode {args.mode}, overlap {args.overlap}, transport {args.transport}, dir {root}")
        stack.start_all()
        r = stack.cli("status", "--json", timeout=30)  # reads the configuration first
        if b"configuration error" in r.stdout + r.stderr:
            raise RuntimeError("the configuration was rejected: " + (r.stdout + r.stderr).decode(errors="replace"))
        if not wait_until_up(stack, 30):
            v.fail("the stack did not come up within 30 s")
        start_deadline = now() + 30
        while now() < start_deadline and stored_count(os.path.join(stack.data_dir, "results.sqlite")) < 3:
            time.sleep(0.2)
        if stored_count(os.path.join(stack.data_dir, "results.sqlite")) < 3:
            why = [e.get("message", "") for e in read_events(stack.data_dir)
                   if e.get("type") in ("run.failed", "result.failed") or e.get("level") in ("error", "critical")]
            raise RuntimeError("fewer than 3 results stored within 30 s of the start, nothing flows; no chaos run"
                               + (f"; the last error: {why[-1]}" if why else ""))
        log(f"results flow; chaos for {args.duration:.0f}s")
        if args.no_chaos:
            time.sleep(args.duration)
        else:
            run_chaos(stack, args.duration, rng, stats)
        chaos_end = now()
        log("chaos over; waiting for every service to be up")
        if not wait_until_up(stack, 60):
            v.fail("not every service was running again within 60 s of the end of the chaos")
        time.sleep(3)  # let a restarted scheduler catch up on missed slots before pausing
        paused_at, last_err = stack.pause(JOB)
        if paused_at is None:
            v.fail(f"`baton pause {JOB}` did not succeed within 30 s: {last_err}")
            must_until = int(chaos_end * 1000)
        else:
            must_until = int((paused_at - 0.5) * 1000)
        if not args.no_pipeline:
            piped_at, last_err = stack.pause(chaos_pipeline.JOB)
            if piped_at is None:
                v.fail(f"`baton pause {chaos_pipeline.JOB}` did not succeed within 30 s: {last_err}")
        log(f"job paused; draining (must store every slot up to {iso_ms(must_until)})")
        # what must be stored: the grid from the first stored slot (refined by the oracle later) to must_until
        have = {ms for ms in stored_slots(os.path.join(stack.data_dir, "results.sqlite"), JOB)
                if (ms - ANCHOR_MS) % EVERY_MS == 0}
        first = min(have) if have else must_until
        needed = set(range(first, must_until + 1, EVERY_MS))

        def justified(outstanding: set[int]) -> set[int]:
            if stack.overlap != "forbid":
                return outstanding
            skipped = set()
            for e in read_events(stack.data_dir) + ledger_events(stack.data_dir):
                if e.get("type") == "run.skipped":
                    lt = (e.get("attributes") or {}).get("logical_time")
                    ms = parse_iso_ms(lt) if lt else None
                    if ms is not None:
                        skipped.add(ms)
            return outstanding - skipped

        drained = wait_for_store(stack, now() + args.drain_timeout, needed, 5.0, justified)
        if not drained:
            v.fail(f"the stack did not drain: expected slots still missing after {args.drain_timeout:.0f} s or "
                   f"after 45 s without a new result, or the store still growing")
        if not args.no_pipeline:
            log(f"every slot of {JOB} stored; waiting for the fired runs of {chaos_pipeline.JOB}")
            store = os.path.join(stack.data_dir, "results.sqlite")
            if not chaos_pipeline.drain(stack.data_dir, store, lambda: read_events(stack.data_dir),
                                        now() + args.drain_timeout, log=log):
                v.fail(f"the pipelined job did not drain: fired runs still not stored after {args.drain_timeout:.0f} s "
                       f"or after 45 s without a new one")
        log("drained; stopping the services with SIGTERM")
        st = stack.cli("status", "--json", timeout=15)
        try:
            status = json.loads(st.stdout)
            in_flight = [r for r in status.get("runs", []) if r.get("job") == JOB]
            backlog = status.get("backlog")
            v.info(f"status before stop: {len(in_flight)} runs in flight "
                   f"({sample(sorted({str(r.get('state')) for r in in_flight}))}), backlog {backlog}, "
                   f"events lost {status.get('eventsLost') or {}}")
            if in_flight:
                v.fail(f"after the drain `baton status` still shows {len(in_flight)} runs in flight: "
                       f"{sample([(r.get('run'), r.get('state')) for r in in_flight], 4)}")
            if backlog and (backlog.get('pending') or backlog.get('sent') or backlog.get('dead')):
                v.fail(f"after the drain the algorithm's backlog is not empty: {backlog}")
        except (ValueError, AttributeError):
            v.info(f"baton status --json gave no JSON: {(st.stdout + st.stderr).decode(errors='replace')[:200]}")
        # baton audit, while the scheduler and the algorithm still run: it asks them through their sockets.
        try:
            a = stack.cli("audit", timeout=120)
            audit_out = (a.stdout + a.stderr).decode(errors="replace").strip()
            if a.returncode != 0:
                unknown = re.search(r"unknown|unexpected argument|usage|no such|not a .*command", audit_out, re.I)
                if unknown and a.returncode != 1:
                    v.fail(f"`baton audit` is not available in this binary (status {a.returncode})")
                else:
                    violations = [line for line in audit_out.splitlines() if line.startswith("VIOLATION ")]
                    v.fail(f"`baton audit --config FILE` exited {a.returncode}: {len(violations)} violations, e.g. "
                           + "; ".join(line[:160] for line in violations[:3]))
            elif re.search(r"no result store", audit_out, re.I):
                v.fail("`baton audit` exited 0 but says it had no result store to check the results against "
                       f"(the store is {os.path.join(stack.data_dir, 'results.sqlite')})")
        except subprocess.TimeoutExpired:
            v.fail("`baton audit` did not finish within 120 s")
        stop_stack(stack, v)
        time.sleep(1.0)
        me = {os.getpid()}
        leftovers = [f"pid {p}: {cmdline(p)}" for p in marked_processes(root, me)]
        if leftovers:
            v.fail(f"{len(leftovers)} processes still running after the stop: {sample(leftovers, 5)}")
        for dirpath, _, files in os.walk(stack.data_dir):
            partials += [os.path.join(dirpath, f) for f in files if f.endswith(".partial")]
        if partials:
            v.fail(f"{len(partials)} *.partial files remain: {sample(partials, 4)}")
        if stats.orphans:
            v.fail(f"{len(stats.orphans)} algorithm command processes outlived a SIGKILLed algorithm by {ORPHAN_GRACE_S:.0f} s: "
                   f"{sample(stats.orphans, 4)}")
        if stats.crashes:
            v.fail(f"{len(stats.crashes)} services ended without being killed: {sample(stats.crashes, 4)}")
        if stats.survived_supervisor:
            v.fail(f"{len(stats.survived_supervisor)} services outlived a SIGKILLed `baton up` by 15 s: "
                   f"{sample(stats.survived_supervisor, 4)}")
        summary = check_results(stack, must_until, v)
        if not args.no_pipeline:
            runs, _ = read_store(os.path.join(stack.data_dir, "results.sqlite"))
            summary["pipeline"] = chaos_pipeline.check(root, stack.data_dir, runs, read_events(stack.data_dir), v,
                                                       sample)
        # Every event the logger kept, through kills and restarts, matches docs/protocol.schema.json.
        bad = schema_failures(read_events(stack.data_dir))
        if bad:
            v.fail(f"{len(bad)} events do not match docs/protocol.schema.json: {sample(bad, 4)}")
    except KeyboardInterrupt as e:
        v.fail(f"interrupted ({e})")
    except Exception as e:  # a harness error is a failure too, never a pass
        import traceback
        traceback.print_exc()
        v.fail(f"harness error: {e!r}")
    finally:
        stack.kill_everything()
        cleaned = True

    print()
    print("=" * 100)
    print(f"Baton chaos summary  (mode {args.mode}, overlap {args.overlap}, duration {args.duration:.0f}s, "
          f"seed {seed}, transport {args.transport})")
    print(f"directory: {root}")
    kills = ", ".join(f"{k} {n}" for k, n in sorted(stats.kills.items())) or "none"
    print(f"kills: {sum(stats.kills.values())} SIGKILLs ({kills}); algorithm killed while its command ran: "
          f"{stats.algorithm_kills_during_command}; baton up SIGKILLed: {stats.up_kills}; "
          f"SIGSTOPs: {stats.stops} ({stats.stopped_seconds:.0f}s)")
    for line in v.lines:
        print(line)
    print(f"orphaned algorithm processes after algorithm SIGKILL: {len(stats.orphans)}")
    print(f"leftover processes after stop: {len(leftovers)}; *.partial files: {len(partials)}")
    if audit_out:
        lines = audit_out.splitlines()
        notes = [line for line in lines if line.lstrip().lower().startswith("note")]
        others = [line for line in lines if line not in notes]
        print(f"baton audit ({len(lines)} lines, {len(notes)} of them notes):")
        for line in others[:40] + notes[:3]:
            print("  | " + line)
        if len(others) > 40 or len(notes) > 3:
            print(f"  | … {max(0, len(others) - 40) + max(0, len(notes) - 3)} more lines")
    print("-" * 100)
    if v.failures:
        print(f"FAILED: {len(v.failures)} checks failed")
        for f in v.failures:
            print("  ✗ " + f)
        print(f"(kept {root} for inspection)")
        return 1
    print("PASSED: every check passed")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
