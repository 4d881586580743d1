#!/usr/bin/env bash
# Measures what each service costs while idle: CPU time over a window, and resident memory.
#   scripts/idle-cpu.sh [seconds] [build-dir]     (defaults: 10, .build/debug)
# Starts logger, scheduler, algorithm and one processor on ipc:// endpoints in a temporary directory, with
# one job that is not due during the window, waits for start-up, then reads each process's CPU time
# (utime + stime from /proc/<pid>/stat, which includes threads that have exited; 10 ms resolution, so use a
# long window for small figures) before and after the window, and its resident memory at the end.
set -euo pipefail
window=${1:-10}
bin=${2:-.build/debug}
source "$(dirname "$0")/stack.sh"
stack_init idle
stack_config <<YAML
jobs:
  - name: idle
    every: 1d
    builtin: demo
YAML
stack_start logger scheduler algorithm processor
sleep 3
ticks=$(getconf CLK_TCK)
# Fields 14 and 15 of /proc/<pid>/stat, counted after the ')' that ends the command name; in nanoseconds.
cpu_ns() { sed 's/.*) //' /proc/"$1"/stat | awk -v hz="$ticks" '{printf "%.0f", ($12 + $13) * 1e9 / hz}'; }
declare -A before
for service in "${!pids[@]}"; do before[$service]=$(cpu_ns "${pids[$service]}"); done
sleep "$window"
printf '%-10s %14s %12s\n' service "cpu_ms/${window}s" rss_mib
for service in logger scheduler algorithm processor; do
  pid=${pids[$service]}
  after=$(cpu_ns "$pid")
  rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/"$pid"/status)
  awk -v s="$service" -v a="$after" -v b="${before[$service]}" -v r="$rss" 'BEGIN {printf "%-10s %14.3f %12s\n", s, (a - b) / 1e6, r}'
done
