"""The pipelined job of the chaos harness (scripts/chaos.py): a second job, `pipe`, whose external algorithm writes
several parts into $BATON_OUTPUT_DIR, then a per-part stage (a command: one or two outputs per part), a merge (a
command) and the built-in store (README "Pipelines: stages, parts, merge").

Every script's output is a deterministic function of BATON_RUN_ID and the documented stage variables, so the oracle
computes each run's merged bytes itself (the scripts below are executed here for their functions) and never reads
them back from Baton's own tables. The checks, after the drain:

  * every fired run of `pipe` (run.scheduled in the event log, or the scheduler's ledger when the event was lost)
    has exactly one stored row, part 0, equal byte for byte to the oracle's merge (which also records whether the
    merge saw its input on stdin exactly as the concatenation of BATON_INPUT_DIR's files);
  * no stored run of `pipe` was never fired.

A command may be invoked again for one task (its processor killed mid-way: documented at-least-once execution),
so invocation counts are reported, not checked: every command appends a line to <root>/invocations.log.

Kept out of chaos.py so that file does not grow further; Python 3 standard library only.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time

JOB = "pipe"
EVERY_MS = 2000

# Shared by the three scripts: the invocation log.
COMMON = r'''
import hashlib, json, os, sys

def note(log, *words):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (" ".join(str(w) for w in words) + "\n").encode())
    finally:
        os.close(fd)
'''

ALGORITHM = COMMON + r'''
def parts_for(run_id):
    h = hashlib.sha256(b"pipe " + run_id.encode()).digest()
    count = 3 + h[0] % 4                                                   # 3 to 6 parts
    parts = []
    for i in range(count):
        size = 0 if (h[1] + i) % 17 == 0 else 40 + int.from_bytes(h[2 + i:4 + i], "big") % 3000
        lines, total, j = [], 0, 0
        while total < size:
            line = f"{run_id} part {i} line {j} " + hashlib.sha256(h + bytes([i, j % 256])).hexdigest()
            lines.append(line)
            total += len(line) + 1
            j += 1
        parts.append(("\n".join(lines) + "\n").encode()[:size])
    return parts

def main():
    run_id = os.environ["BATON_RUN_ID"]
    note(sys.argv[1], "algorithm", run_id, os.getpid())
    out = os.environ["BATON_OUTPUT_DIR"]
    for i, data in enumerate(parts_for(run_id)):
        with open(os.path.join(out, f"{i:03d}"), "wb") as f:
            f.write(data)

if __name__ == "__main__":
    main()
'''

STAGE = COMMON + r'''
def outputs_for(run_id, part, parts, data):
    """One output, or two for some parts (they are numbered in (input part, output index) order)."""
    head = f"score run={run_id} part={part}/{parts} sha={hashlib.sha256(data).hexdigest()} len={len(data)}\n"
    first = head.encode() + data.upper()
    if hashlib.sha256(f"{run_id} {part}".encode()).digest()[0] % 3 == 0:
        return [first, b"second " + head.encode() + data[::-1]]
    return [first]

def main():
    run_id, part, parts = os.environ["BATON_RUN_ID"], os.environ["BATON_PART"], os.environ["BATON_PARTS"]
    note(sys.argv[1], "score", run_id, part, os.getpid())
    data = sys.stdin.buffer.read()
    outs = outputs_for(run_id, part, parts, data)
    if len(outs) == 1:
        with open(os.environ["BATON_OUTPUT"], "wb") as f:
            f.write(outs[0])
        return
    for k, out in enumerate(outs):
        with open(os.path.join(os.environ["BATON_OUTPUT_DIR"], str(k)), "wb") as f:
            f.write(out)

if __name__ == "__main__":
    main()
'''

MERGE = COMMON + r'''
def merged(run_id, inputs, stdin):
    """JSON lines: one per input file, in order, then the totals."""
    lines = [json.dumps({"run": run_id, "i": i, "len": len(d), "sha": hashlib.sha256(d).hexdigest()}) for i, d in
             enumerate(inputs)]
    lines.append(json.dumps({"run": run_id, "inputs": len(inputs), "total": hashlib.sha256(stdin).hexdigest(),
                             "consistent": stdin == b"".join(inputs)}))
    return ("\n".join(lines) + "\n").encode()

def main():
    run_id = os.environ["BATON_RUN_ID"]
    note(sys.argv[1], "merge", run_id, os.getpid())
    directory = os.environ["BATON_INPUT_DIR"]
    inputs = []
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            inputs.append(f.read())
    stdin = sys.stdin.buffer.read()
    with open(os.environ["BATON_OUTPUT"], "wb") as f:
        f.write(merged(run_id, inputs, stdin))

if __name__ == "__main__":
    main()
'''


def _load(source: str, name: str) -> dict:
    ns: dict = {}
    exec(compile(source.replace("__main__", "__never__"), f"<{name}>", "exec"), ns)
    return ns


_ALGORITHM, _STAGE, _MERGE = _load(ALGORITHM, "algorithm"), _load(STAGE, "stage"), _load(MERGE, "merge")


def expected_merged(run_id: str) -> bytes:
    """The oracle: the algorithm's parts, each through the stage with its documented BATON_PART/BATON_PARTS,
    the outputs in (input part, output index) order, merged."""
    parts = _ALGORITHM["parts_for"](run_id)
    outputs = [out for i, data in enumerate(parts)
               for out in _STAGE["outputs_for"](run_id, str(i), str(len(parts)), data)]
    return _MERGE["merged"](run_id, outputs, b"".join(outputs))


def write_scripts(root: str) -> dict[str, str]:
    """Writes the three scripts under `root`; their paths by role."""
    paths = {}
    for role, source in (("algorithm", ALGORITHM), ("stage", STAGE), ("merge", MERGE)):
        paths[role] = os.path.join(root, f"pipe_{role}.py")
        with open(paths[role], "w") as f:
            f.write(source)
    return paths


def job_yaml(root: str, python: str, anchor: str, overlap: str = "allow") -> list[str]:
    """The job's lines under `jobs:` in the harness's configuration. The scripts need no site packages: `-S` halves
    Python's start-up (about 45 ms instead of 100 ms here), which keeps the drain after the chaos short."""
    paths = write_scripts(root)
    log = invocation_log(root)
    return [
        f"  - name: {JOB}",
        f"    every: {EVERY_MS}ms",
        f'    anchor: "{anchor}"',
        "    misfire: all",
        f"    overlap: {overlap}",
        f"    command: [{python}, -S, {paths['algorithm']}, {log}]",
        "    timeout: 1m",
        "    retries: 100",
        "    stages:",
        "      - name: score",
        f"        command: [{python}, -S, {paths['stage']}, {log}]",
        "      - name: total",
        "        mode: merge",
        f"        command: [{python}, -S, {paths['merge']}, {log}]",
        "      - name: store",
        "        builtin: store",
    ]


def invocation_log(root: str) -> str:
    return os.path.join(root, "invocations.log")


def invocations(root: str) -> dict[str, dict[tuple, int]]:
    """role -> (run[, part]) -> how many times a command was started for it."""
    out: dict[str, dict[tuple, int]] = {"algorithm": {}, "score": {}, "merge": {}}
    try:
        with open(invocation_log(root), "rb") as f:
            for line in f.read().decode(errors="replace").splitlines():
                words = line.split()
                if len(words) < 3 or words[0] not in out:
                    continue
                key = tuple(words[1:-1])
                out[words[0]][key] = out[words[0]].get(key, 0) + 1
    except OSError:
        pass
    return out


def fired_runs(data_dir: str, events: list[dict]) -> set[str]:
    """Runs of the job the scheduler fired: run.scheduled in the log, or its ledger when the event was lost."""
    fired = {e["run"] for e in events if e.get("type") == "run.scheduled" and str(e.get("run", "")).startswith(JOB + "@")}
    state = os.path.join(data_dir, "scheduler", "state.sqlite")
    if os.path.exists(state):
        con = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5)
        try:
            fired |= {r for (r,) in con.execute(
                "SELECT run_id FROM fires WHERE job = ? AND state NOT IN ('skipped', 'queued')", (JOB,))}
        finally:
            con.close()
    return fired


def stored_runs(store: str) -> set[str]:
    if not os.path.exists(store):
        return set()
    try:
        con = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
        try:
            return {r for (r,) in con.execute("SELECT DISTINCT run_id FROM results WHERE run_id LIKE ?", (JOB + "@%",))}
        finally:
            con.close()
    except sqlite3.Error:
        return set()


def drain(data_dir: str, store: str, events, deadline: float, give_up_s: float = 45.0, log=print) -> bool:
    """Waits until every fired run of the job is stored; False at the deadline or after `give_up_s` without a new
    stored run. `events` reads the event log (a function: it grows while we wait)."""
    last, changed = -1, time.time()
    while time.time() < deadline:
        stored = stored_runs(store)
        missing = fired_runs(data_dir, events()) - stored
        if len(stored) != last:
            last, changed = len(stored), time.time()
        if not missing:
            return True
        if time.time() - changed >= give_up_s:
            log(f"{JOB}: nothing stored for {give_up_s:.0f}s and {len(missing)} fired runs not stored; giving up")
            return False
        time.sleep(0.5)
    return False


def check(root: str, data_dir: str, runs: dict, events: list[dict], v, sample) -> dict:
    """The pipelined job's oracle. `runs` is chaos.read_store's answer, `v` a chaos.Verdict."""
    fired = fired_runs(data_dir, events)
    mine = {run_id: r for run_id, r in runs.items() if run_id.startswith(JOB + "@")}
    missing = sorted(fired - set(mine))
    unfired = sorted(set(mine) - fired)
    wrong = []
    for run_id, r in sorted(mine.items()):
        if r.problems or sorted(r.parts) != [0] or r.parts[0] is None:
            wrong.append(f"{run_id}: parts {sorted(r.parts)} stored{'; ' + '; '.join(r.problems) if r.problems else ''}"
                         " (one merged row, part 0, expected)")
            continue
        want = expected_merged(run_id)
        got = r.parts[0]
        if got != want:
            wrong.append(f"{run_id}: {len(got)} bytes stored (sha256 {hashlib.sha256(got).hexdigest()[:12]}), expected "
                         f"{len(want)} (sha256 {hashlib.sha256(want).hexdigest()[:12]})")
    calls = invocations(root)
    merges = [calls["merge"].get((run_id,), 0) for run_id in sorted(mine)]
    histogram = {n: merges.count(n) for n in sorted(set(merges))}
    again = sorted(run_id for run_id in mine if calls["merge"].get((run_id,), 0) > 1)
    scored = sum(calls["score"].values())
    tasks = len(calls["score"])
    counts = {t: sum(1 for e in events if e.get("type") == t and str(e.get("run", "")).startswith(JOB + "@"))
              for t in ("stage.done", "pipeline.finished", "task.failed")}
    v.info(f"{JOB} (algorithm, per-part stage, merge, store; every {EVERY_MS} ms): fired {len(fired)}, stored "
           f"{len(mine)}, missing {len(missing)}, never fired {len(unfired)}, wrong {len(wrong)}")
    v.info(f"{JOB} invocations: merge per stored run {histogram or 'none'} (more than once: {sample(again, 4) or 'none'}); "
           f"per-part stage {scored} for {tasks} (run, part) tasks; algorithm {sum(calls['algorithm'].values())} for "
           f"{len(calls['algorithm'])} runs; events: {counts}")
    for run_id in again[:10]:
        parts = {k[1]: n for k, n in calls["score"].items() if k[0] == run_id}
        v.info(f"  {run_id}: merge ran {calls['merge'][(run_id,)]} times; per-part stage runs by part {parts}")
    if not fired:
        v.fail(f"{JOB}: no run of the pipelined job was fired")
    if missing:
        v.fail(f"{JOB}: {len(missing)} fired runs have no stored merged row: {sample(missing, 5)}")
    if unfired:
        v.fail(f"{JOB}: {len(unfired)} stored runs were never fired: {sample(unfired, 5)}")
    if wrong:
        v.fail(f"{JOB}: {len(wrong)} stored merged rows differ from the oracle: {sample(wrong, 4)}")
    return {"fired": len(fired), "stored": len(mine), "missing": len(missing), "wrong": len(wrong),
            "merge_invocations": histogram}
