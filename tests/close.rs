//! How the server ends a connection, as the client sees it: a whole answer
//! ends with a FIN even when the client sends more than was asked (a late
//! stray byte, a pipelined request); an answer that cannot be completed
//! ends with a reset, never a FIN, so end of file always means "all of it".

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::{End, Ringlet, connect, pattern, read_exact, read_to_close, read_to_end_or_reset};

fn file_server(backend: &str, dir: &tempfile::TempDir, extra: &[&str]) -> Ringlet {
    let mut args = vec!["--echo", "off", "--root", dir.path().to_str().unwrap()];
    args.extend_from_slice(extra);
    Ringlet::serve(backend, &args)
}

/// The reproduction: a 32 MiB file, and one stray byte 50 ms after
/// the request. Closing with that byte unread made the kernel reset the
/// connection and drop the end of the file still queued for the client.
fn a_late_byte_does_not_cut_the_file(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let big = pattern(32 << 20, 31);
    std::fs::write(dir.path().join("big"), &big).unwrap();
    let server = file_server(backend, &dir, &[]);
    for _ in 0..3 {
        let mut s = connect(server.file());
        s.write_all(b"/big\0").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(b"\n").unwrap();
        let got = read_to_close(&mut s);
        assert_eq!(got.len(), big.len());
        assert!(got == big, "the file's bytes differ");
    }
}

/// A second request pipelined in plain mode, sent while the first answer
/// streams, is read and discarded (one request per connection); the first
/// answer still arrives whole.
fn a_pipelined_plain_request_does_not_cut_the_first(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let big = pattern(32 << 20, 32);
    std::fs::write(dir.path().join("big"), &big).unwrap();
    std::fs::write(dir.path().join("small"), b"small\n").unwrap();
    let server = file_server(backend, &dir, &[]);
    for _ in 0..3 {
        let mut s = connect(server.file());
        s.write_all(b"/big\0").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(b"/small\0/big\0").unwrap();
        let got = read_to_close(&mut s);
        assert!(got == big, "got {} of {} bytes", got.len(), big.len());
    }
}

/// A refusal with bytes still unread ends with a FIN too: nothing in
/// plain mode, the `ERR` line in framed mode.
fn a_refusal_with_unread_input_ends_with_a_fin(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    for (framed, expect) in [(false, &b""[..]), (true, &b"ERR request too long\n"[..])] {
        let extra: &[&str] = if framed { &["--file-header"] } else { &[] };
        let server = file_server(backend, &dir, extra);
        // 4097 bytes with no NUL: refused after 4096; the last byte unread.
        let mut s = connect(server.file());
        s.write_all(&[b'a'; 4097]).unwrap();
        assert_eq!(read_to_close(&mut s), expect, "framed: {framed}");
        // A missing file, then a late byte.
        let mut s = connect(server.file());
        s.write_all(b"/missing\0").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let _ = s.write_all(b"late");
        let expect: &[u8] = if framed { b"ERR no such file\n" } else { b"" };
        if framed {
            // Keep-alive: the connection waits for the next request.
            assert_eq!(read_exact(&mut s, expect.len()), expect);
            s.shutdown(Shutdown::Write).unwrap();
            assert_eq!(read_to_close(&mut s), b"");
        } else {
            assert_eq!(read_to_close(&mut s), expect);
            // The FIN came before the late byte: a reset for that byte
            // would not show in a read, only as the socket's error.
            std::thread::sleep(Duration::from_millis(500));
            assert!(
                s.take_error().unwrap().is_none(),
                "the late byte was answered with a reset"
            );
        }
    }
}

/// The request limit, against the running server: 4096 bytes with the NUL
/// is served, 4097 is refused.
fn the_request_limit_is_4096_bytes_with_its_nul(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"at the limit\n").unwrap();
    // Leading slashes are dropped: "/" x 4094 + "f" names ROOT/f.
    let fits = [vec![b'/'; 4094], b"f\0".to_vec()].concat();
    let over = [vec![b'/'; 4095], b"f\0".to_vec()].concat();
    assert_eq!((fits.len(), over.len()), (4096, 4097));
    let plain = file_server(backend, &dir, &[]);
    let framed = file_server(backend, &dir, &["--file-header"]);
    let ask = |server: &Ringlet, req: &[u8]| {
        let mut s = connect(server.file());
        s.write_all(req).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        read_to_close(&mut s)
    };
    assert_eq!(ask(&plain, &fits), b"at the limit\n");
    assert_eq!(ask(&framed, &fits), b"OK 13\nat the limit\n");
    assert_eq!(ask(&plain, &over), b"");
    assert_eq!(ask(&framed, &over), b"ERR request too long\n");
    // 4095 bytes and no NUL yet: the server waits for more, then the
    // client closes: a truncated request, nothing sent.
    assert_eq!(ask(&framed, &[b'/'; 4095]), b"");
    plain.wait_for_log(&["refused: no NUL within 4096 bytes"]);
}

fn a_zero_byte_file_in_both_modes(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty"), b"").unwrap();
    let plain = file_server(backend, &dir, &[]);
    let mut s = connect(plain.file());
    s.write_all(b"/empty\0").unwrap();
    assert_eq!(read_to_close(&mut s), b"");
    let framed = file_server(backend, &dir, &["--file-header"]);
    let mut s = connect(framed.file());
    s.write_all(b"/empty\0/empty\0").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut s), b"OK 0\nOK 0\n");
}

/// A file that grows while it streams: exactly the size it had when opened
/// is sent (the promise of `OK <size>`), then the connection goes on.
fn a_file_that_grows_mid_stream_sends_its_size_at_open(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("growing");
    let start = pattern(16 << 20, 33);
    std::fs::write(&path, &start).unwrap();
    for framed in [false, true] {
        std::fs::write(&path, &start).unwrap();
        let extra: &[&str] = if framed { &["--file-header"] } else { &[] };
        let server = file_server(backend, &dir, extra);
        let mut s = connect(server.file());
        s.write_all(b"/growing\0").unwrap();
        let header = format!("OK {}\n", start.len());
        if framed {
            assert_eq!(read_exact(&mut s, header.len()), header.as_bytes());
        }
        let head = read_exact(&mut s, 1 << 20);
        assert!(head == start[..1 << 20]);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&pattern(4 << 20, 34)).unwrap();
        let rest = read_exact(&mut s, start.len() - (1 << 20));
        assert!(rest == start[1 << 20..], "framed: {framed}");
        if framed {
            // Nothing more for this request; the next one sees the new size.
            s.write_all(b"/growing\0").unwrap();
            let next = format!("OK {}\n", start.len() + (4 << 20));
            assert_eq!(read_exact(&mut s, next.len()), next.as_bytes());
        }
        s.shutdown(Shutdown::Write).unwrap();
        let tail = read_to_close(&mut s);
        let expect_tail = if framed { start.len() + (4 << 20) } else { 0 };
        assert_eq!(tail.len(), expect_tail, "framed: {framed}");
    }
}

/// A client that stops reading is cut at the write timeout with a reset:
/// what it got is not mistaken for the whole file. On the ring, both ways
/// a cached file leaves: `sendfile` waiting for room, and splices (on
/// Linux 5.10, without `cachestat`, every chunk splices). The client drains
/// once the cut is logged, however late the server's close comes after
/// that (a loaded machine): no FIN may be queued before the reset, so
/// whatever it reads is a prefix of the answer, then the reset.
fn a_write_timeout_cut_is_a_reset(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let big = pattern(64 << 20, 35);
    std::fs::write(dir.path().join("big"), &big).unwrap();
    for (framed, cached) in [(false, "on"), (true, "on"), (false, "off"), (true, "off")] {
        let mut extra = vec!["--write-timeout", "1", "--cached-sendfile", cached];
        if framed {
            extra.push("--file-header");
        }
        let server = file_server(backend, &dir, &extra);
        let mut s = connect(server.file());
        s.write_all(b"/big\0").unwrap();
        server.wait_for_log(&["connection ended", "write timeout"]);
        // A read that hangs fails the test instead of the suite.
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let (got, end) = read_to_end_or_reset(&mut s);
        let how = format!("framed: {framed}, cached-sendfile {cached}");
        assert_eq!(end, End::Reset, "{how}, after {} bytes", got.len());
        let head = if framed {
            format!("OK {}\n", big.len()).into_bytes()
        } else {
            Vec::new()
        };
        assert!(got.len() > head.len(), "{how}: {} bytes", got.len());
        assert!(got.len() < head.len() + big.len(), "{how}: the whole file");
        assert!(got.starts_with(&head), "{how}: no status line");
        assert!(
            got[head.len()..] == big[..got.len() - head.len()],
            "{how}: not a prefix of the file"
        );
    }
}

/// The echo server's close: everything echoed, then a FIN, however the
/// client ends (half-close with a partial last line).
fn echo_ends_with_everything_then_a_fin(backend: &str) {
    let server = Ringlet::serve(backend, &["--file", "off"]);
    let data = pattern(1 << 20, 36)
        .into_iter()
        .map(|b| if b == b'\n' { b'.' } else { b })
        .collect::<Vec<u8>>();
    let mut lines = Vec::new();
    for chunk in data.chunks(1000) {
        lines.extend_from_slice(chunk);
        lines.push(b'\n');
    }
    lines.extend_from_slice(b"no newline at the end");
    let mut s = connect(server.echo());
    let mut w = s.try_clone().unwrap();
    let sent = lines.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&sent).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let got = read_to_close(&mut s);
    writer.join().unwrap();
    assert!(got == lines, "got {} of {} bytes", got.len(), lines.len());
}

/// The lingering close is bounded: a client that keeps sending after its
/// answer is closed on after `--linger`, and others are served meanwhile.
fn a_client_that_never_stops_sending_is_closed_after_the_linger_time(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"answer\n").unwrap();
    let server = file_server(backend, &dir, &["--linger", "3"]);
    let mut s = connect(server.file());
    s.write_all(b"/f\0").unwrap();
    assert_eq!(read_exact(&mut s, 7), b"answer\n");
    // The answer is followed by end of file (the server half-closed)...
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(s.read(&mut [0u8; 8]).unwrap(), 0);
    // ... while the server still reads; once it gives up, writes fail.
    let started = Instant::now();
    let mut writer = s.try_clone().unwrap();
    let gave_up = loop {
        if writer.write_all(b"more").is_err() {
            break true;
        }
        if started.elapsed() > Duration::from_secs(20) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(gave_up, "the server never stopped lingering");
    // Not before the linger's time (a lower bound: a loaded machine only
    // makes it later).
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "closed after {:?} of a 3 s linger",
        started.elapsed()
    );
    let mut other = connect(server.file());
    other.write_all(b"/f\0").unwrap();
    assert_eq!(read_exact(&mut other, 7), b"answer\n");
}

/// A client with a small receive buffer that sends a stray byte after its
/// linger time would have run out, before it has read its answer: the
/// linger's clock starts only once the whole answer is acknowledged, so
/// the answer arrives whole, then a FIN (plain files and HTTP).
fn a_slow_reader_with_a_late_byte_gets_its_whole_answer(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let body = pattern(300_000, 37);
    std::fs::write(dir.path().join("f"), &body).unwrap();
    let server = file_server(backend, &dir, &["--linger", "1", "--http", "127.0.0.1:0"]);
    let http = server.http();
    for (name, addr, request) in [
        ("plain", server.file(), &b"/f\0"[..]),
        (
            "http",
            http,
            &b"GET /f HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"[..],
        ),
    ] {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&addr.into()).unwrap();
        let mut s: std::net::TcpStream = socket.into();
        s.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
        s.write_all(request).unwrap();
        // Past the 1 s linger, measured from when the server handed over
        // its answer.
        std::thread::sleep(Duration::from_millis(2600));
        s.write_all(b"\n").unwrap();
        let got = read_to_close(&mut s);
        assert!(got.ends_with(&body), "{name}: got {} bytes", got.len());
        if name == "plain" {
            assert_eq!(got.len(), body.len());
        }
    }
}

/// A file that shrinks while it is sent is cut with a reset, and its log
/// line gives true figures: the bytes sent and the size promised, not the
/// bytes sent as the file's new size.
fn a_shrinking_file_is_logged_with_what_was_sent_and_promised(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shrinks");
    std::fs::write(&path, pattern(32 << 20, 38)).unwrap();
    let server = file_server(backend, &dir, &[]);
    let mut s = connect(server.file());
    s.write_all(b"/shrinks\0").unwrap();
    let first = read_exact(&mut s, 1 << 20);
    assert_eq!(first.len(), 1 << 20);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1_000_000)
        .unwrap();
    let (_, end) = read_to_end_or_reset(&mut s);
    assert_eq!(end, End::Reset);
    let line = server.wait_for_log(&["shrinks", "shrank while being sent"]);
    assert!(line.contains("of the 33554432 bytes promised"), "{line}");
}

/// Downloads their clients reset each leave a log line (as echo and HTTP
/// connections do), whether the reset came mid-stream or after the whole
/// answer was handed to the kernel.
fn a_download_reset_by_its_client_is_logged(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big"), pattern(16 << 20, 39)).unwrap();
    std::fs::write(dir.path().join("small"), pattern(100_000, 40)).unwrap();
    let server = file_server(backend, &dir, &[]);
    for (path, read) in [(&b"/big\0"[..], 1 << 20), (b"/small\0", 100_000)] {
        let mut ports = Vec::new();
        for _ in 0..10 {
            let mut s = connect(server.file());
            s.write_all(path).unwrap();
            read_exact(&mut s, read);
            ports.push(s.local_addr().unwrap().port());
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(s);
        }
        for port in ports {
            server.wait_for_log(&[&format!("127.0.0.1:{port}"), "connection ended"]);
        }
    }
}

on_both_backends!(
    a_slow_reader_with_a_late_byte_gets_its_whole_answer,
    a_shrinking_file_is_logged_with_what_was_sent_and_promised,
    a_download_reset_by_its_client_is_logged,
    a_late_byte_does_not_cut_the_file,
    a_pipelined_plain_request_does_not_cut_the_first,
    a_refusal_with_unread_input_ends_with_a_fin,
    the_request_limit_is_4096_bytes_with_its_nul,
    a_zero_byte_file_in_both_modes,
    a_file_that_grows_mid_stream_sends_its_size_at_open,
    a_write_timeout_cut_is_a_reset,
    echo_ends_with_everything_then_a_fin,
    a_client_that_never_stops_sending_is_closed_after_the_linger_time,
);
