#!/usr/bin/env python3
"""The checks of `make compose-test` (scripts/compose-test.sh), against a compose stack it started.

  --write-config DIR   writes DIR/baton.yaml (one job, `tick`, every second, `misfire: all`, `overlap: allow`) and
                       DIR/tick.py (its algorithm: a payload that is a function of BATON_RUN_ID alone), picks free
                       loopback ports for the published control, status and query sockets, and prints them as
                       shell `export` lines.
  --project NAME       with the stack up: waits for every container to be healthy (PostgreSQL answering over tcp
                       with its password); SIGKILLs the main process of
                       one processor and of the algorithm by its host pid (`docker inspect .State.Pid`) and waits
                       for the restart policy to bring each back; stops and starts another processor cleanly;
                       runs `baton status --json` from the host on the published ports with a copy of the
                       stack's CURVE key (and checks a stranger's key gets no answer) and checks every replica
                       shows under its own host name, the clean stop not as a restart; pauses the job from the
                       host; then checks, with an oracle from the slot grid and tick.py alone, that every slot
                       from the first stored one to the pause is stored exactly once with its payload, in the
                       store the processors use (PostgreSQL when they have BATON_STORE_URL, else SQLite).

Python 3 standard library only; docker and docker-compose come from the environment the shell script set.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import socket
import subprocess
import sys
import time

JOB = "tick"
TICK = r'''
import hashlib, os
run = os.environ["BATON_RUN_ID"]
line = f"compose-test {run} {hashlib.sha256(run.encode()).hexdigest()}\n"
with open(os.environ["BATON_OUTPUT"], "w") as f:
    f.write(line * 4)
'''
CONFIG = f"""data_dir: /data
processor:
  count: 1
  timeout: 1m
  lease: 6s
  retries: 1000
  backoff: 200ms
  backoff_max: 2s
retention:
  max_age: forever
algorithm:
  concurrency: 4
log:
  level: info
  heartbeat: 1s
jobs:
  - name: {JOB}
    every: 1s
    misfire: all
    overlap: allow
    command: [python3, /etc/baton/tick.py]
    timeout: 30s
    retries: 100
"""
SERVICES = {"logger": 1, "scheduler": 1, "algorithm": 1, "processor": 3, "postgres": 1}
BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".build", "debug", "baton")


def payload(run_id: str) -> bytes:
    """What tick.py writes for a run."""
    line = f"compose-test {run_id} {hashlib.sha256(run_id.encode()).hexdigest()}\n"
    return (line * 4).encode()


def log(msg: str) -> None:
    print(f"compose-test: {msg}", flush=True)


def fail(msg: str) -> None:
    log(f"FAILED: {msg}")
    sys.exit(1)


def run(*argv: str, check: bool = True, timeout: float = 60) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        fail(f"{' '.join(argv)} exited {r.returncode}: {(r.stderr or r.stdout).strip()[-2000:]}")
    return r.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(directory: str) -> None:
    with open(os.path.join(directory, "baton.yaml"), "w") as f:
        f.write(CONFIG)
    with open(os.path.join(directory, "tick.py"), "w") as f:
        f.write(TICK)
    ports = set()
    while len(ports) < 3:
        ports.add(free_port())
    for name, port in zip(["BATON_CONTROL_PORT", "BATON_STATUS_PORT", "BATON_QUERY_PORT"], sorted(ports)):
        print(f"export {name}={port}")


class Stack:
    def __init__(self, project: str):
        self.project = project
        # The stack's key pair, copied out of its keys volume for `baton` on the host (README, "Docker Compose").
        self.key = os.path.join(os.environ["BATON_TEST_DIR"], "baton.key")
        self.store = ""

    def containers(self) -> list[dict]:
        ids = run("docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}").split()
        return json.loads(run("docker", "inspect", *ids)) if ids else []

    def of(self, service: str) -> list[dict]:
        found = [c for c in self.containers() if c["Config"]["Labels"].get("com.docker.compose.service") == service]
        return sorted(found, key=lambda c: int(c["Config"]["Labels"].get("com.docker.compose.container-number", "0")))

    def unhealthy(self) -> list[str]:
        """Every container not yet running and healthy, with its state; [] when all expected ones are."""
        bad = []
        for service, count in SERVICES.items():
            found = self.of(service)
            if len(found) != count:
                bad.append(f"{service}: {len(found)} of {count} containers")
            for c in found:
                health = (c["State"].get("Health") or {}).get("Status", "none")
                if not c["State"]["Running"] or health != "healthy":
                    bad.append(f"{c['Name'].lstrip('/')}: {c['State']['Status']}, {health}")
        return bad

    def wait_healthy(self, within: float, what: str) -> float:
        start = time.time()
        while True:
            bad = self.unhealthy()
            if not bad:
                return time.time() - start
            if time.time() - start > within:
                fail(f"{what}: not healthy within {within:.0f} s: {'; '.join(bad)}")
            time.sleep(0.5)

    def stored(self) -> list[tuple[str, str, str, str]]:
        """(run id, stored sha256, sha256 of the stored bytes, processor) of every stored result of the job, from
        the store the processors are configured with: PostgreSQL when they have BATON_STORE_URL, else SQLite."""
        processor = self.of("processor")[0]
        self.store = "SQLite"
        if any(e.startswith("BATON_STORE_URL=") for e in processor["Config"]["Env"]):
            self.store = "PostgreSQL"
            sql = (
                "SELECT run_id, sha256, encode(sha256(coalesce(blob, ''::bytea)), 'hex'), processor FROM results "
                f"WHERE job = '{JOB}'"
            )
            postgres = self.of("postgres")[0]["Id"]
            argv = ["docker", "exec", "-e", "PGPASSWORD=baton", postgres, "psql", "-h", "127.0.0.1", "-U", "baton"]
            out = run(*argv, "-d", "baton", "-AtF", "\t", "-c", sql, check=False)
        else:
            code = (
                "import hashlib, sqlite3\n"
                "c = sqlite3.connect('file:/data/results.sqlite?mode=ro', uri=True, timeout=30)\n"
                "for r, s, b, p in c.execute(\"SELECT run_id, sha256, blob, processor FROM results WHERE job = ?\", "
                f"({JOB!r},)):\n"
                "    print(r, s, hashlib.sha256(b or b'').hexdigest(), p, sep='\\t')\n"
            )
            out = run("docker", "exec", self.of("logger")[0]["Id"], "python3", "-c", code, check=False)
        return [tuple(line.split("\t")) for line in out.splitlines() if line.count("\t") == 3]  # type: ignore[misc]

    def wait_stored(self, more_than: int, within: float, what: str) -> int:
        deadline = time.time() + within
        while time.time() < deadline:
            n = len(self.stored())
            if n > more_than:
                return n
            time.sleep(1)
        fail(f"{what}: no more than {more_than} results stored within {within:.0f} s")
        return 0

    def kill9(self, container: dict) -> None:
        pid = container["State"]["Pid"]
        before = container["RestartCount"]
        name = container["Name"].lstrip("/")
        log(f"kill -9 {pid} (main process of {name}, restarted {before} times so far)")
        os.kill(pid, 9)
        deadline = time.time() + 60
        while time.time() < deadline:
            now = json.loads(run("docker", "inspect", container["Id"]))[0]
            if now["RestartCount"] > before and now["State"]["Running"] and now["State"]["Pid"] != pid:
                return
            time.sleep(0.5)
        fail(f"{name} was not restarted within 60 s of kill -9")

    def baton(self, *args: str, key: str | None = None, server_key: str | None = None) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        if server_key:
            env["BATON_CURVE_SERVER_KEY"] = server_key
        env.update(
            BATON_ENDPOINT_CONTROL=f"tcp://127.0.0.1:{os.environ['BATON_CONTROL_PORT']}",
            BATON_ENDPOINT_STATUS_OUT=f"tcp://127.0.0.1:{os.environ['BATON_STATUS_PORT']}",
            BATON_ENDPOINT_QUERY=f"tcp://127.0.0.1:{os.environ['BATON_QUERY_PORT']}",
            BATON_DATA_DIR=os.path.join(os.environ["BATON_TEST_DIR"], "cli"),
            BATON_CURVE_KEY=key or self.key,
        )
        env.pop("BATON_CONFIG", None)
        return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)


def slot_of(run_id: str) -> int | None:
    """The logical time of `tick@<ISO time>` in whole seconds, None when off the one-second grid."""
    if not run_id.startswith(f"{JOB}@"):
        return None
    stamp = run_id.split("@", 1)[1].split("~", 1)[0]
    try:
        t = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None
    return int(t.timestamp()) if t.microsecond == 0 else None


def check_status(stack: Stack, clean: dict, killed: dict) -> None:
    """`baton status --json` from the host with the stack's key: every replica under its own host name; the
    clean stop no restart. Without the key (a pair of its own), it gets no answer."""
    run("docker", "cp", f"{stack.of('logger')[0]['Id']}:/keys/baton.key", stack.key)
    public = next(line.split(" ", 1)[1] for line in open(stack.key).read().splitlines() if line.startswith("public "))
    # A pair of its own with the stack's server key: refused by the services' ZAP handlers, so no answer.
    stranger = os.path.join(os.environ["BATON_TEST_DIR"], "stranger")
    run(BIN, "keygen", "--name", "stranger", "--out", stranger)
    r = stack.baton("status", "--json", "--timeout", "3s", key=os.path.join(stranger, "stranger.key"), server_key=public)
    if r.returncode == 0:
        fail(f"baton status from the host with a key the stack does not allow was answered: {r.stdout[:300]}")
    logger = stack.of("logger")[0]["Id"]
    stranger_public = open(os.path.join(stranger, "stranger.pub")).read().strip()
    deadline = time.time() + 20
    refused = (
        "import json\n"
        "for line in open('/data/logs/events.jsonl'):\n"
        "    e = json.loads(line)\n"
        "    if e.get('type') == 'auth.refused': print((e.get('attributes') or {}).get('key'))\n"
    )
    while stranger_public not in run("docker", "exec", logger, "python3", "-c", refused, check=False).split():
        if time.time() > deadline:
            fail("no auth.refused with the stranger's key in the logger's event log")
        time.sleep(1)
    deadline = time.time() + 30
    report, problem = None, ""
    while time.time() < deadline:
        r = stack.baton("status", "--json")
        if r.returncode == 0:
            report = json.loads(r.stdout)
            instances = {s["instance"]: s for s in report["services"] if s["service"] == "processor"}
            hosts = {c["Config"]["Hostname"] for c in stack.of("processor")}
            if hosts <= set(instances) and all(instances[h]["state"] == "up" for h in hosts):
                break
            problem = f"processors {sorted(instances)} (states {[s['state'] for s in instances.values()]}), hosts {sorted(hosts)}"
        else:
            problem = (r.stderr or r.stdout).strip()
        time.sleep(1)
    else:
        fail(f"baton status from the host: {problem}")
    assert report is not None
    instances = {s["instance"]: s for s in report["services"] if s["service"] == "processor"}
    stopped = instances[clean["Config"]["Hostname"]]
    if stopped["restarts"] != 0 or stopped.get("lastExit"):
        fail(f"a clean docker stop/start shows as a restart: {stopped}")
    died = instances[killed["Config"]["Hostname"]]
    if died["restarts"] < 1:
        fail(f"the processor killed with kill -9 shows no restart: {died}")
    log(f"baton status from the host: {len(instances)} processors by host name, restarts "
        f"{ {k: v['restarts'] for k, v in instances.items()} }")


def check_store(stack: Stack, paused_at: float) -> None:
    """Every slot from the first stored one up to the pause stored exactly once, byte for byte; none after it."""
    last = int(paused_at) - 1  # a slot fired at the pause's second may or may not have been
    deadline = time.time() + 120
    while True:
        rows = stack.stored()
        slots = [slot_of(r[0]) for r in rows]
        first = min((s for s in slots if s is not None), default=None)
        if first is None:
            fail("nothing stored")
        missing = [s for s in range(first, last + 1) if s not in slots]
        if not missing or time.time() > deadline:
            break
        time.sleep(1)
    problems = []
    if missing:
        problems.append(f"{len(missing)} slots never stored, e.g. {missing[:5]}")
    per_slot: dict[int, list[str]] = {}
    for run_id, sha, actual, processor in rows:
        slot = slot_of(run_id)
        if slot is None:
            problems.append(f"stored run off the grid: {run_id}")
            continue
        per_slot.setdefault(slot, []).append(run_id)
        want = hashlib.sha256(payload(run_id.split("~", 1)[0])).hexdigest()
        if sha != want or actual != want:
            problems.append(f"{run_id} stored by {processor}: sha256 {sha[:12]}/{actual[:12]}, expected {want[:12]}")
        if slot > int(paused_at) + 2:
            problems.append(f"{run_id} fired after the pause")
    twice = {s: r for s, r in per_slot.items() if len(r) > 1}
    if twice:
        problems.append(f"{len(twice)} slots stored more than once, e.g. {list(twice.values())[:3]}")
    by = {}
    for row in rows:
        by[row[3]] = by.get(row[3], 0) + 1
    if problems:
        fail("; ".join(problems[:10]))
    log(f"{stack.store} store: slots {first}..{last} ({last - first + 1}) each stored once with its payload; by processor {by}")


def check(project: str, up_at: float) -> None:
    stack = Stack(project)
    stack.wait_healthy(240, "after up")
    log(f"stack healthy: {time.time() - up_at:.0f} s after docker-compose up")
    postgres = stack.of("postgres")[0]["Id"]
    who = run("docker", "exec", "-e", "PGPASSWORD=baton", postgres, "psql", "-h", "127.0.0.1", "-U", "baton", "-d", "baton",
              "-Atc", "SELECT current_user || ' ' || current_database() || ' ' || current_setting('server_version_num')")
    if not who.startswith("baton baton 15"):
        fail(f"PostgreSQL over tcp with the password: {who.strip()}")
    n = stack.wait_stored(4, 60, "first results")
    processors = stack.of("processor")
    stack.kill9(processors[0])
    stack.kill9(stack.of("algorithm")[0])
    stack.wait_healthy(120, "after the kills")
    n = stack.wait_stored(n + 5, 60, "results after the kills")
    clean = processors[1]
    log(f"docker stop / docker start {clean['Name'].lstrip('/')}")
    run("docker", "stop", clean["Id"], timeout=90)
    run("docker", "start", clean["Id"])
    stack.wait_healthy(120, "after docker start")
    stack.wait_stored(n + 3, 60, "results after docker start")
    check_status(stack, clean, processors[0])
    deadline = time.time() + 60
    while True:
        sent = time.time()
        r = stack.baton("pause", JOB)
        if r.returncode == 0:
            break
        if time.time() > deadline:
            fail(f"baton pause from the host: {(r.stderr or r.stdout).strip()}")
        time.sleep(1)
    log("job paused from the host")
    check_store(stack, sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write-config")
    parser.add_argument("--project")
    parser.add_argument("--up-at", type=float, default=time.time(), help="when `docker-compose up` was started")
    args = parser.parse_args()
    if args.write_config:
        write_config(args.write_config)
    elif args.project:
        check(args.project, args.up_at)
    else:
        parser.error("--write-config or --project")


if __name__ == "__main__":
    main()
