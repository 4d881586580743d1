#!/usr/bin/env python3
"""A pipeline's algorithm for Baton: writes its result as several parts, one file each, into $BATON_OUTPUT_DIR.

Baton sets BATON_RUN_ID, BATON_JOB, BATON_LOGICAL_TIME and BATON_OUTPUT_DIR. Every file created in that
directory is a part, in byte order of the file names, so the names are zero-padded numbers. The rows are
deterministic for a given run id (seeded from it), so a run can be recomputed to check what was stored.

PIPELINE_PARTS (default 16) and PIPELINE_ROWS (rows per part, default 8) size the result.
"""
import hashlib
import json
import os
import random
import sys


def parts(run_id: str, count: int, rows: int) -> list[bytes]:
    """The run's parts, in order: JSON lines {run, part, row, value}."""
    rng = random.Random(int(hashlib.sha256(run_id.encode()).hexdigest()[:16], 16))
    result = []
    for part in range(count):
        lines = []
        for row in range(rows):
            value = round(rng.uniform(-100.0, 100.0), 6)
            lines.append(json.dumps({"run": run_id, "part": part, "row": row, "value": value}, sort_keys=True) + "\n")
        result.append("".join(lines).encode("utf-8"))
    return result


def main() -> int:
    run_id = os.environ["BATON_RUN_ID"]
    directory = os.environ["BATON_OUTPUT_DIR"]
    count = int(os.environ.get("PIPELINE_PARTS", "16"))
    rows = int(os.environ.get("PIPELINE_ROWS", "8"))
    for index, data in enumerate(parts(run_id, count, rows)):
        with open(os.path.join(directory, f"{index:06d}"), "wb") as handle:
            handle.write(data)
    print(f"wrote {count} parts of {rows} rows for {run_id}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
