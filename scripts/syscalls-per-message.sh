#!/usr/bin/env bash
# syscalls-per-message.sh — what the server does per echoed message, counted
# by the kernel rather than timed: system calls, io_uring_enter calls,
# membarrier calls and context switches per message, system calls per
# wake-up (a context switch is the server going to sleep), plus server CPU,
# for each backend at a fixed offered rate. Counts do not drift with the
# machine's noise the way CPU seconds do, so they show where per-message
# work goes (see BENCHMARKS.md, "CPU per message at a fixed rate").
#
# Needs `perf` (tracepoints: run as root or lower kernel.perf_event_paranoid).
# Server pinned to the first allowed CPU, one shard; client on the second.
#
# Usage: scripts/syscalls-per-message.sh [--rate N] [--conns N] [--seconds S]
#            [--backends "uring epoll"]
set -euo pipefail
cd "$(dirname "$0")/.."
rate=5000 conns=50 seconds=3 backends="uring epoll"
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate="$2"; shift ;;
    --conns) conns="$2"; shift ;;
    --seconds) seconds="$2"; shift ;;
    --backends) backends="$2"; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)" >&2; exit 2; }
cpus=$(python3 -c 'import os; print(" ".join(map(str, sorted(os.sched_getaffinity(0)))))')
read -r server_cpu client_cpu _ <<< "$cpus $cpus"
cargo build --release --quiet
bin=target/release/ringlet
tmp=$(mktemp -d); trap 'rm -rf "$tmp"; kill $(jobs -p) 2>/dev/null || true' EXIT
events='raw_syscalls:sys_enter,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_membarrier,context-switches'
echo "echo 64 B at $rate msg/s, $conns connections, ${seconds} s; server on CPU $server_cpu, client on CPU $client_cpu"
echo
echo "| backend | messages | syscalls/msg | io_uring_enter/msg | membarrier/msg | context switches/msg | syscalls per wake-up | server CPU µs/msg |"
echo "|---|---|---|---|---|---|---|---|"
port=17950
for b in $backends; do
  taskset -c "$server_cpu" "$bin" serve --backend "$b" --cores 1 --file off --echo "127.0.0.1:$port" 2>/dev/null &
  pid=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
  perf stat -e "$events" -p "$pid" -o "$tmp/stat" -- sleep "$(echo "$seconds + 0.3" | bc)" &
  perf_pid=$!
  sleep 0.1
  t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  msgs=$(taskset -c "$client_cpu" "$bin" bench echo --addr "127.0.0.1:$port" --conns "$conns" \
    --rate "$rate" --duration "$seconds" --threads 1 --pin --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["messages"])')
  t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  wait "$perf_pid"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  per() { awk -v m="$msgs" -v e="$1" '$2 == e { gsub(",", "", $1); printf "%.2f", $1 / m }' "$tmp/stat"; }
  hz=$(getconf CLK_TCK)
  cpu=$(python3 -c "print(round(($t1 - $t0) / $hz * 1e6 / $msgs, 1))")
  wake=$(awk '$2 == "raw_syscalls:sys_enter" { gsub(",", "", $1); s = $1 } $2 == "context-switches" { gsub(",", "", $1); c = $1 } END { printf "%.1f", s / c }' "$tmp/stat")
  echo "| $b | $msgs | $(per raw_syscalls:sys_enter) | $(per syscalls:sys_enter_io_uring_enter) | $(per syscalls:sys_enter_membarrier) | $(per context-switches) | $wake | $cpu |"
  port=$((port + 1))
done
