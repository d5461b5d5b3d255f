#!/usr/bin/env bash
# package.sh — ringlet as Linux servers get it, in target/package/:
#   ringlet                        the portable binary: x86-64, linked against
#                                  glibc 2.28 (RHEL 8, Debian 10+, Ubuntu 18.10+),
#                                  so it starts on every distribution whose
#                                  kernel ringlet supports (Linux 5.6+)
#   ringlet_VERSION-1_amd64.deb    /usr/bin/ringlet, the systemd units
#                                  (ringlet.service, ringlet.socket), man pages,
#                                  bash/zsh/fish completions, /srv/ringlet, the
#                                  README; installing it starts and enables nothing
#   SHA256SUMS                     of both (sha256sum -c SHA256SUMS)
#
# The binary is built by cargo-zigbuild with zig (the `ziglang` package from
# PyPI) as the linker, against zig's glibc 2.28 stubs; both are installed when
# missing (pip, cargo install). 2.17 does not link: glommio calls
# copy_file_range (glibc 2.27). The man pages and completions come from the
# binary itself (`ringlet docs`, generated from its clap definitions). The
# .deb is assembled with dpkg-deb from a staged tree (no debhelper, no
# cargo-deb: the maintainer scripts below are the whole of what installing
# and removing do).
#
# Usage: scripts/package.sh
#   RINGLET_COMMIT=HASH  the commit --version names (default: git's HEAD)
# Needs: Rust (cargo), python3 with pip, dpkg-deb, objdump, gzip, sha256sum.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# The oldest glibc the build allows (see above). README's "Install" states it;
# scripts/package-test.sh holds the binary to it with objdump -T.
glibc=2.28
triple=x86_64-unknown-linux-gnu
out=$root/target/package
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || { echo "no version in Cargo.toml" >&2; exit 1; }
debversion=$version-1

for t in dpkg-deb objdump gzip sha256sum python3; do
  command -v "$t" > /dev/null || { echo "missing $t" >&2; exit 2; }
done

echo "== tools (cargo-zigbuild, zig)" >&2
# zig from PyPI: into this python if pip may install there, else into a
# virtual environment under target/ (a system python that refuses pip).
venv=$root/target/zig-venv
if [ -x "$venv/bin/python3" ]; then
  export PATH=$venv/bin:$PATH
fi
if ! python3 -m ziglang version > /dev/null 2>&1; then
  if ! python3 -m pip install --quiet ziglang; then
    python3 -m venv "$venv"
    "$venv/bin/python3" -m pip install --quiet ziglang
    export PATH=$venv/bin:$PATH
  fi
fi
if ! command -v cargo-zigbuild > /dev/null; then
  cargo install --quiet --locked cargo-zigbuild
fi
echo "   zig $(python3 -m ziglang version), $(cargo-zigbuild --version)" >&2

echo "== portable binary (glibc $glibc)" >&2
started=$(date +%s)
cargo zigbuild --release --locked --quiet --bin ringlet --target "$triple.$glibc"
bin=$root/target/$triple/release/ringlet
echo "   built in $(( $(date +%s) - started )) s: $("$bin" --version)" >&2
scripts/glibc-floor.sh "$bin" "$glibc" >&2

rm -rf "$out"
mkdir -p "$out"
cp "$bin" "$out/ringlet"

echo "== .deb" >&2
stage=$root/target/package-stage
rm -rf "$stage"
mkdir -p "$stage"
deb=$stage/deb
"$bin" docs "$stage/docs"

install -D -m 0755 "$bin" "$deb/usr/bin/ringlet"
# The units as scripts/systemd/ has them (tests/units.rs checks those), with
# the packaged binary's path.
for u in ringlet.service ringlet.socket; do
  install -d -m 0755 "$deb/lib/systemd/system"
  sed -e 's|/usr/local/bin/ringlet|/usr/bin/ringlet|g' \
      -e 's|^# Installed by scripts/install-systemd.sh\.|# Installed by the ringlet package (not enabled, not started).|' \
      "scripts/systemd/$u" > "$deb/lib/systemd/system/$u"
  chmod 0644 "$deb/lib/systemd/system/$u"
done
install -d -m 0755 "$deb/usr/share/man/man1"
for page in "$stage"/docs/man/*.1; do
  gzip -9n < "$page" > "$deb/usr/share/man/man1/$(basename "$page").gz"
done
install -D -m 0644 "$stage/docs/completions/ringlet.bash" "$deb/usr/share/bash-completion/completions/ringlet"
install -D -m 0644 "$stage/docs/completions/_ringlet" "$deb/usr/share/zsh/vendor-completions/_ringlet"
install -D -m 0644 "$stage/docs/completions/ringlet.fish" "$deb/usr/share/fish/vendor_completions.d/ringlet.fish"
install -D -m 0644 README.md "$deb/usr/share/doc/ringlet/README.md"
# The served root: empty, owned by root, readable by the service's dynamic user.
install -d -m 0755 "$deb/srv/ringlet"

install -d -m 0755 "$deb/DEBIAN"
# procps: /bin/kill, which the service's ExecReload= runs (Debian 11's
# minimal root lacks it; scripts/package-test.sh's verify says so).
cat > "$deb/DEBIAN/control" <<EOF
Package: ringlet
Version: $debversion
Architecture: amd64
Maintainer: ringlet developers <ringlet@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$deb" | cut -f1)
Depends: libc6 (>= $glibc), procps
Section: net
Priority: optional
Description: echo and file servers, thread-per-core on io_uring
 The two little servers of the Eventlet article: a line echo server and a
 file server (a path and a NUL byte in, the file out), plus static files over
 HTTP/1.1 and a Prometheus metrics endpoint. One shard per CPU, each on its
 own io_uring completion ring (Linux 5.10+), or epoll where io_uring is not
 allowed.
 .
 The package installs ringlet.service and ringlet.socket but neither enables
 nor starts them: systemctl enable --now ringlet.service (or ringlet.socket).
EOF
# Installing: let a running systemd see the units; nothing is enabled or started.
cat > "$deb/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
exit 0
EOF
# Removing: stop what the administrator started and disable what they
# enabled, while the unit files still exist, so no unit or link is left.
cat > "$deb/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && command -v systemctl > /dev/null; then
  if [ -d /run/systemd/system ]; then
    systemctl stop ringlet.socket ringlet.service || true
  fi
  systemctl --no-reload disable ringlet.socket ringlet.service > /dev/null 2>&1 || true
fi
exit 0
EOF
cat > "$deb/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if { [ "$1" = remove ] || [ "$1" = purge ]; } && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
exit 0
EOF
chmod 0755 "$deb/DEBIAN/postinst" "$deb/DEBIAN/prerm" "$deb/DEBIAN/postrm"
# The old dpkg of Debian 10/11 reads xz, not zstd.
debfile=ringlet_${debversion}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$deb" "$out/$debfile" > /dev/null

(cd "$out" && sha256sum ringlet "$debfile" > SHA256SUMS)
echo "== target/package/" >&2
ls -l "$out" >&2
