#!/usr/bin/env bash
# install-systemd.sh — install ringlet as a systemd service.
#
# Builds the release binary (unless --binary is given), installs it as
# /usr/local/bin/ringlet, the units as /etc/systemd/system/ringlet.{service,socket},
# creates the served directory /srv/ringlet, then enables and starts the service
# (or, with --socket, the socket unit: systemd listens and starts ringlet on the
# first connection).
#
# Usage: scripts/install-systemd.sh [--socket] [--binary PATH] [--no-start]
#   DESTDIR=/some/dir  install under that directory and skip systemctl
#                      (packaging, or checking the layout without systemd)
set -euo pipefail
cd "$(dirname "$0")/.."

socket=0 start=1 binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --socket) socket=1 ;;
    --no-start) start=0 ;;
    --binary) binary="$2"; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
dest=${DESTDIR:-}

if [ -z "$binary" ]; then
  cargo build --release --quiet
  binary=target/release/ringlet
fi
[ -x "$binary" ] || { echo "no executable at $binary" >&2; exit 1; }

install -D -m 0755 "$binary" "$dest/usr/local/bin/ringlet"
install -D -m 0644 scripts/systemd/ringlet.service "$dest/etc/systemd/system/ringlet.service"
install -D -m 0644 scripts/systemd/ringlet.socket "$dest/etc/systemd/system/ringlet.socket"
install -d -m 0755 "$dest/srv/ringlet"
echo "installed: $dest/usr/local/bin/ringlet, $dest/etc/systemd/system/ringlet.{service,socket}, $dest/srv/ringlet"

if [ -n "$dest" ]; then
  echo "DESTDIR set: not touching systemd"
  exit 0
fi
if [ ! -d /run/systemd/system ]; then
  echo "systemd is not running here: start it later with 'systemctl enable --now ringlet.service'" >&2
  exit 0
fi
"$dest/usr/local/bin/ringlet" probe >/dev/null || \
  echo "warning: 'ringlet probe' says io_uring is unavailable; the service will run on epoll" >&2
systemctl daemon-reload
unit=$([ "$socket" = 1 ] && echo ringlet.socket || echo ringlet.service)
if [ "$start" = 1 ]; then
  systemctl enable --now "$unit"
  systemctl --no-pager status "$unit" || true
else
  systemctl enable "$unit"
fi
