//! Stopping, as clients see it, against the real binary on both backends:
//! a first SIGTERM drains (idle connections close at once with a FIN, a
//! request that arrives is answered and its connection closed, streams run
//! on), a second one resets every stream still running — never a FIN that
//! could pass for a whole file — and the process exits once nothing is live.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{End, Ringlet, connect, pattern, read_exact, read_to_close};

const BIG: usize = 64 << 20;

fn servers(backend: &str, dir: &tempfile::TempDir, extra: &[&str]) -> Ringlet {
    // One shard: the drain's log lines count every connection.
    let mut args = vec![
        "--cores",
        "1",
        "--root",
        dir.path().to_str().unwrap(),
        "--http",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Ringlet::serve(backend, &args)
}

/// Read everything at about 4 MB/s (a 64 MiB file takes ~16 s), on a
/// thread: what arrived and how the server ended it.
fn slow_reader(mut s: TcpStream) -> std::thread::JoinHandle<(Vec<u8>, End)> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return (out, End::Closed),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return (out, End::Reset);
                }
                Err(e) => panic!("read failed after {} bytes: {e}", out.len()),
            }
            std::thread::sleep(Duration::from_millis(4));
        }
    })
}

/// Wait (bounded) until the drain has begun with `n` connections live.
fn wait_for_drain(server: &Ringlet, n: usize) {
    server.wait_for_log(&["waiting up to", &format!("for {n} connection(s)")]);
}

/// The case: 64 MiB read slowly in plain, framed and HTTP mode;
/// one SIGTERM, then a second. Every stream still running ends with a
/// reset (a FIN would read as the whole file in plain mode), and the
/// process exits long before the drain's time would be up.
fn a_second_signal_resets_every_stream(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big"), pattern(BIG, 71)).unwrap();
    let mut plain = servers(backend, &dir, &["--shutdown-timeout", "120"]);
    let framed = servers(
        backend,
        &dir,
        &["--shutdown-timeout", "120", "--file-header"],
    );

    let mut p = connect(plain.file());
    p.write_all(b"/big\0").unwrap();
    let mut h = connect(plain.http());
    h.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut f = connect(framed.file());
    f.write_all(b"/big\0").unwrap();
    let readers = [slow_reader(p), slow_reader(h), slow_reader(f)];

    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(plain.pid() as i32, libc::SIGTERM) };
    unsafe { libc::kill(framed.pid() as i32, libc::SIGTERM) };
    wait_for_drain(&plain, 2);
    wait_for_drain(&framed, 1);
    unsafe { libc::kill(plain.pid() as i32, libc::SIGTERM) };
    unsafe { libc::kill(framed.pid() as i32, libc::SIGTERM) };
    // Far less than the 120 s drain.
    assert_eq!(plain.wait_exit(Duration::from_secs(30)), Some(0));
    let mut framed = framed;
    assert_eq!(framed.wait_exit(Duration::from_secs(30)), Some(0));
    for (name, r) in ["plain", "http", "framed"].iter().zip(readers) {
        let (got, end) = r.join().unwrap();
        assert_eq!(end, End::Reset, "{name}: {} bytes then a FIN", got.len());
        assert!(got.len() < BIG, "{name}: the whole file arrived first");
    }
    plain.wait_for_log(&["second SIGTERM", "reset"]);
    plain.wait_for_log(&["resetting 2 connection(s)", "second stop signal"]);
}

/// The drain does not wait for connections idle between requests: an HTTP
/// keep-alive, an echo session and a framed file connection, each after
/// one exchange, get a FIN at once and the process exits, with a drain
/// time far longer than the test waits.
fn a_drain_closes_idle_connections_at_once(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"file body\n").unwrap();
    let mut server = servers(
        backend,
        &dir,
        &["--shutdown-timeout", "120", "--file-header"],
    );

    let mut http = connect(server.http());
    http.write_all(b"GET /f HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let head = read_head(&mut http);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(read_exact(&mut http, 10), b"file body\n");

    let mut echo = connect(server.echo());
    echo.write_all(b"foo\n").unwrap();
    assert_eq!(read_exact(&mut echo, 4), b"foo\n");

    let mut framed = connect(server.file());
    framed.write_all(b"/f\0").unwrap();
    assert_eq!(read_exact(&mut framed, 16), b"OK 10\nfile body\n");

    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    for (name, s) in [
        ("http", &mut http),
        ("echo", &mut echo),
        ("framed", &mut framed),
    ] {
        assert_eq!(
            read_to_close(s),
            b"",
            "{name}: more bytes after the drain began"
        );
    }
    assert_eq!(server.wait_exit(Duration::from_secs(30)), Some(0));
}

/// A connection that has not been answered yet is not idle: a plain file
/// client that connected before the stop and sends its request during
/// the drain gets the whole file, then a FIN.
fn a_connection_not_yet_answered_is_served_during_the_drain(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let body = pattern(100_000, 72);
    std::fs::write(dir.path().join("f"), &body).unwrap();
    let mut server = servers(backend, &dir, &["--shutdown-timeout", "120"]);
    let mut s = connect(server.file());
    // Accepted (the echo round trip on another connection proves the
    // shard runs), then the stop.
    let mut e = connect(server.echo());
    e.write_all(b"x\n").unwrap();
    assert_eq!(read_exact(&mut e, 2), b"x\n");
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    server.wait_for_log(&["SIGTERM", "draining"]);
    s.write_all(b"/f\0").unwrap();
    assert!(read_to_close(&mut s) == body, "the file differs");
    assert_eq!(server.wait_exit(Duration::from_secs(30)), Some(0));
}

/// A request that arrives during the drain on a keep-alive connection is
/// answered whole with `Connection: close`, then a FIN — not a 200 that
/// promises more and a reset at the deadline.
fn a_request_during_the_drain_is_answered_with_connection_close(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"file body\n").unwrap();
    let mut server = servers(backend, &dir, &["--shutdown-timeout", "120"]);
    let mut s = connect(server.http());
    s.write_all(b"GET /f HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let head = read_head(&mut s);
    assert!(!head.contains("Connection: close"), "{head}");
    assert_eq!(read_exact(&mut s, 10), b"file body\n");
    // Half of the next head is in when the stop comes: not idle.
    s.write_all(b"GET /f HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    server.wait_for_log(&["SIGTERM", "draining"]);
    s.write_all(b"Host: t\r\n\r\n").unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    assert_eq!(read_to_close(&mut s), b"file body\n");
    assert_eq!(server.wait_exit(Duration::from_secs(30)), Some(0));
}

/// An HTTP head, read a byte at a time up to its blank line.
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed inside a head");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Without connections, a stop ends the process promptly; and a client
/// that shows up after the stop is refused, not left waiting.
fn a_stop_with_nothing_live_exits_and_refuses_newcomers(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = servers(backend, &dir, &["--shutdown-timeout", "120"]);
    let echo = server.echo();
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    assert_eq!(server.wait_exit(Duration::from_secs(30)), Some(0));
    let refused = TcpStream::connect(echo);
    assert!(refused.is_err(), "a listener outlived the process");
}

/// Busy keep-alive clients (the next request sent as soon as the answer is
/// in) lose no request to the drain: a request already on its way when the
/// drain begins is answered, with `Connection: close`, then a FIN — never a
/// close that leaves a sent request unanswered. Eight connections, so the
/// drain meets some of them between two requests.
fn busy_keep_alive_clients_lose_no_request_to_the_drain(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"file body\n").unwrap();
    let mut server = servers(backend, &dir, &["--shutdown-timeout", "120"]);
    let http = server.http();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let mut s = connect(http);
            std::thread::spawn(move || {
                let mut answered = 0u32;
                loop {
                    s.write_all(b"GET /f HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match s.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            other => {
                                return Err(format!(
                                    "request {} sent, then {other:?} instead of an answer",
                                    answered + 1
                                ));
                            }
                        }
                    }
                    assert_eq!(read_exact(&mut s, 10), b"file body\n");
                    answered += 1;
                    if String::from_utf8_lossy(&head).contains("\r\nConnection: close\r\n") {
                        assert_eq!(read_to_close(&mut s), b"");
                        return Ok(answered);
                    }
                    assert!(answered < 1_000_000, "the drain never came");
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    for c in clients {
        let answered = c.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
        assert!(answered > 1);
    }
    assert_eq!(server.wait_exit(Duration::from_secs(30)), Some(0));
}

on_both_backends!(
    busy_keep_alive_clients_lose_no_request_to_the_drain,
    a_second_signal_resets_every_stream,
    a_drain_closes_idle_connections_at_once,
    a_connection_not_yet_answered_is_served_during_the_drain,
    a_request_during_the_drain_is_answered_with_connection_close,
    a_stop_with_nothing_live_exits_and_refuses_newcomers,
);
