#!/usr/bin/env bash
# syscalls-per-message.sh — what the server does per echoed message, counted
# by the kernel rather than timed: system calls, io_uring_enter calls on each
# ring (the shard's own completion ring, and glommio's main, poll and latency
# rings), membarrier calls and context switches per message, system calls per
# wake-up (a context switch is the server going to sleep), plus server CPU,
# for each backend at a fixed offered rate. Counts do not drift with the
# machine's noise the way CPU seconds do, so they show where per-message
# work goes (see docs/bench/history.md, "CPU per message at a fixed rate: where it goes").
#
# Needs `perf` (tracepoints: run as root or lower kernel.perf_event_paranoid).
# Server pinned to the first allowed CPU, one shard; client on the second.
#
# Usage: scripts/syscalls-per-message.sh [--rate N] [--conns N] [--seconds S]
#            [--backends "uring epoll"] [--bin NAME=PATH]...
#   --bin NAME=PATH  measure this ringlet binary too (e.g. an older build),
#                    as NAME; the default is this tree's release build.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=5000 conns=50 seconds=3 backends="uring epoll" bins=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate="$2"; shift ;;
    --conns) conns="$2"; shift ;;
    --seconds) seconds="$2"; shift ;;
    --backends) backends="$2"; shift ;;
    --bin) bins+=("$2"); shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)" >&2; exit 2; }
cpus=$(python3 -c 'import os; print(" ".join(map(str, sorted(os.sched_getaffinity(0)))))')
read -r server_cpu client_cpu _ <<< "$cpus $cpus"
cargo build --release --quiet
bins=("this=target/release/ringlet" "${bins[@]}")
client=target/release/ringlet
tmp=$(mktemp -d); trap 'rm -rf "$tmp"; kill $(jobs -p) 2>/dev/null || true' EXIT
echo "echo 64 B at $rate msg/s, $conns connections, ${seconds} s; server on CPU $server_cpu, client on CPU $client_cpu"
echo
echo "| server | messages | syscalls/msg | io_uring_enter/msg: ours / glommio main / poll / latency | membarrier/msg | context switches/msg | syscalls per wake-up | server CPU µs/msg |"
echo "|---|---|---|---|---|---|---|---|"
port=17950
for spec in "${bins[@]}"; do
  name=${spec%%=*} bin=${spec#*=}
  for b in $backends; do
    taskset -c "$server_cpu" "$bin" serve --backend "$b" --cores 1 --file off --echo "127.0.0.1:$port" 2>/dev/null &
    pid=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
    # The rings, by creation order: glommio's main, poll and latency rings
    # (128 entries each), and the shard's own (1024 entries).
    ours="" glommio=()
    for fd in $(ls "/proc/$pid/fd" | sort -n); do
      [ "$(readlink "/proc/$pid/fd/$fd")" = "anon_inode:[io_uring]" ] || continue
      if grep -q 'SqMask:.*0x3ff' "/proc/$pid/fdinfo/$fd"; then ours=$fd; else glommio+=("$fd"); fi
    done
    ring_events=()
    for fd in $ours "${glommio[@]}"; do
      ring_events+=(-e syscalls:sys_enter_io_uring_enter --filter "fd == $fd")
    done
    perf stat -x, -e raw_syscalls:sys_enter -e syscalls:sys_enter_io_uring_enter \
      -e syscalls:sys_enter_membarrier -e context-switches "${ring_events[@]}" \
      -p "$pid" -o "$tmp/stat" -- sleep "$(echo "$seconds + 0.3" | bc)" &
    perf_pid=$!
    sleep 0.1
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    msgs=$(taskset -c "$client_cpu" "$client" bench echo --addr "127.0.0.1:$port" --conns "$conns" \
      --rate "$rate" --duration "$seconds" --threads 1 --pin --json |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["messages"])')
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    wait "$perf_pid"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    hz=$(getconf CLK_TCK)
    python3 - "$tmp/stat" "$msgs" "$name $b" "$(( t1 - t0 ))" "$hz" "${#ring_events[@]}" <<'PY'
import sys
path, msgs, label, ticks, hz, nrings = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]) // 4
counts = []
for line in open(path):
    parts = line.strip().split(",")
    if len(parts) > 2 and parts[0].replace(".", "").isdigit():
        counts.append(float(parts[0]))
syscalls, enters, membarrier, switches = counts[:4]
rings = counts[4:4 + nrings]
per = lambda v: "%.2f" % (v / msgs)
ring_text = " / ".join(per(v) for v in rings) if rings else "-"
print("| %s | %d | %s | %s = %s | %s | %s | %.1f | %.1f |" % (
    label, msgs, per(syscalls), per(enters), ring_text, per(membarrier), per(switches),
    syscalls / max(switches, 1), ticks / hz * 1e6 / msgs))
PY
    port=$((port + 1))
  done
done
