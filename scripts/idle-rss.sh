#!/usr/bin/env bash
# idle-rss.sh — the server's memory with N idle connections, per backend.
#
# For each backend: start `ringlet serve` (release, one shard), open N echo
# connections that each send one line and then stay silent, and read the
# server's RSS before and with them. Goal (issue 4): 10,000 idle connections
# in at most 64 MiB for the whole server.
#
# Usage: scripts/idle-rss.sh [--conns N] [--backends "uring epoll"]
set -euo pipefail
cd "$(dirname "$0")/.."
conns=10000 backends="uring epoll"
while [ $# -gt 0 ]; do
  case "$1" in
    --conns) conns="$2"; shift ;;
    --backends) backends="$2"; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet
bin=target/release/ringlet
port=17800
echo "| backend | idle connections | server RSS before | with them | per connection |"
echo "|---|---|---|---|---|"
for b in $backends; do
  "$bin" serve --backend "$b" --cores 1 --file off --echo "127.0.0.1:$port" --idle-timeout 600 2>/dev/null &
  pid=$!
  sleep 0.5
  before=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")
  with=$(python3 - "$port" "$conns" "$pid" <<'PY'
import socket, sys, time
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"hi\n")
    socks.append(s)
for s in socks:
    assert s.recv(3) == b"hi\n"
time.sleep(1)
print(next(l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")))
PY
)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  per=$(( (with - before) * 1024 / conns ))
  echo "| $b | $conns | $(( before / 1024 )) MiB | $(( with / 1024 )) MiB | $per bytes |"
  port=$(( port + 1 ))
done
