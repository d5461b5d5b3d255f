//! Locked-memory sizing for glommio shards.
//!
//! glommio registers I/O buffers (10 MiB per executor by default) that
//! silently fail when RLIMIT_MEMLOCK is too small. Before any executor is
//! built, this raises the soft limit where allowed and otherwise sizes each
//! shard's buffers to fit. It never changes a limit without a log line.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tracing::{info, warn};

/// glommio's default registered-buffer size per executor.
pub const IO_MEMORY_DEFAULT: usize = 10 << 20;
/// Below this per executor, registered buffers are not worth having.
pub const IO_MEMORY_MIN: usize = 512 << 10;

/// Registered-buffer bytes to give each of `shards` executors.
///
/// Raises the soft RLIMIT_MEMLOCK toward what the shards want when the hard
/// limit allows, then splits what there is. Logs what it did.
pub fn io_memory_per_shard(shards: usize) -> usize {
    let want = (IO_MEMORY_DEFAULT * shards) as u64;
    let mut limit = getrlimit(Resource::Memlock);
    let current = limit.current.unwrap_or(u64::MAX);
    if current < want {
        // Ask for everything first (root may raise the hard limit), then for
        // what the hard limit allows.
        let max = limit.maximum.unwrap_or(u64::MAX);
        let attempts = [
            Rlimit {
                current: Some(want),
                maximum: Some(max.max(want)),
            },
            Rlimit {
                current: Some(want.min(max)),
                maximum: limit.maximum,
            },
        ];
        if let Some(got) = attempts
            .into_iter()
            .find(|r| setrlimit(Resource::Memlock, *r).is_ok())
        {
            let got = got.current.unwrap_or(u64::MAX);
            if got > current {
                info!(
                    "raised RLIMIT_MEMLOCK from {} to {} KiB for {shards} shards",
                    current >> 10,
                    got >> 10
                );
            }
        }
        limit = getrlimit(Resource::Memlock);
    }
    let current = limit.current.unwrap_or(u64::MAX);
    let per_shard = (current / shards.max(1) as u64).min(IO_MEMORY_DEFAULT as u64) as usize;
    let per_shard = per_shard & !4095;
    if per_shard < IO_MEMORY_DEFAULT {
        warn!(
            "RLIMIT_MEMLOCK is {} KiB: each shard gets {} KiB of registered I/O buffers instead of {} KiB; \
             raise it (ulimit -l, LimitMEMLOCK=) to at least {} KiB",
            current >> 10,
            per_shard >> 10,
            IO_MEMORY_DEFAULT >> 10,
            want >> 10
        );
    }
    per_shard.max(IO_MEMORY_MIN)
}
