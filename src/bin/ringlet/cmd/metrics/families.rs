//! The metric families of one scrape: a [`Snapshot`]'s figures per
//! service and per ring, and the endpoint's own, written through
//! `prometheus-client`'s encoder. Reads what it is given; nothing here
//! takes a lock or touches a socket.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use ringlet::Snapshot;

use super::http::{DEADLINE, MAX_CONNS, Stats};

/// The metrics endpoint's own figures: connections it closed early.
pub fn endpoint(enc: &mut DescriptorEncoder, stats: &Stats) -> Result<(), std::fmt::Error> {
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

pub fn services(enc: &mut DescriptorEncoder, snap: &Snapshot) -> Result<(), std::fmt::Error> {
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

pub fn rings(enc: &mut DescriptorEncoder, snap: &Snapshot) -> Result<(), std::fmt::Error> {
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
