#!/usr/bin/env bash
# bench-server-bound.sh — uring vs epoll where the client is not the limit.
#
# On a 2-CPU machine the load generator needs about as much CPU per message
# as the server, so a saturated ping-pong measures the pair and hides what
# either server could do alone (see docs/bench/history.md). Given more CPUs, this
# runs the server on few of them and `ringlet bench` on many, so the server
# is the bottleneck: messages/s then measure the server's capacity, and the
# server's CPU seconds per million messages its cost. Rounds interleave the
# servers (A B A B ...); the table has medians, min–max and ratios.
#
# Usage: scripts/bench-server-bound.sh [--server-cpus LIST] [--client-cpus LIST]
#            [--rounds N] [--duration S] [--bin NAME=PATH]... [--out DIR]
#   --server-cpus LIST  CPUs for the server, e.g. 0 or 0-1 (default: the first)
#   --client-cpus LIST  CPUs for the load generator (default: all the others)
#   --bin NAME=PATH     also run this ringlet binary's uring backend as NAME
#   RINGLET=PATH        the ringlet to test and to load with (default: a
#                       release build of this tree, built if cargo is there)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 duration=3 out="" server_cpus="" client_cpus="" bins=()
while [ $# -gt 0 ]; do
  case "$1" in
    --server-cpus) server_cpus="$2"; shift ;;
    --client-cpus) client_cpus="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --duration) duration="$2"; shift ;;
    --bin) bins+=("$2"); shift ;;
    --out) out="$2"; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
bin=${RINGLET:-target/release/ringlet}
if [ ! -x "$bin" ]; then cargo build --release --quiet; fi
mapfile -t cpus < <(python3 -c 'import os; print("\n".join(map(str, sorted(os.sched_getaffinity(0)))))')
[ "${#cpus[@]}" -ge 3 ] || echo "warning: ${#cpus[@]} CPUs: the client cannot outnumber the server here" >&2
server_cpus=${server_cpus:-${cpus[0]}}
client_cpus=${client_cpus:-$(IFS=,; echo "${cpus[*]:1}")}
cores=$(python3 -c "import sys; s=sys.argv[1]; print(sum((int(b)-int(a)+1) if '-' in p else 1 for p in s.split(',') for a,b in [p.split('-') if '-' in p else (p,p)]))" "$server_cpus")
threads=$(python3 -c "import sys; s=sys.argv[1]; print(sum((int(b)-int(a)+1) if '-' in p else 1 for p in s.split(',') for a,b in [p.split('-') if '-' in p else (p,p)]))" "$client_cpus")
out=${out:-bench-results/server-bound-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"; raw="$out/raw.jsonl"; : > "$raw"
clk=$(getconf CLK_TCK)
pids=(); trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

names=() spids=() ports=()
start() { # NAME BIN BACKEND PORT
  taskset -c "$server_cpus" "$2" serve --backend "$3" --cores "$cores" --file off \
    --echo "127.0.0.1:$4" 2> "$out/server-$1.log" &
  local pid=$!; pids+=("$pid")
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$4") 2>/dev/null && break; sleep 0.05; done
  names+=("$1"); spids+=("$pid"); ports+=("$4")
}
start uring "$bin" uring 17400
start epoll "$bin" epoll 17401
port=17402
for spec in "${bins[@]}"; do start "${spec%%=*}" "${spec#*=}" uring "$port"; port=$((port + 1)); done

ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
run_case() { # CASE ARGS...
  local case=$1; shift
  for i in "${!names[@]}"; do
    local before after result
    before=$(ticks "${spids[$i]}")
    result=$(taskset -c "$client_cpus" "$bin" bench echo --addr "127.0.0.1:${ports[$i]}" "$@" \
      --threads "$threads" --pin --duration "$duration" --json)
    after=$(ticks "${spids[$i]}")
    printf '{"case":"%s","server":"%s","round":%d,"server_cpu_s":%s,"outcome":%s}\n' "$case" "${names[$i]}" \
      "$round" "$(awk -v t=$((after - before)) -v c="$clk" 'BEGIN { printf "%.4f", t / c }')" "$result" >> "$raw"
    echo "   $case / ${names[$i]} done" >&2
  done
}
echo "== server on CPUs $server_cpus ($cores shard(s)), client on $client_cpus ($threads threads), $rounds x ${duration}s" >&2
for round in $(seq 0 $((rounds - 1))); do
  run_case "echo ping-pong 64 B, 50 conns" --conns 50 --size 64
  run_case "echo ping-pong 1024 B, 1000 conns" --conns 1000 --size 1024
  run_case "echo 64 B at 20k msg/s, 50 conns" --conns 50 --size 64 --rate 20000
  run_case "echo 64 B at 20k msg/s, 1000 conns" --conns 1000 --size 64 --rate 20000
done
{
  echo "Command: scripts/bench-server-bound.sh --server-cpus $server_cpus --client-cpus $client_cpus --rounds $rounds --duration $duration"
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), Linux $(uname -r)"
  echo
  "$bin" bench report "$raw"
} > "$out/table.md"
cat "$out/table.md"
