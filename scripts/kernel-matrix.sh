#!/usr/bin/env bash
# kernel-matrix.sh — boot real Debian kernels in qemu and run ringlet's
# probe and integration tests inside, on both backends.
#
# Each case boots one kernel with a busybox initramfs that holds the ringlet
# binary, its shared libraries and the integration test executables (built by
# `cargo test --no-run`, placed where CARGO_BIN_EXE_ringlet points), runs
# `ringlet probe` and the chosen test groups, and powers off. The kernel
# packages come from the Debian mirror this machine's apt sources already use
# (only the suite changes); downloads are cached under target/kernel-matrix/.
#
# Cases (--case, repeatable; default: every case):
#   5.10             Debian bullseye's cloud kernel and userland: the portable
#                    binary (scripts/package.sh) on bullseye's own libraries
#                    (scripts/kernel-matrix/bullseye.sh); every test group, both backends
#   6.1              Debian bookworm's cloud kernel: the same
#   6.12-disabled    Debian trixie's kernel with kernel.io_uring_disabled=2 set
#                    before ringlet starts: auto falls back to epoll and says why,
#                    --backend uring exits 1 with the reason; the epoll half of
#                    every group
#   6.12-seccomp     the same kernel, everything run under a seccomp filter that
#                    refuses io_uring_setup (EPERM)
#
# Usage: scripts/kernel-matrix.sh [--case NAME]... [--tests "GROUP..."]
#            [--more-on-5.10 "GROUP..."] [--timeout SECS] [--accel tcg|kvm] [--table FILE]
#   --tests     integration test files to run (default: probe article echo file
#               escape isolation limits faults close crossing). Not run, and
#               said so: systemd, units, watchdog (they need systemd's tools),
#               bench/props (long).
#   --more-on-5.10  groups the 5.10 case runs as well (default: http metrics
#               cli open_file_cache lib; "lib" is the library's unit tests, `cargo test --lib`).
#               The host's curl goes into the initramfs with its libraries.
#   --timeout   per boot (default 1500 s); a VM that does not power off fails
#   --accel     qemu accelerator (default tcg: nested KVM fails on many hosts)
#   --table     also write the markdown table to FILE
# Needs: qemu-system-x86, busybox-static, cpio, curl, apt-get (Debian or Ubuntu host).
# Exit status: 0 when every group of every case passed, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

cases=() tests="probe article echo file escape isolation limits faults close crossing"
more_510="http metrics cli open_file_cache lib"
timeout_s=1500 accel=tcg table=""
while [ $# -gt 0 ]; do
  case "$1" in
    --case) cases+=("$2"); shift ;;
    --tests) tests="$2"; shift ;;
    --more-on-5.10) more_510="$2"; shift ;;
    --timeout) timeout_s="$2"; shift ;;
    --accel) accel="$2"; shift ;;
    --table) table="$2"; shift ;;
    -h|--help) sed -n '2,37p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
[ ${#cases[@]} -gt 0 ] || cases=(5.10 6.1 6.12-disabled 6.12-seccomp)
for t in qemu-system-x86_64 busybox cpio apt-get curl; do
  command -v "$t" > /dev/null || { echo "missing $t: apt-get install qemu-system-x86 busybox-static cpio" >&2; exit 2; }
done
busybox=$(command -v busybox)

# KERNEL_MATRIX_WORK: another folder for downloads, logs and the initramfs
# (two runs at once must not share one console log).
work=${KERNEL_MATRIX_WORK:-$root/target/kernel-matrix}
mkdir -p "$work"

# The suite that ships each kernel.
suite_of() {
  case "$1" in
    5.10*) echo bullseye ;;
    6.1|6.1-*) echo bookworm ;;
    6.12*) echo trixie ;;
    *) echo "no Debian suite known for kernel $1" >&2; return 1 ;;
  esac
}

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

# fetch_kernel SUITE -> prints the path of an extracted vmlinuz
fetch_kernel() {
  local suite=$1 d=$work/apt-$1
  if [ -f "$d/vmlinuz" ]; then echo "$d/vmlinuz"; return; fi
  mkdir -p "$d/state/lists/partial" "$d/cache/archives/partial" "$d/deb"
  echo "deb $(mirror) $suite main" > "$d/sources.list"
  local apt=(-o "Dir::Etc::SourceList=$d/sources.list" -o "Dir::Etc::SourceParts=$d/none"
             -o "Dir::State=$d/state" -o "Dir::Cache=$d/cache" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root"
             -o "APT::Get::List-Cleanup=0")
  apt-get "${apt[@]}" -qq update >&2
  # The cloud flavour's metapackage names the current kernel package.
  local pkg
  pkg=$(apt-cache "${apt[@]}" depends linux-image-cloud-amd64 \
        | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
  [ -n "$pkg" ] || { echo "no cloud kernel in $suite" >&2; return 1; }
  echo "   $suite: $pkg" >&2
  (cd "$d/deb" && apt-get "${apt[@]}" -qq download "$pkg" >&2)
  local deb; deb=$(ls "$d"/deb/*.deb | head -n 1)
  rm -rf "$d/x"; dpkg-deb -x "$deb" "$d/x"
  cp "$(ls "$d"/x/boot/vmlinuz-* | head -n 1)" "$d/vmlinuz"
  basename "$deb" > "$d/package"
  rm -rf "$d/x"
  echo "$d/vmlinuz"
}

echo "== building (release binary, test executables)" >&2
cargo build --release --quiet
cargo test --no-run --quiet --message-format=json 2>/dev/null > "$work/tests.json"
debug_bin=$root/target/debug/ringlet
[ -x "$debug_bin" ] || { echo "missing $debug_bin (cargo test --no-run builds it)" >&2; exit 1; }

# The seccomp wrapper: refuse io_uring_setup with EPERM, then exec.
"${CC:-cc}" -O2 -o "$work/no-io-uring" scripts/kernel-matrix/no-io-uring.c

echo "== initramfs" >&2
stage=$work/initramfs
rm -rf "$stage"; mkdir -p "$stage"/{bin,sbin,proc,sys,dev,tmp,root,etc,lib64,usr/lib,matrix}
cp "$busybox" "$stage/bin/busybox"
# Users for the tests that drop privileges, and a file they read.
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$stage/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$stage/etc/group"
copy_with_libs() { # FILE DEST
  mkdir -p "$(dirname "$stage$2")"
  cp "$1" "$stage$2"
  strip --strip-debug "$stage$2" 2>/dev/null || true
  ldd "$1" 2>/dev/null | grep -oE '/[^ ]+' | while read -r lib; do
    [ -e "$stage$lib" ] || { mkdir -p "$stage$(dirname "$lib")"; cp -L "$lib" "$stage$lib"; }
  done
}
# The binary where the test executables look for it, and on PATH.
copy_with_libs "$debug_bin" "$debug_bin"
copy_with_libs "$root/target/release/ringlet" /bin/ringlet
copy_with_libs "$work/no-io-uring" /bin/no-io-uring
# The http and metrics tests talk to the server with curl (numeric addresses).
copy_with_libs "$(command -v curl)" /bin/curl
printf '127.0.0.1 localhost\n::1 localhost\n' > "$stage/etc/hosts"
# Each case's groups, in order; the 5.10 case runs more (--more-on-5.10).
groups_of() {
  case "$1" in
    5.10*) echo "$tests $more_510" ;;
    *) echo "$tests" ;;
  esac
}
all_groups=$(for c in "${cases[@]}"; do groups_of "$c"; done | tr ' ' '\n' | awk 'NF && !seen[$0]++')
for t in $all_groups; do
  if [ "$t" = lib ]; then
    # The library's unit tests (`cargo test --lib --no-run`).
    exe=$(grep -F '"reason":"compiler-artifact"' "$work/tests.json" \
          | grep -F '"kind":["lib"]' | grep -F '"name":"ringlet"' | grep -F '"test":true},"features"' \
          | grep -oE '"executable":"[^"]+"' | head -n 1 | cut -d'"' -f4 || true)
  else
    exe=$(grep -F '"reason":"compiler-artifact"' "$work/tests.json" \
          | grep -F '"kind":["test"]' | grep -F "\"name\":\"$t\"" \
          | grep -oE '"executable":"[^"]+"' | head -n 1 | cut -d'"' -f4 || true)
  fi
  [ -n "$exe" ] || { echo "no test executable named $t" >&2; exit 2; }
  if [ "$t" = lib ]; then
    # The tests the 5.10 case skips must exist under these names, or the
    # skip silently misses them and the group fails in the VM.
    listed=$("$exe" --list 2>/dev/null | sed -n 's/: test$//p')
    for name in $(grep -v '^#' scripts/kernel-matrix/lib-needs-5.19); do
      grep -qxF "$name" <<< "$listed" || {
        echo "scripts/kernel-matrix/lib-needs-5.19 names $name, which the library's tests do not have (moved or renamed? update the list)" >&2
        exit 2
      }
    done
    cp scripts/kernel-matrix/lib-needs-5.19 "$stage/matrix/lib-needs-5.19"
  fi
  copy_with_libs "$exe" "/matrix/$t"
done
echo "$tests" > "$stage/matrix/groups"
cp scripts/kernel-matrix/init "$stage/init"
chmod +x "$stage/init"
(cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initramfs.cpio.gz"
echo "   $(du -h "$work/initramfs.cpio.gz" | cut -f1) initramfs" >&2
# Debian 11 as shipped, for the bullseye kernel: its userland, not the host's.
if [[ " ${cases[*]} " == *" 5.10"* ]]; then
  scripts/kernel-matrix/bullseye.sh "$stage" "$work/initramfs-bullseye.cpio.gz"
fi

declare -A result
kernels=()
failed=0
for c in "${cases[@]}"; do
  version=${c%%-*}; mode=plain
  case "$c" in *-disabled) mode=disabled ;; *-seccomp) mode=seccomp ;; esac
  suite=$(suite_of "$version")
  echo "== case $c: Debian $suite kernel, $mode" >&2
  vmlinuz=$(fetch_kernel "$suite")
  log=$work/console-$c.log
  accel_args=(-accel tcg -cpu max)
  [ "$accel" = kvm ] && accel_args=(-accel kvm -cpu host)
  started=$(date +%s)
  set +e
  timeout --foreground "$timeout_s" qemu-system-x86_64 "${accel_args[@]}" -machine q35 \
    -smp 2 -m 3072 -nographic -no-reboot -monitor none -serial "file:$log" \
    -kernel "$vmlinuz" -initrd "$work/initramfs$([ "$suite" = bullseye ] && echo -bullseye).cpio.gz" \
    -append "console=ttyS0 panic=-1 quiet matrix.case=$mode matrix.groups=$(groups_of "$c" | tr ' ' ,)"
  qrc=$?
  set -e
  # The serial console ends its lines with CRLF.
  sed -i 's/\r$//' "$log"
  echo "   booted, ran and powered off in $(( $(date +%s) - started )) s (qemu status $qrc)" >&2
  kernel=$(grep -m1 -oE 'MATRIX kernel [^ ]+' "$log" | cut -d' ' -f3 || true)
  userland=$(grep -m1 '^MATRIX userland ' "$log" | cut -d' ' -f3- || true)
  kernels+=("$c|${kernel:-?}|$(cat "$work/apt-$suite/package")|${userland:-?}")
  grep -E '^MATRIX (group|backend|feature|note)' "$log" | sed 's/^/   /' >&2 || true
  for g in probe-checks $(groups_of "$c"); do
    r=$(grep -m1 -E "^MATRIX group $g " "$log" | awk '{print $4}' || true)
    if [ -z "$r" ]; then
      r=failed
      [ "$qrc" = 124 ] && r="timed out"
    fi
    result["$c/$g"]=$r
    case "$r" in passed|skipped) ;; *) failed=1 ;; esac
  done
  if ! grep -q '^MATRIX done' "$log"; then
    failed=1
    echo "   no clean power-off; last console lines:" >&2
    tail -n 30 "$log" | sed 's/^/   | /' >&2
  fi
done

{
  echo "| case | kernel | package | userland (C library) |"
  echo "|---|---|---|---|"
  for k in "${kernels[@]}"; do IFS='|' read -r c v p u <<< "$k"; echo "| $c | $v | $p | $u |"; done
  echo
  printf '| group |'; for c in "${cases[@]}"; do printf ' %s |' "$c"; done; echo
  printf '|---|'; for _ in "${cases[@]}"; do printf -- '---|'; done; echo
  for g in probe-checks $all_groups; do
    printf '| %s |' "$g"
    for c in "${cases[@]}"; do printf ' %s |' "${result[$c/$g]:--}"; done
    echo
  done
  echo
  echo "Not run in the VM: systemd, units, watchdog (need systemd's tools), bench and props (long);"
  echo "http, metrics, cli and lib (the library's unit tests) on 5.10 only; the rest run on the host."
} | tee "${table:-/dev/null}"
exit "$failed"
