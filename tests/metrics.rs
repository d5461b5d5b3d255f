//! `serve --metrics`: scraped with curl during and after real load, the
//! figures match what the clients did; silent, dripping and flooding
//! clients never hold up a scrape.

mod common;

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{IO_TIMEOUT, Ringlet, connect, fetch, pattern, read_exact, read_to_close};

/// The endpoint's per-connection deadline and its cap on open connections
/// (`src/bin/ringlet/cmd/metrics/http.rs`: `DEADLINE`, `MAX_CONNS`).
const DEADLINE: Duration = Duration::from_secs(5);
const CAP: usize = 64;

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
    let addr = server.metrics();
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

/// One scrape over a raw socket: the whole answer, ended by a FIN (a reset
/// fails the test), with a 200 and a body as long as it says. Returns the
/// body.
fn scrape_raw(addr: SocketAddr) -> String {
    let mut s = connect_bounded(addr);
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let raw = String::from_utf8(read_to_close(&mut s)).expect("metrics are text");
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {raw:?}"));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let length = format!("\r\nContent-Length: {}\r\n", body.len());
    assert!(
        head.contains(&length),
        "{head} with a body of {}",
        body.len()
    );
    assert!(body.contains("\nringlet_info{") && body.ends_with("# EOF\n"));
    body.to_string()
}

/// [`connect`], but bounded: a server that stopped accepting fails the
/// test instead of leaving it in the kernel's SYN retries for minutes.
fn connect_bounded(addr: SocketAddr) -> TcpStream {
    connect_by(addr, Instant::now() + IO_TIMEOUT)
}

/// [`connect_bounded`], connected by `until` (one budget for many).
fn connect_by(addr: SocketAddr, until: Instant) -> TcpStream {
    let left = until.saturating_duration_since(Instant::now());
    let s = TcpStream::connect_timeout(&addr, left.max(Duration::from_millis(1)))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// The descriptors `pid` has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
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

/// Fifty clients that connect and say nothing do not hold up a scrape: it
/// is answered while they are still connected (within the deadline of the
/// first of them). Then the deadline ends each of them with a FIN, and each
/// is counted.
fn silent_clients_do_not_delay_a_scrape(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_server, metrics) = serve(backend, dir.path());
    let opened = Instant::now();
    let until = opened + IO_TIMEOUT;
    let mut silent: Vec<TcpStream> = (0..50).map(|_| connect_by(metrics, until)).collect();
    scrape_raw(metrics);
    let took = opened.elapsed();
    assert!(
        took < DEADLINE,
        "a scrape behind 50 silent clients took {took:?}"
    );
    for s in &mut silent {
        assert_eq!(read_to_close(s), b"", "a silent client got an answer");
    }
    let all_cut = opened.elapsed();
    assert!(
        all_cut < Duration::from_secs(15),
        "the silent clients were cut one after another: the last at {all_cut:?}"
    );
    let page = scrape_raw(metrics);
    assert_eq!(sum(&page, "ringlet_metrics_timeouts_total", &[]), 50);
    assert_eq!(sum(&page, "ringlet_metrics_evictions_total", &[]), 0);
}

/// A client that sends its head a byte a second never finishes it: the
/// deadline is for the whole head, so it is cut after about the deadline
/// although it keeps sending, and scrapes are answered meanwhile.
fn a_dripping_client_is_cut_by_the_deadline(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_server, metrics) = serve(backend, dir.path());
    let (started_tx, started) = std::sync::mpsc::channel();
    let dripper = std::thread::spawn(move || {
        let mut s = connect_bounded(metrics);
        let since = Instant::now();
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let head = b"GET /metrics HTTP/1.1\r\nX-Slow: ";
        // Bounded: 40 bytes, about 40 s, far past any deadline.
        for i in 0..40 {
            if s.write_all(&[*head.get(i).unwrap_or(&b'a')]).is_err() {
                return Some(since.elapsed()); // the server reset it
            }
            if i == 1 {
                started_tx.send(()).unwrap();
            }
            let mut buf = [0u8; 1024];
            match std::io::Read::read(&mut s, &mut buf) {
                Ok(0) => return Some(since.elapsed()),
                Ok(n) => panic!("an answer to half a head: {:?}", &buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Some(since.elapsed()),
                Err(e) => panic!("dripping: {e}"),
            }
        }
        None
    });
    started
        .recv_timeout(Duration::from_secs(20))
        .expect("the dripper sent two bytes");
    for _ in 0..3 {
        scrape_raw(metrics);
    }
    assert!(
        !dripper.is_finished(),
        "the scrapes were answered only after the dripper was cut"
    );
    let cut = dripper
        .join()
        .unwrap()
        .expect("a dripping client was never cut");
    assert!(
        (DEADLINE - Duration::from_secs(1)..Duration::from_secs(15)).contains(&cut),
        "a dripping client was cut after {cut:?}, with a deadline of {DEADLINE:?}"
    );
    let page = scrape_raw(metrics);
    assert_eq!(sum(&page, "ringlet_metrics_timeouts_total", &[]), 1);
}

/// Past the cap, each new connection closes the oldest: the server's
/// descriptors stay bounded however many clients hold connections open, a
/// scrape still gets in at once, the shards serve on, and every flooding
/// client ends with a FIN (evicted, or cut by the deadline), each counted.
fn past_the_cap_the_oldest_is_closed(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (server, metrics) = serve(backend, dir.path());
    let before = open_fds(server.pid());
    let flood_size = 3 * CAP;
    let opened = Instant::now();
    let until = opened + IO_TIMEOUT;
    let mut flood: Vec<TcpStream> = (0..flood_size)
        .map(|_| connect_by(metrics, until))
        .collect();
    scrape_raw(metrics);
    let during = open_fds(server.pid());
    let took = opened.elapsed();
    assert!(took < DEADLINE, "a scrape behind a flood took {took:?}");
    assert!(
        during <= before + CAP + 8,
        "{during} descriptors open with {flood_size} clients connected, {before} before, a cap of {CAP}"
    );
    let mut echo = connect(server.echo());
    echo.write_all(b"still here\n").unwrap();
    assert_eq!(read_exact(&mut echo, 11), b"still here\n");
    // The oldest went first, long before the deadline could cut it.
    assert_eq!(read_to_close(&mut flood[0]), b"");
    for s in &mut flood[1..] {
        assert_eq!(read_to_close(s), b"", "a flooding client got an answer");
    }
    let page = scrape_raw(metrics);
    let evicted = sum(&page, "ringlet_metrics_evictions_total", &[]);
    let timed_out = sum(&page, "ringlet_metrics_timeouts_total", &[]);
    assert!(evicted > 0, "none evicted: {page}");
    assert_eq!(evicted + timed_out, flood_size as u64, "{page}");
}

/// One GET of `path` over a raw socket: the status line and the body.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = connect_bounded(addr);
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .unwrap();
    let raw = String::from_utf8(read_to_close(&mut s)).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// Health checks for a load balancer: `/live` while the process runs,
/// `/ready` 200 while every shard accepts and 503 from the moment a drain
/// begins (while a stream keeps the process up), so no new work is sent to
/// a process about to go.
fn ready_turns_503_when_the_drain_begins(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big"), vec![7u8; 64 << 20]).unwrap();
    let (server, metrics) = serve(backend, dir.path());
    assert_eq!(
        get(metrics, "/live"),
        ("HTTP/1.1 200 OK".into(), "alive\n".into())
    );
    assert_eq!(
        get(metrics, "/ready"),
        ("HTTP/1.1 200 OK".into(), "ready\n".into())
    );
    // A stream read slowly keeps the drain going.
    let mut stream = connect(server.file());
    stream.write_all(b"/big\0").unwrap();
    let mut first = [0u8; 1024];
    stream.read_exact(&mut first).unwrap();
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    server.wait_for_log(&["SIGTERM", "draining"]);
    assert_eq!(
        get(metrics, "/ready"),
        (
            "HTTP/1.1 503 Service Unavailable".into(),
            "not ready: draining\n".into()
        )
    );
    assert_eq!(get(metrics, "/live").0, "HTTP/1.1 200 OK");
}

on_both_backends!(
    ready_turns_503_when_the_drain_begins,
    a_scrape_matches_the_bench,
    file_requests_are_counted_by_outcome,
    silent_clients_do_not_delay_a_scrape,
    a_dripping_client_is_cut_by_the_deadline,
    past_the_cap_the_oldest_is_closed
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
