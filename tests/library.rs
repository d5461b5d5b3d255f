//! The library's own helpers through a real server on loopback, on both
//! backends: [`Reader`]'s exact reads, its request timeout, and the idle
//! timeout, as a protocol outside this crate would use them.

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use common::{End, connect, read_exact};
use ringlet::{Backend, Connection, Monitor, Protocol, Reader, Server, Timeouts};

/// Everything the server sends until it ends the connection, and how it
/// ended it. An interrupted read is read again: a thread that started an
/// io_uring server in this process can see `EINTR` on a blocking socket
/// read that has a timeout; any other error fails the test.
fn read_to_end_or_reset(s: &mut TcpStream) -> (Vec<u8>, End) {
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, End::Closed),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return (out, End::Reset),
            Err(e) => panic!("read failed after {} bytes: {e}", out.len()),
        }
    }
}

fn backend_of(name: &str) -> Backend {
    match name {
        "uring" => Backend::Uring,
        _ => Backend::Epoll,
    }
}

fn start(backend: &str, timeouts: Timeouts, protocol: impl Protocol) -> (Server, SocketAddr) {
    let server = Server::builder()
        .backend(backend_of(backend))
        .cores(Some(1))
        .timeouts(timeouts)
        .service("test", "127.0.0.1:0".parse().unwrap(), protocol)
        .start()
        .expect("start");
    let addr = server.local_addr("test").unwrap();
    (server, addr)
}

/// Messages framed by a 2-byte big-endian length: each body goes back
/// reversed. A body is at most the reader's 64 bytes.
struct Frames;

impl Protocol for Frames {
    async fn serve<C: Connection>(&self, conn: &mut C) -> io::Result<()> {
        let mut reader = Reader::with_capacity(64);
        loop {
            let head = reader.read_exact(conn, 2).await;
            let len = match head.map(|h| u16::from_be_bytes([h[0], h[1]]) as usize) {
                Ok(len) => len,
                Err(e)
                    if e.kind() == io::ErrorKind::UnexpectedEof && reader.buffered().is_empty() =>
                {
                    return Ok(()); // closed between messages
                }
                Err(e) => return Err(e),
            };
            let mut body = reader.read_exact(conn, len).await?.to_vec();
            body.reverse();
            conn.write_bytes(&body).await?;
        }
    }
}

/// Headers and bodies cut anywhere, two messages in one write: each body
/// is read exactly and answered; a body cut by the close ends in a reset.
fn read_exact_takes_exactly_the_bytes_asked(backend: &str) {
    let (_server, addr) = start(backend, Timeouts::default(), Frames);
    let mut s = connect(addr);
    let mut stream = Vec::new();
    for body in [
        &b"hello"[..],
        b"",
        b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ] {
        stream.extend_from_slice(&(body.len() as u16).to_be_bytes());
        stream.extend_from_slice(body);
    }
    // 3 bytes at a time: the header and bodies straddle the writes.
    for piece in stream.chunks(3) {
        s.write_all(piece).unwrap();
    }
    let mut want = b"olleh".to_vec();
    want.extend(
        b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            .iter()
            .rev(),
    );
    assert_eq!(read_exact(&mut s, want.len()), want);
    // Two whole messages in one write, then a third that promises 10
    // bytes and sends 4 before the close.
    s.write_all(b"\0\x02ab\0\x01c\0\x0awxyz").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end_or_reset(&mut s), (b"bac".to_vec(), End::Reset));
}

/// NUL-ended records, each within 300 ms of its first byte.
struct Records;

impl Protocol for Records {
    async fn serve<C: Connection>(&self, conn: &mut C) -> io::Result<()> {
        let mut reader = Reader::with_capacity(64).request_timeout(Duration::from_millis(300));
        while let Some(record) = reader.read_record(conn, 0).await? {
            let answer = format!("{} bytes\n", record.len());
            conn.write_bytes(answer.as_bytes()).await?;
        }
        Ok(())
    }
}

fn request_timeouts(monitor: &Monitor) -> u64 {
    let snapshot = monitor.snapshot();
    let services = snapshot.shards.iter().flat_map(|s| &s.services);
    services.map(|s| s.timeouts[1].1).sum()
}

/// A record begun and never finished: the request timeout cuts it (a
/// reset), and the server counts a `request` timeout. A record that
/// arrives in time is answered first.
fn a_record_that_stalls_hits_the_request_timeout(backend: &str) {
    let (server, addr) = start(backend, Timeouts::default(), Records);
    let mut s = connect(addr);
    s.write_all(b"/etc/hostname\0/etc/pass").unwrap();
    assert_eq!(read_exact(&mut s, 9), b"13 bytes\n");
    // Nothing more is sent: the 300 ms deadline passes, not the 60 s idle.
    assert_eq!(read_to_end_or_reset(&mut s), (Vec::new(), End::Reset));
    assert_eq!(
        server.monitor().snapshot().shards[0].services[0].timeouts[1],
        ("request", 1)
    );
    assert_eq!(request_timeouts(&server.monitor()), 1);
}

/// A connection that sends nothing for the idle timeout: the read fails
/// with the idle kind, `?` returns it, and the server closes with a FIN.
fn an_idle_connection_ends_with_a_fin(backend: &str) {
    let timeouts = Timeouts {
        idle: Duration::from_millis(300),
        ..Timeouts::default()
    };
    let (server, addr) = start(backend, timeouts, Records);
    let mut s = connect(addr);
    s.write_all(b"a\0").unwrap();
    assert_eq!(
        read_to_end_or_reset(&mut s),
        (b"1 bytes\n".to_vec(), End::Closed)
    );
    let figures = &server.monitor().snapshot().shards[0].services[0];
    assert_eq!(figures.timeouts[0], ("idle", 1));
    assert_eq!(figures.failed, 0, "an idle end is not a failure");
}

on_both_backends!(
    read_exact_takes_exactly_the_bytes_asked,
    a_record_that_stalls_hits_the_request_timeout,
    an_idle_connection_ends_with_a_fin,
);
