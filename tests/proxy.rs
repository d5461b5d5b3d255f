//! `--proxy-protocol`: behind a load balancer, against the real binary on
//! both backends. A PROXY header (v1 or v2, as HAProxy's `send-proxy` and
//! `send-proxy-v2` and `curl --haproxy-protocol` send it) from a trusted
//! source is read first, and the client address it carries replaces the
//! balancer's in the logs; bytes sent with it reach the protocol; a v2
//! `LOCAL` header (a health check) is served as it is; anything else —
//! no header, a malformed, truncated or oversize one, a slow one, or one
//! from a source not trusted — is closed with one log line and never served.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{End, Ringlet, connect, read_to_close, read_to_end_or_reset};

fn serve(backend: &str, dir: &std::path::Path, extra: &[&str]) -> (Ringlet, SocketAddr) {
    let mut args = vec![
        "--root",
        dir.to_str().unwrap(),
        "--http",
        "127.0.0.1:0",
        "--proxy-protocol",
        "http,file",
    ];
    args.extend_from_slice(extra);
    let server = Ringlet::serve(backend, &args);
    let http = server.http();
    (server, http)
}

fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), b"behind a balancer\n").unwrap();
    dir
}

/// A v2 header: signature, version 2, `command`, `family`, then `body`.
fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x20 | command);
    h.push(family);
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(body);
    h
}

/// A v2 PROXY header for TCP over IPv6 from [2001:db8::7]:5555.
fn v2_ipv6() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(
        &"2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    body.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    body.extend_from_slice(&5555u16.to_be_bytes());
    body.extend_from_slice(&80u16.to_be_bytes());
    // A TLV after the addresses (HAProxy adds some): skipped.
    body.extend_from_slice(&[0x04, 0x00, 0x02, b'h', b'i']);
    v2(1, 0x21, &body)
}

const GET: &[u8] = b"GET /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

/// Send `bytes` (a header, then maybe a request) and read to the close.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> (Vec<u8>, End) {
    let mut s = connect(addr);
    s.write_all(bytes).unwrap();
    read_to_end_or_reset(&mut s)
}

/// Headers from a trusted source: the client's address replaces the
/// balancer's in the log lines; the request sent with the header in one
/// write is served; a header dripped a byte at a time works too; v2 LOCAL
/// is served under the socket's own address.
fn a_trusted_header_names_the_client(backend: &str) {
    let dir = site();
    let (server, http) = serve(backend, dir.path(), &[]);
    // v1, the request in the same write.
    let got = exchange(
        http,
        &[&b"PROXY TCP4 203.0.113.7 127.0.0.1 4242 80\r\n"[..], GET].concat(),
    );
    let text = String::from_utf8_lossy(&got.0);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.ends_with("behind a balancer\n"), "{text}");
    // A refusal's log line names the client, not the balancer.
    let mut req = b"PROXY TCP4 198.51.100.9 127.0.0.1 777 6001\r\n".to_vec();
    req.extend_from_slice(b"/missing\0");
    let (got, end) = exchange(server.file(), &req);
    assert_eq!((got.as_slice(), end), (&b""[..], End::Closed));
    server.wait_for_log(&["198.51.100.9:777 requested \"/missing\": refused"]);
    // v2 over IPv6 with a TLV, dripped a byte at a time.
    let mut s = connect(server.file());
    for b in [v2_ipv6(), b"/nothing-here\0".to_vec()].concat() {
        s.write_all(&[b]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut s), b"");
    server.wait_for_log(&["[2001:db8::7]:5555 requested \"/nothing-here\": refused"]);
    // v2 LOCAL (a balancer's health check): served as it is.
    let got = exchange(http, &[v2(0, 0x00, &[]), GET.to_vec()].concat());
    assert!(
        got.0.starts_with(b"HTTP/1.1 200 "),
        "{:?}",
        String::from_utf8_lossy(&got.0)
    );
}

/// `curl --haproxy-protocol`, as an operator would try it.
fn curl_haproxy_protocol_is_served(backend: &str) {
    let dir = site();
    let (_server, http) = serve(backend, dir.path(), &[]);
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "20", "--haproxy-protocol"])
        .arg(format!("http://{http}/a.txt"))
        .output()
        .expect("run curl (the tests need it installed)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"behind a balancer\n");
    // Without the header the same request is never served.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .arg(format!("http://{http}/a.txt"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "served without a PROXY header");
}

/// No header, a malformed, truncated or oversize one: closed with one log
/// line each, nothing served, and the server goes on.
fn a_bad_header_is_never_served(backend: &str) {
    let dir = site();
    let (server, http) = serve(backend, dir.path(), &[]);
    let mut oversize = b"\r\n\r\n\0\r\nQUIT\n\x21\x11".to_vec();
    oversize.extend_from_slice(&u16::MAX.to_be_bytes());
    oversize.extend_from_slice(&[0u8; 12]);
    for (what, bytes) in [
        ("no header", GET.to_vec()),
        (
            "a bad port",
            [&b"PROXY TCP4 1.2.3.4 127.0.0.1 99999 80\r\n"[..], GET].concat(),
        ),
        (
            "IPv6 under TCP4",
            [&b"PROXY TCP4 ::1 ::1 1 2\r\n"[..], GET].concat(),
        ),
        (
            "no CRLF in 107 bytes",
            [b"PROXY TCP4 ".to_vec(), vec![b'1'; 120], GET.to_vec()].concat(),
        ),
        ("a v2 version 3", {
            let mut h = v2(1, 0x11, &[0u8; 12]);
            h[12] = 0x31;
            [h, GET.to_vec()].concat()
        }),
        ("a v2 length past its limit", oversize),
        (
            "TLS",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        ),
    ] {
        let (got, _) = exchange(http, &bytes);
        assert!(
            got.is_empty(),
            "{what}: answered {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    // Truncated: half a header, then the client closes.
    let mut s = connect(http);
    s.write_all(b"PROXY TCP4 203.0.113.7 127.0.").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert!(read_to_end_or_reset(&mut s).0.is_empty());
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.count_log(&["http: 127.0.0.1:", "PROXY header"]) < 8 {
        assert!(
            Instant::now() < deadline,
            "log:\n{}",
            server.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Still serving.
    let got = exchange(
        http,
        &[&b"PROXY TCP4 203.0.113.7 127.0.0.1 1 80\r\n"[..], GET].concat(),
    );
    assert!(got.0.starts_with(b"HTTP/1.1 200 "));
}

/// A header that does not come whole within its deadline (5 s) is cut:
/// later than that lower bound, and well before the idle timeout.
fn a_slow_header_is_cut_at_its_deadline(backend: &str) {
    let dir = site();
    let (server, http) = serve(backend, dir.path(), &["--idle-timeout", "60"]);
    let started = Instant::now();
    let mut s = connect(http);
    s.write_all(b"PROXY TCP4 ").unwrap();
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "answered a slow header");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "cut after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "cut after {:?}",
        started.elapsed()
    );
    server.wait_for_log(&["no whole PROXY header within 5s"]);
}

/// Headers only from trusted sources: with `--proxy-from` naming another
/// network, a loopback client's header is not believed, and it is refused.
fn an_untrusted_source_is_refused(backend: &str) {
    let dir = site();
    let (server, http) = serve(
        backend,
        dir.path(),
        &["--proxy-from", "10.0.0.0/8,192.0.2.1"],
    );
    let (got, _) = exchange(
        http,
        &[&b"PROXY TCP4 203.0.113.7 127.0.0.1 1 80\r\n"[..], GET].concat(),
    );
    assert!(got.is_empty(), "served an untrusted source");
    let line = server.wait_for_log(&["127.0.0.1 is not a trusted source of PROXY headers"]);
    // The line comes from the library, which names no flag of the binary's.
    assert!(!line.contains("--proxy-from"), "{line}");
}

on_both_backends!(
    a_trusted_header_names_the_client,
    curl_haproxy_protocol_is_served,
    a_bad_header_is_never_served,
    a_slow_header_is_cut_at_its_deadline,
    an_untrusted_source_is_refused,
);

/// A bad flag is a clear start-up error.
#[test]
fn bad_proxy_flags_stop_the_start() {
    for (args, says) in [
        (&["--proxy-protocol", "htp"][..], "htp"),
        (&["--proxy-protocol", "http"][..], "http"),
        (
            &["--proxy-protocol", "file", "--proxy-from", "10.0.0.0/40"][..],
            "10.0.0.0/40",
        ),
    ] {
        let out = Command::new(common::bin())
            .args(["serve", "--echo", "127.0.0.1:0", "--file", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(if args.len() == 2 { 1 } else { 2 }),
            "{args:?}"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
