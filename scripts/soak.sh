#!/usr/bin/env bash
# soak.sh — hold ringlet under a long, mixed, hostile load and check nothing
# is lost and nothing leaks.
#
# Starts a release `ringlet serve` (framed file server, both protocols),
# then `ringlet bench soak`: thousands of connection slots mixing echo and
# file sessions, every byte checked, with connection resets and slow readers
# injected. Reports bytes verified, errors (expected: only the injected
# ones), and the server's RSS and open descriptors at start and end
# (expected: flat).
#
# Usage: scripts/soak.sh [--minutes M] [--seconds S] [--conns N] [--backend B]
#   defaults: 1 minute, 2000 connection slots, --backend auto
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60 conns=2000 backend=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) seconds=$(awk -v m="$2" 'BEGIN { printf "%d", m * 60 }'); shift ;;
    --seconds) seconds="$2"; shift ;;
    --conns) conns="$2"; shift ;;
    --backend) backend="$2"; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
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
  --root "$data" --write-timeout 10 2> "$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  grep -q "file listening" "$log" && break
  sleep 0.1
done
echo_addr=$(sed -n 's/.*echo listening on \([^ ]*\) .*/\1/p' "$log")
file_addr=$(sed -n 's/.*file listening on \([^ ]*\) .*/\1/p' "$log")
[ -n "$echo_addr" ] && [ -n "$file_addr" ] || { cat "$log" >&2; exit 1; }

rss() { awk '/^VmRSS/ { print $2 }' "/proc/$pid/status"; }
fds() { ls "/proc/$pid/fd" | wc -l; }
rss0=$(rss) fds0=$(fds)
echo "== soak: $seconds s, $conns slots, server pid $pid ($(grep -o '[a-z]* backend' "$log" | head -1)); RSS ${rss0} KiB, ${fds0} fds" >&2

status=0
result=$("$bin" bench soak --echo "$echo_addr" --file "$file_addr" --path /file.bin \
  --expect "$data/file.bin" --conns "$conns" --duration "$seconds") || status=$?
sleep 2   # let the server see the last closes
rss1=$(rss) fds1=$(fds)
kill -0 "$pid" || { echo "the server died" >&2; cat "$log" >&2; exit 1; }

echo "$result"
echo "$result" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(f"sessions {r[\"sessions\"]}, bytes verified {r[\"bytes_verified\"]} (echo {r[\"echo_bytes\"]}, file {r[\"file_bytes\"]})")
print(f"injected resets {r[\"injected_resets\"]}, slow readers {r[\"slow_sessions\"]}, unexpected errors {r[\"unexpected_errors\"]}")
' || true
echo "server RSS ${rss0} KiB -> ${rss1} KiB; open fds ${fds0} -> ${fds1}"
echo "server log: $(wc -l < "$log") lines, $(grep -c ' WARN ' "$log" || true) warnings, $(grep -c ' ERROR ' "$log" || true) errors (resets and timeouts are expected warnings)"
if [ "$fds1" -gt $(( fds0 + 16 )) ]; then echo "descriptor leak: $fds0 -> $fds1" >&2; status=1; fi
if [ "$rss1" -gt $(( rss0 + 65536 )) ]; then echo "RSS grew by more than 64 MiB: $rss0 -> $rss1 KiB" >&2; status=1; fi
exit "$status"
