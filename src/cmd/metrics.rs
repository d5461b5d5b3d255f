//! `serve --metrics ADDR`: the shards' figures in the Prometheus/OpenMetrics
//! text format at `GET /metrics`.
//!
//! Answered by one thread of its own, off the shards: a scrape reads the
//! single-writer counters through [`Monitor::snapshot`] and never takes a
//! lock a shard could wait on. The HTTP side is the least a scraper needs:
//! one request per connection (parsed by `httparse`), `GET` or `HEAD`
//! of `/metrics`, then close; a client that sends nothing for a few seconds is
//! dropped. The format is `prometheus-client`'s encoder, fed by a
//! [`Collector`] that turns one snapshot into metric families.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::Context as _;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use ringlet::{Monitor, Snapshot};
use tracing::debug;

/// How long a scraper may take to send its request and read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest request head accepted.
const MAX_HEAD: usize = 8 * 1024;
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Bind `addr` and answer scrapes from a thread of their own. Returns the
/// bound address (port 0 picks one).
pub fn start(
    addr: SocketAddr,
    monitor: Monitor,
    backend: &'static str,
) -> anyhow::Result<SocketAddr> {
    let listener =
        TcpListener::bind(addr).with_context(|| format!("cannot listen for metrics on {addr}"))?;
    let local = listener.local_addr()?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Figures { monitor, backend }));
    std::thread::Builder::new()
        .name("ringlet-metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(s) => {
                        if let Err(e) = answer(s, &registry) {
                            debug!("metrics: a scrape failed: {e}");
                        }
                    }
                    // Out of descriptors, say: the shards matter more; try later.
                    Err(e) => {
                        debug!("metrics: accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
        .context("starting the metrics thread")?;
    Ok(local)
}

/// Read one request head and answer it.
fn answer(mut s: TcpStream, registry: &Registry) -> io::Result<()> {
    s.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    s.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut head = vec![0u8; MAX_HEAD];
    let mut filled = 0;
    let (method, path) = loop {
        if filled == head.len() {
            return respond(&mut s, "431 Request Header Fields Too Large", "", None);
        }
        let n = s.read(&mut head[filled..])?;
        if n == 0 {
            return Ok(()); // gone before a whole request
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&head[..filled]) {
            Ok(httparse::Status::Complete(_)) => {
                break (
                    req.method.unwrap_or("").to_string(),
                    req.path.unwrap_or("").to_string(),
                );
            }
            Ok(httparse::Status::Partial) => continue,
            Err(e) => return respond(&mut s, "400 Bad Request", &format!("{e}\n"), None),
        }
    };
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(&mut s, "405 Method Not Allowed", "GET or HEAD\n", None);
    }
    // A scraper may add a query string (`?name[]=…`); every figure is sent.
    if path.split('?').next() != Some("/metrics") {
        return respond(&mut s, "404 Not Found", "try /metrics\n", None);
    }
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, registry).map_err(io::Error::other)?;
    let body = if head_only {
        (String::new(), Some(body.len()))
    } else {
        (body, None)
    };
    respond(&mut s, "200 OK", &body.0, body.1)
}

/// Write a whole response and close. `length` overrides the body's own
/// (a HEAD answer).
fn respond(s: &mut TcpStream, status: &str, body: &str, length: Option<usize>) -> io::Result<()> {
    let kind = if status.starts_with("200") {
        CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n",
        length.unwrap_or(body.len())
    );
    if status.starts_with("405") {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.push_str(body);
    s.write_all(out.as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    // Let the client read the answer before the close (no reset for input
    // it sent after its head).
    let _ = io::copy(&mut s.take(MAX_HEAD as u64), &mut io::sink());
    Ok(())
}

/// Turns a [`Snapshot`] into metric families at every scrape.
#[derive(Debug)]
struct Figures {
    monitor: Monitor,
    backend: &'static str,
}

impl Collector for Figures {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = self.monitor.snapshot();
        let info = [
            ("backend", self.backend),
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
        services(&mut enc, &snap)?;
        if self.backend == "uring" {
            rings(&mut enc, &snap)?;
        }
        Ok(())
    }
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
