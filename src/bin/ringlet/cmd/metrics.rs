//! `serve --metrics ADDR`: the shards' figures in the Prometheus/OpenMetrics
//! text format at `GET /metrics`.
//!
//! This file holds the collector: a scrape reads the
//! single-writer counters through [`Monitor::snapshot`] and never takes a
//! lock a shard could wait on. The format is `prometheus-client`'s encoder,
//! fed by a [`Collector`] that turns one snapshot (and the endpoint's own
//! figures) into metric families. The HTTP side, on a thread of its own off
//! the shards, is [`http`] (this module's child, `metrics/http.rs`).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use ringlet::{Backend, Monitor, Snapshot};

mod http;

pub use http::Ready;
use http::{DEADLINE, MAX_CONNS, Pages, Stats};

/// Answer scrapes and health checks on `listener` (bound by `serve`, or
/// handed over by an upgrade) from a thread of their own; `ready` says
/// whether the server takes new connections (`/ready`). Returns its address.
pub fn start_on(
    listener: TcpListener,
    monitor: Monitor,
    backend: Backend,
    ready: Ready,
    access: Option<ringlet::access::AccessLog>,
) -> anyhow::Result<SocketAddr> {
    let local = listener.local_addr()?;
    let endpoint = Arc::new(Stats::default());
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Figures {
        monitor,
        backend,
        endpoint: endpoint.clone(),
        generation: super::upgrade::generation(),
        access,
    }));
    let render = Arc::new(move || -> io::Result<String> {
        let mut page = String::new();
        prometheus_client::encoding::text::encode(&mut page, &registry)
            .map_err(io::Error::other)?;
        Ok(page)
    });
    http::spawn(listener, Pages { render, ready }, endpoint)
        .context("starting the metrics thread")?;
    Ok(local)
}

/// Turns a [`Snapshot`] into metric families at every scrape.
struct Figures {
    monitor: Monitor,
    backend: Backend,
    endpoint: Arc<Stats>,
    /// Which process this is in a line of upgrades in place (1: the first).
    generation: u64,
    /// The access log, if on: its lines written and dropped.
    access: Option<ringlet::access::AccessLog>,
}

impl std::fmt::Debug for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Figures")
            .field("backend", &self.backend)
            .field("generation", &self.generation)
            .field("access_log", &self.access.is_some())
            .finish_non_exhaustive()
    }
}

impl Collector for Figures {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = self.monitor.snapshot();
        let info = [
            ("backend", self.backend.name()),
            ("version", env!("CARGO_PKG_VERSION")),
        ];
        let mut m = enc.encode_descriptor(
            "ringlet_info",
            "The running server: its backend and version (always 1).",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1i64).encode(m.encode_family(&info)?)?;
        ConstGauge::new(snap.uptime.as_secs_f64()).encode(enc.encode_descriptor(
            "ringlet_uptime_seconds",
            "Seconds since the server started.",
            None,
            MetricType::Gauge,
        )?)?;
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |now| (now.saturating_sub(snap.uptime)).as_secs_f64());
        ConstGauge::new(started).encode(enc.encode_descriptor(
            "ringlet_start_time_seconds",
            "When this process started serving, in seconds since the Unix epoch.",
            None,
            MetricType::Gauge,
        )?)?;
        ConstGauge::new(self.generation as i64).encode(enc.encode_descriptor(
            "ringlet_generation",
            "Which process this is in a line of upgrades in place (SIGHUP): 1 for the first.",
            None,
            MetricType::Gauge,
        )?)?;
        if let Some(log) = &self.access {
            for (name, help, n) in [
                (
                    "ringlet_access_log_written",
                    "Access log lines written.",
                    log.written(),
                ),
                (
                    "ringlet_access_log_dropped",
                    "Access log lines dropped because the disk could not keep up.",
                    log.dropped(),
                ),
            ] {
                ConstCounter::new(n).encode(enc.encode_descriptor(
                    name,
                    help,
                    None,
                    MetricType::Counter,
                )?)?;
            }
        }
        services(&mut enc, &snap)?;
        endpoint(&mut enc, &self.endpoint)?;
        if self.backend.has_ring() {
            rings(&mut enc, &snap)?;
        }
        Ok(())
    }
}

/// The metrics endpoint's own figures: connections it closed early.
fn endpoint(enc: &mut DescriptorEncoder, stats: &Stats) -> Result<(), std::fmt::Error> {
    let evicted = format!(
        "Metrics connections closed to take a new one: {MAX_CONNS} were open (the cap), the oldest went."
    );
    let timed_out = format!(
        "Metrics connections closed without an answer: no whole request and answer within {}s.",
        DEADLINE.as_secs()
    );
    for (name, help, v) in [
        ("ringlet_metrics_evictions", evicted, &stats.evicted),
        ("ringlet_metrics_timeouts", timed_out, &stats.timed_out),
    ] {
        ConstCounter::new(v.load(Ordering::Relaxed)).encode(enc.encode_descriptor(
            name,
            &help,
            None,
            MetricType::Counter,
        )?)?;
    }
    Ok(())
}

type Labels = Vec<(&'static str, String)>;

/// One family: `value` of every (shard, service) pair, plus `extra` labels.
fn per_service(
    enc: &mut DescriptorEncoder,
    snap: &Snapshot,
    name: &str,
    help: &str,
    kind: MetricType,
    series: impl Fn(&ringlet::ServiceFigures) -> Vec<(Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for shard in &snap.shards {
        for svc in &shard.services {
            for (extra, v) in series(svc) {
                let mut labels: Labels = vec![
                    ("shard", shard.shard.to_string()),
                    ("service", svc.service.clone()),
                ];
                labels.extend(extra);
                sample(m.encode_family(&labels)?, kind, v)?;
            }
        }
    }
    Ok(())
}

/// One sample `v` of a counter or gauge family.
fn sample(f: MetricEncoder<'_>, kind: MetricType, v: u64) -> Result<(), std::fmt::Error> {
    match kind {
        MetricType::Counter => ConstCounter::new(v).encode(f),
        _ => ConstGauge::new(v as i64).encode(f),
    }
}

fn services(enc: &mut DescriptorEncoder, snap: &Snapshot) -> Result<(), std::fmt::Error> {
    use MetricType::{Counter, Gauge};
    type Pick = fn(&ringlet::ServiceFigures) -> u64;
    let plain: [(&str, &str, MetricType, Pick); 8] = [
        (
            "ringlet_connections_accepted",
            "Connections accepted.",
            Counter,
            |s| s.accepted,
        ),
        (
            "ringlet_connections_open",
            "Connections open now.",
            Gauge,
            |s| s.open,
        ),
        (
            "ringlet_connections_failed",
            "Connections that ended with an error or a panic: the client got a reset.",
            Counter,
            |s| s.failed,
        ),
        (
            "ringlet_received_bytes",
            "Bytes received from clients.",
            Counter,
            |s| s.bytes_in,
        ),
        (
            "ringlet_sent_bytes",
            "Bytes sent to clients.",
            Counter,
            |s| s.bytes_out,
        ),
        (
            "ringlet_cap_waits",
            "Times the shard was at --max-conns and the next connection waited in the backlog.",
            Counter,
            |s| s.cap_waits,
        ),
        (
            "ringlet_accept_backoffs",
            "Times accepting paused: out of descriptors or memory.",
            Counter,
            |s| s.accept_backoffs,
        ),
        (
            "ringlet_panics",
            "Connection handlers that panicked; each ended alone.",
            Counter,
            |s| s.panics,
        ),
    ];
    for (name, help, kind, pick) in plain {
        per_service(enc, snap, name, help, kind, |s| vec![(Vec::new(), pick(s))])?;
    }
    per_service(
        enc,
        snap,
        "ringlet_timeouts",
        "Time limits hit, by kind: idle, request (a request too slow to arrive), write (a client that stopped reading).",
        Counter,
        |s| {
            s.timeouts
                .iter()
                .map(|(kind, v)| (vec![("kind", kind.to_string())], *v))
                .collect()
        },
    )?;
    per_service(
        enc,
        snap,
        "ringlet_requests",
        "Requests by outcome, for protocols that count them (the file and HTTP servers; echo has lines, not requests).",
        Counter,
        |s| {
            s.outcomes
                .iter()
                .map(|(o, v)| (vec![("outcome", o.label().to_string())], *v))
                .collect()
        },
    )
}

fn rings(enc: &mut DescriptorEncoder, snap: &Snapshot) -> Result<(), std::fmt::Error> {
    use MetricType::{Counter, Gauge};
    type Pick = fn(&ringlet::RingFigures) -> u64;
    let ring: [(&str, &str, MetricType, Pick); 6] = [
        (
            "ringlet_ring_enters",
            "io_uring_enter calls on the shard's ring.",
            Counter,
            |r| r.enters,
        ),
        (
            "ringlet_ring_completions",
            "Completions reaped.",
            Counter,
            |r| r.completions,
        ),
        (
            "ringlet_ring_buffers_exhausted",
            "Receives that found every provided buffer in use (they wait for one).",
            Counter,
            |r| r.no_buffers,
        ),
        (
            "ringlet_ring_cq_overflows",
            "Times the completion queue overflowed (the kernel kept the completions).",
            Counter,
            |r| r.cq_overflows,
        ),
        (
            "ringlet_ring_in_flight",
            "Operations in flight.",
            Gauge,
            |r| r.in_flight,
        ),
        (
            "ringlet_ring_pipes",
            "Pipes held for splicing files.",
            Gauge,
            |r| r.pipes,
        ),
    ];
    for (name, help, kind, pick) in ring {
        let mut m = enc.encode_descriptor(name, help, None, kind)?;
        for shard in &snap.shards {
            let labels = [("shard", shard.shard.to_string())];
            sample(m.encode_family(&labels)?, kind, pick(&shard.ring))?;
        }
    }
    Ok(())
}

/// `ringlet_panics_total` counts: the binary has no way to make a
/// connection panic (its protocols do not, and the only fault injection,
/// `Server::inject_shard_panic`, kills a shard outside any connection), so
/// this runs the real endpoint on a library server whose protocol panics on
/// request, and scrapes it over a real socket.
#[cfg(test)]
mod tests {
    use std::io::{self, Read as _, Write as _};
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    use ringlet::{Backend, Buf, Connection, Protocol, Server};

    /// Reads one message: `boom` panics, `fail` is an error, else a clean end.
    struct Touchy;

    impl Protocol for Touchy {
        async fn serve<C: Connection>(&self, conn: &mut C) -> io::Result<()> {
            let (n, buf) = conn.read(Buf::with_capacity(64)).await;
            n?;
            match buf.filled() {
                b"boom" => panic!("boom requested"),
                b"fail" => Err(io::Error::other("fail requested")),
                _ => Ok(()),
            }
        }
    }

    /// Send `msg` and wait (bounded) for the server to end the connection.
    fn send(addr: SocketAddr, msg: &[u8]) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(msg).unwrap();
        let mut sink = Vec::new();
        match s.read_to_end(&mut sink) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("{msg:?}: {e}"),
        }
    }

    /// `ringlet_{name}_total` of the `touchy` service, from a whole scrape.
    fn figure(metrics: SocketAddr, name: &str) -> u64 {
        let mut s = TcpStream::connect(metrics).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        let mut page = String::new();
        s.read_to_string(&mut page)
            .expect("a whole scrape, no reset");
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n") && page.ends_with("# EOF\n"));
        let series = format!("ringlet_{name}_total{{shard=\"0\",service=\"touchy\"}} ");
        page.lines()
            .find_map(|l| l.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series:?} in {page}"))
            .parse()
            .unwrap()
    }

    /// Wait (bounded) until `name` reads `want`.
    fn wait_for(metrics: SocketAddr, name: &str, want: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = figure(metrics, name);
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "{name}: {got}, never {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn panics_are_counted(backend: Backend) {
        let server = Server::builder()
            .backend(backend)
            .cores(Some(1))
            .service("touchy", "127.0.0.1:0".parse().unwrap(), Touchy)
            .start()
            .expect("start");
        let addr = server.local_addr("touchy").unwrap();
        let metrics = super::start_on(
            std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
            server.monitor(),
            server.backend(),
            std::sync::Arc::new(|| Ok(())),
            None,
        )
        .unwrap();
        send(addr, b"hello");
        wait_for(metrics, "connections_accepted", 1);
        assert_eq!(figure(metrics, "panics"), 0);
        send(addr, b"boom");
        wait_for(metrics, "panics", 1);
        // An error is a failure but not a panic; every panic is a failure.
        send(addr, b"fail");
        send(addr, b"boom");
        wait_for(metrics, "connections_accepted", 4);
        wait_for(metrics, "panics", 2);
        wait_for(metrics, "connections_failed", 3);
        server.stop().expect("a clean stop after handled panics");
    }

    #[test]
    fn panics_are_counted_on_uring() {
        panics_are_counted(Backend::Uring);
    }

    #[test]
    fn panics_are_counted_on_epoll() {
        panics_are_counted(Backend::Epoll);
    }
}
