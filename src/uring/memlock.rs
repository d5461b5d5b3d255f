//! Locked memory for uring shards.
//!
//! A uring shard needs little of it. glommio registers I/O buffers for each
//! executor, but ringlet reads and writes through its own ring and never
//! uses them, so it asks for glommio's minimum. Kernels before 5.12 also
//! charge every ring's memory to RLIMIT_MEMLOCK (later ones charge the
//! memory cgroup). Before any executor is built, this raises the soft limit
//! toward what the shards need when the hard limit allows (one INFO line);
//! when it cannot, it says nothing: a shard whose rings then cannot be set
//! up fails to start, and [`shortfall`] says what to raise.

use std::io;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tracing::info;

use crate::backend::LockedMemory;

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

/// What to raise when `e`, from setting up a shard's executor or ring, is
/// the locked-memory limit refusing (`ENOMEM`); `None` for any other error.
pub fn shortfall(e: &io::Error, shards: usize) -> Option<LockedMemory> {
    (e.raw_os_error() == Some(libc::ENOMEM)).then(|| LockedMemory {
        limit: getrlimit(Resource::Memlock).current,
        wanted: wanted(shards),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_shortfall_for_enomem_only() {
        let other = io::Error::from_raw_os_error(libc::EPERM);
        assert_eq!(shortfall(&other, 2), None);
        let short = shortfall(&io::Error::from_raw_os_error(libc::ENOMEM), 4).unwrap();
        assert_eq!(short.wanted, 4096 << 10);
        let text = short.to_string();
        assert!(text.contains("RLIMIT_MEMLOCK is"), "{text}");
        assert!(text.contains("at least 4096 KiB"), "{text}");
    }
}
