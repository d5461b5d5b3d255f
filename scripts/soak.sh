#!/usr/bin/env bash
# soak.sh — hold ringlet under a long, mixed, hostile load and check nothing
# is lost and nothing leaks.
#
# Starts a release `ringlet serve` (echo, the framed file server and the
# HTTP/1.1 one) and a second one serving the same file in the article's
# plain mode, then `ringlet bench soak`: thousands of connection slots
# mixing echo, framed, plain and HTTP keep-alive sessions, every byte
# checked, with connection resets and slow readers injected, and plain
# clients that send a stray byte late or pipeline a second request (their
# answers must still arrive whole, then a FIN). Reports bytes verified,
# errors (expected: only the injected ones), truncated answers (expected:
# 0), and the server's RSS and open descriptors at start and end
# (expected: flat).
#
# Usage: scripts/soak.sh [--minutes M] [--seconds S] [--conns N] [--backend B]
#   defaults: 1 minute, 2000 connection slots, --backend auto (CI runs it
#   with --backend uring and with --backend epoll: a backend that cannot
#   start fails the soak, where auto would fall back)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60 conns=2000 backend=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) seconds=$(awk -v m="$2" 'BEGIN { printf "%d", m * 60 }'); shift ;;
    --seconds) seconds="$2"; shift ;;
    --conns) conns="$2"; shift ;;
    --backend) backend="$2"; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

cargo build --release --quiet
bin=target/release/ringlet
data=$(mktemp -d "${TMPDIR:-/var/tmp}/ringlet-soak.XXXXXX")
head -c $(( 1 << 20 )) /dev/urandom > "$data/file.bin"
log="$data/server.log"

# Both ends need a descriptor per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
"$bin" serve --backend "$backend" --echo 127.0.0.1:0 --file 127.0.0.1:0 --file-header \
  --http 127.0.0.1:0 --root "$data" --write-timeout 10 2> "$log" &
pid=$!
plain_log="$data/plain.log"
"$bin" serve --backend "$backend" --echo off --file 127.0.0.1:0 \
  --root "$data" --write-timeout 10 2> "$plain_log" &
plain_pid=$!
trap 'kill $pid $plain_pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  grep -q "file listening" "$log" && grep -q "http listening" "$log" \
    && grep -q "file listening" "$plain_log" && break
  sleep 0.1
done
echo_addr=$(sed -n 's/.*echo listening on \([^ ]*\) .*/\1/p' "$log")
file_addr=$(sed -n 's/.*file listening on \([^ ]*\) .*/\1/p' "$log")
http_addr=$(sed -n 's/.*http listening on \([^ ]*\) .*/\1/p' "$log")
plain_addr=$(sed -n 's/.*file listening on \([^ ]*\) .*/\1/p' "$plain_log")
[ -n "$echo_addr" ] && [ -n "$file_addr" ] && [ -n "$http_addr" ] && [ -n "$plain_addr" ] \
  || { cat "$log" "$plain_log" >&2; exit 1; }
if [ "$backend" != auto ]; then
  grep -q "$backend backend" "$log" || { echo "not the $backend backend:" >&2; cat "$log" >&2; exit 1; }
fi

rss() { awk '/^VmRSS/ { print $2 }' "/proc/$pid/status"; }
fds() { ls "/proc/$pid/fd" | wc -l; }
rss0=$(rss) fds0=$(fds)
echo "== soak: $seconds s, $conns slots, server pid $pid ($(grep -o '[a-z]* backend' "$log" | head -1)); RSS ${rss0} KiB, ${fds0} fds" >&2

# The soak runs in the background; RSS and descriptors are sampled meanwhile.
# Flat means: after the first third (buffers and allocator arenas warmed up to
# the load's concurrency) RSS stops growing.
out="$data/soak.json"
"$bin" bench soak --echo "$echo_addr" --file "$file_addr" --plain-file "$plain_addr" --http "$http_addr" --path /file.bin \
  --expect "$data/file.bin" --conns "$conns" --duration "$seconds" > "$out" &
client=$!
samples=()
step=$(( seconds / 10 > 0 ? seconds / 10 : 1 ))
while kill -0 "$client" 2>/dev/null; do
  sleep "$step"
  kill -0 "$pid" 2>/dev/null || break
  samples+=("$(rss)")
done
status=0
wait "$client" || status=$?
sleep 2   # let the server see the last closes
kill -0 "$pid" || { echo "the server died" >&2; cat "$log" >&2; exit 1; }
kill -0 "$plain_pid" || { echo "the plain-mode server died" >&2; cat "$plain_log" >&2; exit 1; }
rss1=$(rss) fds1=$(fds)

cat "$out"
python3 - "$out" <<'PY' || true
import json, sys
r = json.load(open(sys.argv[1]))
print("sessions %d, bytes verified %d (echo %d, file %d)" % (r["sessions"], r["bytes_verified"], r["echo_bytes"], r["file_bytes"]))
print("injected resets %d, slow readers %d, unexpected errors %d" % (r["injected_resets"], r["slow_sessions"], r["unexpected_errors"]))
print("plain sessions %d (late stray bytes %d, pipelined requests %d), truncated answers %d" % (r["plain_sessions"], r["late_stray_bytes"], r["pipelined_requests"], r["truncated_answers"]))
print("HTTP sessions %d, requests %d" % (r["http_sessions"], r["http_requests"]))
PY
# Every session kind ran and checked something; no answer was cut short.
figure() { grep -o "\"$1\":[0-9]*" "$out" | cut -d: -f2; }
for k in echo_bytes file_bytes plain_sessions http_requests; do
  [ "$(figure "$k")" -gt 0 ] 2>/dev/null || { echo "soak: no $k" >&2; status=1; }
done
[ "$(figure truncated_answers)" = 0 ] || { echo "soak: truncated answers" >&2; status=1; }
echo "server RSS (KiB) at start ${rss0}, every ${step}s: ${samples[*]:-none}, after ${rss1}"
echo "server open fds: ${fds0} at start, ${fds1} after"
echo "server log: $(wc -l < "$log") lines, $(grep -c ' WARN ' "$log" || true) warnings, $(grep -c ' ERROR ' "$log" || true) errors (resets and timeouts are expected warnings)"
# The uring backend keeps up to 8 idle pipes (16 descriptors) per shard.
if [ "$fds1" -gt $(( fds0 + 16 * $(nproc) + 16 )) ]; then echo "descriptor leak: $fds0 -> $fds1" >&2; status=1; fi
n=${#samples[@]}
if [ "$n" -ge 3 ]; then
  third=${samples[$(( n / 3 ))]}
  if [ "$rss1" -gt $(( third + third / 10 + 8192 )) ]; then
    echo "RSS kept growing after the first third: ${third} -> ${rss1} KiB" >&2; status=1
  fi
fi
exit "$status"
