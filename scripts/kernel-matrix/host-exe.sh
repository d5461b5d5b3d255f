#!/usr/bin/env bash
# host-exe.sh — put an executable built on this host into another userland's
# root (a bullseye chroot, an initramfs tree) so that it still runs there:
# the executable and the host's shared libraries it needs go under
# ROOT/host/, and DEST becomes a small script that starts it with the host's
# own loader (`ld-linux-x86-64.so.2 --library-path /host/lib EXE`).
#
# The loader's --library-path is not inherited: a program the executable
# starts (the ringlet binary under test) is loaded as usual, by the root's
# own loader with the root's own libraries. That is how the integration test
# executables (built against the host's newer glibc) drive the portable
# binary on Debian 11's glibc.
#
# Usage: scripts/kernel-matrix/host-exe.sh ROOT EXE DEST   (DEST: a path inside ROOT)
set -euo pipefail
[ $# = 3 ] || { sed -n '2,14p' "$0" >&2; exit 2; }
root=$1 exe=$2 dest=$3
name=$(echo "${dest#/}" | tr / _)
mkdir -p "$root/host/lib" "$root/host/exe" "$(dirname "$root$dest")"
cp "$exe" "$root/host/exe/$name"
strip --strip-debug "$root/host/exe/$name" 2>/dev/null || true
loader=$(readelf -l "$exe" | sed -n 's/.*interpreter: \(.*\)\]/\1/p')
[ -n "$loader" ] || { echo "$exe is not dynamically linked" >&2; exit 2; }
{ echo "$loader"; ldd "$exe" | grep -oE '/[^ ]+'; } | sort -u | while read -r lib; do
  [ -e "$root/host/lib/$(basename "$lib")" ] || cp -L "$lib" "$root/host/lib/$(basename "$lib")"
done
rm -f "$root$dest"
cat > "$root$dest" <<WRAP
#!/bin/sh
exec /host/lib/$(basename "$loader") --library-path /host/lib /host/exe/$name "\$@"
WRAP
chmod 0755 "$root$dest"
