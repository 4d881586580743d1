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
dir=$(mktemp -d /tmp/bt-handoff-XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
cat > "$dir/baton.yaml" <<YAML
data_dir: $dir/data
endpoints:
  runs: ipc://$dir/runs
  control: ipc://$dir/control
  results: ipc://$dir/results
  acks: ipc://$dir/acks
  status_in: ipc://$dir/status-in
  status_out: ipc://$dir/status-out
  query: ipc://$dir/query
  reports: ipc://$dir/reports
jobs:
  - name: handoff
    every: 500ms
    command: [sh, -c, 'head -c $size /dev/urandom > "\$BATON_OUTPUT"']
YAML
for service in logger scheduler algorithm; do
  "$bin/baton-$service" --config "$dir/baton.yaml" 2>"$dir/$service.err" &
done
log="$dir/data/logs/events.jsonl"
until [ -f "$log" ] && [ "$(grep -cF '"type":"run.finished"' "$log")" -ge "$runs" ]; do sleep 0.5; done
grep -F '"type":"run.finished"' "$log" | head -n "$runs" | sed 's/.*"handoff_ms":"\([0-9.]*\)".*/\1/' | sort -n | awk -v size="$size" '
  { v[NR] = $1 } END {
    printf "hand-off for %d-byte results over %d runs: min %.3f ms, median %.3f ms, max %.3f ms\n", size, NR, v[1], v[int((NR + 1) / 2)], v[NR]
  }'
