//! `ringlet bench` drives real servers, verifies every byte, and catches a
//! server that gets bytes wrong; `bench report` turns runs into a table.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Ringlet, pattern};

fn bench(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringlet"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run ringlet bench");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ringlet bench file --addr ADDR --path PATH ARGS...`.
fn bench_file(addr: &str, path: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["file", "--addr", addr, "--path", path];
    all.extend_from_slice(args);
    bench(&all)
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn echo_modes(backend: &str) {
    let server = Ringlet::serve(backend, &["--file", "off"]);
    let addr = server.echo().to_string();
    for extra in [&[][..], &["--pipeline", "8"], &["--rate", "2000"]] {
        let mut args = vec![
            "echo",
            "--addr",
            &addr,
            "--conns",
            "20",
            "--size",
            "100",
            "--duration",
            "0.5",
            "--threads",
            "2",
            "--json",
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = bench(&args);
        assert_eq!(code, Some(0), "{extra:?}: {err}");
        let v = json(&out);
        assert_eq!(v["errors"], 0, "{extra:?}: {out}");
        assert!(v["messages"].as_u64().unwrap() > 100, "{extra:?}: {out}");
        assert_eq!(
            v["bytes"].as_u64().unwrap(),
            v["messages"].as_u64().unwrap() * 100
        );
        assert!(v["latency_us"]["p99"].as_u64().unwrap() > 0);
    }
}

fn file_checks_length_and_content(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(300_000, 4);
    std::fs::write(dir.path().join("f.bin"), &data).unwrap();
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
    let addr = server.file().to_string();
    let local = dir.path().join("f.bin");
    let (code, out, err) = bench_file(
        &addr,
        "/f.bin",
        &[
            "--expect",
            local.to_str().unwrap(),
            "--conns",
            "4",
            "--duration",
            "0.5",
            "--json",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let v = json(&out);
    assert_eq!(v["errors"], 0, "{out}");
    let n = v["messages"].as_u64().unwrap();
    assert!(
        n > 0 && v["bytes"].as_u64().unwrap() == n * 300_000,
        "{out}"
    );

    // A different local copy: every answer is reported as wrong.
    let other = dir.path().join("other.bin");
    std::fs::write(&other, pattern(300_000, 6)).unwrap();
    let (code, _, err) = bench_file(
        &addr,
        "/f.bin",
        &[
            "--expect",
            other.to_str().unwrap(),
            "--conns",
            "1",
            "--duration",
            "0.3",
        ],
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("differs from the reference"), "{err}");
}

/// The article's protocol (no --file-header): `auto` finds it, every answer
/// is read to its end and checked; a framed bench against it says in one
/// printable line what it expected and what came.
fn file_plain_mode_is_detected_and_checked(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(70_000, 9);
    std::fs::write(dir.path().join("f.bin"), &data).unwrap();
    let server = Ringlet::serve(
        backend,
        &["--echo", "off", "--root", dir.path().to_str().unwrap()],
    );
    let addr = server.file().to_string();
    let local = dir.path().join("f.bin");
    let (code, out, err) = bench_file(
        &addr,
        "f.bin",
        &[
            "--expect",
            local.to_str().unwrap(),
            "--conns",
            "4",
            "--duration",
            "0.5",
            "--json",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let v = json(&out);
    assert_eq!(v["config"]["mode"], "plain", "{out}");
    assert_eq!(v["errors"], 0, "{out}");
    let n = v["messages"].as_u64().unwrap();
    assert!(n > 0 && v["bytes"].as_u64().unwrap() == n * 70_000, "{out}");

    // A wrong local copy is caught in plain mode too.
    let other = dir.path().join("other.bin");
    std::fs::write(&other, pattern(70_000, 10)).unwrap();
    let (code, _, err) = bench_file(
        &addr,
        "f.bin",
        &[
            "--expect",
            other.to_str().unwrap(),
            "--mode",
            "plain",
            "--conns",
            "1",
            "--duration",
            "0.3",
        ],
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("differs from the reference"), "{err}");

    // Framed against plain: one readable line, never the file's raw bytes.
    let (code, _, err) = bench_file(
        &addr,
        "f.bin",
        &["--mode", "framed", "--conns", "1", "--duration", "0.3"],
    );
    assert_ne!(code, Some(0));
    assert!(
        err.contains("expected a status line `OK <size>`, got \""),
        "{err}"
    );
    assert!(err.contains("bytes)"), "{err}");
    assert!(
        err.bytes()
            .all(|b| b == b'\n' || (0x20..0x7f).contains(&b) || b >= 0x80),
        "control bytes on the terminal: {err:?}"
    );
    assert!(!err.contains('\u{fffd}'), "raw binary in the error: {err}");

    // A missing file in plain mode: the close with nothing is explained.
    let (code, _, err) = bench_file(&addr, "nope", &["--conns", "1", "--duration", "0.3"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("closed without a byte"), "{err}");
}

/// `--mode http` (and `auto`, which recognises an HTTP server by its error
/// for the article's request) fetches over keep-alive connections and
/// checks every body; a wrong copy and a missing file are named.
fn file_http_mode_fetches_and_checks(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.bin"), pattern(70_000, 11)).unwrap();
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
    let addr = server.http().to_string();
    let local = dir.path().join("f.bin");
    for mode in ["http", "auto"] {
        let (code, out, err) = bench_file(
            &addr,
            "/f.bin",
            &[
                "--expect",
                local.to_str().unwrap(),
                "--mode",
                mode,
                "--conns",
                "4",
                "--duration",
                "0.5",
                "--json",
            ],
        );
        assert_eq!(code, Some(0), "{mode}: {err}");
        let v = json(&out);
        assert_eq!(v["config"]["mode"], "http", "{out}");
        assert_eq!(v["errors"], 0, "{out}");
        let n = v["messages"].as_u64().unwrap();
        assert!(n > 4 && v["bytes"].as_u64().unwrap() == n * 70_000, "{out}");
    }

    let other = dir.path().join("other.bin");
    std::fs::write(&other, pattern(70_000, 12)).unwrap();
    let (code, _, err) = bench_file(
        &addr,
        "/f.bin",
        &[
            "--expect",
            other.to_str().unwrap(),
            "--mode",
            "http",
            "--conns",
            "1",
            "--duration",
            "0.3",
        ],
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("differs from the reference"), "{err}");

    let (code, _, err) = bench_file(
        &addr,
        "/nope",
        &["--mode", "http", "--conns", "1", "--duration", "0.3"],
    );
    assert_ne!(code, Some(0));
    assert!(
        err.contains("GET /nope: the server answered 404 Not Found"),
        "{err}"
    );
}

fn a_short_soak_loses_nothing(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.bin"), pattern(200_000, 8)).unwrap();
    let server = Ringlet::serve(
        backend,
        &["--file-header", "--root", dir.path().to_str().unwrap()],
    );
    let (echo, file) = (server.echo().to_string(), server.file().to_string());
    let local = dir.path().join("f.bin");
    let (code, out, err) = bench(&[
        "soak",
        "--echo",
        &echo,
        "--file",
        &file,
        "--path",
        "/f.bin",
        "--expect",
        local.to_str().unwrap(),
        "--conns",
        "64",
        "--duration",
        "2",
        "--reset-every",
        "5",
        "--slow-every",
        "4",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let v = json(&out);
    assert_eq!(v["unexpected_errors"], 0, "{out}");
    assert!(v["injected_resets"].as_u64().unwrap() > 0, "{out}");
    assert!(v["slow_sessions"].as_u64().unwrap() > 0, "{out}");
    assert!(
        v["echo_bytes"].as_u64().unwrap() > 0 && v["file_bytes"].as_u64().unwrap() > 0,
        "{out}"
    );
    // And the server is still whole.
    let mut s = common::connect(server.echo());
    s.write_all(b"after\n").unwrap();
    assert_eq!(common::read_exact(&mut s, 6), b"after\n");
}

on_both_backends!(
    echo_modes,
    file_checks_length_and_content,
    file_plain_mode_is_detected_and_checked,
    file_http_mode_fetches_and_checks,
    a_short_soak_loses_nothing
);

/// A server that echoes one wrong byte now and then is caught.
#[test]
fn a_corrupting_server_is_caught() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten().take(4) {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut total = 0usize;
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    total += n;
                    if total > 2000 {
                        buf[0] ^= 0x20; // one flipped bit, after a while
                    }
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let (code, out, err) = bench(&["echo", "--addr", &addr, "--conns", "1", "--duration", "1"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("echo differs at byte"), "{out}");
    assert!(err.contains("bytes did not check out"), "{err}");
}

/// An HTTP server written here: `answer` is its reply to every request.
/// Answers every request on a connection until the client goes, or only
/// the first when `one_each`; counts the connections it accepted.
fn http_server(answer: &'static [u8], one_each: bool) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                loop {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match s.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    if s.write_all(answer).is_err() || one_each {
                        return; // dropped: the connection closes
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// `Connection: close` is honoured (a new connection for the next
/// request), and a body cut short of its Content-Length is an error, not a
/// shorter file.
#[test]
fn http_mode_reconnects_on_close_and_catches_a_cut_body() {
    // Keep-alive: two connections carry every request.
    let (kept, accepted) = http_server(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false);
    let (code, out, err) = bench_file(
        &kept,
        "/x",
        &[
            "--mode",
            "http",
            "--conns",
            "2",
            "--duration",
            "0.5",
            "--json",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let v = json(&out);
    assert_eq!(v["errors"], 0, "{out}");
    assert!(v["messages"].as_u64().unwrap() >= 10, "{out}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "{out}");

    // `Connection: close`: a new connection for each request.
    let (whole, accepted) = http_server(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
        true,
    );
    let (code, out, err) = bench_file(
        &whole,
        "/x",
        &[
            "--mode",
            "http",
            "--conns",
            "1",
            "--duration",
            "0.5",
            "--json",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let v = json(&out);
    assert_eq!(v["errors"], 0, "{out}");
    let n = v["messages"].as_u64().unwrap();
    assert!(n >= 10, "{out}");
    assert_eq!(v["bytes"].as_u64().unwrap(), n * 5);
    assert!(accepted.load(Ordering::SeqCst) as u64 >= n, "{out}");

    let (cut, _) = http_server(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly fifty bytes of the hundred announced.........",
        true,
    );
    let (code, _, err) = bench_file(
        &cut,
        "/x",
        &["--mode", "http", "--conns", "1", "--duration", "0.3"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("closed after 50 of 100 bytes"), "{err}");
}

#[test]
fn report_makes_a_table_and_a_chart() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.jsonl");
    let mut lines = String::new();
    for round in 0..3 {
        for (server, rate, cpu) in [("uring", 1200.0, 0.5), ("epoll", 1000.0, 1.0)] {
            lines.push_str(&format!(
                "{{\"case\":\"echo 64 B\",\"server\":\"{server}\",\"round\":{round},\"server_cpu_s\":{cpu},\
                 \"outcome\":{{\"messages\":100000,\"per_second\":{rate},\"mb_per_second\":0.1,\
                 \"latency_us\":{{\"p50\":10,\"p99\":50,\"p999\":90,\"max\":100}},\"errors\":0}}}}\n"
            ));
        }
    }
    std::fs::write(&raw, lines).unwrap();
    let chart = dir.path().join("chart.svg");
    let (code, out, err) = bench(&[
        "report",
        raw.to_str().unwrap(),
        "--chart",
        chart.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("| echo 64 B | **uring/epoll** | **1.20×** (uring better in every round)"),
        "{out}"
    );
    assert!(
        out.contains("**0.50×** (uring better in every round)"),
        "{out}"
    );
    assert!(std::fs::read_to_string(chart).unwrap().contains("<svg"));
}

#[test]
fn report_of_a_server_no_record_has_says_which_ones_there_are() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.jsonl");
    let mut lines = String::new();
    for server in ["uring", "epoll"] {
        lines.push_str(&format!(
            "{{\"case\":\"echo 64 B\",\"server\":\"{server}\",\"round\":0,\"server_cpu_s\":1.0,\
             \"outcome\":{{\"messages\":100000,\"per_second\":1000.0,\"mb_per_second\":0.1,\
             \"latency_us\":{{\"p50\":10,\"p99\":50,\"p999\":90,\"max\":100}},\"errors\":0}}}}\n"
        ));
    }
    std::fs::write(&raw, lines).unwrap();
    let (code, _, err) = bench(&["report", raw.to_str().unwrap(), "--subject", "nginx"]);
    // An error and its exit status, not a panic (101).
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("no record for subject nginx; the records have: uring, epoll"),
        "{err}"
    );
}
