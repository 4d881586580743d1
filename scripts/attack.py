#!/usr/bin/env python3
"""Attacks a running Baton stack from the outside, over its ZeroMQ endpoints, and reports what came back.

The attacks are those issue 14 showed to work before CURVE, plus their neighbours: taking results from
`results` (and acknowledging them), taking run requests from `runs` and reporting them finished, forged
reports, acks and nacks for slots to come, forged results pushed wherever a PUSH is accepted, every
command on `control` and `algorithm_control`, a status `query`, a subscription to `status_out`, and forged
status events (fake services) into `status_in`. Every attack runs at once, for `--duration` seconds; every
receive has a timeout and every socket LINGER 0, so the script always ends.

It prints one JSON line per attack: `attack`, `breach` (true when anything came back or got in: a message
received, a reply, the logger's subscription seen), and what it saw. Then a `summary` line with the
attacker's public key (for matching `auth.refused` events). Exit status 0: nothing got through; 3: a breach.

    python3 scripts/attack.py --config data/baton.yaml --job demo --every-ms 1000              # plain
    python3 scripts/attack.py --config baton.yaml --job demo --random-key --server-key hub.pub  # unknown key
    python3 scripts/attack.py --config baton.yaml --job demo --key stolen.key                   # a given pair

An allowed key pair (`--key`) must breach: that is how a test checks the script itself can fail.
"""

import argparse
import datetime
import hashlib
import json
import os
import sys
import threading
import time

import zmq

PROTOCOL = b"baton/1"
NAMES = ["runs", "control", "results", "acks", "status_in", "status_out", "query", "reports", "algorithm_control"]
DEFAULTS = {name: f"tcp://127.0.0.1:{7601 + index}" for index, name in enumerate(NAMES)}


def endpoints_from(config_path):
    """The `endpoints:` section of a Baton configuration (two-space indented `key: value` lines), over the defaults."""
    found = dict(DEFAULTS)
    inside = False
    for line in open(config_path, encoding="utf-8").read().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            inside = line.split(":", 1)[0].strip() == "endpoints"
            continue
        if inside and ":" in line:
            key, value = line.strip().split(":", 1)
            found[key.strip()] = value.strip().strip("\"'")
    return found


def read_pair(path):
    """baton keygen's NAME.key: `public …` and `secret …` lines."""
    fields = dict(line.split(" ", 1) for line in open(path, encoding="utf-8").read().splitlines() if line)
    return fields["public"].encode(), fields["secret"].encode()


def read_public(value):
    """A Z85 public key, or a file holding one (NAME.pub), or a NAME.key's public line."""
    if os.path.exists(value):
        text = open(value, encoding="utf-8").read()
        for line in text.splitlines():
            if line.startswith("public "):
                return line.split(" ", 1)[1].strip().encode()
        return text.strip().encode()
    return value.encode()


def iso(seconds):
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Attacker:
    def __init__(self, args):
        self.args = args
        self.endpoints = endpoints_from(args.config) if args.config else dict(DEFAULTS)
        for override in args.endpoint:
            key, value = override.split("=", 1)
            self.endpoints[key] = value
        self.context = zmq.Context()
        self.pair = None
        if args.key:
            self.pair = read_pair(args.key)
        elif args.random_key:
            self.pair = zmq.curve_keypair()
        self.server = None
        if self.pair:
            if args.server_key:
                self.server = read_public(args.server_key)
            elif args.key:  # one machine: the stack's own key is the servers' too
                self.server = self.pair[0]
            else:  # without the server's key the handshake fails before the server can name the client
                self.server = zmq.curve_keypair()[0]
        self.job = args.job
        self.every = args.every_ms / 1000.0
        self.deadline = time.time() + args.duration
        self.lock = threading.Lock()
        self.reports = []

    def socket(self, kind, name, **options):
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDTIMEO, 200)
        for option, value in options.items():
            sock.setsockopt(getattr(zmq, option), value)
        if self.pair:
            sock.curve_publickey, sock.curve_secretkey = self.pair
            sock.curve_serverkey = self.server
        sock.connect(self.endpoints[name])
        return sock

    def report(self, attack, breach, **details):
        with self.lock:
            self.reports.append({"attack": attack, "breach": bool(breach), **details})

    def upcoming(self, count, after=0.5):
        """Run ids of the job's next `count` slots on its grid (anchored at 1970), from `after` seconds on."""
        step = round(self.every * 1000)
        first = (int((time.time() + after) * 1000) // step + 1) * step
        return [f"{self.job}@{iso((first + index * step) / 1000)}" for index in range(count)]

    def forged(self, count):
        """Run ids of slots long before the stack existed: a run recorded for one never ran."""
        step = round(self.every * 1000)
        base = int(datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc).timestamp() * 1000)
        return [f"{self.job}@{iso((base + index * step) / 1000)}" for index in range(count)]

    @staticmethod
    def send(sock, frames):
        try:
            sock.send_multipart(frames)
            return True
        except zmq.Again:  # no peer took it (a refused handshake leaves none)
            return False

    # Each attack below runs in a thread of its own until the deadline.

    def steal_results(self):
        """A processor's DEALER on `results`, asking for work and acknowledging everything taken: each result
        would vanish."""
        pull = self.socket(zmq.DEALER, "results", RCVTIMEO=200, ROUTING_ID=os.urandom(16))
        acks = self.socket(zmq.PUSH, "acks")
        taken = []
        seq = 0
        while time.time() < self.deadline:
            seq += 1
            self.send(pull, [PROTOCOL, b"ready", json.dumps({"processor": "attacker", "seq": seq, "credit": 10}).encode()])
            try:
                frames = pull.recv_multipart()
            except zmq.Again:
                continue
            header = json.loads(frames[2]) if len(frames) > 2 else {}
            taken.append(header.get("runId", repr(frames[:2])))
            ack = {"runId": header.get("runId", ""), "part": header.get("part", 0), "processor": "attacker", "duplicate": False}
            self.send(acks, [PROTOCOL, b"ack", json.dumps(ack).encode()])
        self.report("steal_results", taken, taken=taken)

    def steal_runs(self):
        """PULL on `runs`, reporting each request finished: runs recorded as done that never ran."""
        pull = self.socket(zmq.PULL, "runs", RCVTIMEO=200)
        reports = self.socket(zmq.PUSH, "reports")
        taken, reported = [], 0
        while time.time() < self.deadline:
            try:
                frames = pull.recv_multipart()
            except zmq.Again:
                continue
            header = json.loads(frames[2]) if len(frames) > 2 else {}
            taken.append(header.get("runId", repr(frames[:2])))
            if "runId" in header:
                for state in ("accepted", "finished"):
                    report = {"runId": header["runId"], "job": header.get("job", self.job), "state": state, "time": iso(time.time())}
                    reported += self.send(reports, [PROTOCOL, b"report", json.dumps(report).encode()])
        self.report("steal_runs", taken, taken=taken, reported=reported)

    def forge_reports(self):
        """Reports of `finished` for runs that never ran (slots of 2020, a manual run) and for slots to come."""
        reports = self.socket(zmq.PUSH, "reports")
        sent = 0
        runs = self.forged(10) + [f"{self.job}@{iso(time.time())}~manual"]
        while time.time() < self.deadline:
            for run in runs + self.upcoming(5):
                for state in ("accepted", "running", "finished"):
                    report = {"runId": run, "job": self.job, "state": state, "time": iso(time.time())}
                    sent += self.send(reports, [PROTOCOL, b"report", json.dumps(report).encode()])
            time.sleep(0.1)
        self.report("forge_reports", False, sent=sent, runs=runs)

    def forge_acks(self):
        """`ack`s and permanent `nack`s for parts of slots to come, before they exist: each would be lost."""
        acks = self.socket(zmq.PUSH, "acks")
        sent = 0
        while time.time() < self.deadline:
            for index, run in enumerate(self.upcoming(6, after=0)):
                key = {"runId": run, "part": 0, "processor": "attacker"}
                frames = (
                    [PROTOCOL, b"ack", json.dumps({**key, "duplicate": False}).encode()]
                    if index % 2 == 0
                    else [PROTOCOL, b"nack", json.dumps({**key, "reason": "forged", "handBack": False, "permanent": True}).encode()]
                )
                sent += self.send(acks, frames)
                sent += self.send(acks, [PROTOCOL, b"lease", json.dumps(key).encode()])
            time.sleep(0.05)
        self.report("forge_acks", False, sent=sent)

    def forge_results(self):
        """A forged `result` (and an `ack` carrying forged outputs) pushed into every PULL the attacker can reach."""
        payload = b"forged result\n"
        digest = hashlib.sha256(payload).hexdigest()
        sent = {}
        for name in ("acks", "reports"):
            push = self.socket(zmq.PUSH, name)
            count = 0
            for run in self.forged(3) + self.upcoming(3):
                header = {
                    "runId": run, "job": self.job, "logicalTime": run.split("@", 1)[1].split("~")[0], "part": 0, "parts": 1,
                    "size": len(payload), "sha256": digest, "attempt": 1, "leaseMs": 30000,
                }  # fmt: skip
                count += self.send(push, [PROTOCOL, b"result", json.dumps(header).encode(), payload])
                ack = {"runId": run, "part": 0, "processor": "attacker", "duplicate": False, "outputs": [{"size": len(payload), "sha256": digest}]}
                count += self.send(push, [PROTOCOL, b"ack", json.dumps(ack).encode(), payload])
            sent[name] = count
        self.report("forge_results", False, sent=sent, payload=payload.decode())

    def ask(self, name, kind, request, attack):
        """One REQ: a reply is a breach (a refused client never gets one)."""
        sock = self.socket(zmq.REQ, name, RCVTIMEO=max(500, int(min(3.0, self.deadline - time.time()) * 1000)))
        sent = self.send(sock, [PROTOCOL, kind, json.dumps(request).encode()])
        try:
            reply = [frame.decode("utf-8", "replace")[:300] for frame in sock.recv_multipart()]
        except zmq.Again:
            reply = None
        sock.close()
        self.report(attack, reply is not None, request=request, queued=sent, reply=reply)

    def control(self):
        first, last = self.forged(2)
        slot = lambda run: run.split("@", 1)[1]  # noqa: E731
        next_run = self.upcoming(1, after=1.0)[0]
        return [
            {"command": "jobs"},
            {"command": "fires", "job": self.job},
            {"command": "resume", "job": self.job, "catchUp": True},
            {"command": "trigger", "job": self.job, "force": True},
            {"command": "backfill", "job": self.job, "from": slot(first), "to": slot(last), "rerun": True},
            {"command": "cancel", "run": next_run},
            {"command": "pause", "job": self.job},
        ]

    def algorithm_control(self):
        run = self.upcoming(1, after=1.0)[0]
        return [
            {"command": "results"},
            {"command": "runs"},
            {"command": "raw", "run": run, "part": 0},
            {"command": "delivered", "run": run, "part": 0},
            {"command": "requeue", "run": run, "stage": 0},
        ]

    def query(self):
        self.ask("query", b"query", {"what": "status", "all": True}, "query")

    def subscribe(self):
        """A SUB to everything on `status_out`: the bus would show every run and result."""
        sub = self.socket(zmq.SUB, "status_out", RCVTIMEO=200)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        heard = []
        while time.time() < self.deadline:
            try:
                heard.append(sub.recv_multipart()[0].decode("utf-8", "replace"))
            except zmq.Again:
                continue
        self.report("subscribe_status_out", heard, events=len(heard), types=sorted(set(heard))[:20])

    def forge_status(self):
        """Fake services and a fake run.finished into `status_in` (the issue saw 1,099 fake services appear)."""
        pub = self.socket(zmq.XPUB, "status_in", RCVTIMEO=200)
        boot = os.urandom(8).hex()
        subscribed, published = [], 0
        seq = 0
        while time.time() < self.deadline:
            try:
                subscribed.append(pub.recv()[:40].decode("utf-8", "replace"))
            except zmq.Again:
                pass
            for index in range(20):
                seq += 1
                instance = f"forged-{index}"
                for kind in ("service.started", "service.heartbeat"):
                    event = {
                        "type": kind, "source": "processor", "instance": instance, "boot": boot, "seq": seq,
                        "time": iso(time.time()), "attributes": {"pid": "1", "host": "forged", "version": "6.6.6", "interval_ms": "5000"},
                    }  # fmt: skip
                    published += self.send(pub, [kind.encode(), PROTOCOL, json.dumps(event).encode()])
            run = self.forged(1)[0]
            seq += 1
            finished = {
                "type": "run.finished", "source": "algorithm", "instance": "forged-algorithm", "boot": boot, "seq": seq,
                "time": iso(time.time()), "job": self.job, "run": run, "attributes": {"duration_ms": "1", "size": "1", "parts": "1"},
            }  # fmt: skip
            published += self.send(pub, [b"run.finished", PROTOCOL, json.dumps(finished).encode()])
        self.report("forge_status", subscribed, subscribed=subscribed[:5], published=published)

    def read_keys(self):
        """Reading the stack's key pair (another local user must not be able to)."""
        for path in self.args.try_read:
            try:
                with open(path, "rb") as file:
                    size = len(file.read())
                self.report("read_key", True, path=path, bytes=size)
            except OSError as error:
                self.report("read_key", False, path=path, error=f"{type(error).__name__}: {error.strerror}")

    def run(self):
        threads = [self.steal_results, self.steal_runs, self.forge_reports, self.forge_acks, self.forge_results,
                   self.subscribe, self.forge_status, self.query]  # fmt: skip
        only = set(self.args.only)
        workers = [threading.Thread(target=work) for work in threads if not only or work.__name__ in only]
        if not only or "control" in only:
            for request in self.control():
                workers.append(threading.Thread(target=self.ask, args=("control", b"control", request, "control." + request["command"])))
        if not only or "algorithm_control" in only:
            for request in self.algorithm_control():
                attack = "algorithm_control." + request["command"]
                workers.append(threading.Thread(target=self.ask, args=("algorithm_control", b"algorithm.control", request, attack)))
        self.read_keys()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        breaches = [report["attack"] for report in self.reports if report["breach"]]
        for report in sorted(self.reports, key=lambda report: report["attack"]):
            print(json.dumps(report), flush=True)
        mode = "key" if self.args.key else "random-key" if self.args.random_key else "plain"
        public = self.pair[0].decode() if self.pair else None
        print(json.dumps({"attack": "summary", "mode": mode, "key": public, "uid": os.getuid(), "breaches": breaches}), flush=True)
        self.context.destroy(linger=0)
        return 3 if breaches else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="the stack's configuration, for its endpoints")
    parser.add_argument("--endpoint", action="append", default=[], help="NAME=URL, over the configuration")
    parser.add_argument("--job", required=True, help="a job of the stack (its slots are forged and cancelled)")
    parser.add_argument("--every-ms", type=int, default=1000, help="the job's interval, for its slot grid")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds every attack lasts")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--key", help="attack with this key pair (baton keygen's NAME.key)")
    keys.add_argument("--random-key", action="store_true", help="attack with a fresh key pair no one allowed")
    parser.add_argument("--server-key", help="the servers' public key (Z85, a .pub or .key file): public, so an attacker may know it")
    parser.add_argument("--only", action="append", default=[], help="run only this attack (repeatable): steal_results, steal_runs, "
                        "forge_reports, forge_acks, forge_results, subscribe, forge_status, query, control, algorithm_control")
    parser.add_argument("--try-read", action="append", default=[], help="a file the attacker tries to read (the stack's key)")
    sys.exit(Attacker(parser.parse_args()).run())


if __name__ == "__main__":
    main()
