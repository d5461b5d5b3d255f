#!/bin/bash
# bench-access-log.sh — what --access-log costs: 4 KiB files over HTTP by wrk
# (-t1 -c100, 5 s), server on CPU 0 (--cores 1), wrk on CPU 1, the log off
# and on alternated over ROUNDS rounds (default 5); server CPU ticks
# (utime+stime, the access log writer thread included), requests per round,
# and each round's on/off ratio of requests per second, then their median.
# Every answer is checked first, and the log's lines counted after.
# Needs wrk and curl.
# Usage: [ROUNDS=N] scripts/bench-access-log.sh
set -e
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-5}
cargo build --release --quiet
bin=target/release/ringlet
d=$(mktemp -d /var/tmp/alb.XXXX); head -c 4096 /dev/urandom > $d/f4k
trap 'rm -rf $d' EXIT
ratios=()
for round in $(seq "$rounds"); do
for mode in off on; do
  args=(serve --cores 1 --echo off --file off --http 127.0.0.1:18080 --root $d)
  [ $mode = on ] && args+=(--access-log $d/access.log)
  taskset -c 0 $bin "${args[@]}" 2>/dev/null & pid=$!
  for _ in $(seq 50); do curl -sf -o $d/got http://127.0.0.1:18080/f4k && break; sleep 0.1; done
  cmp -s $d/got $d/f4k || { echo "bench-access-log: the server did not answer the file"; kill $pid; exit 1; }
  s0=$(awk '{print $14+$15}' /proc/$pid/stat)
  out=$(taskset -c 1 wrk -t1 -c100 -d5s http://127.0.0.1:18080/f4k)
  s1=$(awk '{print $14+$15}' /proc/$pid/stat)
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  errs=$(echo "$out" | grep -c "Non-2xx\|Socket errors" || true)
  kill $pid; wait $pid 2>/dev/null || true
  lines=$( [ -f $d/access.log ] && wc -l < $d/access.log || echo 0)
  echo "round $round log=$mode rps=$rps cpu_ticks=$((s1-s0)) requests=$reqs errs=$errs lines=$lines"
  [ $mode = off ] && off=$rps || ratios+=("$(awk -v a="$rps" -v b="$off" 'BEGIN {printf "%.3f", a / b}')")
  rm -f $d/access.log
done; done
echo "on/off requests/s per round: ${ratios[*]}"
printf '%s\n' "${ratios[@]}" | sort -g | awk '{v[NR] = $1} END {print "median on/off: " v[int((NR + 1) / 2)]}'
