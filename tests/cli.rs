//! The binary as a user meets it: help, errors, signals, exit codes.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{Ringlet, connect, fetch, read_exact, ringlet};

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

/// A copy of descriptor `fd` of process `pid` (our child), by
/// `pidfd_getfd` (Linux 5.6): how a test reaches into a running server.
fn steal_fd(pid: u32, fd: i32) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain syscalls; each descriptor they return is new and ours.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0);
        if pidfd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let pidfd = std::os::fd::OwnedFd::from_raw_fd(pidfd as i32);
        let got = libc::syscall(
            libc::SYS_pidfd_getfd,
            std::os::fd::AsRawFd::as_raw_fd(&pidfd),
            fd,
            0,
        );
        if got < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(std::os::fd::OwnedFd::from_raw_fd(got as i32))
    }
}

/// The Unix stream sockets `pid` holds, by descriptor number, highest
/// first: among them the main thread's end of each shard's control socket.
fn unix_stream_sockets(pid: u32) -> Vec<(i32, std::os::fd::OwnedFd)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let entry = entry.unwrap();
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !target.to_string_lossy().starts_with("socket:") {
            continue;
        }
        let fd: i32 = entry.file_name().to_str().unwrap().parse().unwrap();
        let Ok(copy) = steal_fd(pid, fd) else {
            continue;
        };
        let sock = socket2::SockRef::from(&copy);
        if sock.domain().ok() == Some(socket2::Domain::UNIX)
            && sock.r#type().ok() == Some(socket2::Type::STREAM)
        {
            found.push((fd, copy));
        }
    }
    found.sort_by_key(|(fd, _)| std::cmp::Reverse(*fd));
    found
}

/// A shard that dies (a panic outside any connection: the fault injection
/// byte written to its control socket, from outside) makes the binary exit
/// with status 1 within a second, though the other shard still holds a
/// live connection and a drain could wait 30 s for it.
fn a_dead_shard_makes_the_binary_exit_1_within_a_second(backend: &str) {
    let mut server = Ringlet::serve_with(
        backend,
        &["--cores", "2", "--file", "off", "--shutdown-timeout", "30"],
        |cmd| {
            cmd.env("RINGLET_LOG", "info,ringlet=debug");
        },
    );
    // Live connections, each in the middle of a line (which a drain waits
    // for), until each shard holds one.
    let mut conns = Vec::new();
    for i in 0..64 {
        let mut c = connect(server.echo());
        let line = format!("live {i}\n");
        c.write_all(line.as_bytes()).unwrap();
        assert_eq!(read_exact(&mut c, line.len()), line.as_bytes());
        c.write_all(b"and half a li").unwrap();
        conns.push(c);
        if server.count_log(&["echo: shard 0 accepted"]) > 0
            && server.count_log(&["echo: shard 1 accepted"]) > 0
        {
            break;
        }
    }
    for shard in ["0", "1"] {
        server.wait_for_log(&[&format!("echo: shard {shard} accepted")]);
    }
    let candidates = unix_stream_sockets(server.pid());
    if candidates.is_empty() {
        eprintln!("skipped: pidfd_getfd cannot reach the server's descriptors here");
        return;
    }
    // The control sockets are made last, a pair per shard (the main
    // thread's end first): the second highest is most likely the last
    // shard's. Try it first; a byte to any other socket is read by no one
    // or ignored.
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    if order.len() > 1 {
        order.swap(0, 1);
    }
    for i in order {
        let (fd, sock) = &candidates[i];
        let wrote = Instant::now();
        std::io::Write::write_all(&mut std::fs::File::from(sock.try_clone().unwrap()), b"P")
            .unwrap();
        let deadline = wrote + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Some(status) = server.child.try_wait().unwrap() {
                let took = wrote.elapsed();
                assert_eq!(status.code(), Some(1), "{backend}: exit status");
                assert!(
                    took < Duration::from_secs(1),
                    "{backend}: exited {took:?} after the shard died"
                );
                let died = server.wait_for_log(&["died", "asked to panic (fault injection)"]);
                assert!(died.contains("shard "), "{died}");
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            server.count_log(&["asked to panic"]) == 0,
            "{backend}: a shard died (through fd {fd}) and the process lives on after 3 s:\n{}",
            server.log().join("\n")
        );
    }
    panic!(
        "{backend}: no control socket found among {} Unix sockets",
        candidates.len()
    );
}

on_both_backends!(a_dead_shard_makes_the_binary_exit_1_within_a_second);
