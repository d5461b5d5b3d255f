//! `serve --metrics ADDR`: the shards' figures in the Prometheus/OpenMetrics
//! text format at `GET /metrics`.
//!
//! This file starts the endpoint and holds the collector: a scrape reads
//! the single-writer counters through [`Monitor::snapshot`] and never takes
//! a lock a shard could wait on. The format is `prometheus-client`'s
//! encoder, fed by a [`Collector`] that writes the process's own families
//! (info, uptime, generation, the access log's) here and the snapshot's in
//! `metrics/families.rs`. The HTTP side, on a thread of its own off the
//! shards, is `metrics/http.rs`.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use anyhow::Context as _;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use ringlet::{Backend, Monitor};

mod families;
mod http;
#[cfg(test)]
mod tests;

pub use http::Ready;
use http::{Pages, Stats};

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

/// Turns a [`ringlet::Snapshot`] into metric families at every scrape.
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
        let mut counters = Vec::new();
        if let Some(log) = &self.access {
            counters.extend([
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
            ]);
        }
        let cache = ringlet::open_file_cache_stats();
        counters.extend([
            (
                "ringlet_open_file_cache_hits",
                "File and HTTP requests answered from a descriptor the open-file cache kept.",
                cache.hits,
            ),
            (
                "ringlet_open_file_cache_misses",
                "File and HTTP requests the open-file cache did not hold (the file was opened).",
                cache.misses,
            ),
            (
                "ringlet_open_file_cache_invalidations",
                "Open-file cache entries dropped because the file or a directory on its path changed.",
                cache.invalidations,
            ),
        ]);
        for (name, help, n) in counters {
            ConstCounter::new(n).encode(enc.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }
        ConstGauge::new(cache.entries).encode(enc.encode_descriptor(
            "ringlet_open_file_cache_entries",
            "Files the open-file cache holds open now, over every core.",
            None,
            MetricType::Gauge,
        )?)?;
        families::services(&mut enc, &snap)?;
        families::endpoint(&mut enc, &self.endpoint)?;
        if self.backend.has_ring() {
            families::rings(&mut enc, &snap)?;
        }
        Ok(())
    }
}
