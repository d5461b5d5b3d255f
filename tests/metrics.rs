//! `serve --metrics`: scraped with curl during and after real load, the
//! figures match what the clients did.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Ringlet, fetch, pattern};

/// Start a server with metrics on an ephemeral port; returns it and the
/// metrics address (from its log line).
fn serve(backend: &str, root: &std::path::Path) -> (Ringlet, SocketAddr) {
    let server = Ringlet::serve(
        backend,
        &[
            "--metrics",
            "127.0.0.1:0",
            "--root",
            root.to_str().unwrap(),
            "--cores",
            "2",
        ],
    );
    let line = server.wait_for_log(&["metrics on http://"]);
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (server, addr)
}

/// `curl` the page; fails the test on any HTTP or transport error.
fn scrape(addr: SocketAddr) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "20"])
        .arg(format!("http://{addr}/metrics"))
        .output()
        .expect("run curl (the tests need it installed)");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("metrics are text")
}

/// The sum of every sample of `name` whose labels include all of `labels`.
fn sum(page: &str, name: &str, labels: &[&str]) -> u64 {
    let mut seen = false;
    let total = page
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            if !(rest.is_empty() || rest.starts_with('{')) {
                return None;
            }
            labels.iter().all(|w| rest.contains(w)).then(|| {
                seen = true;
                value.parse::<f64>().expect("a number") as u64
            })
        })
        .sum();
    assert!(seen, "no {name} {labels:?} in:\n{page}");
    total
}

fn bench_echo(addr: SocketAddr, conns: usize, size: usize) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ringlet"))
        .args(["bench", "echo", "--addr", &addr.to_string()])
        .args(["--conns", &conns.to_string(), "--size", &size.to_string()])
        .args(["--duration", "2", "--threads", "1", "--json"])
        .output()
        .expect("run ringlet bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("bench JSON")
}

/// Poll the page until `ok` holds for it (bounded), and return it.
fn scrape_until(addr: SocketAddr, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = scrape(addr);
        if ok(&page) {
            return page;
        }
        assert!(Instant::now() < deadline, "never {what}:\n{page}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn a_scrape_matches_the_bench(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (server, metrics) = serve(backend, dir.path());
    let echo = server.echo();
    let (conns, size) = (8, 100);

    let load = std::thread::spawn(move || bench_echo(echo, conns, size));
    // During the load: the connections are open and bytes flow.
    let during = scrape_until(metrics, "saw the load's connections open", |p| {
        sum(p, "ringlet_connections_open", &["service=\"echo\""]) == conns as u64
            && sum(p, "ringlet_received_bytes_total", &["service=\"echo\""]) > 0
    });
    let bench = load.join().unwrap();
    assert_eq!(bench["errors"], 0, "{bench}");
    let bytes = bench["bytes"].as_u64().unwrap();
    assert!(bytes > 0, "{bench}");

    // After: every connection has ended, and the bytes are the bench's own
    // (the server may have received one message per connection that the
    // bench stopped waiting for).
    let after = scrape_until(metrics, "saw every connection closed", |p| {
        sum(p, "ringlet_connections_open", &["service=\"echo\""]) == 0
    });
    let echo_ = ["service=\"echo\""];
    assert_eq!(
        sum(&after, "ringlet_connections_accepted_total", &echo_),
        conns as u64
    );
    let received = sum(&after, "ringlet_received_bytes_total", &echo_);
    let sent = sum(&after, "ringlet_sent_bytes_total", &echo_);
    let slack = (conns * size) as u64;
    assert!(
        (bytes..=bytes + slack).contains(&received),
        "received {received}, bench {bytes}"
    );
    assert!(
        (bytes..=bytes + slack).contains(&sent),
        "sent {sent}, bench {bytes}"
    );
    assert!(
        sum(&during, "ringlet_received_bytes_total", &echo_) <= received,
        "counters went backwards"
    );
    assert_eq!(sum(&after, "ringlet_panics_total", &echo_), 0);
    assert_eq!(
        sum(&after, "ringlet_info", &[&format!("backend=\"{backend}\"")]),
        1
    );
    if backend == "uring" {
        assert!(sum(&after, "ringlet_ring_enters_total", &[]) > 0, "{after}");
        assert!(sum(&after, "ringlet_ring_completions_total", &[]) > 0);
    }
}

fn file_requests_are_counted_by_outcome(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(50_000, 3);
    std::fs::write(dir.path().join("f"), &data).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let (server, metrics) = serve(backend, dir.path());
    let file = server.file();

    for _ in 0..3 {
        assert_eq!(fetch(file, b"f"), data);
    }
    assert_eq!(fetch(file, b"missing"), b"");
    assert_eq!(fetch(file, b"../etc/passwd"), b"");
    assert_eq!(fetch(file, b"sub"), b"");
    let long = vec![b'a'; 5000];
    assert_eq!(fetch(file, &long), b"");

    let page = scrape_until(metrics, "counted seven requests", |p| {
        sum(p, "ringlet_requests_total", &["service=\"file\""]) == 7
            && sum(p, "ringlet_connections_open", &["service=\"file\""]) == 0
    });
    let n = |outcome: &str| {
        sum(
            &page,
            "ringlet_requests_total",
            &["service=\"file\"", &format!("outcome=\"{outcome}\"")],
        )
    };
    assert_eq!(
        (
            n("served"),
            n("not_found"),
            n("escape"),
            n("not_regular"),
            n("too_long")
        ),
        (3, 1, 1, 1, 1)
    );
    assert_eq!(
        sum(&page, "ringlet_sent_bytes_total", &["service=\"file\""]),
        3 * data.len() as u64
    );
    assert_eq!(
        sum(
            &page,
            "ringlet_connections_accepted_total",
            &["service=\"file\""]
        ),
        7
    );
}

on_both_backends!(
    a_scrape_matches_the_bench,
    file_requests_are_counted_by_outcome
);

/// The endpoint answers only what it serves, and a scrape of the wrong
/// thing gets a status, not a hang.
#[test]
fn other_paths_and_methods_get_a_status() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, metrics) = serve("epoll", dir.path());
    let status = |args: &[&str], path: &str| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "20",
            ])
            .args(args)
            .arg(format!("http://{metrics}{path}"))
            .output()
            .expect("run curl");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(status(&[], "/metrics"), "200");
    assert_eq!(status(&["-I"], "/metrics"), "200");
    assert_eq!(status(&[], "/"), "404");
    assert_eq!(status(&["-X", "POST"], "/metrics"), "405");
}

/// A port already taken is a clear start-up error, not a silent half-server.
#[test]
fn a_taken_metrics_port_stops_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_ringlet"))
        .args(["serve", "--echo", "127.0.0.1:0", "--file", "off"])
        .args(["--metrics", &addr])
        .output()
        .expect("run ringlet");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen for metrics on {addr}")),
        "{err}"
    );
}
