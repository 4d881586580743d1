#!/usr/bin/env python3
"""A per-part stage for Baton: reads one part and writes it transformed to $BATON_OUTPUT.

Baton runs it once per part of the stage's input, with the part on standard input (or in the file
$BATON_INPUT with `input: file`) and BATON_RUN_ID, BATON_STAGE, BATON_STAGE_INDEX, BATON_PART and BATON_PARTS
set. Each row gets a score, the part it was scored as, and the stage's name appended to its `stages`, so the
stored data shows the path it took. Deterministic: the same input gives the same bytes.
"""
import json
import os
import sys


def transform(data: bytes, stage: str, part: int, parts: int) -> bytes:
    """The stage's output for one part."""
    lines = []
    for line in data.decode("utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        row["score"] = round(row["value"] * row["value"] / 100.0, 6)
        row["scored"] = f"{part}/{parts}"
        row["stages"] = row.get("stages", []) + [stage]
        lines.append(json.dumps(row, sort_keys=True) + "\n")
    return "".join(lines).encode("utf-8")


def main() -> int:
    path = os.environ.get("BATON_INPUT")
    data = open(path, "rb").read() if path else sys.stdin.buffer.read()
    output = transform(data, os.environ["BATON_STAGE"], int(os.environ["BATON_PART"]), int(os.environ["BATON_PARTS"]))
    with open(os.environ["BATON_OUTPUT"], "wb") as handle:
        handle.write(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
