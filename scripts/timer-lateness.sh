#!/usr/bin/env bash
# Timer accuracy: fire lateness (actual fire minus scheduled slot) over N fires at an interval, and the
# cumulative drift (lateness of the last fire minus the first; slots come from an anchor grid, so it is 0
# unless the timer itself drifts).
#   scripts/timer-lateness.sh [interval] [fires] [build-dir]     (defaults: 100ms, 300, .build/debug)
set -euo pipefail
interval=${1:-100ms}
fires=${2:-300}
bin=${3:-.build/debug}
source "$(dirname "$0")/stack.sh"
stack_init timer
stack_config <<YAML
jobs:
  - name: timer
    every: $interval
    overlap: allow
    builtin: demo
    duration: 0s
YAML
# Only the logger and the scheduler: nothing takes the runs, so the timer is measured alone.
stack_start logger scheduler
log="$dir/data/logs/events.jsonl"
until [ -f "$log" ] && [ "$(grep -cF '"type":"run.scheduled"' "$log")" -ge "$fires" ]; do sleep 0.5; done
values=$(grep -F '"type":"run.scheduled"' "$log" | head -n "$fires" | sed 's/.*"lateness_ms":"\([0-9.-]*\)".*/\1/')
first=$(echo "$values" | head -n 1)
last=$(echo "$values" | tail -n 1)
echo "$values" | sort -g | awk -v first="$first" -v last="$last" '
  { v[NR] = $1 }
  END {
    printf "fires %d: lateness p50 %.3f ms, p99 %.3f ms, max %.3f ms; drift (last - first) %.3f ms\n",
      NR, v[int(NR * 0.50 + 0.5)], v[int(NR * 0.99 + 0.5)], v[NR], last - first
  }'
