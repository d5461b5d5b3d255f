#!/usr/bin/env bash
# glibc-floor.sh — the newest glibc symbol version a binary asks for, from
# `objdump -T` (its dynamic symbol table: what the loader must find in the
# C library at start). With MAX, exit 1 when that is newer than MAX.
#
# Usage: scripts/glibc-floor.sh BINARY [MAX]     e.g. ... target/package/ringlet 2.28
# Prints: "BINARY needs glibc X.Y (newest symbol: NAME)".
# Needs: objdump (binutils).
set -euo pipefail
[ $# -ge 1 ] && [ $# -le 2 ] || { sed -n '2,8p' "$0" >&2; exit 2; }
bin=$1 max=${2:-}
[ -f "$bin" ] || { echo "no file $bin" >&2; exit 2; }
command -v objdump > /dev/null || { echo "missing objdump: apt-get install binutils" >&2; exit 2; }

# Lines look like: 0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.3.4) __stack_chk_fail
table=$(objdump -T "$bin")
newest=$(grep -oE '\(GLIBC_[0-9]+(\.[0-9]+)*\)' <<< "$table" | tr -d '()' | sed 's/^GLIBC_//' | sort -uV | tail -n 1)
[ -n "$newest" ] || { echo "$bin asks for no versioned glibc symbol: not a glibc binary?" >&2; exit 1; }
symbol=$(grep -F "(GLIBC_$newest)" <<< "$table" | awk '{print $NF}' | head -n 1)
echo "$bin needs glibc $newest (newest symbol: $symbol)"
if [ -n "$max" ]; then
  if [ "$(printf '%s\n%s\n' "$newest" "$max" | sort -V | tail -n 1)" != "$max" ]; then
    echo "FAIL: newer than the stated minimum, glibc $max; every symbol above it:" >&2
    grep -oE '\(GLIBC_[0-9.]+\) +[^ ]+$' <<< "$table" | tr -d '()' | sed 's/^GLIBC_//' \
      | while read -r v s; do
          [ "$(printf '%s\n%s\n' "$v" "$max" | sort -V | tail -n 1)" = "$max" ] || echo "  $s (GLIBC_$v)" >&2
        done
    exit 1
  fi
fi
