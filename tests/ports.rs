//! One owner per port, for every listener ringlet opens (echo, file, HTTP,
//! metrics; IPv4 and the IPv6 wildcard): a port anyone already listens on,
//! another ringlet included, stops the start with one clear line and exit
//! status 1, and the first owner keeps every client.

mod common;

use std::io::Write;
use std::net::TcpListener;

use common::{Ringlet, connect, read_exact, ringlet};

#[test]
fn a_port_in_use_is_reported_once_and_exits_nonzero() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = ringlet(&["serve", "--echo", &addr, "--file", "off"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot listen for echo on {addr}: address already in use"
        )),
        "{err}"
    );
    assert_eq!(
        err.matches("in use").count(),
        1,
        "the OS error twice:\n{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// A port nobody uses right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn two_services_on_one_address_are_refused() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let out = ringlet(&["serve", "--echo", &addr, "--file", &addr]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("echo and file both name {addr}")),
        "{err}"
    );
    // Overlapping addresses (the wildcard and loopback on one port) too.
    let any = format!("0.0.0.0:{port}");
    let out = ringlet(&["serve", "--echo", &any, "--file", &addr]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot listen for file on {addr}: address already in use"
        )),
        "{err}"
    );
}

#[test]
fn a_second_ringlet_on_a_served_port_is_refused_and_the_first_keeps_every_client() {
    for backend in ["uring", "epoll"] {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let first = Ringlet::serve(backend, &["--echo", &addr, "--file", "off"]);
        let out = ringlet(&[
            "serve",
            "--backend",
            backend,
            "--echo",
            &addr,
            "--file",
            "off",
        ]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{backend}: the second one started"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("address already in use"), "{err}");
        // Every connection still reaches the first.
        for i in 0..20 {
            let mut s = connect(first.echo());
            let line = format!("client {i}\n");
            s.write_all(line.as_bytes()).unwrap();
            assert_eq!(read_exact(&mut s, line.len()), line.as_bytes());
        }
    }
}

/// One GET with `Connection: close`: the whole answer, ended by a FIN.
fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = connect(addr);
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    String::from_utf8(common::read_to_close(&mut s)).unwrap()
}

/// The first ringlet still answers on its HTTP and metrics ports.
fn assert_serves(http: std::net::SocketAddr, metrics: std::net::SocketAddr) {
    let page = get(http, "/f");
    assert!(
        page.starts_with("HTTP/1.1 200 ") && page.ends_with("\r\n\r\nover http\n"),
        "{page:?}"
    );
    let page = get(metrics, "/metrics");
    assert!(
        page.starts_with("HTTP/1.1 200 ") && page.contains("\nringlet_info{"),
        "{page:?}"
    );
}

/// A second `ringlet serve` with `args` (on `backend`) refuses to start:
/// exit status 1, and an error line naming `service` and `addr`.
fn assert_refused(backend: &str, args: &[&str], service: &str, addr: &str) {
    let mut all = vec!["serve", "--backend", backend];
    all.extend_from_slice(args);
    let out = ringlet(&all);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{backend} {args:?} started:\n{err}"
    );
    let says = format!("cannot listen for {service} on {addr}: ");
    let line = err
        .lines()
        .find(|l| l.contains(&says))
        .unwrap_or_else(|| panic!("{backend} {args:?} does not say {says:?}:\n{err}"));
    assert!(
        line.to_ascii_lowercase().contains("in use"),
        "{backend} {args:?}: {line}"
    );
}

/// One owner per port holds for the HTTP and metrics listeners too: a
/// second ringlet naming a port that the first one's HTTP or metrics
/// listener holds, for any service or for its metrics, refuses to start,
/// and the first serves on.
#[test]
fn a_second_ringlet_on_a_served_http_or_metrics_port_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), "over http\n").unwrap();
    let root = dir.path().to_str().unwrap();
    for backend in ["uring", "epoll"] {
        let first = Ringlet::serve(
            backend,
            &[
                "--file",
                "off",
                "--http",
                "127.0.0.1:0",
                "--metrics",
                "127.0.0.1:0",
                "--root",
                root,
            ],
        );
        let (http, metrics) = (first.http(), first.metrics());
        let (h, m) = (http.to_string(), metrics.to_string());
        let off = ["--echo", "off", "--file", "off", "--root", root];
        for (args, service, addr) in [
            (vec!["--http", &h], "http", &h),
            (vec!["--http", &m], "http", &m),
            (vec!["--echo", &h], "echo", &h),
            (vec!["--echo", &m], "echo", &m),
            (
                vec!["--echo", "127.0.0.1:0", "--metrics", &m],
                "metrics",
                &m,
            ),
            (
                vec!["--echo", "127.0.0.1:0", "--metrics", &h],
                "metrics",
                &h,
            ),
        ] {
            let mut all = off.to_vec();
            all.extend_from_slice(&args);
            assert_refused(backend, &all, service, addr);
        }
        assert_serves(http, metrics);
    }
}

/// The wildcard `[::]:p` (dual-stack: IPv4 too) overlaps `127.0.0.1:p`:
/// whichever ringlet holds one, a second naming the other is refused, for
/// HTTP and for metrics.
#[test]
fn the_ipv6_wildcard_and_ipv4_loopback_on_one_port_are_one_owner() {
    let dual =
        std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").is_ok_and(|v| v.trim() == "0");
    if TcpListener::bind("[::]:0").is_err() || !dual {
        eprintln!("skipped: no dual-stack IPv6 wildcard here ([::] does not cover IPv4)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), "over http\n").unwrap();
    let root = dir.path().to_str().unwrap();
    for backend in ["uring", "epoll"] {
        // The first on the wildcard: loopback on its ports is taken.
        let first = Ringlet::serve(
            backend,
            &[
                "--file",
                "off",
                "--http",
                "[::]:0",
                "--metrics",
                "[::]:0",
                "--root",
                root,
            ],
        );
        let (http, metrics) = (first.http(), first.metrics());
        let h = format!("127.0.0.1:{}", http.port());
        let m = format!("127.0.0.1:{}", metrics.port());
        let off = ["--echo", "off", "--file", "off", "--root", root];
        assert_refused(backend, &[&off[..], &["--http", &h]].concat(), "http", &h);
        assert_refused(
            backend,
            &[&off[..], &["--echo", "127.0.0.1:0", "--metrics", &m]].concat(),
            "metrics",
            &m,
        );
        let loopback = |a: std::net::SocketAddr| -> std::net::SocketAddr {
            format!("127.0.0.1:{}", a.port()).parse().unwrap()
        };
        assert_serves(loopback(http), loopback(metrics));
        drop(first);

        // The first on loopback: the wildcard on its ports is taken.
        let (hp, mp) = (free_port(), free_port());
        let (h, m) = (format!("127.0.0.1:{hp}"), format!("127.0.0.1:{mp}"));
        let first = Ringlet::serve(
            backend,
            &[
                "--file",
                "off",
                "--http",
                &h,
                "--metrics",
                &m,
                "--root",
                root,
            ],
        );
        let (wh, wm) = (format!("[::]:{hp}"), format!("[::]:{mp}"));
        assert_refused(backend, &[&off[..], &["--http", &wh]].concat(), "http", &wh);
        assert_refused(
            backend,
            &[&off[..], &["--echo", "127.0.0.1:0", "--metrics", &wm]].concat(),
            "metrics",
            &wm,
        );
        assert_serves(first.http(), first.metrics());
    }
}
