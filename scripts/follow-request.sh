#!/usr/bin/env bash
# follow-request.sh — how many of ringlet's source files one request runs
# through: a newcomer's reading path, counted by the machine.
#
# Starts `ringlet serve` (one shard) with one protocol, attaches gdb with a
# one-shot breakpoint on every function of the ringlet crates (the binary's
# own commands and load generator left out), sends one request, and lists the
# source files whose functions ran, from accept to close. What the shard does
# in that window anyway (its heartbeat) is counted too, the same way before
# and after a change, so compare counts made by this script only.
#
# Usage: scripts/follow-request.sh [--bin PATH] [--backend uring|epoll] [--list] PROTO...
#   PROTO     echo (one line and its echo), file (one plain-mode file), http
#             (one GET with Connection: close); default: all three
#   --bin     the binary (default target/debug/ringlet, built if missing; it
#             needs debug info)
#   --list    print the files, not only their count
# Needs gdb and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/debug/ringlet backend=uring list=0 protos=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --list) list=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    echo|file|http) protos+=("$1"); shift ;;
    *) echo "follow-request.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#protos[@]} -gt 0 ] || protos=(echo file http)
for tool in gdb python3 setarch nm; do
  command -v "$tool" >/dev/null || { echo "follow-request.sh: needs $tool" >&2; exit 2; }
done
[ -x "$bin" ] || cargo build --quiet --bin ringlet
bin=$(realpath "$bin")

work=$(mktemp -d)
server=
trap 'kill $(jobs -p) $server 2>/dev/null || true; rm -rf "$work"' EXIT
echo hello > "$work/a.txt"

# Every function of the ringlet crates but the binary's commands, logging and
# load generator (they do not run per request).
nm -C --defined-only "$bin" | awk '$2 ~ /^[tT]$/' | grep -E ' <?ringlet(_bin)?::' \
  | grep -vE 'ringlet(_bin)?::(bench|cli|cmd::(docs|logging|bench))::' \
  | awk '{print $1}' | sort -u > "$work/addrs"

cat > "$work/once.py" <<'PY'
import gdb, os
pid, out = int(os.environ["FOLLOW_PID"]), os.environ["FOLLOW_OUT"]
exe = os.path.realpath(f"/proc/{pid}/exe")
base = next(int(l.split()[0].split("-")[0], 16) for l in open(f"/proc/{pid}/maps")
            if len(l.split()) >= 6 and os.path.realpath(l.split()[5]) == exe and l.split()[2] == "00000000")
hits = open(out, "w")
class Once(gdb.Breakpoint):
    def stop(self):
        sal = gdb.selected_frame().find_sal()
        hits.write((sal.symtab.filename if sal.symtab else "?") + "\n"); hits.flush()
        self.enabled = False
        return False
for a in open(os.environ["FOLLOW_ADDRS"]):
    Once(f"*{hex(base + int(a, 16))}", internal=True)
open(os.environ["FOLLOW_READY"], "w").close()
try:
    gdb.execute("continue")
except gdb.error:
    pass
hits.close()
gdb.execute("kill")
PY

for proto in "${protos[@]}"; do
  port=$((20000 + RANDOM % 20000))
  # Started from a subshell, so that its death by gdb's kill is not this
  # shell's job to report.
  server=$( (setarch -R "$bin" serve --backend "$backend" --cores 1 --echo off --file off --http off \
    --metrics off "--$proto" "127.0.0.1:$port" --root "$work" > "$work/server.log" 2>&1 & echo $!) )
  for _ in $(seq 100); do grep -q listening "$work/server.log" && break; sleep 0.1; done
  grep -q listening "$work/server.log" || { cat "$work/server.log" >&2; exit 1; }
  rm -f "$work/ready"
  FOLLOW_PID=$server FOLLOW_OUT="$work/hits" FOLLOW_ADDRS="$work/addrs" FOLLOW_READY="$work/ready" \
    gdb -q -batch -p "$server" -ex "set pagination off" -ex "handle SIGPIPE nostop noprint pass" \
    -x "$work/once.py" > "$work/gdb.log" 2>&1 &
  debugger=$!
  for _ in $(seq 1200); do [ -f "$work/ready" ] && break; sleep 0.1; done
  sleep 1
  python3 - "$port" "$proto" <<'PY'
import socket, sys
port, proto = int(sys.argv[1]), sys.argv[2]
ask = {"echo": b"hi\n", "file": b"a.txt\0",
       "http": b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"}[proto]
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(60)
s.sendall(ask)
if proto == "echo":
    assert s.recv(100) == b"hi\n"; s.shutdown(socket.SHUT_WR)
data = b""
while (d := s.recv(65536)):
    data += d
assert proto == "echo" or b"hello\n" in data, data[:200]
PY
  sleep 2
  kill -INT "$server"
  wait "$debugger" || true
  while kill -0 "$server" 2>/dev/null; do sleep 0.1; done
  files=$(sed "s|^$PWD/||" "$work/hits" | grep -E '^src/.*\.rs$' | sort -u || true)
  echo "$proto on $backend: $(printf '%s\n' "$files" | grep -c . || true) source files"
  [ "$list" = 1 ] && printf '%s\n' "$files" | sed 's/^/  /'
done
