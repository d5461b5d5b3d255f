//! The binary as a user meets it: help, errors, signals, exit codes.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Ringlet, connect, fetch, read_exact};

/// Run `ringlet ARGS` to its end (killed, failing the test, if it runs
/// for 20 s: these invocations are all expected to exit by themselves).
fn ringlet(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringlet"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ringlet");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ringlet {args:?} did not exit within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn serve_help_answers_the_usual_questions() {
    let out = ringlet(&["serve", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--echo <ADDR|off>",
        "127.0.0.1:6000",
        "--file <ADDR|off>",
        "127.0.0.1:6001",
        "--root <DIR>",
        "--echo-mode",
        "--file-header",
        "--cores <N>",
        "--max-conns <N>",
        "backlog",
        "OK <size>",
    ] {
        assert!(help.contains(needle), "help lacks {needle:?}:\n{help}");
    }
}

#[test]
fn sigterm_and_sigint_exit_zero() {
    for (backend, sig) in [
        ("uring", libc::SIGTERM),
        ("epoll", libc::SIGINT),
        ("uring", libc::SIGINT),
    ] {
        let mut server = Ringlet::serve(backend, &[]);
        assert_eq!(server.signal_and_wait(sig), Some(0));
        server.wait_for_log(&["draining: no new connections"]);
        server.wait_for_log(&["stopped"]);
    }
}

/// `--log-format json`: every line one JSON object a log shipper can read;
/// and a plain start and a client's refused request warn no one.
#[test]
fn json_logs_and_no_warning_on_a_plain_start() {
    let dir = tempfile::tempdir().unwrap();
    for backend in ["uring", "epoll"] {
        let mut server = Ringlet::serve(
            backend,
            &[
                "--log-format",
                "json",
                "--root",
                dir.path().to_str().unwrap(),
            ],
        );
        assert_eq!(fetch(server.file(), b"missing"), b"");
        server.wait_for_log(&["refused: no such file"]);
        assert_eq!(server.signal_and_wait(libc::SIGTERM), Some(0));
        server.wait_for_log(&["stopped"]);
        for line in server.log() {
            let v: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{backend}: not JSON ({e}): {line}"));
            assert!(v["timestamp"].is_string(), "{line}");
            assert!(v["fields"]["message"].is_string(), "{line}");
            assert_eq!(
                v["level"], "INFO",
                "{backend}: only information expected: {line}"
            );
        }
    }
}

#[test]
fn one_service_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), "x").unwrap();
    let server = Ringlet::serve(
        "auto",
        &["--echo", "off", "--root", dir.path().to_str().unwrap()],
    );
    assert!(server.echo.is_none());
    assert_eq!(fetch(server.file(), b"f"), b"x");
    assert!(!server.log().iter().any(|l| l.contains("echo listening")));
}

#[test]
fn both_services_off_is_an_error() {
    let out = ringlet(&["serve", "--echo", "off", "--file", "off"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no service to run"), "{err}");
}

#[test]
fn a_port_in_use_is_reported_once_and_exits_nonzero() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = ringlet(&["serve", "--echo", &addr, "--file", "off"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot listen for echo on {addr}: address already in use"
        )),
        "{err}"
    );
    assert_eq!(
        err.matches("in use").count(),
        1,
        "the OS error twice:\n{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// A port nobody uses right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn two_services_on_one_address_are_refused() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let out = ringlet(&["serve", "--echo", &addr, "--file", &addr]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("echo and file both name {addr}")),
        "{err}"
    );
    // Overlapping addresses (the wildcard and loopback on one port) too.
    let any = format!("0.0.0.0:{port}");
    let out = ringlet(&["serve", "--echo", &any, "--file", &addr]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot listen for file on {addr}: address already in use"
        )),
        "{err}"
    );
}

#[test]
fn a_second_ringlet_on_a_served_port_is_refused_and_the_first_keeps_every_client() {
    for backend in ["uring", "epoll"] {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let first = Ringlet::serve(backend, &["--echo", &addr, "--file", "off"]);
        let out = ringlet(&[
            "serve",
            "--backend",
            backend,
            "--echo",
            &addr,
            "--file",
            "off",
        ]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{backend}: the second one started"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("address already in use"), "{err}");
        // Every connection still reaches the first.
        for i in 0..20 {
            let mut s = connect(first.echo());
            let line = format!("client {i}\n");
            s.write_all(line.as_bytes()).unwrap();
            assert_eq!(read_exact(&mut s, line.len()), line.as_bytes());
        }
    }
}

#[test]
fn ipv6_listen_addresses_work() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), "over v6\n").unwrap();
    for backend in ["uring", "epoll"] {
        let server = Ringlet::serve(
            backend,
            &[
                "--echo",
                "[::1]:0",
                "--file",
                "[::1]:0",
                "--root",
                dir.path().to_str().unwrap(),
            ],
        );
        assert!(server.echo().is_ipv6() && server.file().is_ipv6());
        let mut s = connect(server.echo());
        s.write_all(b"v6\n").unwrap();
        assert_eq!(read_exact(&mut s, 3), b"v6\n");
        assert_eq!(fetch(server.file(), b"f"), b"over v6\n");
    }
}

#[test]
fn every_cli_error_says_what_is_wrong_with_its_exit_status() {
    // (arguments, exit status, what stderr must say)
    let cases: &[(&[&str], i32, &str)] = &[
        (&["serve", "--echo", "localhost"], 2, "expected IP:PORT"),
        (&["serve", "--max-conns", "0"], 2, "--max-conns"),
        (&["serve", "--echo-buffer", "0"], 2, "--echo-buffer"),
        (
            &["serve", "--idle-timeout", "0"],
            2,
            "at least 0.001 seconds",
        ),
        (
            &["serve", "--linger", "soon"],
            2,
            "expected seconds between 0 and 86400",
        ),
        (
            &["serve", "--backend", "kqueue"],
            2,
            "possible values: auto, uring, epoll",
        ),
        (&["serve", "--no-such-flag"], 2, "unexpected argument"),
        (
            &["serve", "--echo", "off", "--file", "off"],
            1,
            "no service to run",
        ),
        (
            &[
                "serve",
                "--cores",
                "100000",
                "--echo",
                "127.0.0.1:0",
                "--file",
                "off",
            ],
            1,
            "asked for 100000 cores",
        ),
        (
            &[
                "serve",
                "--echo",
                "off",
                "--file",
                "127.0.0.1:0",
                "--root",
                "/nonexistent/dir",
            ],
            1,
            "cannot open root directory /nonexistent/dir",
        ),
        (
            &["bench", "echo", "--addr", "127.0.0.1:1", "--duration", "0"],
            1,
            "--duration",
        ),
    ];
    for (args, status, says) in cases {
        let out = ringlet(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*status), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?} should say {says:?}:\n{err}");
    }
}

#[test]
fn cores_respects_the_affinity_mask() {
    // Under taskset to one CPU the default is one shard on that CPU.
    let cpu = *ringlet::allowed_cpus().unwrap().last().unwrap();
    let server = Ringlet::serve_with("uring", &["--file", "off"], |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: sched_setaffinity is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    server.wait_for_log(&[
        "echo listening",
        &format!("(1 shard, uring backend, CPUs {cpu},"),
    ]);
}
