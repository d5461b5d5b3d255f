//! Live figures from every shard: connections, bytes, failures, ring
//! activity, heartbeats.
//!
//! Each shard owns its [`ShardStats`] (one [`ServiceStats`] per service) and
//! is their only writer, so updates are plain relaxed load-and-store on
//! cache lines of their own: no lock, no contended atomic on the hot path.
//! Readers (the STATUS= line, the watchdog, the metrics endpoint through
//! [`Monitor::snapshot`], tests) see values that are at most a moment old. A shard also beats a heartbeat from a timer task; a
//! shard whose thread is stuck or dead stops beating.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::io::{Outcome, TimeoutKind};

/// How often a shard beats its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_millis(100);

/// A counter that only one thread writes.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One service's figures on one shard. Written only by that shard's thread.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct ServiceStats {
    pub accepted: Counter,
    pub active: Counter,
    pub failed: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    /// Times an accept loop found the shard at `--max-conns` and waited.
    pub cap_waits: Counter,
    /// Accept failures that made the loop pause (out of descriptors, memory).
    pub accept_backoffs: Counter,
    pub panics: Counter,
    /// By [`TimeoutKind::index`].
    pub timeouts: [Counter; 3],
    /// Requests by [`Outcome::index`].
    pub outcomes: [Counter; Outcome::ALL.len()],
}

impl ServiceStats {
    pub(crate) fn connection_opened(&self) {
        self.accepted.add(1);
        self.active.add(1);
    }

    pub(crate) fn connection_closed(&self, failed: bool) {
        self.active.add(u64::MAX); // wrapping -1
        if failed {
            self.failed.add(1);
        }
    }

    pub(crate) fn timed_out(&self, kind: TimeoutKind) {
        self.timeouts[kind.index()].add(1);
    }

    fn figures(&self, name: &str) -> ServiceFigures {
        ServiceFigures {
            service: name.to_string(),
            accepted: self.accepted.get(),
            open: self.active.get(),
            failed: self.failed.get(),
            bytes_in: self.bytes_in.get(),
            bytes_out: self.bytes_out.get(),
            cap_waits: self.cap_waits.get(),
            accept_backoffs: self.accept_backoffs.get(),
            panics: self.panics.get(),
            timeouts: std::array::from_fn(|i| (TimeoutKind::LABELS[i], self.timeouts[i].get())),
            outcomes: std::array::from_fn(|i| (Outcome::ALL[i], self.outcomes[i].get())),
        }
    }
}

/// The ring's figures on one shard (uring backend), copied from the ring
/// by the shard's heartbeat.
#[derive(Debug, Default)]
pub(crate) struct RingCounters {
    pub enters: Counter,
    pub completions: Counter,
    pub no_buffers: Counter,
    pub cq_overflows: Counter,
    /// Operations in flight now (abandoned ones too).
    pub in_flight: Counter,
    /// Pipes the shard holds for splicing (in use or kept for reuse).
    pub pipes: Counter,
}

impl RingCounters {
    /// Store the backend's figures, as read now.
    pub(crate) fn publish(&self, f: RingFigures) {
        self.enters.set(f.enters);
        self.completions.set(f.completions);
        self.no_buffers.set(f.no_buffers);
        self.cq_overflows.set(f.cq_overflows);
        self.in_flight.set(f.in_flight);
        self.pipes.set(f.pipes);
    }
}

/// One shard's figures. Written only by that shard's thread.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct ShardStats {
    /// Milliseconds since the server started, at the last beat.
    heartbeat_ms: AtomicU64,
    exited: AtomicBool,
    pub ring: RingCounters,
    /// One per service, in the order the services were added.
    pub services: Box<[Arc<ServiceStats>]>,
}

impl ShardStats {
    pub(crate) fn beat(&self, since_start: Duration) {
        self.heartbeat_ms
            .store(since_start.as_millis() as u64, Ordering::Relaxed);
    }

    pub(crate) fn mark_exited(&self) {
        self.exited.store(true, Ordering::Relaxed);
    }
}

/// The sum over all shards and services at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Connections open now.
    pub active: u64,
    /// Connections accepted since the start.
    pub accepted: u64,
    /// Connections that ended with an error or a panic (a reset) since the start.
    pub failed: u64,
    /// Bytes received from clients since the start.
    pub bytes_in: u64,
    /// Bytes sent to clients since the start.
    pub bytes_out: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connections ({} since start, {} failed), {} bytes in, {} bytes out",
            self.active, self.accepted, self.failed, self.bytes_in, self.bytes_out
        )
    }
}

/// One service on one shard, as read by [`Monitor::snapshot`]. Counters
/// only grow; `open` is a gauge.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceFigures {
    /// The service's name (`echo`, `file`).
    pub service: String,
    /// Connections accepted since the start.
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
    /// Connections that ended with an error or a panic (a reset).
    pub failed: u64,
    /// Bytes received from clients.
    pub bytes_in: u64,
    /// Bytes sent to clients (file bytes included).
    pub bytes_out: u64,
    /// Times the shard was at `--max-conns` and the next connection waited.
    pub cap_waits: u64,
    /// Times accepting paused after running out of descriptors or memory.
    pub accept_backoffs: u64,
    /// Connection handlers that panicked (each ended alone).
    pub panics: u64,
    /// Time limits hit, by kind: `idle`, `request`, `write`.
    pub timeouts: [(&'static str, u64); 3],
    /// Requests by outcome (protocols that record them: the file server).
    pub outcomes: [(Outcome, u64); Outcome::ALL.len()],
}

pub use crate::backend::RingFigures;

/// One shard's figures, as read by [`Monitor::snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardFigures {
    /// The shard's number (0..).
    pub shard: usize,
    /// Its ring, as of its last heartbeat.
    pub ring: RingFigures,
    /// One per service, in the order they were added.
    pub services: Vec<ServiceFigures>,
}

/// Every figure of every shard at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Snapshot {
    /// Since the server started.
    pub uptime: Duration,
    /// Each shard's figures, by shard index.
    pub shards: Vec<ShardFigures>,
}

/// Reads every shard's figures. Cheap to clone; send it to any thread.
#[derive(Debug, Clone)]
pub struct Monitor {
    started: Instant,
    names: Arc<[String]>,
    shards: Arc<[Arc<ShardStats>]>,
}

impl Monitor {
    /// Figures for `shards` shards, each serving the services `names`.
    pub(crate) fn new(shards: usize, names: Vec<String>) -> Monitor {
        Monitor {
            started: Instant::now(),
            shards: (0..shards)
                .map(|_| {
                    Arc::new(ShardStats {
                        services: names.iter().map(|_| Arc::default()).collect(),
                        ..ShardStats::default()
                    })
                })
                .collect(),
            names: names.into(),
        }
    }

    /// Every shard's figures now, per service.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            uptime: self.started.elapsed(),
            shards: self
                .shards
                .iter()
                .enumerate()
                .map(|(shard, s)| ShardFigures {
                    shard,
                    ring: RingFigures {
                        enters: s.ring.enters.get(),
                        completions: s.ring.completions.get(),
                        no_buffers: s.ring.no_buffers.get(),
                        cq_overflows: s.ring.cq_overflows.get(),
                        in_flight: s.ring.in_flight.get(),
                        pipes: s.ring.pipes.get(),
                    },
                    services: s
                        .services
                        .iter()
                        .zip(self.names.iter())
                        .map(|(svc, name)| svc.figures(name))
                        .collect(),
                })
                .collect(),
        }
    }

    pub(crate) fn shard(&self, id: usize) -> Arc<ShardStats> {
        self.shards[id].clone()
    }

    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// Totals over every shard and service now.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for svc in self.shards.iter().flat_map(|sh| sh.services.iter()) {
            s.active += svc.active.get();
            s.accepted += svc.accepted.get();
            s.failed += svc.failed.get();
            s.bytes_in += svc.bytes_in.get();
            s.bytes_out += svc.bytes_out.get();
        }
        s
    }

    /// The first shard that is dead or has not beaten within `max_age`.
    pub fn stalled(&self, max_age: Duration) -> Option<usize> {
        let now = self.started.elapsed().as_millis() as u64;
        self.shards.iter().position(|s| {
            s.exited.load(Ordering::Relaxed)
                || now.saturating_sub(s.heartbeat_ms.load(Ordering::Relaxed))
                    > max_age.as_millis() as u64
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_shards_and_services_and_spots_a_silent_shard() {
        let m = Monitor::new(2, vec!["a".into(), "b".into()]);
        m.shard(0).services[0].connection_opened();
        m.shard(1).services[1].connection_opened();
        m.shard(1).services[1].connection_closed(true);
        m.shard(0).services[1].bytes_in.add(10);
        m.shard(0).services[0].bytes_out.add(7);
        let s = m.summary();
        assert_eq!(
            (s.active, s.accepted, s.failed, s.bytes_in, s.bytes_out),
            (1, 2, 1, 10, 7)
        );
        std::thread::sleep(Duration::from_millis(30));
        m.shard(0).beat(m.started.elapsed());
        assert_eq!(m.stalled(Duration::from_millis(20)), Some(1));
        m.shard(1).beat(m.started.elapsed());
        assert_eq!(m.stalled(Duration::from_millis(20)), None);
        m.shard(1).mark_exited();
        assert_eq!(m.stalled(Duration::from_secs(10)), Some(1));
    }

    #[test]
    fn a_snapshot_names_every_shard_and_service() {
        let m = Monitor::new(2, vec!["echo".into(), "file".into()]);
        m.shard(1).services[1].outcomes[Outcome::NotFound.index()].add(3);
        m.shard(1).services[1].timed_out(TimeoutKind::Write(Duration::ZERO));
        m.shard(0).ring.enters.set(9);
        let s = m.snapshot();
        assert_eq!(s.shards.len(), 2);
        assert_eq!(s.shards[0].ring.enters, 9);
        let file = &s.shards[1].services[1];
        assert_eq!(file.service, "file");
        assert_eq!(
            file.outcomes[Outcome::NotFound.index()],
            (Outcome::NotFound, 3)
        );
        assert_eq!(file.timeouts, [("idle", 0), ("request", 0), ("write", 1)]);
        assert_eq!(s.shards[0].services[0].service, "echo");
    }
}
