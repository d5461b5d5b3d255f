#!/usr/bin/env bash
# bullseye.sh — the kernel matrix's Debian 11 initramfs: the matrix's own
# staged tree (STAGE, built by scripts/kernel-matrix.sh with the host's
# libraries), turned into bullseye as shipped, so that the 5.10 case boots
# Debian 11's kernel with Debian 11's userland under ringlet:
#
#   - every `ringlet` in the tree becomes the portable binary
#     (scripts/package.sh, glibc 2.28), loaded by bullseye's own loader with
#     bullseye's own libraries (glibc 2.31), taken from the debootstrap root
#     of scripts/bullseye-root.sh;
#   - the host's libraries leave /lib, /lib64 and /usr/lib; the other
#     host-built executables (the integration test executables, which need
#     the host's newer glibc, and any tool beside them) become wrappers that
#     run them with the host's loader and libraries from /host
#     (scripts/kernel-matrix/host-exe.sh). Busybox is static and stays.
#
# The init prints the C library it finds at /lib/x86_64-linux-gnu/libc.so.6
# as "MATRIX userland ...": in this initramfs, bullseye's.
#
# Usage: scripts/kernel-matrix/bullseye.sh STAGE OUT.cpio.gz
# Needs: root (the root is read by chroot), debootstrap, cpio, readelf.
set -euo pipefail
[ $# = 2 ] || { sed -n '2,21p' "$0" >&2; exit 2; }
stage=$1 out=$2
cd "$(dirname "$0")/../.."
repo=$PWD

root=$(scripts/bullseye-root.sh)
echo "== portable binary for the bullseye initramfs (scripts/package.sh)" >&2
scripts/package.sh > /dev/null
portable=$repo/target/package/ringlet

v=$out.d
rm -rf "$v"
cp -a "$stage" "$v"
# The host-built executables: ringlet becomes the portable one, the rest are
# wrapped to run on the host's libraries.
find "$v" -type f -perm -u+x | while read -r f; do
  readelf -l "$f" 2>/dev/null | grep -q 'program interpreter' || continue # static, or no ELF
  if [ "$(basename "$f")" = ringlet ]; then
    cp "$portable" "$f"
  else
    scripts/kernel-matrix/host-exe.sh "$v" "$f" "${f#"$v"}"
  fi
done
rm -rf "$v/lib" "$v/lib64" "$v/usr/lib" "$v/usr/lib64"
# Bullseye's loader and libraries for the portable binary, as its own ldd
# resolves them. Copied by tar inside the root: its symlinks are absolute
# (/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-2.31.so) and must
# resolve there, not on this host.
probe=$root/tmp/ringlet-matrix-ldd
install -m 0755 "$portable" "$probe"
libs=$(chroot "$root" ldd /tmp/ringlet-matrix-ldd | grep -oE '/[^ ]+' | sed 's|^/||' | sort -u)
rm -f "$probe"
[ -n "$libs" ] || { echo "ldd in the bullseye root found no library" >&2; exit 1; }
# shellcheck disable=SC2086 # one word per library
chroot "$root" tar -chf - $libs | tar -xf - -C "$v"
echo "   bullseye $(cat "$root/etc/debian_version") libraries: $(echo $libs | tr '\n' ' ')" >&2
(cd "$v" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
rm -rf "$v"
echo "   $(du -h "$out" | cut -f1) initramfs (bullseye userland)" >&2
