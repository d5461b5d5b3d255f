//! Live figures from every shard: connections, bytes, failures, heartbeats.
//!
//! Each shard owns one [`ShardStats`] and is its only writer, so updates are
//! plain relaxed load-and-store on a cache line of its own: no lock, no
//! contended atomic on the hot path. Readers (the STATUS= line, the watchdog)
//! see values that are at most a moment old. A shard also beats a heartbeat
//! from a timer task; a shard whose thread is stuck or dead stops beating.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a shard beats its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_millis(100);

/// One shard's counters. Written only by that shard's thread.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct ShardStats {
    accepted: AtomicU64,
    active: AtomicU64,
    failed: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Milliseconds since the server started, at the last beat.
    heartbeat_ms: AtomicU64,
    exited: AtomicBool,
}

/// Add to a counter that only this thread writes.
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

impl ShardStats {
    pub(crate) fn connection_opened(&self) {
        bump(&self.accepted, 1);
        bump(&self.active, 1);
    }

    pub(crate) fn connection_closed(&self, failed: bool) {
        bump(&self.active, u64::MAX); // wrapping -1
        if failed {
            bump(&self.failed, 1);
        }
    }

    pub(crate) fn received(&self, n: usize) {
        bump(&self.bytes_in, n as u64);
    }

    pub(crate) fn sent(&self, n: u64) {
        bump(&self.bytes_out, n);
    }

    pub(crate) fn beat(&self, since_start: Duration) {
        self.heartbeat_ms
            .store(since_start.as_millis() as u64, Ordering::Relaxed);
    }

    pub(crate) fn mark_exited(&self) {
        self.exited.store(true, Ordering::Relaxed);
    }
}

/// The sum over all shards at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub active: u64,
    pub accepted: u64,
    pub failed: u64,
    pub bytes_in: u64,
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

/// Reads every shard's figures. Cheap to clone; send it to any thread.
#[derive(Debug, Clone)]
pub struct Monitor {
    started: Instant,
    shards: Arc<[Arc<ShardStats>]>,
}

impl Monitor {
    pub(crate) fn new(shards: usize) -> Monitor {
        Monitor {
            started: Instant::now(),
            shards: (0..shards)
                .map(|_| Arc::new(ShardStats::default()))
                .collect(),
        }
    }

    pub(crate) fn shard(&self, id: usize) -> Arc<ShardStats> {
        self.shards[id].clone()
    }

    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// Totals over every shard now.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for shard in self.shards.iter() {
            let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
            s.active += get(&shard.active);
            s.accepted += get(&shard.accepted);
            s.failed += get(&shard.failed);
            s.bytes_in += get(&shard.bytes_in);
            s.bytes_out += get(&shard.bytes_out);
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
    fn sums_shards_and_spots_a_silent_one() {
        let m = Monitor::new(2);
        m.shard(0).connection_opened();
        m.shard(1).connection_opened();
        m.shard(1).connection_closed(true);
        m.shard(0).received(10);
        m.shard(0).sent(7);
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
}
