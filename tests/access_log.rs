//! `--access-log`: one line per HTTP and file request and per echo session,
//! against the real binary on both backends, in both formats; the client
//! from a PROXY header; reopened on SIGUSR1 as logrotate expects.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Ringlet, connect, read_exact, read_to_close};

fn serve(backend: &str, dir: &Path, format: &str) -> Ringlet {
    std::fs::write(dir.join("a.txt"), b"logged\n").unwrap();
    let log = dir.join("access.log");
    Ringlet::serve(
        backend,
        &[
            "--root",
            dir.to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
            "--access-log",
            log.to_str().unwrap(),
            "--access-log-format",
            format,
            "--proxy-protocol",
            "http",
        ],
    )
}

/// The log's lines once it has at least `n` (the writer flushes within a
/// fraction of a second; bounded wait).
fn lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let got: Vec<String> = text.lines().map(str::to_string).collect();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} lines: {got:?}",
            got.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One of each: an HTTP request through a balancer (PROXY v1, with a
/// referer and a user agent), a 404, a file request, an echo session.
fn traffic(server: &Ringlet) {
    let mut s = connect(server.http());
    s.write_all(
        b"PROXY TCP4 203.0.113.7 127.0.0.1 4242 80\r\n\
          GET /a.txt?x=\"1\" HTTP/1.1\r\nHost: t\r\nReferer: http://r/\r\nUser-Agent: tester/1\r\n\r\n\
          GET /missing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    read_to_close(&mut s);
    let mut f = connect(server.file());
    f.write_all(b"/a.txt\0").unwrap();
    assert_eq!(read_to_close(&mut f), b"logged\n");
    let mut e = connect(server.echo());
    e.write_all(b"hi\n").unwrap();
    assert_eq!(read_exact(&mut e, 3), b"hi\n");
    drop(e);
}

fn combined_lines_for_every_protocol(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(backend, dir.path(), "combined");
    traffic(&server);
    let mut got = lines(&dir.path().join("access.log"), 4);
    got.sort();
    let find = |needle: &str| {
        got.iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in {got:?}"))
            .clone()
    };
    let ok = find("GET /a.txt");
    assert!(ok.starts_with("203.0.113.7 - - ["), "{ok}");
    assert!(
        // `"` escaped as nginx does.
        ok.contains(r#""GET /a.txt?x=\x221\x22 HTTP/1.1" 200 7 "http://r/" "tester/1" rt="#),
        "{ok}"
    );
    let missing = find("GET /missing");
    assert!(missing.starts_with("203.0.113.7 - - ["), "{missing}");
    assert!(missing.contains(r#" 404 14 "-" "-" rt="#), "{missing}");
    let file = find("FILE /a.txt");
    assert!(file.starts_with("127.0.0.1 - - ["), "{file}");
    assert!(file.contains(r#""FILE /a.txt" served 7 rt="#), "{file}");
    let echo = find("SESSION echo");
    assert!(echo.contains(r#""SESSION echo" in=3 out=3 rt="#), "{echo}");
}

fn json_lines_parse(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(backend, dir.path(), "json");
    traffic(&server);
    let got = lines(&dir.path().join("access.log"), 4);
    let objects: Vec<serde_json::Value> = got
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let http = objects
        .iter()
        .find(|o| o.to_string().contains("/a.txt?x="))
        .unwrap_or_else(|| panic!("{got:?}"));
    let text = http.to_string();
    for want in ["203.0.113.7", "200", "tester/1", "http://r/", "GET"] {
        assert!(text.contains(want), "{want} missing from {text}");
    }
}

/// logrotate's way: move the file, send SIGUSR1; the lines after go to a
/// new file at the old path, none lost.
fn sigusr1_reopens_the_log(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(backend, dir.path(), "combined");
    let path = dir.path().join("access.log");
    let fetch = |name: &str| {
        let mut f = connect(server.file());
        f.write_all(format!("/{name}\0").as_bytes()).unwrap();
        read_to_close(&mut f);
    };
    fetch("before");
    lines(&path, 1);
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    unsafe { libc::kill(server.pid() as i32, libc::SIGUSR1) };
    server.wait_for_log(&["SIGUSR1: reopening the access log"]);
    fetch("after");
    let new = lines(&path, 1);
    assert!(new[0].contains("/after"), "{new:?}");
    let old = lines(&rotated, 1);
    assert_eq!(old.len(), 1, "{old:?}");
    assert!(old[0].contains("/before"), "{old:?}");
}

on_both_backends!(
    combined_lines_for_every_protocol,
    json_lines_parse,
    sigusr1_reopens_the_log,
);
