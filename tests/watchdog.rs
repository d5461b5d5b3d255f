//! The watchdog is fed only while every shard turns: a shard whose thread is
//! stuck, or dead, stops the pings (so systemd restarts the service), and
//! pings resume when it turns again. One test in this binary: it sets the
//! process environment the notifier reads.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use ringlet::systemd::Notifier;
use ringlet::{Backend, Buf, Connection, Protocol, Server};

/// Blocks its shard's thread for 2.5 s on `stall`, as a buggy handler would.
struct Staller;

impl Protocol for Staller {
    async fn serve<C: Connection>(&self, conn: &mut C) -> io::Result<()> {
        let (n, buf) = conn.read(Buf::with_capacity(64)).await;
        if n? > 0 && buf.filled().starts_with(b"stall") {
            std::thread::sleep(Duration::from_millis(2500));
        }
        conn.write_all(buf).await.0
    }
}

/// Wait (up to 10 s) for `n` WATCHDOG=1 datagrams; true if they came.
fn pings_arrive(sock: &UnixDatagram, n: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = 0;
    let mut buf = [0u8; 1024];
    while seen < n && Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if let Ok(k) = sock.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..k]).contains("WATCHDOG=1")
        {
            seen += 1;
        }
    }
    seen >= n
}

/// Arrival times of WATCHDOG=1 datagrams over `span`.
fn pings(sock: &UnixDatagram, span: Duration) -> Vec<Instant> {
    let deadline = Instant::now() + span;
    let mut at = Vec::new();
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1")
        {
            at.push(Instant::now());
        }
    }
    at
}

/// While every shard turns, pings come at half the watchdog interval
/// (200 ms of 400): the median gap over ten pings, bounded generously both
/// ways (a loaded machine delays some; none but a broken cadence moves the
/// median to the interval itself, or to a flood).
fn assert_cadence(sock: &UnixDatagram, backend: Backend) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut at = Vec::new();
    let mut buf = [0u8; 1024];
    while at.len() < 11 && Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1")
        {
            at.push(Instant::now());
        }
    }
    assert_eq!(at.len(), 11, "{backend:?}: pings stopped while serving");
    let mut gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    assert!(
        median >= Duration::from_millis(140) && median <= Duration::from_millis(320),
        "{backend:?}: pings every {median:?} (gaps {gaps:?}); half of WATCHDOG_USEC is 200 ms"
    );
}

fn longest_gap(start: Instant, at: &[Instant], end: Instant) -> Duration {
    let mut points = vec![start];
    points.extend_from_slice(at);
    points.push(end);
    points.windows(2).map(|w| w[1] - w[0]).max().unwrap()
}

#[test]
fn watchdog_pings_stop_while_a_shard_is_stalled_or_dead() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    // SAFETY: the only test in this binary, before any thread of ours reads
    // the environment.
    unsafe {
        std::env::set_var("NOTIFY_SOCKET", &path);
        std::env::set_var("WATCHDOG_USEC", "400000"); // ping every 200 ms
    }
    for backend in [Backend::Uring, Backend::Epoll] {
        let server = Server::builder()
            .backend(backend)
            .cores(Some(1))
            .service("stall", "127.0.0.1:0".parse().unwrap(), Staller)
            .start()
            .unwrap();
        let addr = server.local_addr("stall").unwrap();
        let _notifier = Notifier::start(server.monitor());
        assert!(pings_arrive(&sock, 3), "{backend:?}: no steady pings");
        assert_cadence(&sock, backend);

        // Stall the only shard for 2.5 s.
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"stall").unwrap();
        let start = Instant::now();
        let during = pings(&sock, Duration::from_millis(2300));
        let gap = longest_gap(start, &during, Instant::now());
        assert!(
            gap >= Duration::from_millis(1500),
            "{backend:?}: pings went on through a stall (gap {gap:?})"
        );
        let mut echo = [0u8; 5];
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.read_exact(&mut echo).unwrap();
        assert!(pings_arrive(&sock, 2), "{backend:?}: pings did not resume");

        // A dead shard: no pings at all (a loaded machine only delays pings,
        // so their absence over a while proves it).
        // (The fault injection exists with the `internals` feature only:
        // `.ci/run` runs this file with it.)
        #[cfg(feature = "internals")]
        {
            server.inject_shard_panic(0);
            assert!(server.wait().is_err());
            assert!(
                pings(&sock, Duration::from_millis(1200)).is_empty(),
                "{backend:?}: pings for a dead shard"
            );
        }
        #[cfg(not(feature = "internals"))]
        server.stop().unwrap();
    }
}
