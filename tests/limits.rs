//! Time limits: idle connections close, slowloris requests are cut while
//! others are served, clients that stop reading are cut instead of pinning
//! memory. Each ends only its own connection, with one log line.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{Ringlet, connect, fetch, pattern, read_exact, read_to_close};

fn idle_connections_are_closed(backend: &str) {
    let server = Ringlet::serve(backend, &["--file", "off", "--idle-timeout", "1"]);
    let mut idle = connect(server.echo());
    let mut chatty = connect(server.echo());
    let started = Instant::now();
    // The chatty one talks every 300 ms for 2.5 s and stays open.
    while started.elapsed() < Duration::from_millis(2500) {
        chatty.write_all(b"still here\n").unwrap();
        assert_eq!(read_exact(&mut chatty, 11), b"still here\n");
        std::thread::sleep(Duration::from_millis(300));
    }
    // The idle one was closed after about a second, with nothing sent.
    assert_eq!(read_to_close(&mut idle), b"");
    server.wait_for_log(&["connection ended", "idle: nothing received for 1s"]);
}

fn a_slowloris_request_is_cut_while_others_are_served(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), "served\n").unwrap();
    let server = Ringlet::serve(
        backend,
        &[
            "--echo",
            "off",
            "--cores",
            "1",
            "--request-timeout",
            "1",
            "--root",
            dir.path().to_str().unwrap(),
        ],
    );
    // A path dripped a byte at a time that never ends (no NUL comes).
    let mut slow = connect(server.file());
    slow.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let cut = loop {
        let _ = slow.write_all(b"a");
        // Meanwhile, on the same core, others are served normally.
        assert_eq!(fetch(server.file(), b"/f"), b"served\n");
        match slow.read(&mut [0u8; 64]) {
            Ok(0) => break true, // the server half-closed: it gave up on us
            Ok(n) => panic!("the slow client got {n} bytes"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("the slow client's connection failed: {e}"),
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(150));
    };
    assert!(cut, "a request dripped for 20 s was never cut");
    server.wait_for_log(&["refused: request not complete within 1s"]);
}

fn a_client_that_stops_reading_is_cut(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big"), pattern(64 << 20, 2)).unwrap();
    let server = Ringlet::serve(
        backend,
        &[
            "--write-timeout",
            "1",
            "--root",
            dir.path().to_str().unwrap(),
        ],
    );
    let before = common::status_kib(server.pid(), "VmRSS");
    // A file client and an echo client that never read.
    let mut file = connect(server.file());
    file.write_all(b"big\0").unwrap();
    let mut echo = connect(server.echo());
    echo.set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let block = vec![b'x'; 64 * 1024];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) && echo.write_all(&block).is_ok() {}
    server.wait_for_log(&["file", "connection ended", "write timeout"]);
    server.wait_for_log(&["echo", "connection ended", "write timeout"]);
    let peak = common::status_kib(server.pid(), "VmHWM");
    assert!(
        peak < before + 16 * 1024,
        "peak RSS {peak} KiB vs {before} KiB"
    );
    // Everyone else is still served.
    let mut s = connect(server.echo());
    s.write_all(b"fine\n").unwrap();
    assert_eq!(read_exact(&mut s, 5), b"fine\n");
}

on_both_backends!(
    idle_connections_are_closed,
    a_slowloris_request_is_cut_while_others_are_served,
    a_client_that_stops_reading_is_cut,
);
