//! `serve --http`: real clients (curl, raw sockets) against the real binary
//! on both backends: status codes, ranges, conditional requests,
//! keep-alive and pipelining, and a hostile-input corpus that must get a
//! status and nothing from outside the root.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{IO_TIMEOUT, Ringlet, connect, pattern};

const SECRET: &[u8] = b"the secret outside the root\n";

/// A root `www/` with files, beside a secret that must never be served.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir_all(www.join("sub")).unwrap();
    std::fs::create_dir_all(www.join("empty")).unwrap();
    std::fs::write(www.join("index.html"), "<h1>home</h1>\n").unwrap();
    std::fs::write(www.join("sub/index.html"), "<h1>sub</h1>\n").unwrap();
    std::fs::write(www.join("a.txt"), "hello over http\n").unwrap();
    std::fs::write(www.join("big.bin"), pattern(300_000, 5)).unwrap();
    std::os::unix::fs::symlink("../secret.txt", www.join("link.txt")).unwrap();
    dir
}

fn serve(backend: &str, dir: &Path, extra: &[&str]) -> (Ringlet, SocketAddr) {
    let www = dir.join("www");
    let mut args = vec!["--http", "127.0.0.1:0", "--root", www.to_str().unwrap()];
    args.extend_from_slice(extra);
    let server = Ringlet::serve(backend, &args);
    let addr = server.http();
    (server, addr)
}

/// One response, as curl saw it: status, headers (lower-case names), body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Split one raw response (`HTTP/1.1 ...` to the end of its body).
fn split(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

/// `curl -si ARGS URL`: fails the test on a transport error.
fn curl(addr: SocketAddr, path: &str, args: &[&str]) -> Reply {
    let out = Command::new("curl")
        .args(["-s", "-S", "-i", "--max-time", "20", "--path-as-is"])
        .args(args)
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("run curl (the tests need it installed)");
    assert!(
        out.status.success(),
        "curl {args:?} {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    split(&out.stdout)
}

/// Send `request` raw, read until the server closes, fail on a reset.
fn raw(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(request).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(request)));
    got
}

fn curl_gets_heads_and_follows_the_rules(backend: &str) {
    let dir = site();
    let (_server, addr) = serve(backend, dir.path(), &[]);
    let big = std::fs::read(dir.path().join("www/big.bin")).unwrap();

    let r = curl(addr, "/a.txt", &[]);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"hello over http\n"[..])
    );
    assert_eq!(r.header("content-length"), Some("16"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(r.header("etag").is_some_and(|t| t.starts_with('"')));
    assert!(
        r.header("last-modified")
            .is_some_and(|d| d.ends_with("GMT"))
    );
    assert_eq!(r.header("accept-ranges"), Some("bytes"));

    let r = curl(addr, "/big.bin", &[]);
    assert_eq!(r.status, 200);
    assert!(r.body == big, "big.bin differs");
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));

    let r = curl(addr, "/big.bin", &["-I"]);
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("content-length"), Some("300000"));

    // Directories: index.html, with or without the slash; none: 404.
    for (path, body) in [
        ("/", "<h1>home</h1>\n"),
        ("/sub/", "<h1>sub</h1>\n"),
        ("/sub", "<h1>sub</h1>\n"),
    ] {
        let r = curl(addr, path, &[]);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, body.as_bytes()),
            "{path}"
        );
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    }
    for (path, args, status) in [
        ("/empty/", &[][..], 404),
        ("/missing.txt", &[], 404),
        ("/../secret.txt", &[], 403),
        ("/%2e%2e/secret.txt", &[], 403),
        ("/sub/..%2f..%2fsecret.txt", &[], 403),
        ("/link.txt", &[], 403),
        ("/a.txt", &["-X", "POST"], 405),
        ("/a.txt", &["-X", "DELETE"], 405),
    ] {
        let r = curl(addr, path, args);
        assert_eq!(r.status, status, "{path} {args:?}");
        assert!(!r.body.windows(SECRET.len()).any(|w| w == SECRET));
        if status == 405 {
            assert_eq!(r.header("allow"), Some("GET, HEAD"));
        }
    }

    // Two URLs on one command line: one connection.
    let out = Command::new("curl")
        .args([
            "-sv",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
        ])
        .arg(format!("http://{addr}/a.txt"))
        .arg(format!("http://{addr}/big.bin"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("Re-using existing connection") || err.contains("Reusing existing"),
        "the second request did not reuse the connection:\n{err}"
    );
}

fn ranges_and_conditional_requests(backend: &str) {
    let dir = site();
    let (_server, addr) = serve(backend, dir.path(), &[]);
    let big = std::fs::read(dir.path().join("www/big.bin")).unwrap();

    for (range, start, len) in [
        ("0-9", 0, 10),
        ("299990-", 299_990, 10),
        ("-5", 299_995, 5),
        ("100000-199999", 100_000, 100_000),
        ("250000-999999", 250_000, 50_000),
    ] {
        let r = curl(addr, "/big.bin", &["-r", range]);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {start}-{}/300000", start + len - 1).as_str()),
            "{range}"
        );
        assert!(r.body == big[start..start + len], "{range}: wrong bytes");
    }
    let r = curl(addr, "/big.bin", &["-r", "400000-"]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */300000"));
    // Several ranges: the whole file (allowed, and simpler for everyone).
    let r = curl(addr, "/big.bin", &["-r", "0-1,5-6"]);
    assert_eq!((r.status, r.body.len()), (200, 300_000));

    let first = curl(addr, "/a.txt", &[]);
    let etag = first.header("etag").unwrap().to_string();
    let modified = first.header("last-modified").unwrap().to_string();
    let r = curl(addr, "/a.txt", &["-H", &format!("If-None-Match: {etag}")]);
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = curl(addr, "/a.txt", &["-H", "If-None-Match: \"other\""]);
    assert_eq!(r.status, 200);
    let r = curl(
        addr,
        "/a.txt",
        &["-H", &format!("If-Modified-Since: {modified}")],
    );
    assert_eq!(r.status, 304);
    let r = curl(
        addr,
        "/a.txt",
        &["-H", "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT"],
    );
    assert_eq!(r.status, 200);
    // If-Range with a stale validator: the whole file, not a piece of a
    // different version.
    let r = curl(
        addr,
        "/big.bin",
        &["-r", "0-9", "-H", "If-Range: \"stale\""],
    );
    assert_eq!((r.status, r.body.len()), (200, 300_000));
    let tag = curl(addr, "/big.bin", &["-I"])
        .header("etag")
        .unwrap()
        .to_string();
    let r = curl(
        addr,
        "/big.bin",
        &["-r", "0-9", "-H", &format!("If-Range: {tag}")],
    );
    assert_eq!((r.status, r.body.len()), (206, 10));
}

fn pipelined_requests_are_answered_in_order(backend: &str) {
    let dir = site();
    let (_server, addr) = serve(backend, dir.path(), &[]);
    let got = raw(
        addr,
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /missing HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /sub/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&got);
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "200", "404", "200"], "{text}");
    assert!(text.contains("hello over http\n"), "{text}");
    assert!(text.ends_with("<h1>sub</h1>\n"), "{text}");
    assert_eq!(text.matches("Connection: close").count(), 1, "{text}");

    // HTTP/1.0 closes after one answer unless asked to keep alive.
    let got = raw(
        addr,
        b"GET /a.txt HTTP/1.0\r\n\r\nGET /a.txt HTTP/1.0\r\n\r\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&got)
            .matches("HTTP/1.1 200")
            .count(),
        1
    );
}

/// Every shape here is refused with a status; none yields the secret, and
/// the server goes on serving.
fn the_hostile_corpus_gets_statuses_and_nothing_outside_the_root(backend: &str) {
    let dir = site();
    let (_server, addr) = serve(backend, dir.path(), &[]);
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let long_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(9000)
    );
    let corpus: Vec<(&str, Vec<u8>, u16)> = vec![
        ("duplicate Content-Length", b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 10\r\n\r\n".to_vec(), 400),
        ("Content-Length with a body", b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 28\r\n\r\nGET /secret.txt HTTP/1.1\r\n\r\n".to_vec(), 400),
        ("Transfer-Encoding on a GET", b"GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), 400),
        ("TE and CL together", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(), 400),
        ("obs-fold", b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n  b\r\n\r\n".to_vec(), 400),
        ("NUL in the path", b"GET /a.txt\0/x HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("%00 in the path", b"GET /a.txt%00.html HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("percent-encoded ..", b"GET /%2e%2e/secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), 403),
        ("percent-encoded slash", b"GET /..%2fsecret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), 403),
        ("absolute path in the root", b"GET //etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), 404),
        ("symlink out", b"GET /link.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), 403),
        ("no Host", b"GET /a.txt HTTP/1.1\r\n\r\n".to_vec(), 400),
        ("two Hosts", b"GET /a.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(), 400),
        ("absolute-form target climbing out", b"GET http://x/../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), 403),
        ("authority-form target", b"GET x:80 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("a Host with user info", b"GET /a.txt HTTP/1.1\r\nHost: u@x\r\n\r\n".to_vec(), 400),
        ("space in a header name", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n".to_vec(), 400),
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(), 400),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), 505),
        ("HTTP/3.0", b"GET / HTTP/3.0\r\nHost: x\r\n\r\n".to_vec(), 505),
        ("POST", b"POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(), 405),
        ("overlong URI", long_uri.into_bytes(), 414),
        ("overlong header", long_header.into_bytes(), 431),
    ];
    for (what, request, status) in corpus {
        let got = raw(addr, &request);
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status} ")),
            "{what}: expected {status}, got {text:?}"
        );
        assert!(
            !got.windows(SECRET.len()).any(|w| w == SECRET),
            "{what}: the secret leaked"
        );
        if status != 403 && status != 404 {
            assert!(text.contains("Connection: close"), "{what}: {text}");
        }
    }
    // Still whole.
    assert_eq!(curl(addr, "/a.txt", &[]).status, 200);
}

/// A head dripped slower than --request-timeout gets a 408 and the close,
/// and not before that time (a lower bound: load only makes it later).
fn a_slow_head_gets_408(backend: &str) {
    let dir = site();
    let (server, addr) = serve(backend, dir.path(), &["--request-timeout", "2"]);
    let mut s = connect(addr);
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let started = Instant::now();
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHo").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(b"st: x\r\n").unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "408 after {:?} of a 2 s request timeout",
        started.elapsed()
    );
    server.wait_for_log(&["408", "not complete within 2s (request timeout)"]);
}

/// A head that stops coming for the idle timeout, shorter than the
/// request timeout, is cut at the idle timeout and logged as such.
fn a_stalled_head_is_logged_as_an_idle_timeout(backend: &str) {
    let dir = site();
    let (server, addr) = serve(
        backend,
        dir.path(),
        &["--idle-timeout", "1", "--request-timeout", "30"],
    );
    let mut s = connect(addr);
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHo").unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert!(got.starts_with(b"HTTP/1.1 408 "), "{got:?}");
    let line = server.wait_for_log(&["408", "request head"]);
    assert!(
        line.contains("nothing more arrived for 1s (idle timeout)"),
        "{line}"
    );
}

/// HTTP/1.0 with `Connection: keep-alive` is told the connection stays
/// (`Connection: keep-alive`, which such clients wait for), and it does.
fn http_1_0_keep_alive_is_acknowledged(backend: &str) {
    let dir = site();
    let (_server, addr) = serve(backend, dir.path(), &[]);
    let got = raw(
        addr,
        b"GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /a.txt HTTP/1.0\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    let (first, second) = text.split_at(text.rfind("HTTP/1.1 200").unwrap());
    assert!(first.contains("\r\nConnection: keep-alive\r\n"), "{first}");
    assert!(second.contains("\r\nConnection: close\r\n"), "{second}");
    assert!(second.ends_with("hello over http\n"), "{second}");
}

/// An absolute-form target (`GET http://host/path`), which RFC 9112 says a
/// server must accept, is served by its path, and confined like any other.
fn absolute_form_targets_are_served(backend: &str) {
    let dir = site();
    let (_server, addr) = serve(backend, dir.path(), &[]);
    let got = raw(
        addr,
        b"GET http://example.test/a.txt?q HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
    );
    let r = split(&got);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"hello over http\n"[..])
    );
    for target in [
        "http://x/../secret.txt",
        "http://x/%2e%2e/secret.txt",
        "http://u@x/a.txt",
    ] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let got = raw(addr, req.as_bytes());
        let r = split(&got);
        assert!(matches!(r.status, 400 | 403), "{target}: {}", r.status);
        assert!(!got.windows(SECRET.len()).any(|w| w == SECRET), "{target}");
    }
}

/// HEAD sends a head and not one byte of body, whatever the answer: the
/// next bytes on the wire are the next response's.
fn head_sends_no_body_bytes(backend: &str) {
    let dir = site();
    let (_server, addr) = serve(backend, dir.path(), &[]);
    let got = raw(
        addr,
        b"HEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /missing HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&got);
    let heads: Vec<&str> = text.split_inclusive("\r\n\r\n").collect();
    assert_eq!(heads.len(), 3, "{text}");
    for (head, (status, length)) in heads.iter().zip([(200, 300_000), (404, 14), (200, 16)]) {
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(
            head.contains(&format!("\r\nContent-Length: {length}\r\n")),
            "{head}"
        );
    }
    assert!(
        text.ends_with("\r\n\r\n"),
        "body bytes after the last head: {text}"
    );
}

on_both_backends!(
    curl_gets_heads_and_follows_the_rules,
    ranges_and_conditional_requests,
    pipelined_requests_are_answered_in_order,
    the_hostile_corpus_gets_statuses_and_nothing_outside_the_root,
    a_slow_head_gets_408,
    a_stalled_head_is_logged_as_an_idle_timeout,
    http_1_0_keep_alive_is_acknowledged,
    absolute_form_targets_are_served,
    head_sends_no_body_bytes,
);
