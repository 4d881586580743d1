#!/usr/bin/env python3
"""A user's algorithm for Baton: reads the run from the environment, writes JSON lines to $BATON_OUTPUT.

Baton sets BATON_RUN_ID, BATON_JOB, BATON_LOGICAL_TIME (ISO 8601, UTC) and BATON_OUTPUT (the file to write).
Exit 0 when the result is complete; any other status marks the run failed. Standard output and standard
error go to Baton's log, except lines `baton:progress <percent>% [message]`, which report progress.

The computation is deterministic for a given run: a seeded random walk over the logical hour.
"""
import hashlib
import json
import os
import random
import sys
import time


def main() -> int:
    run_id = os.environ["BATON_RUN_ID"]
    logical_time = os.environ["BATON_LOGICAL_TIME"]
    output = os.environ["BATON_OUTPUT"]
    steps = int(os.environ.get("WALK_STEPS", "24"))
    seconds = float(os.environ.get("WORK_SECONDS", "0.2"))

    seed = int(hashlib.sha256(run_id.encode()).hexdigest()[:16], 16)
    rng = random.Random(seed)
    print(f"starting {run_id} for {logical_time}", flush=True)

    position = 0.0
    rows = []
    for step in range(steps):
        position += rng.gauss(0.0, 1.0)
        rows.append({"run": run_id, "logical_time": logical_time, "step": step, "position": round(position, 6)})
        time.sleep(seconds / steps)
        # Progress: a line of this form on standard output becomes a run.progress event on the status bus.
        print(f"baton:progress {100 * (step + 1) / steps:.0f}% step {step + 1} of {steps}", flush=True)

    with open(output, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
    print(f"wrote {len(rows)} rows", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
