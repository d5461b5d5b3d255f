#!/usr/bin/env bash
# package-test.sh — what scripts/package.sh made (target/package/), tried in
# Debian 11's own userland: a bullseye root (scripts/bullseye-root.sh,
# cached under target/bullseye/) entered by chroot on this host's kernel.
#
#   glibc floor   objdump -T: the binary asks for no glibc symbol newer than
#                 the minimum README's "Install" states
#   checksums     sha256sum -c SHA256SUMS; the .deb carries the same binary
#   probe         `ringlet probe` starts on bullseye's glibc 2.31 and says the
#                 uring backend can start
#   article       tests/article.rs (the echo transcript, the file fetches) on
#                 both backends, against the binary under test inside the root:
#                 the test executable runs with the host's libraries (see
#                 scripts/kernel-matrix/host-exe.sh), ringlet with bullseye's
#   dpkg -i       binary, units, man pages, completions, /srv/ringlet, the
#                 README in place; bash completes `ringlet se` to `serve`;
#                 nothing enabled; bullseye's `systemd-analyze verify` (247)
#                 silent on the installed units but for the one line saying
#                 it ignores cachestat, a system call it predates
#   dpkg -r       after `systemctl enable` of both units: no unit file or
#                 link left, nothing of the package left
#
# Each check prints "ok NAME" or "FAIL NAME: why"; the exit status is 1 if
# any failed. The cached root is never changed: each run works on a copy.
#
# Usage: scripts/package-test.sh [--binary PATH]
#   --binary  test this binary instead of target/package/ringlet in the
#             glibc, probe and article checks (to see them fail on one built
#             for the host: --binary target/release/ringlet)
# Needs: root (chroot, mount), debootstrap, objdump; the integration test
# executables are built here with cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

pkg=$repo/target/package
binary=$pkg/ringlet
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$(realpath "$2"); shift ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "needs root (chroot)" >&2; exit 2; }
deb=$(ls "$pkg"/ringlet_*_amd64.deb 2>/dev/null | head -n 1 || true)
[ -x "$binary" ] && [ -n "$deb" ] || { echo "no package in $pkg: run scripts/package.sh first" >&2; exit 2; }
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)

failed=0
ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }

echo "== glibc floor"
floor=$(sed -n 's/.*\*\*Minimum glibc: \([0-9.]*\)\*\*.*/\1/p' README.md | head -n 1)
if [ -z "$floor" ]; then
  fail glibc-floor "README.md states no \"**Minimum glibc: X.Y**\""
elif scripts/glibc-floor.sh "$binary" "$floor"; then
  ok "glibc-floor (at most $floor)"
else
  fail glibc-floor "asks for a glibc newer than README's $floor"
fi

echo "== checksums"
if (cd "$pkg" && sha256sum --quiet -c SHA256SUMS); then ok checksums; else fail checksums "sha256sum -c SHA256SUMS"; fi
if dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/bin/ringlet | cmp -s - "$pkg/ringlet"; then
  ok "deb-binary (the .deb's /usr/bin/ringlet is target/package/ringlet)"
else
  fail deb-binary "the .deb's /usr/bin/ringlet differs from target/package/ringlet"
fi

echo "== bullseye root"
started=$(date +%s)
cached=$(scripts/bullseye-root.sh)
run=$repo/target/bullseye/run
cleanup() {
  for m in sys dev proc; do umount -lR "$run/$m" 2>/dev/null || true; done
  # Never into a mount still there (the host's /dev): stop instead.
  if grep -qF " $run/" /proc/mounts; then
    echo "still mounted under $run; not removing it" >&2
    return 1
  fi
  rm -rf --one-file-system "$run"
}
trap cleanup EXIT
cleanup
cp -a "$cached" "$run"
mount -t proc proc "$run/proc"
mount --bind /dev "$run/dev"
# With the cgroup tree: systemd-analyze sets up a manager, which needs it.
mount --rbind /sys "$run/sys"
in_root() { chroot "$run" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }
libc=$(in_root /lib/x86_64-linux-gnu/libc.so.6 | head -n 1)
echo "   Debian $(cat "$run/etc/debian_version"): $libc (ready in $(( $(date +%s) - started )) s)"
case "$libc" in *"version 2.31"*) ;; *) fail root "expected bullseye's glibc 2.31, found: $libc" ;; esac

echo "== probe"
install -D -m 0755 "$binary" "$run/opt/ringlet-under-test"
if out=$(in_root /opt/ringlet-under-test probe 2>&1); then
  echo "$out" | sed 's/^/   /'
  if grep -q '^verdict: *the uring backend can start' <<< "$out"; then ok probe; else fail probe "no uring verdict"; fi
else
  echo "$out" | sed 's/^/   /'
  fail probe "ringlet probe exited non-zero in the bullseye root"
fi
# The library it ran on is the root's own.
libs=$(in_root ldd /opt/ringlet-under-test 2>&1 || true)
if grep -q '=> /lib/x86_64-linux-gnu/libc.so.6' <<< "$libs"; then
  ok "probe-libc (bullseye's /lib/x86_64-linux-gnu/libc.so.6)"
else
  fail probe-libc "ldd in the root: $(tr '\n' ' ' <<< "$libs")"
fi

echo "== article (tests/article.rs inside the root, both backends)"
exe=$(cargo test --locked --no-run --quiet --test article --message-format=json 2>/dev/null \
      | grep -F '"kind":["test"]' | grep -oE '"executable":"[^"]+"' | head -n 1 | cut -d'"' -f4 || true)
if [ -z "$exe" ]; then
  fail article "no test executable for tests/article.rs"
else
  # Where the test executable looks for ringlet (CARGO_BIN_EXE_ringlet).
  install -D -m 0755 "$binary" "$run$repo/target/debug/ringlet"
  scripts/kernel-matrix/host-exe.sh "$run" "$exe" /opt/article
  if out=$(in_root /usr/bin/env TMPDIR=/tmp /opt/article --test-threads=2 2>&1); then
    echo "$out" | grep -E '^test |^test result' | sed 's/^/   /'
    # Both backends, every test: uring::* and epoll::*.
    if grep -q "^test uring::echo_transcript_foo_bar_qux ... ok" <<< "$out" \
       && grep -q "^test epoll::echo_transcript_foo_bar_qux ... ok" <<< "$out" \
       && grep -q "^test uring::file_transcript_missing_then_existing ... ok" <<< "$out" \
       && grep -q "^test epoll::file_transcript_missing_then_existing ... ok" <<< "$out" \
       && grep -qE "^test result: ok\. [1-9][0-9]* passed; 0 failed" <<< "$out"; then
      ok article
    else
      fail article "not every transcript ran and passed on both backends"
    fi
  else
    echo "$out" | tail -n 40 | sed 's/^/   /'
    fail article "the article tests failed in the bullseye root"
  fi
fi

echo "== dpkg -i $(basename "$deb")"
cp "$deb" "$run/tmp/ringlet.deb"
if out=$(in_root dpkg -i /tmp/ringlet.deb 2>&1); then
  ok dpkg-install
else
  echo "$out" | sed 's/^/   /'
  fail dpkg-install "dpkg -i failed"
fi
for f in /usr/bin/ringlet /lib/systemd/system/ringlet.service /lib/systemd/system/ringlet.socket \
         /usr/share/man/man1/ringlet.1.gz /usr/share/man/man1/ringlet-serve.1.gz \
         /usr/share/man/man1/ringlet-probe.1.gz /usr/share/man/man1/ringlet-bench.1.gz \
         /usr/share/man/man1/ringlet-bench-echo.1.gz /usr/share/man/man1/ringlet-bench-file.1.gz \
         /usr/share/bash-completion/completions/ringlet /usr/share/zsh/vendor-completions/_ringlet \
         /usr/share/fish/vendor_completions.d/ringlet.fish /usr/share/doc/ringlet/README.md; do
  [ -f "$run$f" ] || fail installed "no $f"
done
[ -d "$run/srv/ringlet" ] || fail installed "no /srv/ringlet"
got=$(in_root ringlet --version 2>&1 || true)
case "$got" in
  "ringlet $version (commit "[0-9a-f]*")") ok "version ($got)" ;;
  *) fail version "ringlet --version said: $got" ;;
esac
# The man pages are clap's, with the options --help lists.
page=$(zcat "$run/usr/share/man/man1/ringlet-serve.1.gz")
if grep -q '^\.TH ringlet-serve 1' <<< "$page" && grep -q 'file\\-header' <<< "$page" \
   && grep -q 'cached\\-sendfile' <<< "$page"; then
  ok man
else
  fail man "ringlet-serve(1) lacks its title or the --file-header / --cached-sendfile options"
fi
if grep -q 'ringlet\\-serve(1)' <<< "$(zcat "$run/usr/share/man/man1/ringlet.1.gz")"; then
  ok "man-see-also (ringlet(1) names ringlet-serve(1))"
else
  fail man-see-also "ringlet(1) does not name ringlet-serve(1)"
fi
# bash completes for real: `ringlet se<TAB>` and `ringlet serve --file-h<TAB>`.
words=$(in_root bash -c '. /usr/share/bash-completion/completions/ringlet
  COMP_WORDS=(ringlet se); COMP_CWORD=1; COMP_LINE="ringlet se"; COMP_POINT=10; _ringlet ringlet se ringlet; echo "${COMPREPLY[*]}"
  COMP_WORDS=(ringlet serve --file-h); COMP_CWORD=2; COMP_LINE="ringlet serve --file-h"; COMP_POINT=22; _ringlet ringlet --file-h serve; echo "${COMPREPLY[*]}"' 2>&1 || true)
if [ "$words" = "$(printf 'serve\n--file-header')" ]; then
  ok "bash-completion (ringlet se -> serve; serve --file-h -> --file-header)"
else
  fail bash-completion "got: $(echo "$words" | tr '\n' '|')"
fi
head -n 1 "$run/usr/share/zsh/vendor-completions/_ringlet" | grep -q '^#compdef ringlet' \
  && grep -q '^complete -c ringlet ' "$run/usr/share/fish/vendor_completions.d/ringlet.fish" \
  && ok "zsh-fish-completions (#compdef ringlet; complete -c ringlet)" \
  || fail zsh-fish-completions "not clap_complete's zsh and fish scripts"
# Installed, not enabled, not started.
for u in ringlet.service ringlet.socket; do
  state=$(in_root systemctl is-enabled "$u" 2>&1 || true)
  [ "$state" = disabled ] || fail not-enabled "$u is $state after dpkg -i"
done
links=$(find "$run/etc/systemd" -name 'ringlet*' 2>/dev/null || true)
[ -z "$links" ] && ok "not-enabled (both units disabled, no link in /etc/systemd)" \
  || fail not-enabled "links after dpkg -i: $links"
# --man=no: the minimal root has no man pages for Documentation= to name.
# systemd 247 predates cachestat (Linux 6.5), and says it ignores the one
# line naming it: that line, and only it, is expected. Without the call the
# uring backend sends every file byte through the ring, as on any kernel
# before 6.5 (Debian 11's is 5.10).
expected='/lib/systemd/system/ringlet.service:[0-9]*: Failed to parse system call, ignoring: cachestat'
if out=$(in_root env SYSTEMD_COLORS=0 TERM=dumb systemd-analyze verify --man=no \
         /lib/systemd/system/ringlet.service /lib/systemd/system/ringlet.socket 2>&1) \
   && out=$(sed 's/\x1b\[[0-9;]*m//g' <<< "$out") \
   && [ -z "$(grep -v -x "$expected" <<< "$out")" ]; then
  ok "systemd-analyze-verify ($(in_root systemd-analyze --version | head -n 1); $(grep -c . <<< "$out") expected line)"
else
  echo "$out" | sed 's/^/   /'
  fail systemd-analyze-verify "bullseye's systemd-analyze verify said more than the expected cachestat line"
fi

echo "== dpkg -r (after systemctl enable, as an administrator would)"
in_root systemctl enable ringlet.service ringlet.socket > /dev/null 2>&1 || true
state=$(in_root systemctl is-enabled ringlet.service 2>&1 || true)
[ "$state" = enabled ] || fail enable "systemctl enable did not enable ringlet.service ($state): the removal check would prove nothing"
if out=$(in_root dpkg -r ringlet 2>&1); then ok dpkg-remove; else echo "$out" | sed 's/^/   /'; fail dpkg-remove "dpkg -r failed"; fi
# (find complains of the folders dpkg removed with the package: they are gone.)
left=$(find "$run/etc/systemd" "$run/lib/systemd" "$run/usr/lib/systemd" -name 'ringlet*' 2>/dev/null | sort -u || true)
left+=$(find "$run/usr/bin" "$run/usr/share/man" "$run/usr/share/bash-completion" "$run/usr/share/zsh" \
         "$run/usr/share/fish" "$run/usr/share/doc" -name '*ringlet*' 2>/dev/null || true)
[ -z "$left" ] && ok "removed (no unit, link, binary, page or completion left)" \
  || fail removed "left behind: $(echo "$left" | sed "s|$run||" | tr '\n' ' ')"
in_root dpkg --purge ringlet > /dev/null 2>&1 || fail purge "dpkg --purge failed"
[ -e "$run/srv/ringlet" ] && fail purge "/srv/ringlet left after purge (it was empty)" || ok purge

[ "$failed" = 0 ] && echo "package-test: every check passed" || echo "package-test: FAILED"
exit "$failed"
