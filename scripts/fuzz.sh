#!/usr/bin/env bash
# fuzz.sh — fuzz request framing, root confinement and the PROXY header parser for a bounded time.
#
# Usage: scripts/fuzz.sh [--seconds N] [--target request_path|http_head|proxy_header|all]
#   request_path  the file protocol's framing and Root::open_file (default)
#   http_head     the HTTP request head parser, ranges, and the paths it yields
#   proxy_header  the PROXY protocol header parser (v1 and v2)
#   all           each of them in turn, N seconds each (what CI runs)
# Installs cargo-fuzz if missing. The machine's stable toolchain is enough:
# RUSTC_BOOTSTRAP lets it take the sanitizer flags cargo-fuzz passes.
# A clean clone works: the corpus folders (gitignored) are made and seeded.
# Findings (crashing inputs) land in fuzz/artifacts/TARGET/; a finding, or a
# target that fails to build, exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=300 target=request_path
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift ;;
    --target) target="$2"; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
if [ "$target" = all ]; then
  for t in request_path http_head proxy_header; do "$0" --seconds "$seconds" --target "$t"; done
  exit 0
fi
corpus=fuzz/corpus/$target
mkdir -p "$corpus"
seed() { printf '%b' "$1" > "$corpus/seed-$(printf '%s' "$1" | md5sum | cut -c1-8)"; }
case "$target" in
  request_path)
    # Ordinary requests and known escape shapes.
    for s in 'a/b/f' '/a/b/f' 'in' 'out' '../outside/secret' 'proc/etc/passwd' 'a/up/secret' '//a//b/./f'; do
      seed "$s\\0"
    done
    max_len=4200 ;;
  http_head)
    for s in 'GET /a/b/f HTTP/1.1\r\nHost: x\r\n\r\n' \
             'HEAD /%2e%2e/outside/secret HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n' \
             'GET /out HTTP/1.0\r\nConnection: keep-alive\r\nIf-None-Match: "a", W/"b"\r\n\r\n' \
             'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n'; do
      seed "$s"
    done
    max_len=8400 ;;
  proxy_header)
    # v1 TCP4, TCP6, UNKNOWN; v2 PROXY over IPv4 (with TLVs) and IPv6, and LOCAL.
    sig='\r\n\r\n\0\r\nQUIT\n'
    for s in 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n\r\n' \
             'PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n' \
             'PROXY UNKNOWN\r\n' \
             "$sig"'\x21\x11\x00\x11\xc0\xa8\x00\x01\x0a\x00\x00\x02\xd2\x04\x01\xbb\x01\x00\x02h2' \
             "$sig"'\x21\x21\x00\x24\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\x1f\x90\x00\x50' \
             "$sig"'\x20\x00\x00\x00'; do
      seed "$s"
    done
    max_len=4200 ;;
  *) echo "unknown target: $target" >&2; exit 2 ;;
esac
echo "== fuzz $target: $seconds s" >&2
RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$corpus" -- \
  -max_total_time="$seconds" -max_len="$max_len" -print_final_stats=1
