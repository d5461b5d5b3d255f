#!/usr/bin/env bash
# bench-vs-epoll.sh — ringlet's io_uring backend against its epoll backend
# (and any other echo server you add), side by side, on this machine.
#
# The server runs pinned to the first half of the CPUs this shell may use (or
# the first N, --server-cpus), the load generator (`ringlet bench`, wrk) to
# the rest. Every case runs against
# every server in turn, round after round (A B A B ...), so drift hits all
# servers alike. For each run it records the load generator's verified figures
# and the server's CPU seconds (utime+stime from /proc/PID/stat) and the busy
# seconds of the client's CPUs (/proc/stat: the load generator and the
# kernel's work there; on loopback the TCP work of a segment runs on the CPU
# that sends it, so a big stream's cost is only honest as the two together;
# in the fixed-rate echo cases the pacer spins the last millisecond before
# each send, so the client's CPUs are busy there by design), then prints
# one markdown table (medians, min–max, ratios, and a verdict that calls a
# difference real only when every round agrees), and writes the raw results
# (JSON lines) and a chart (SVG).
#
# Every server is checked before anything is timed: each echo server must
# echo a short run byte for byte, each HTTP server must serve the test files
# byte for byte (`ringlet bench`, which checks every message and body, as the
# timed runs do too).
#
# Usage: scripts/bench-vs-epoll.sh [--quick] [--rounds N] [--duration S] [--big-duration S]
#            [--rate R] [--server NAME='CMD {port}']... [--c-echo] [--rust-echo]
#            [--http] [--only REGEX] [--out DIR]
#   --quick         fewer cases, 1 round, 1 s runs (about 1 minute)
#   --rounds N      rounds per case (default 3; 1 with --quick)
#   --duration S    seconds per run (default 4; 1 with --quick)
#   --big-duration S  seconds per run of the big warm file cases (default:
#                   --duration). One stream moves 1 GiB in about a second, so
#                   4 s give one or two requests: CPU per request then moves
#                   in steps of 50%; 20 s give a figure
#   --server N='C'  also run echo cases against command C, with {port}
#                   replaced by the port it must listen on (an echo server:
#                   every byte back as it came)
#   --c-echo        also run scripts/c-echo/epoll_echo.c (built with ${CC:-cc} -O2),
#                   a single-threaded C epoll echo server (echo cases; compare
#                   on one server core), and where liburing is installed
#                   (apt-get install liburing-dev) scripts/c-echo/uring_echo.c,
#                   the floor of a completion ring: as c-uring (DEFER_TASKRUN)
#                   and c-uring-coop (COOP_TASKRUN, the setup ringlet uses)
#   --rust-echo     also run the Rust yardsticks (echo cases), built with
#                   cargo build --release from their own Cargo projects:
#                   tokio-echo (scripts/tokio-echo: one current_thread tokio
#                   runtime pinned per server CPU, each with its own
#                   SO_REUSEPORT listener, reading into 64 KiB and
#                   write_all-ing it back) and monoio-echo (scripts/monoio-echo:
#                   monoio's echo example on its IoUringDriver, the same shape).
#                   The table then also compares uring against each of them
#                   (and against c-epoll and c-uring with --c-echo)
#   --rate R        messages per second of the fixed-rate echo cases (default
#                   20000: light load; near but below saturation, CPU per
#                   message compares servers that all keep up)
#   --only REGEX    run only the cases whose name matches REGEX (grep -E)
#   --http          also the HTTP cases: ringlet-uring, ringlet-epoll,
#                   nginx (Debian's package, configured here with sendfile on
#                   and tcp_nopush on, one worker per server CPU) and nginx-ofc
#                   (the same, tuned as nginx's docs advise for static files:
#                   open_file_cache max=1000 inactive=20s, open_file_cache_valid
#                   30s, open_file_cache_min_uses 2, open_file_cache_errors on),
#                   measured by wrk and by
#                   `ringlet bench file --mode http` (which checks every
#                   body): 4 KiB, 64 KiB, 1 MiB, the big file warm, and 4 KiB
#                   beside 4 cold streams (by wrk also with 5 ms between a
#                   connection's requests: latency at a fixed load rather
#                   than a saturating closed loop's queue); the table then
#                   also compares against nginx and against nginx-ofc
#   --server-cpus N the server (its shards, nginx's workers) on the first N
#                   CPUs, the clients on all the others (default: half). With
#                   many CPUs, 1 makes the server the bottleneck, where on 2
#                   CPUs the client shares the limit
#   --ring-only     also a uring server with --cached-sendfile off (every
#                   file byte through the ring), named uring-ring-only
#   --out DIR       where results go (default bench-results/DATE)
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0 rounds="" duration="" big_duration="" out="" extra=() c_echo=0 rust_echo=0 only="" http=0 ring_only=0 server_n= rate=20000
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --rounds) rounds="$2"; shift ;;
    --duration) duration="$2"; shift ;;
    --big-duration) big_duration="$2"; shift ;;
    --server) extra+=("$2"); shift ;;
    --c-echo) c_echo=1 ;;
    --rust-echo) rust_echo=1 ;;
    --out) out="$2"; shift ;;
    --only) only="$2"; shift ;;
    --rate) rate="$2"; shift ;;
    --http) http=1 ;;
    --ring-only) ring_only=1 ;;
    --server-cpus) server_n="$2"; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
if ! [ "$rate" -ge 1 ] 2>/dev/null; then echo "--rate must be a whole number of messages per second, not $rate" >&2; exit 2; fi
if [ "$quick" = 1 ]; then rounds=${rounds:-1}; duration=${duration:-1}; else rounds=${rounds:-3}; duration=${duration:-4}; fi
big_duration=${big_duration:-$duration}
out=${out:-bench-results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
out=$(cd "$out" && pwd)   # absolute: nginx resolves relative paths from its prefix
raw="$out/raw.jsonl"; : > "$raw"

echo "== building release" >&2
cargo build --release --quiet
bin=target/release/ringlet
if [ "$c_echo" = 1 ]; then
  "${CC:-cc}" -O2 -o "$out/epoll_echo" scripts/c-echo/epoll_echo.c
  extra+=("c-epoll=$out/epoll_echo {port}")
  if "${CC:-cc}" -O2 -o "$out/uring_echo" scripts/c-echo/uring_echo.c -luring 2> "$out/uring_echo.build.log"; then
    extra+=("c-uring=$out/uring_echo {port} defer" "c-uring-coop=$out/uring_echo {port} coop")
  else
    echo "--c-echo: no c-uring (scripts/c-echo/uring_echo.c needs liburing: apt-get install liburing-dev; see $out/uring_echo.build.log)" >&2
  fi
fi
if [ "$rust_echo" = 1 ]; then
  # Stand-alone Cargo projects (not in ringlet's workspace), their versions
  # fixed by their own Cargo.lock. Each runs one thread per server CPU: it is
  # started under taskset like every server and takes the first $half CPUs
  # it may run on.
  for y in tokio-echo monoio-echo; do
    echo "== building scripts/$y" >&2
    if cargo build --release --quiet --locked --manifest-path "scripts/$y/Cargo.toml" \
         --target-dir "scripts/$y/target" 2> "$out/$y.build.log"; then
      extra+=("$y=$PWD/scripts/$y/target/release/$y {port} __HALF__")
    else
      echo "--rust-echo: scripts/$y did not build, so the table has no $y (see $out/$y.build.log)" >&2
    fi
  done
fi

# CPU halves: server first, client second.
mapfile -t cpus < <(python3 -c 'import os; print("\n".join(map(str, sorted(os.sched_getaffinity(0)))))' 2>/dev/null || seq 0 $(( $(nproc) - 1 )))
n=${#cpus[@]}
if [ "$n" -lt 2 ]; then echo "need at least 2 CPUs to keep server and client apart" >&2; exit 1; fi
half=${server_n:-$(( n / 2 ))}
if ! [ "$half" -ge 1 ] 2>/dev/null || [ "$half" -ge "$n" ]; then
  echo "--server-cpus must be between 1 and $(( n - 1 )) here ($n CPUs)" >&2; exit 2
fi
server_cpus=$(IFS=,; echo "${cpus[*]:0:$half}")
client_cpus=$(IFS=,; echo "${cpus[*]:$half}")
client_threads=$(( n - half ))
extra=("${extra[@]//__HALF__/$half}")
clk=$(getconf CLK_TCK)

# Data for the file cases.
data=$(mktemp -d "${TMPDIR:-/var/tmp}/ringlet-bench.XXXXXX")
big_mib=$([ "$quick" = 1 ] && echo 128 || echo 1024)
head -c 4096 /dev/urandom > "$data/small.bin"
head -c 65536 /dev/urandom > "$data/medium.bin"
head -c $(( 1 << 20 )) /dev/urandom > "$data/mid.bin"
head -c $(( big_mib << 20 )) /dev/urandom > "$data/big.bin"
head -c $(( 256 << 20 )) /dev/urandom > "$data/cold.bin"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$data"; }
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2; return 1
}

# servers: name, pid, echo port, file port ("" when it has no file server),
# and a second instance serving the article's plain file protocol: its pid
# and port ("" when none).
names=() spids=() eports=() fports=() ppids=() pports=()
# HTTP servers: name, pid, port.
hnames=() hpids=() hports=()
start_ringlet() { # NAME BACKEND ECHO_PORT FILE_PORT PLAIN_PORT [SERVE ARGS...]
  local http_args=() name=$1 backend=$2 e=$3 f=$4 pl=$5
  shift 5
  if [ "$http" = 1 ]; then http_args=(--http "127.0.0.1:$(( e + 3 ))"); fi
  taskset -c "$server_cpus" "$bin" serve --backend "$backend" --cores "$half" "$@" \
    --echo "127.0.0.1:$e" --file "127.0.0.1:$f" --file-header --root "$data" "${http_args[@]}" \
    2> "$out/server-$name.log" &
  local pid=$!; pids+=("$pid")
  taskset -c "$server_cpus" "$bin" serve --backend "$backend" --cores "$half" "$@" \
    --echo off --file "127.0.0.1:$pl" --root "$data" \
    2> "$out/server-$name-plain.log" &
  local plain=$!; pids+=("$plain")
  wait_port "$e"; wait_port "$f"; wait_port "$pl"
  names+=("$name"); spids+=("$pid"); eports+=("$e"); fports+=("$f"); ppids+=("$plain"); pports+=("$pl")
  if [ "$http" = 1 ]; then
    wait_port $(( e + 3 ))
    hnames+=("$name"); hpids+=("$pid"); hports+=($(( e + 3 )))
  fi
}
start_ringlet uring uring 17100 17101 17102
start_ringlet epoll epoll 17200 17201 17202
if [ "$ring_only" = 1 ]; then
  start_ringlet uring-ring-only uring 17600 17601 17602 --cached-sendfile off
fi
if [ "$http" = 1 ]; then
  chmod 755 "$data"   # nginx's workers run as nobody
  for t in nginx wrk; do
    command -v "$t" > /dev/null || { echo "--http needs $t: apt-get install nginx wrk" >&2; exit 1; }
  done
  # start_nginx NAME PORT [DIRECTIVES] — one nginx, its config generated
  # here (in $out/NAME/nginx.conf), with DIRECTIVES added to its http block.
  start_nginx() {
    local name=$1 p=$2 tuning=${3:-} dir="$out/$1"
    mkdir -p "$dir"
    cat > "$dir/nginx.conf" <<NGINX
worker_processes $half;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  default_type application/octet-stream;
  client_body_temp_path $dir/tmp;
  proxy_temp_path $dir/tmp;
  fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp;
  scgi_temp_path $dir/tmp;
$tuning
  server { listen 127.0.0.1:$p reuseport; root $data; }
}
NGINX
    taskset -c "$server_cpus" nginx -c "$dir/nginx.conf" -e "$dir/error.log" 2> "$out/server-$name.log" &
    local pid=$!; pids+=("$pid")
    wait_port "$p"
    hnames+=("$name"); hpids+=("$pid"); hports+=("$p")
  }
  start_nginx nginx 17500
  # As nginx's documentation advises for static files: descriptors, sizes
  # and lookups of the files served kept open and cached in each worker.
  start_nginx nginx-ofc 17501 '  open_file_cache max=1000 inactive=20s;
  open_file_cache_valid 30s;
  open_file_cache_min_uses 2;
  open_file_cache_errors on;'
fi

port=17300
for spec in "${extra[@]}"; do
  name=${spec%%=*}; cmd=${spec#*=}
  cmd=${cmd//\{port\}/$port}
  taskset -c "$server_cpus" bash -c "exec $cmd" > "$out/server-$name.log" 2>&1 &
  pid=$!; pids+=("$pid")
  wait_port "$port"
  names+=("$name"); spids+=("$pid"); eports+=("$port"); fports+=(""); ppids+=(""); pports+=("")
  port=$(( port + 1 ))
done

# Every server answers correctly before anything is timed: a short echo run
# (every byte checked) against each echo server, and each test file fetched
# and compared over HTTP from each HTTP server.
check() { # WHAT LOG COMMAND...
  local what=$1 log=$2; shift 2
  if ! taskset -c "$client_cpus" "$bin" bench "$@" --duration 0.3 --json > /dev/null 2> "$out/check.err"; then
    echo "$what did not answer correctly, so nothing is timed:" >&2
    cat "$out/check.err" >&2
    echo "(its log: $log)" >&2
    exit 1
  fi
}
for i in "${!names[@]}"; do
  check "echo server ${names[$i]}" "$out/server-${names[$i]}.log" \
    echo --addr "127.0.0.1:${eports[$i]}" --conns 4 --size 1000 --pipeline 4
done
for i in "${!hnames[@]}"; do
  for f in small.bin medium.bin mid.bin; do
    check "HTTP server ${hnames[$i]} (/$f)" "$out/server-${hnames[$i]}.log (and $out/${hnames[$i]}/error.log for nginx)" \
      file --mode http --addr "127.0.0.1:${hports[$i]}" --path "/$f" --expect "$data/$f" --conns 2
  done
done
echo "== every server answered correctly: echo ${names[*]}$([ "${#hnames[@]}" = 0 ] || echo "; http ${hnames[*]}")" >&2

# CPU ticks of a server and its children (nginx's workers).
cpu_ticks() {
  local p t=0
  for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
    t=$(( t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}') ))
  done
  echo "$t"
}

# Busy ticks (user, nice, system, irq, softirq) of the client's CPUs.
client_ticks() {
  awk -v want=",$client_cpus," '$1 ~ /^cpu[0-9]+$/ && index(want, "," substr($1, 4) ",") { t += $2 + $3 + $4 + $7 + $8 } END { print t + 0 }' /proc/stat
}

# wrk's report as one JSON outcome like ringlet bench's (latencies in µs;
# errors: socket errors plus non-2xx/3xx answers).
wrk_json() { # DURATION CONNS URL [WRK ARGS...]
  taskset -c "$client_cpus" wrk -t "$client_threads" -c "$2" -d "${1}s" --latency "${@:4}" "$3" | awk -v d="$1" -v c="$2" -v url="$3" '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1000000; return v }
    function mb(v) { if (v ~ /GB$/) return v * 1024; if (v ~ /MB$/) return v + 0; if (v ~ /KB$/) return v / 1024; return v / 1048576 }
    /^ +50%/ { p50 = us($2) } /^ +99%/ { p99 = us($2) }
    /^ +Latency / { max = us($4) }
    / requests in / { n = $1 }
    /Socket errors:/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { err += $5 }
    /^Requests\/sec:/ { rps = $2 } /^Transfer\/sec:/ { tput = mb($2) }
    END { printf "{\"kind\":\"http\",\"config\":{\"url\":\"%s\",\"conns\":%d,\"client\":\"wrk\"},\"seconds\":%s,\"messages\":%d,\"bytes\":0,\"per_second\":%s,\"mb_per_second\":%s,\"latency_us\":{\"p50\":%d,\"p99\":%d,\"p999\":%d,\"max\":%d},\"errors\":%d,\"error_samples\":[]}\n", url, c, d, n, rps + 0, tput + 0, p50, p99, p99, max, err + 0 }'
}

# run_http_case NAME CLIENT PATH CONNS [cold] [PAUSE_MS] — every HTTP server
# in turn, measured by CLIENT: wrk (status codes only) or ringlet (`ringlet
# bench file --mode http`, every body checked against the file). cold: 4
# streams of a file evicted before each request run beside, received by one
# `ringlet bench` on the client CPUs (as in the echo case beside cold
# streams). PAUSE_MS (wrk only): each connection waits that long between
# answer and next request, so the latency is the server's, not the queue
# of a saturating closed loop.
run_http_case() {
  local case=$1 client=$2 path=$3 conns=$4 cold=${5:-} pause=${6:-}
  if [ -n "$only" ] && ! grep -qE "$only" <<< "$case"; then return 0; fi
  for i in "${!hnames[@]}"; do
    local name=${hnames[$i]} pid=${hpids[$i]} p=${hports[$i]}
    local before after cbefore cafter result streamer=""
    if [ -n "$cold" ]; then
      bench file --mode http --addr "127.0.0.1:$p" --path /cold.bin --evict "$data/cold.bin" --conns 4 > /dev/null &
      streamer=$!
    fi
    before=$(cpu_ticks "$pid"); cbefore=$(client_ticks)
    if [ "$client" = wrk ]; then
      local script=()
      if [ -n "$pause" ]; then
        echo "function delay() return $pause end" > "$out/pause.lua"
        script=(-s "$out/pause.lua")
      fi
      result=$(wrk_json "$duration" "$conns" "http://127.0.0.1:$p$path" "${script[@]}")
    else
      result=$(bench file --mode http --addr "127.0.0.1:$p" --path "$path" --expect "$data$path" --conns "$conns")
    fi
    after=$(cpu_ticks "$pid"); cafter=$(client_ticks)
    if [ -n "$streamer" ]; then wait "$streamer" || true; fi
    local cpu ccpu
    cpu=$(awk -v t=$(( after - before )) -v c="$clk" 'BEGIN { printf "%.4f", t / c }')
    ccpu=$(awk -v t=$(( cafter - cbefore )) -v c="$clk" 'BEGIN { printf "%.4f", t / c }')
    printf '{"case":"%s","server":"%s","round":%d,"server_cpu_s":%s,"client_cpu_s":%s,"outcome":%s}\n' \
      "$case" "$name" "$round" "$cpu" "$ccpu" "$result" >> "$raw"
    echo "   $case / $name: $(echo "$result" | sed 's/.*"per_second":\([0-9.]*\).*"p99":\([0-9]*\).*"errors":\([0-9]*\).*/\1 per s, p99 \2 us, errors \3/'), server CPU ${cpu}s, client CPU ${ccpu}s" >&2
  done
}

bench() { taskset -c "$client_cpus" "$bin" bench "$@" --threads "$client_threads" --pin --duration "$duration" --json; }

# run_case NAME KIND ARGS... — KIND echo|file|plain|mixed; {E}/{F}/{P} are
# the echo, framed file and plain file ports (plain: the plain instance's CPU).
run_case() {
  local case=$1 kind=$2; shift 2
  if [ -n "$only" ] && ! grep -qE "$only" <<< "$case"; then return 0; fi
  for i in "${!names[@]}"; do
    local name=${names[$i]} pid=${spids[$i]} e=${eports[$i]} f=${fports[$i]} p=${pports[$i]}
    if [ "$kind" != echo ] && [ -z "$f" ]; then continue; fi
    if [ "$kind" = plain ]; then pid=${ppids[$i]}; fi
    local args=("${@//\{E\}/$e}"); args=("${args[@]//\{F\}/$f}"); args=("${args[@]//\{P\}/$p}")
    local before after cbefore cafter result
    before=$(cpu_ticks "$pid"); cbefore=$(client_ticks)
    if [ "$kind" = mixed ]; then
      # Cold file streams beside the measured echo traffic.
      bench file --addr "127.0.0.1:$f" --path /cold.bin --evict "$data/cold.bin" --conns 4 > /dev/null &
      local streamer=$!
      result=$(bench "${args[@]}")
      wait "$streamer" || true
    else
      result=$(bench "${args[@]}")
    fi
    after=$(cpu_ticks "$pid"); cafter=$(client_ticks)
    local cpu ccpu
    cpu=$(awk -v t=$(( after - before )) -v c="$clk" 'BEGIN { printf "%.4f", t / c }')
    ccpu=$(awk -v t=$(( cafter - cbefore )) -v c="$clk" 'BEGIN { printf "%.4f", t / c }')
    printf '{"case":"%s","server":"%s","round":%d,"server_cpu_s":%s,"client_cpu_s":%s,"outcome":%s}\n' \
      "$case" "$name" "$round" "$cpu" "$ccpu" "$result" >> "$raw"
    echo "   $case / $name: $(echo "$result" | sed 's/.*"per_second":\([0-9.]*\).*"latency_us":{"p50":[0-9]*,"p99":\([0-9]*\).*"errors":\([0-9]*\).*/\1 per s, p99 \2 us, errors \3/') , server CPU ${cpu}s, client CPU ${ccpu}s" >&2
  done
}

echo "== $rounds round(s) of ${duration}s runs; server on CPUs $server_cpus, client on $client_cpus; servers: ${names[*]}" >&2
started=$(date +%s)
for round in $(seq 0 $(( rounds - 1 ))); do
  echo "== round $round" >&2
  if [ "$quick" = 1 ]; then pp_conns="1 50 1000"; sizes="64"; else pp_conns="1 50 300 1000"; sizes="64 1024"; fi
  for size in $sizes; do
    for c in $pp_conns; do
      run_case "echo ping-pong ${size} B, $c conn$([ "$c" = 1 ] || echo s)" echo echo --addr '127.0.0.1:{E}' --conns "$c" --size "$size"
    done
  done
  stream_conns=$([ "$quick" = 1 ] && echo "100" || echo "1 100")
  for c in $stream_conns; do
    run_case "echo streaming 1 KiB, $c conn$([ "$c" = 1 ] || echo s) (pipeline 32)" echo echo --addr '127.0.0.1:{E}' --conns "$c" --size 1024 --pipeline 32
  done
  rate_cases=$([ "$quick" = 1 ] && echo "64:50" || echo "64:50 64:1000 1024:300")
  for rc in $rate_cases; do
    size=${rc%%:*}; c=${rc##*:}
    run_case "echo ${size} B at $(( rate / 1000 ))k msg/s, $c conns" echo echo --addr '127.0.0.1:{E}' --conns "$c" --size "$size" --rate "$rate"
  done
  run_case "file 4 KiB, 100 conns" file file --addr '127.0.0.1:{F}' --path /small.bin --expect "$data/small.bin" --conns 100
  # The article's protocol: a connection per request, the file, the close.
  run_case "plain file 4 KiB, 100 clients (connection per request)" plain file --mode plain --addr '127.0.0.1:{P}' --path /small.bin --expect "$data/small.bin" --conns 100
  run_case "plain file 1 MiB, 10 clients (connection per request)" plain file --mode plain --addr '127.0.0.1:{P}' --path /mid.bin --expect "$data/mid.bin" --conns 10
  cat "$data/big.bin" > /dev/null   # warm
  duration=$big_duration run_case "file ${big_mib} MiB warm, 1 stream" file file --addr '127.0.0.1:{F}' --path /big.bin --expect "$data/big.bin" --conns 1
  run_case "echo 64 B at 2k msg/s beside 4 cold file streams" mixed echo --addr '127.0.0.1:{E}' --conns 10 --size 64 --rate 2000
  if [ "$http" = 1 ]; then
    for client in wrk ringlet; do
      label=$([ "$client" = wrk ] && echo wrk || echo "ringlet bench")
      run_http_case "http 4 KiB, 100 conns ($label)" "$client" /small.bin 100
      run_http_case "http 64 KiB, 100 conns ($label)" "$client" /medium.bin 100
      run_http_case "http 1 MiB, 10 conns ($label)" "$client" /mid.bin 10
      cat "$data/big.bin" > /dev/null   # warm
      duration=$big_duration run_http_case "http ${big_mib} MiB warm, 1 conn ($label)" "$client" /big.bin 1
      run_http_case "http 4 KiB, 10 conns beside 4 cold streams ($label)" "$client" /small.bin 10 cold
      if [ "$client" = wrk ]; then
        run_http_case "http 4 KiB, 10 conns 5 ms apart beside 4 cold streams (wrk)" wrk /small.bin 10 cold 5
      fi
    done
  fi
done
echo "== done in $(( $(date +%s) - started )) s" >&2

{
  echo "Command: scripts/bench-vs-epoll.sh $([ "$quick" = 1 ] && echo --quick) $([ "$c_echo" = 1 ] && echo --c-echo) $([ "$rust_echo" = 1 ] && echo --rust-echo) $([ "$http" = 1 ] && echo --http) $([ "$ring_only" = 1 ] && echo --ring-only) $([ -n "$server_n" ] && echo --server-cpus "$server_n") $([ "$rate" != 20000 ] && echo --rate "$rate") $([ -n "$only" ] && printf -- "--only '%s'" "$only") --rounds $rounds --duration $duration $([ "$big_duration" != "$duration" ] && echo --big-duration "$big_duration")" | tr -s ' '
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), Linux $(uname -r); server on CPUs $server_cpus, client on $client_cpus"
  echo
  "$bin" bench report "$raw" --chart "$out/chart.svg"
  # uring against each yardstick on the same runs: the records of uring and
  # that yardstick, in the cases the yardstick ran (the echo cases). Skipped
  # where the yardstick was not asked for or --only left it no case.
  for y in c-epoll c-uring tokio-echo monoio-echo; do
    awk -v y="$y" '
      function case_of(l) { return match(l, /"case":"[^"]*"/) ? substr(l, RSTART, RLENGTH) : "" }
      NR == FNR { if (index($0, "\"server\":\"" y "\"")) ran[case_of($0)] = 1; next }
      ran[case_of($0)] && (index($0, "\"server\":\"uring\"") || index($0, "\"server\":\"" y "\""))
    ' "$raw" "$raw" > "$out/vs-$y.jsonl"
    if [ -s "$out/vs-$y.jsonl" ]; then
      echo
      echo "Echo against $y (the same runs):"
      echo
      "$bin" bench report "$out/vs-$y.jsonl" --baseline "$y"
    fi
  done
  if [ "$http" = 1 ]; then
    grep '"case":"http ' "$raw" > "$out/http.jsonl" || true
    if grep -q '"server":"uring"' "$out/http.jsonl"; then
      echo
      echo "HTTP against nginx (the same runs):"
      echo
      "$bin" bench report "$out/http.jsonl" --baseline nginx
      grep -E '"server":"(uring|nginx-ofc)"' "$out/http.jsonl" > "$out/vs-nginx-ofc.jsonl"
      echo
      echo "HTTP against nginx-ofc, nginx with open_file_cache as its docs advise (the same runs):"
      echo
      "$bin" bench report "$out/vs-nginx-ofc.jsonl" --baseline nginx-ofc
    fi
  fi
} > "$out/table.md"
cat "$out/table.md"
echo "raw results: $raw; table: $out/table.md; chart: $out/chart.svg" >&2
