//! `ringlet probe` tells the truth, here and under a seccomp filter that
//! blocks io_uring (as container runtimes do); `serve` explains instead of
//! panicking, and `--backend auto` falls back to epoll.

mod common;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::{Ringlet, connect, read_exact};

/// `io_uring_setup` is syscall 425 on every architecture using the generic table.
const NR_IO_URING_SETUP: u32 = 425;

/// Make `cmd` run under a seccomp filter that fails io_uring_setup with EPERM,
/// the way Docker's default profile does.
fn block_io_uring(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; the filter lives on this stack until
    // installed (the kernel copies it).
    unsafe {
        cmd.pre_exec(|| {
            const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
            const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
            let filter = [
                // A = seccomp_data.nr
                libc::sock_filter {
                    code: 0x20,
                    jt: 0,
                    jf: 0,
                    k: 0,
                },
                // if A == io_uring_setup: fall through, else skip one
                libc::sock_filter {
                    code: 0x15,
                    jt: 0,
                    jf: 1,
                    k: NR_IO_URING_SETUP,
                },
                libc::sock_filter {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: SECCOMP_RET_ERRNO | libc::EPERM as u32,
                },
                libc::sock_filter {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: SECCOMP_RET_ALLOW,
                },
            ];
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut _,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(libc::PR_SET_SECCOMP, 2, &prog as *const _ as usize, 0, 0) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn ringlet(args: &[&str], blocked: bool) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringlet"));
    cmd.args(args);
    if blocked {
        block_io_uring(&mut cmd);
    }
    cmd.output().expect("run ringlet")
}

#[test]
fn probe_says_uring_works_here() {
    let out = ringlet(&["probe"], false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // What each feature does depends on the kernel (the kernel matrix runs
    // this on 5.10 too).
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let version: (u32, u32) = (
        parts.next().and_then(|p| p.parse().ok()).unwrap(),
        parts.next().and_then(|p| p.parse().ok()).unwrap(),
    );
    let new = version >= (5, 19);
    for needle in [
        "kernel:",
        "io_uring_setup:      allowed",
        "ACCEPT=yes",
        "SPLICE=",
        "SINGLE_ISSUER=",
        if new {
            "buffer rings:        yes"
        } else {
            "buffer rings:        no"
        },
        if new {
            "receive:           RECV into a provided-buffer ring"
        } else {
            "receive:           RECV into each connection's own buffer (buffer rings need 5.19)"
        },
        if new {
            "accept:            multishot ACCEPT"
        } else {
            "accept:            single-shot ACCEPT (multishot needs 5.19)"
        },
        // RESOLVE_CACHED is 5.12's, but 5.10 LTS kernels carry it too (with
        // their io_uring backport): the probe asks the kernel, not the version.
        "file open:         OPENAT2 beneath the root",
        "idle shard:        sleeps in one io_uring_enter on its own ring",
        "RLIMIT_MEMLOCK:",
        "CPUs allowed:",
        "verdict:             the uring backend can start",
    ] {
        assert!(
            text.contains(needle),
            "probe output lacks {needle:?}:\n{text}"
        );
    }
}

#[test]
fn probe_names_the_seccomp_filter_when_io_uring_is_blocked() {
    let out = ringlet(&["probe"], true);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("io_uring_setup:      refused"), "{text}");
    assert!(text.contains("seccomp mode:        2 (filter)"), "{text}");
    assert!(text.contains("seccomp filter"), "{text}");
}

#[test]
fn serve_uring_explains_instead_of_panicking_when_blocked() {
    let out = ringlet(
        &[
            "serve",
            "--backend",
            "uring",
            "--echo",
            "127.0.0.1:0",
            "--file",
            "off",
        ],
        true,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("io_uring is unavailable here"), "{err}");
    assert!(err.contains("seccomp filter"), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("too old"),
        "{err}"
    );
}

#[test]
fn serve_auto_falls_back_to_epoll_and_says_why() {
    let server = Ringlet::serve_with("auto", &["--file", "off"], block_io_uring);
    server.wait_for_log(&["seccomp filter", "falling back to the epoll backend"]);
    server.wait_for_log(&["echo listening", "epoll backend"]);
    let mut s = connect(server.echo());
    s.write_all(b"still served\n").unwrap();
    assert_eq!(read_exact(&mut s, 13), b"still served\n");
}

#[test]
fn serve_auto_uses_uring_where_it_works() {
    let server = Ringlet::serve("auto", &["--file", "off"]);
    server.wait_for_log(&["echo listening", "uring backend"]);
}

/// Run `cmd` as `nobody` with RLIMIT_MEMLOCK at 256 KiB, soft and hard: an
/// unprivileged user on a kernel before 5.16 (whose default is 64 KiB).
fn low_memlock_unprivileged(cmd: &mut Command) {
    // SAFETY: setrlimit, setgid and setuid are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 256 << 10,
                rlim_max: 256 << 10,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// glommio will not build an executor under 512 KiB of locked memory. Where
/// the limit cannot be raised, `probe` and `serve --backend uring` say so
/// and what to raise, and `auto` serves on epoll instead of failing.
#[test]
fn a_memlock_limit_too_low_for_glommio_is_explained_and_auto_falls_back() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to run ringlet as another user");
        return;
    }
    let mut probe = Command::new(env!("CARGO_BIN_EXE_ringlet"));
    probe.arg("probe");
    low_memlock_unprivileged(&mut probe);
    let out = probe.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("RLIMIT_MEMLOCK is 256 KiB"), "{text}");

    let mut serve = Command::new(env!("CARGO_BIN_EXE_ringlet"));
    serve.args([
        "serve",
        "--backend",
        "uring",
        "--echo",
        "127.0.0.1:0",
        "--file",
        "off",
    ]);
    low_memlock_unprivileged(&mut serve);
    let out = serve.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("glommio needs at least 512 KiB"), "{err}");
    assert!(err.contains("ulimit -l"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let server = Ringlet::serve_with("auto", &["--file", "off"], low_memlock_unprivileged);
    server.wait_for_log(&[
        "RLIMIT_MEMLOCK is 256 KiB",
        "falling back to the epoll backend",
    ]);
    let mut s = connect(server.echo());
    s.write_all(b"served\n").unwrap();
    assert_eq!(read_exact(&mut s, 7), b"served\n");
}
