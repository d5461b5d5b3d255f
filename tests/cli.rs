//! The binary as a user meets it: help, errors, signals, exit codes.

mod common;

use std::net::TcpListener;
use std::process::Command;

use common::{Ringlet, fetch};

fn ringlet(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ringlet"))
        .args(args)
        .output()
        .expect("run ringlet")
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
fn a_port_in_use_is_reported_and_exits_nonzero() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = ringlet(&["serve", "--echo", &addr, "--file", "off"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen for echo on {addr}")),
        "{err}"
    );
    assert!(err.contains("in use"), "{err}");
}

#[test]
fn bad_arguments_say_what_is_wrong() {
    let out = ringlet(&["serve", "--echo", "localhost"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected IP:PORT"));

    let out = ringlet(&[
        "serve",
        "--cores",
        "100000",
        "--echo",
        "127.0.0.1:0",
        "--file",
        "off",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("asked for 100000 cores"));

    let out = ringlet(&[
        "serve",
        "--echo",
        "off",
        "--file",
        "127.0.0.1:0",
        "--root",
        "/nonexistent/dir",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot open root directory /nonexistent/dir")
    );
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
