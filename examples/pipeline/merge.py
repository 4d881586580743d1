#!/usr/bin/env python3
"""A merge stage for Baton: reads every part of the run, in part order, and writes one summary line.

Baton runs it once per run, when every part of the stage before it has succeeded. Its input is all of them
concatenated in part order, on standard input (or in the file $BATON_INPUT with `input: file`), and the
directory $BATON_INPUT_DIR holds them as one file each (000000, 000001, ...). It reads the stream, checks it
against the directory (the two must agree), and writes one JSON line to $BATON_OUTPUT, which the built-in
store keeps as one row.
"""
import hashlib
import json
import os
import sys


def summarise(run_id: str, parts: list[bytes]) -> bytes:
    """The summary of a run's parts, in order: counts, score total and extremes, and the input's sha256."""
    data = b"".join(parts)
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    scores = [row["score"] for row in rows]
    order = [row["part"] for row in rows]
    summary = {
        "run": run_id,
        "parts": len(parts),
        "rows": len(rows),
        "in_order": order == sorted(order),
        "total": round(sum(scores), 6),
        "min": min(scores) if scores else None,
        "max": max(scores) if scores else None,
        "stages": rows[0]["stages"] if rows else [],
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    return (json.dumps(summary, sort_keys=True) + "\n").encode("utf-8")


def main() -> int:
    path = os.environ.get("BATON_INPUT")
    stream = open(path, "rb").read() if path else sys.stdin.buffer.read()
    directory = os.environ.get("BATON_INPUT_DIR")
    if directory:
        parts = []
        for name in sorted(os.listdir(directory)):
            with open(os.path.join(directory, name), "rb") as handle:
                parts.append(handle.read())
        if b"".join(parts) != stream:
            print("the input stream is not the parts of BATON_INPUT_DIR in order", file=sys.stderr)
            return 1
    else:
        parts = [stream]
    with open(os.environ["BATON_OUTPUT"], "wb") as handle:
        handle.write(summarise(os.environ["BATON_RUN_ID"], parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
