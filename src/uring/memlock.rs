//! Locked memory for uring shards.
//!
//! A uring shard needs little of it. glommio registers I/O buffers for each
//! executor, but ringlet reads and writes through its own ring and never
//! uses them, so it asks for glommio's minimum. Kernels before 5.12 also
//! charge every ring's memory to RLIMIT_MEMLOCK (later ones charge the
//! memory cgroup). Before any executor is built, this raises the soft limit
//! toward what the shards need when the hard limit allows (one INFO line);
//! when it cannot, it says nothing: a shard whose rings then cannot be set
//! up fails to start, and [`explain`] turns that error into what to raise.

use std::io;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tracing::info;

/// Registered-buffer bytes each glommio executor gets: the least it takes.
/// ringlet does not use them.
pub const IO_MEMORY: usize = 512 << 10;
/// Locked memory a shard's rings need where the kernel charges them to
/// RLIMIT_MEMLOCK (before 5.12): ringlet's ring and glommio's three.
const RING_MEMORY: u64 = 512 << 10;

/// Locked memory `shards` shards may need.
fn wanted(shards: usize) -> u64 {
    shards as u64 * (IO_MEMORY as u64 + RING_MEMORY)
}

/// Registered-buffer bytes to give each of `shards` executors, after
/// raising the soft RLIMIT_MEMLOCK toward what they may need where allowed.
pub fn io_memory_per_shard(shards: usize) -> usize {
    let want = wanted(shards);
    let limit = getrlimit(Resource::Memlock);
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
                    "raised RLIMIT_MEMLOCK from {} to {} KiB for {shards} shards' rings",
                    current >> 10,
                    got >> 10
                );
            }
        }
    }
    IO_MEMORY
}

/// `e`, from setting up a shard's executor or ring, with what to raise when
/// it is the locked-memory limit that refused.
pub fn explain(e: &io::Error, shards: usize) -> String {
    if e.raw_os_error() != Some(libc::ENOMEM) {
        return e.to_string();
    }
    let current = getrlimit(Resource::Memlock).current;
    format!(
        "{e}: RLIMIT_MEMLOCK is {} KiB, and kernels before 5.12 charge io_uring rings to it; \
         raise it to at least {} KiB (ulimit -l, LimitMEMLOCK= in the unit)",
        current.map_or("unlimited".to_string(), |c| (c >> 10).to_string()),
        wanted(shards) >> 10
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_enomem_and_passes_other_errors_through() {
        let other = io::Error::from_raw_os_error(libc::EPERM);
        assert_eq!(explain(&other, 2), other.to_string());
        let text = explain(&io::Error::from_raw_os_error(libc::ENOMEM), 4);
        assert!(text.contains("RLIMIT_MEMLOCK is"), "{text}");
        assert!(text.contains("at least 4096 KiB"), "{text}");
    }
}
