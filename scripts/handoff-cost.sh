#!/usr/bin/env bash
# Measures the algorithm's hand-off cost: raw result file closed → algorithm free for its next run
# (checksum, fsync of file and directory, rename, and the outbox + run-ledger transaction).
#   scripts/handoff-cost.sh [size-bytes] [runs] [build-dir]     (defaults: 1048576, 10, .build/debug)
# Runs logger, scheduler and algorithm (no processor, so nothing competes) with a job whose command writes
# `size` random bytes, then reads each run's `handoff_ms` from the run.finished events.
set -euo pipefail
size=${1:-1048576}
runs=${2:-10}
bin=${3:-.build/debug}
source "$(dirname "$0")/stack.sh"
stack_init handoff
stack_config <<YAML
jobs:
  - name: handoff
    every: 500ms
    command: [sh, -c, 'head -c $size /dev/urandom > "\$BATON_OUTPUT"']
YAML
stack_start logger scheduler algorithm
log="$dir/data/logs/events.jsonl"
until [ -f "$log" ] && [ "$(grep -cF '"type":"run.finished"' "$log")" -ge "$runs" ]; do sleep 0.5; done
grep -F '"type":"run.finished"' "$log" | head -n "$runs" | sed 's/.*"handoff_ms":"\([0-9.]*\)".*/\1/' | sort -n | awk -v size="$size" '
  { v[NR] = $1 } END {
    printf "hand-off for %d-byte results over %d runs: min %.3f ms, median %.3f ms, max %.3f ms\n", size, NR, v[1], v[int((NR + 1) / 2)], v[NR]
  }'
