//! Faults end only the connection concerned, with one clear log line, and
//! never put a byte on the wire that was not in the file.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::process::CommandExt;
use std::time::Duration;

use common::{End, Ringlet, connect, fetch, pattern, read_exact};

/// Close with RST instead of FIN.
fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

fn resets_mid_echo_and_mid_file_end_only_those(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let big = pattern(32 << 20, 21);
    std::fs::write(dir.path().join("big"), &big).unwrap();
    let server = Ringlet::serve(backend, &["--root", dir.path().to_str().unwrap()]);
    let mut bystander = connect(server.echo());
    for _ in 0..5 {
        let mut e = connect(server.echo());
        e.write_all(&vec![b'a'; 300_000]).unwrap();
        reset(e);
        let mut f = connect(server.file());
        f.write_all(b"big\0").unwrap();
        let mut head = vec![0u8; 100_000];
        f.read_exact(&mut head).unwrap();
        assert!(head == big[..100_000]);
        reset(f);
    }
    server.wait_for_log(&["file", "connection ended", "sending \"big\""]);
    bystander.write_all(b"unharmed\n").unwrap();
    assert_eq!(read_exact(&mut bystander, 9), b"unharmed\n");
    assert!(fetch(server.file(), b"big") == big);
}

fn half_close_still_gets_every_echo_back(backend: &str) {
    let server = Ringlet::serve(backend, &["--file", "off"]);
    let mut s = connect(server.echo());
    let mut data = Vec::new();
    for i in 0..20_000 {
        data.extend_from_slice(format!("line {i}\n").as_bytes());
    }
    let mut w = s.try_clone().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&sent).unwrap();
        w.shutdown(Shutdown::Write).unwrap(); // done sending; still reading
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert!(got == data, "got {} of {} bytes", got.len(), data.len());
}

/// Stream `big` slowly while `meddle` changes the file; returns what
/// arrived and how the server ended the stream.
fn stream_while(server: &Ringlet, meddle: impl FnOnce()) -> (Vec<u8>, End) {
    stream_request_while(server.file(), b"big\0", meddle)
}

/// Send `request` to `addr`, read the first MiB of the answer, let
/// `meddle` change the file, then read the rest slowly; returns what
/// arrived (head included) and how the server ended the connection.
fn stream_request_while(
    addr: std::net::SocketAddr,
    request: &[u8],
    meddle: impl FnOnce(),
) -> (Vec<u8>, End) {
    let mut s = connect(addr);
    s.write_all(request).unwrap();
    let mut got = vec![0u8; 1 << 20];
    s.read_exact(&mut got).unwrap();
    meddle();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, End::Closed),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (got, End::Reset);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => panic!(
                "neither a reset nor a FIN after {} bytes, the last {:?}: the connection \
                 went on (to the next answer?)",
                got.len(),
                String::from_utf8_lossy(&got[got.len().saturating_sub(40)..])
            ),
            Err(e) => panic!("read failed after {} bytes: {e}", got.len()),
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A file that shrinks while it streams cannot be sent whole: the stream
/// ends with a reset, never a FIN, so the client cannot mistake the
/// truncated copy for the file; and nothing that was not in it is sent.
fn a_file_truncated_mid_stream_ends_in_a_reset_with_only_real_bytes(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    let big = pattern(64 << 20, 22);
    std::fs::write(&path, &big).unwrap();
    let server = Ringlet::serve(
        backend,
        &["--echo", "off", "--root", dir.path().to_str().unwrap()],
    );
    let (got, end) = stream_while(&server, || truncate(&path, 2 << 20));
    assert_eq!(end, End::Reset, "a truncated stream ended like a whole one");
    assert!(
        got.len() < big.len(),
        "the whole file arrived after truncation"
    );
    assert!(
        got == big[..got.len()],
        "bytes that were not in the file were sent"
    );
    server.wait_for_log(&["shrank"]);
    assert_eq!(fetch(server.file(), b"big").len(), 2 << 20);
}

fn truncate(path: &std::path::Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Framed mode: a file that shrinks under its `OK <size>` line ends the
/// connection with a reset, not a FIN and not the answer to the request
/// queued behind it (which would read as the rest of the promised bytes).
fn a_framed_answer_truncated_mid_stream_ends_in_a_reset(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    let big = pattern(64 << 20, 24);
    std::fs::write(&path, &big).unwrap();
    std::fs::write(dir.path().join("next"), "the next answer\n").unwrap();
    let server = Ringlet::serve(
        backend,
        &[
            "--echo",
            "off",
            "--file-header",
            "--root",
            dir.path().to_str().unwrap(),
        ],
    );
    // Two requests at once: the second must never be answered.
    let (got, end) =
        stream_request_while(server.file(), b"big\0next\0", || truncate(&path, 2 << 20));
    let head = format!("OK {}\n", big.len()).into_bytes();
    assert_eq!(end, End::Reset, "a truncated answer ended like a whole one");
    assert!(got.starts_with(&head), "{:?}", &got[..20.min(got.len())]);
    let body = &got[head.len()..];
    assert!(
        body.len() < big.len(),
        "the whole file arrived after truncation"
    );
    assert!(
        body == &big[..body.len()],
        "bytes that were not in the file were sent (the next answer?)"
    );
    server.wait_for_log(&["shrank"]);
}

/// HTTP: a body that shrinks under its `Content-Length` ends the
/// connection with a reset, not a FIN and not the next pipelined response.
fn an_http_body_truncated_mid_stream_ends_in_a_reset(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    let big = pattern(64 << 20, 25);
    std::fs::write(&path, &big).unwrap();
    std::fs::write(dir.path().join("next"), "the next answer\n").unwrap();
    let server = Ringlet::serve(
        backend,
        &[
            "--echo",
            "off",
            "--file",
            "off",
            "--http",
            "127.0.0.1:0",
            "--root",
            dir.path().to_str().unwrap(),
        ],
    );
    let request = b"GET /big HTTP/1.1\r\nHost: t\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\n\r\n";
    let (got, end) = stream_request_while(server.http(), request, || truncate(&path, 2 << 20));
    assert_eq!(end, End::Reset, "a truncated body ended like a whole one");
    let split = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of head")
        + 4;
    let head = String::from_utf8_lossy(&got[..split]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 "), "{head}");
    assert!(
        head.contains(&format!("content-length: {}\r\n", big.len())),
        "{head}"
    );
    let body = &got[split..];
    assert!(
        body.len() < big.len(),
        "the whole body arrived after truncation"
    );
    assert!(
        body == &big[..body.len()],
        "bytes that were not in the file were sent (the next response?)"
    );
    server.wait_for_log(&["shrank"]);
}

fn a_file_replaced_mid_stream_completes_from_the_old_one(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    let old = pattern(32 << 20, 23);
    std::fs::write(&path, &old).unwrap();
    let server = Ringlet::serve(
        backend,
        &["--echo", "off", "--root", dir.path().to_str().unwrap()],
    );
    let (got, end) = stream_while(&server, || {
        std::fs::write(dir.path().join("new"), b"replacement\n").unwrap();
        std::fs::rename(dir.path().join("new"), &path).unwrap();
        // Even unreadable now: the open descriptor keeps its access.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o000))
            .unwrap();
    });
    assert!(got == old, "got {} bytes", got.len());
    assert_eq!(end, End::Closed);
}

fn a_file_without_read_permission_is_refused(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    // The server runs as nobody (the tests run as root, which reads anything).
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(dir.path().join("secret"), "no\n").unwrap();
    std::fs::set_permissions(
        dir.path().join("secret"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(dir.path().join("public"), "yes\n").unwrap();
    std::fs::set_permissions(
        dir.path().join("public"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let server = Ringlet::serve_with(
        backend,
        &["--echo", "off", "--root", dir.path().to_str().unwrap()],
        |cmd| {
            cmd.uid(65534).gid(65534);
        },
    );
    assert_eq!(fetch(server.file(), b"secret"), b"");
    server.wait_for_log(&["\"secret\"", "refused: permission denied"]);
    assert_eq!(fetch(server.file(), b"public"), b"yes\n");
}

on_both_backends!(
    resets_mid_echo_and_mid_file_end_only_those,
    half_close_still_gets_every_echo_back,
    a_file_truncated_mid_stream_ends_in_a_reset_with_only_real_bytes,
    a_framed_answer_truncated_mid_stream_ends_in_a_reset,
    an_http_body_truncated_mid_stream_ends_in_a_reset,
    a_file_replaced_mid_stream_completes_from_the_old_one,
    a_file_without_read_permission_is_refused,
);
