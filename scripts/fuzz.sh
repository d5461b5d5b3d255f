#!/usr/bin/env bash
# fuzz.sh — fuzz request framing and root confinement for a bounded time.
#
# Usage: scripts/fuzz.sh [--seconds N]   (default 300)
# Installs cargo-fuzz if missing. The machine's stable toolchain is enough:
# RUSTC_BOOTSTRAP lets it take the sanitizer flags cargo-fuzz passes.
# Findings (crashing inputs) land in fuzz/artifacts/request_path/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=300
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p fuzz/corpus/request_path
# Seeds: ordinary requests and known escape shapes.
for s in 'a/b/f' '/a/b/f' 'in' 'out' '../outside/secret' 'proc/etc/passwd' 'a/up/secret' '//a//b/./f'; do
  printf '%s\0' "$s" > "fuzz/corpus/request_path/seed-$(printf '%s' "$s" | md5sum | cut -c1-8)"
done
RUSTC_BOOTSTRAP=1 cargo fuzz run request_path fuzz/corpus/request_path -- \
  -max_total_time="$seconds" -max_len=4200 -print_final_stats=1
