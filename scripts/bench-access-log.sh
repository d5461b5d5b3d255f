#!/bin/bash
# bench-access-log.sh — what --access-log costs: 4 KiB files over HTTP by wrk
# (-t1 -c100, 5 s), server on CPU 0 (--cores 1), wrk on CPU 1, the log off
# and on alternated over 3 rounds; server CPU ticks (utime+stime, the
# access log writer thread included) and requests per round. Needs wrk.
set -e
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/ringlet
d=$(mktemp -d /var/tmp/alb.XXXX); head -c 4096 /dev/urandom > $d/f4k
for round in 1 2 3; do
for mode in off on; do
  args=(serve --cores 1 --echo off --file off --http 127.0.0.1:18080 --root $d)
  [ $mode = on ] && args+=(--access-log $d/access.log)
  taskset -c 0 $bin "${args[@]}" 2>/dev/null & pid=$!
  sleep 0.5
  curl -sf -o /dev/null http://127.0.0.1:18080/f4k || { echo "no answer"; kill $pid; exit 1; }
  s0=$(awk '{print $14+$15}' /proc/$pid/stat)
  out=$(taskset -c 1 wrk -t1 -c100 -d5s http://127.0.0.1:18080/f4k)
  s1=$(awk '{print $14+$15}' /proc/$pid/stat)
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  errs=$(echo "$out" | grep -c "Non-2xx\|Socket errors" || true)
  echo "round $round log=$mode rps=$rps cpu_ticks=$((s1-s0)) requests=$reqs errs=$errs lines=$( [ -f $d/access.log ] && wc -l < $d/access.log || echo 0)"
  kill $pid; wait $pid 2>/dev/null || true
  rm -f $d/access.log
done; done
rm -rf $d
