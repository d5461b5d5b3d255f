#!/usr/bin/env bash
# bullseye-root.sh — a Debian 11 (bullseye) root, as debootstrap makes it,
# cached under target/bullseye/root: the userland of a distribution that
# ships Linux 5.x (glibc 2.31, systemd 247). Prints the root's path.
#
# Shared by scripts/package-test.sh (the package and the portable binary,
# run by chroot) and scripts/kernel-matrix.sh (the 5.10 case boots with this
# root's own libraries). Made once with
#   debootstrap --variant=minbase --include=systemd,procps bullseye ROOT MIRROR
# where MIRROR is the Debian mirror this machine's apt sources already use
# (the same lookup as kernel-matrix.sh's), so nothing here names a host.
# systemd is included for its systemd-analyze and systemctl (it never runs),
# procps for /bin/kill (the service's ExecReload=; the .deb depends on it).
# A root made with another list is made again.
#
# Usage: scripts/bullseye-root.sh [--rebuild]
# Needs: root, a Debian archive keyring, debootstrap (installed by apt-get when
# missing).
set -euo pipefail
cd "$(dirname "$0")/.."

rebuild=0
case "${1:-}" in
  --rebuild) rebuild=1 ;;
  "") ;;
  -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
  *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
esac

work=$PWD/target/bullseye
root=$work/root
include=systemd,procps
# A root that debootstrap finished is marked with its package list; anything
# else is made again.
if [ "$rebuild" = 0 ] && grep -qx "include=$include" "$root/.ringlet-root-done" 2>/dev/null; then
  echo "$root"
  exit 0
fi

[ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 2; }
if ! command -v debootstrap > /dev/null; then
  command -v apt-get > /dev/null || { echo "missing debootstrap" >&2; exit 2; }
  echo "== installing debootstrap" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
fi

# The Debian mirror from this machine's apt sources (deb822 or one-line form).
mirror() {
  local m
  m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
      /^URIs:/ { uri = $2 } /^Suites:/ { if (uri !~ /security/ && $0 ~ /(bookworm|bullseye|trixie|buster|sid)/) { print uri; exit } }')
  if [ -z "$m" ]; then
    m=$(grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -v security | sed -E 's/^deb (\[[^]]*\] )?//' | awk '{print $1; exit}')
  fi
  [ -n "$m" ] || { echo "no Debian mirror in /etc/apt/sources*" >&2; return 1; }
  echo "${m%/}"
}

mkdir -p "$work"
tmp=$work/root.tmp
# debootstrap mounts /proc and /sys in the root while it works: a run that
# died may have left them; never remove through a mount.
grep -qF " $tmp/" /proc/mounts && { echo "still mounted under $tmp: umount it first" >&2; exit 1; }
rm -rf --one-file-system "$tmp"
started=$(date +%s)
echo "== debootstrap bullseye (minbase + $include) into $root" >&2
if ! debootstrap --variant=minbase --include="$include" bullseye "$tmp" "$(mirror)" > "$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  echo "debootstrap failed; the whole log is $work/debootstrap.log" >&2
  exit 1
fi
# What the root is, for the reports: its release and C library.
{ echo "include=$include"; cat "$tmp/etc/debian_version"; } > "$tmp/.ringlet-root-done"
rm -rf --one-file-system "$root"
mv "$tmp" "$root"
echo "   made in $(( $(date +%s) - started )) s: Debian $(cat "$root/etc/debian_version")" >&2
echo "$root"
