#!/usr/bin/env bash
# scale-out.sh — the scale-out recipe, run for real: HAProxy in front of
# three ringlet instances, on loopback, with the PROXY protocol and health
# checks on /ready, and what a client sees when one instance drains, is
# upgraded in place, or dies.
#
# Installs HAProxy (Debian's package) when it is missing, without starting
# or enabling the system's service, and runs its own haproxy process with a
# config in a temp dir. Builds ringlet (cargo build --release) and starts
# three instances, each `serve --http --proxy-protocol http --metrics
# --cores 1 --shutdown-timeout 10` on ports chosen free at run time. The
# config it writes is the one docs/scale-out.md explains: balance
# roundrobin, send-proxy-v2, `option httpchk GET /ready` on each instance's
# metrics port every 200 ms (fall 1, rise 2), retries with redispatch;
# mode http by default (HAProxy keeps the client's keep-alive connection
# its own and retries a request whose server connection closed before any
# answer: the race a drain opens), mode tcp with --lb-mode tcp (a plain L4
# balancer, like a cloud one: the client sees each instance's FIN as it
# is). Then `ringlet bench file --mode http` through HAProxy (every
# answer's bytes checked against the file), run after run of 1 s each so a
# failed connection is counted and a fresh one takes its place, one phase
# each:
#   1. steady        all three up:                          0 failed
#   2. sigterm       SIGTERM to instance 1 (graceful drain): 0 failed
#   3. upgrade       SIGHUP to instance 2 (upgrade in place;
#                    its log says "upgrade: generation 2"):  0 failed
#   4. kill -9       instance 3 killed: only the requests in flight on the
#                    connections it had may fail, at most ceil(conns / 3)
#                    (roundrobin gives it that many of bench's connections;
#                    each fails once, then HAProxy has it DOWN and the
#                    next connections go to the others)
# In mode tcp phases 2 and 3 lose about one request per bench connection
# the instance had (RELIABILITY.md): the drain closes keep-alive
# connections idle between requests at once, bench does not retry a
# request such a connection never answered, and the recipe says so (exit 1).
# Each phase also checks that every instance that should serve did (its
# served-request counter rose) and the one taken away left HAProxy's
# rotation. Prints requests and failures per phase as a table; exits 1 if a
# phase lost more than its bound or a check failed, 2 on bad usage. Every
# process it started is stopped on exit.
#
# Usage: scripts/scale-out.sh [--seconds S] [--short] [--conns N]
#                             [--backend B] [--lb-mode tcp|http] [--keep]
#   --seconds S   per phase (default 5; each phase's event lands at ~1.5 s)
#   --short       3 s per phase (what CI runs)
#   --conns N     bench connections through HAProxy (default 12)
#   --backend B   ringlet's backend: auto (default), uring, epoll
#   --lb-mode M   HAProxy's mode: http (default) or tcp (see above)
#   --keep        leave the temp dir (configs, logs, bench output) behind
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=5 conns=12 backend=auto lb_mode=http keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift ;;
    --short) seconds=3 ;;
    --conns) conns="$2"; shift ;;
    --backend) backend="$2"; shift ;;
    --lb-mode) lb_mode="$2"; shift ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,'"$(grep -n '^set -euo' "$0" | cut -d: -f1)"'p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$seconds" in ''|*[!0-9]*) echo "--seconds wants a whole number" >&2; exit 2 ;; esac
case "$conns" in ''|*[!0-9]*) echo "--conns wants a whole number" >&2; exit 2 ;; esac
[ "$seconds" -ge 3 ] || { echo "--seconds must be at least 3" >&2; exit 2; }
[ "$conns" -ge 3 ] || { echo "--conns must be at least 3 (one per instance)" >&2; exit 2; }
case "$lb_mode" in tcp|http) ;; *) echo "--lb-mode is tcp or http" >&2; exit 2 ;; esac

# --- HAProxy: Debian's package, installed when missing; never the service.
if ! command -v haproxy >/dev/null; then
  echo "== installing haproxy (apt-get; the system's service is neither started nor enabled)" >&2
  # policy-rc.d exit 101 keeps the package's postinst from starting it.
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy
  [ "$own_policy" = 0 ] || rm -f /usr/sbin/policy-rc.d
  # The postinst enables haproxy.service; this recipe wants it off.
  systemctl disable haproxy >/dev/null 2>&1 || true
fi
command -v haproxy >/dev/null || { echo "haproxy is not installed" >&2; exit 1; }
command -v curl >/dev/null || { echo "this recipe needs curl" >&2; exit 1; }

cargo build --release --quiet
bin=$PWD/target/release/ringlet

work=$(mktemp -d "${TMPDIR:-/var/tmp}/ringlet-scale-out.XXXXXX")
mkdir -p "$work/www"
file=file.bin
head -c 16384 /dev/urandom > "$work/www/$file"

pids=()          # every process this script started (ringlets, haproxy)
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  # Bounded: 5 s for a graceful end, then SIGKILL.
  for _ in $(seq 1 50); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  if [ "$keep" = 1 ]; then echo "kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
# forget PID: a process that is gone (reaped) leaves the list, so that the
# clean-up never signals whatever reuses its number.
forget() {
  local p keep=()
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}

# A loopback port nothing listens on (or connects from) now, below the
# ephemeral range; the binds below fail loudly if one is taken meanwhile.
# free_port VAR: sets VAR (no subshell, so the ports already chosen count).
chosen=" "
free_port() {
  local p used
  used=" $(tail -q -n +2 /proc/net/tcp /proc/net/tcp6 2>/dev/null \
    | while read -r _ local _; do echo $(( 16#${local##*:} )); done | tr '\n' ' ') "
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 12000 ))
    case "$used$chosen" in *" $p "*) continue ;; esac
    chosen+="$p "
    printf -v "$1" '%s' "$p"
    return 0
  done
  echo "no free port found" >&2; return 1
}

wait_for() { # wait_for SECONDS COMMAND...: true once COMMAND succeeds
  local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
  while [ "$(date +%s%N)" -lt "$deadline" ]; do
    "$@" && return 0
    sleep 0.05
  done
  return 1
}
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:${mport[$1]}/ready")" = 200 ]; }
log_has() { grep -q "$2" "$work/ringlet-$1.log"; }

ncpu=$(nproc)
declare -a hport mport rpid
start_instance() { # start_instance I: serve on hport[I] / mport[I], log to ringlet-I.log
  local i=$1
  # Spread over the CPUs: --cores 1 pins the one shard to the first allowed CPU.
  taskset -c $(( i % ncpu )) "$bin" serve --backend "$backend" --echo off --file off \
    --http "127.0.0.1:${hport[$i]}" --proxy-protocol http \
    --metrics "127.0.0.1:${mport[$i]}" --root "$work/www" --cores 1 \
    --shutdown-timeout 10 2>> "$work/ringlet-$i.log" &
  rpid[$i]=$!
  pids+=("${rpid[$i]}")
  wait_for 10 ready "$i" || {
    echo "instance $i did not become ready:" >&2; cat "$work/ringlet-$i.log" >&2; exit 1
  }
}
for i in 1 2 3; do
  free_port "hport[$i]"; free_port "mport[$i]"
  start_instance "$i"
done
if [ "$backend" != auto ]; then
  grep -q "$backend backend" "$work/ringlet-1.log" \
    || { echo "not the $backend backend:" >&2; cat "$work/ringlet-1.log" >&2; exit 1; }
fi

# --- HAProxy's config (docs/scale-out.md explains every line).
free_port lb_port; free_port stats_port
cfg="$work/haproxy.cfg"
if [ "$lb_mode" = tcp ]; then
  mode_lines="    mode tcp"
else
  mode_lines="    mode http
    option http-keep-alive
    retry-on conn-failure empty-response response-timeout"
fi
cat > "$cfg" <<EOF
global
    maxconn 4096

defaults
$mode_lines
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 1s
    retries 3
    option redispatch 1

frontend www
    bind 127.0.0.1:$lb_port
    default_backend ringlets

backend ringlets
    balance roundrobin
    option httpchk GET /ready
    http-check expect status 200
    default-server send-proxy-v2 check inter 200 fall 1 rise 2
    server r1 127.0.0.1:${hport[1]} port ${mport[1]}
    server r2 127.0.0.1:${hport[2]} port ${mport[2]}
    server r3 127.0.0.1:${hport[3]} port ${mport[3]}

frontend stats
    mode http
    bind 127.0.0.1:$stats_port
    stats enable
    stats uri /stats
EOF
haproxy -c -q -f "$cfg" || { echo "haproxy refused the config:" >&2; cat "$cfg" >&2; exit 1; }
haproxy -f "$cfg" -db > "$work/haproxy.log" 2>&1 &
pids+=("$!")

# A server's status in HAProxy's eyes (UP, DOWN, "UP 1/2"...).
lb_status() {
  curl -s --max-time 1 "http://127.0.0.1:$stats_port/stats;csv" \
    | awk -F, -v s="$1" '$1 == "ringlets" && $2 == s { print $18 }'
}
lb_up() { [ "$(lb_status "$1")" = UP ]; }
lb_down() { case "$(lb_status "$1")" in DOWN*) return 0 ;; *) return 1 ;; esac; }
for s in r1 r2 r3; do
  wait_for 10 lb_up "$s" || {
    echo "haproxy never had $s UP ($(lb_status "$s")):" >&2; cat "$work/haproxy.log" >&2; exit 1
  }
done

# --- The answers are right before anything is timed.
curl -s --max-time 5 -o "$work/through-lb" "http://127.0.0.1:$lb_port/$file"
cmp -s "$work/through-lb" "$work/www/$file" \
  || { echo "the file fetched through haproxy differs from the one served" >&2; exit 1; }
for i in 1 2 3; do  # each instance by hand, with the PROXY header HAProxy sends
  curl -s --max-time 5 --haproxy-protocol "http://127.0.0.1:${hport[$i]}/$file" | cmp -s - "$work/www/$file" \
    || { echo "instance $i: a wrong answer" >&2; exit 1; }
done

served() { # served I: HTTP requests instance I has served (0 when it is gone)
  curl -s --max-time 1 "http://127.0.0.1:${mport[$1]}/metrics" \
    | awk '/^ringlet_requests_total\{.*service="http".*outcome="served"/ { n += $NF } END { print n + 0 }'
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# run_phase NAME ACTION BOUND: bench runs of 1 s for $seconds s through
# HAProxy; ACTION runs at ~1.5 s (in the foreground, while the load runs).
# Sets phase_req, phase_fail; appends the row.
rows=()
status=0
run_phase() {
  local name=$1 action=$2 bound=$3 dir="$work/$1"
  mkdir -p "$dir"
  (
    for r in $(seq 1 "$seconds"); do
      rc=0
      timeout -k 2 15 "$bin" bench file --mode http --addr "127.0.0.1:$lb_port" --path "/$file" \
        --expect "$work/www/$file" --conns "$conns" --duration 1 --json \
        > "$dir/run-$r.json" 2> "$dir/run-$r.err" || rc=$?
      echo "$rc" > "$dir/run-$r.rc"
    done
  ) &
  local loader=$!
  sleep 1.5
  "$action" || true
  wait "$loader"
  phase_req=0 phase_fail=0
  local r req err rc
  for r in $(seq 1 "$seconds"); do
    rc=$(cat "$dir/run-$r.rc")
    req=$(sed -n 's/.*"messages":\([0-9]*\).*/\1/p' "$dir/run-$r.json")
    err=$(sed -n 's/.*"errors":\([0-9]*\).*/\1/p' "$dir/run-$r.json")
    # bench exits 1 when any answer failed, after printing its figures;
    # with no figures (nothing verified, or stopped by the timeout) every
    # connection of that run counts as failed.
    if [ -z "$req" ] || [ -z "$err" ]; then
      echo "$name: run $r: no figures, bench exit $rc: $(head -c 300 "$dir/run-$r.err")" >&2
      req=0 err=$conns
    elif [ "$rc" != 0 ] && [ "$err" = 0 ]; then
      echo "$name: run $r: bench exit $rc with 0 errors: $(head -c 300 "$dir/run-$r.err")" >&2
      err=1
    fi
    phase_req=$(( phase_req + req )); phase_fail=$(( phase_fail + err ))
  done
  local verdict=ok
  if [ "$phase_fail" -gt "$bound" ]; then
    verdict=FAIL status=1
    echo "$name: $phase_fail failed, more than $bound; bench said:" >&2
    cat "$dir"/run-*.json | grep -o '"error_samples":\[[^]]*\]' | sort | uniq -c | head -10 >&2
  fi
  rows+=("$(printf '%-10s %9d %7d %8d  %s' "$name" "$phase_req" "$phase_fail" "$bound" "$verdict")")
  echo "== $name: $phase_req requests, $phase_fail failed (at most $bound): $verdict" >&2
}
check() { # check WHAT COMMAND...: a failed check fails the run, saying what
  local what=$1; shift
  if "$@"; then echo "   ok: $what" >&2; else echo "   FAILED: $what" >&2; status=1; fi
}
grew() { [ "$2" -gt "$1" ]; }
notes=()

echo "== scale-out: haproxy (mode $lb_mode) on 127.0.0.1:$lb_port, ringlet on ${hport[1]} ${hport[2]} ${hport[3]} (metrics ${mport[1]} ${mport[2]} ${mport[3]}), $conns conns, $seconds s per phase" >&2

# 1. Steady state.
noop() { :; }
s1=(0 "$(served 1)" "$(served 2)" "$(served 3)")
run_phase steady noop 0
for i in 1 2 3; do check "instance $i served in the steady phase" grew "${s1[$i]}" "$(served "$i")"; done

# 2. SIGTERM instance 1: it drains; HAProxy sees /ready 503 and takes it out.
sigterm() {
  t0=$(now_ms)
  kill -TERM "${rpid[1]}"
  wait_for 5 lb_down r1 && notes+=("sigterm: r1 out of haproxy's rotation $(( $(now_ms) - t0 )) ms after SIGTERM")
}
s2=(0 0 "$(served 2)" "$(served 3)")
run_phase sigterm sigterm 0
rc=0; wait "${rpid[1]}" || rc=$?
forget "${rpid[1]}"
check "instance 1 drained and exited 0 (exit $rc)" [ "$rc" = 0 ]
check "haproxy had r1 DOWN after its SIGTERM" grep -q "Server ringlets/r1 is DOWN" "$work/haproxy.log"
for i in 2 3; do check "instance $i took the load" grew "${s2[$i]}" "$(served "$i")"; done
# Back on the same ports; HAProxy brings it back after 2 good checks.
start_instance 1
check "haproxy has r1 UP again after the restart" wait_for 10 lb_up r1

# 3. SIGHUP instance 2: upgrade in place, same sockets.
upgrade() {
  t0=$(now_ms)
  kill -HUP "${rpid[2]}"
  wait_for 30 log_has 2 "upgrade: generation 2" \
    && notes+=("upgrade: \"$(grep -o 'upgrade: generation 2.*' "$work/ringlet-2.log" | head -1)\" $(( $(now_ms) - t0 )) ms after SIGHUP")
}
run_phase upgrade upgrade 0
check "instance 2 logged \"upgrade: generation 2\"" log_has 2 "upgrade: generation 2"
new_pid=$(sed -n 's/.*upgrade: generation 2 (pid \([0-9]*\)).*/\1/p' "$work/ringlet-2.log" | head -1)
[ -z "$new_pid" ] || pids+=("$new_pid")
rc=0; wait "${rpid[2]}" || rc=$?
forget "${rpid[2]}"
check "the old process of instance 2 exited 0 (exit $rc)" [ "$rc" = 0 ]
generation() { curl -s --max-time 1 "http://127.0.0.1:${mport[$1]}/metrics" | grep -qx "ringlet_generation $2"; }
check "instance 2's metrics say generation 2" wait_for 5 generation 2 2
[ -z "$new_pid" ] || rpid[2]=$new_pid
check "haproxy has r2 UP after the upgrade" wait_for 10 lb_up r2

# 4. kill -9 instance 3: what it had in flight fails; the rest go on.
bound4=$(( (conns + 2) / 3 ))
kill9() {
  scur=$(curl -s --max-time 1 "http://127.0.0.1:$stats_port/stats;csv" | awk -F, '$1 == "ringlets" && $2 == "r3" { print $5 }')
  t0=$(now_ms)
  disown "${rpid[3]}" 2>/dev/null || true   # no "Killed" line from the shell
  kill -KILL "${rpid[3]}"
  wait_for 5 lb_down r3 && notes+=("kill -9: r3 had ${scur:-?} sessions; out of haproxy's rotation $(( $(now_ms) - t0 )) ms after the kill")
}
s4=(0 "$(served 1)" "$(served 2)" 0)
run_phase kill-9 kill9 "$bound4"
check "instance 3 is gone" wait_for 5 eval '! kill -0 "${rpid[3]}" 2>/dev/null'
forget "${rpid[3]}"
for i in 1 2; do check "instance $i took the load after the kill" grew "${s4[$i]}" "$(served "$i")"; done
check "haproxy had r3 DOWN after the kill" lb_down r3
# The last run began after r3 was DOWN: nothing of it may fail.
last_err=$(sed -n 's/.*"errors":\([0-9]*\).*/\1/p' "$work/kill-9/run-$seconds.json")
check "the last run after the kill lost nothing (${last_err:-no result})" [ "${last_err:-1}" = 0 ]

echo
printf '%-10s %9s %7s %8s  %s\n' phase requests failed allowed result
printf '%s\n' "${rows[@]}"
echo
for n in "${notes[@]}"; do echo "$n"; done
echo "haproxy $(haproxy -v | head -1 | awk '{print $3}'), mode $lb_mode; ringlet $("$bin" --version | awk '{print $2}'), $(grep -o '[a-z]* backend' "$work/ringlet-1.log" | head -1); $conns conns, $seconds s per phase"
[ "$status" = 0 ] && echo "scale-out: every phase within its bound" || echo "scale-out: FAILED (see above)"
exit "$status"
