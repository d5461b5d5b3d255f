//! Start-up checks of what the kernel lets a shard have.
//!
//! Two traps of glommio are defused here, before any executor is built:
//! when io_uring is blocked (seccomp, `io_uring_disabled`) glommio panics with
//! a misleading "kernel too old"; and its registered I/O buffers (10 MiB per
//! executor by default) silently fail when RLIMIT_MEMLOCK is too small. This
//! module never changes a limit it cannot explain in a log line.

use std::io;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tracing::{info, warn};

/// glommio's default registered-buffer size per executor.
pub const IO_MEMORY_DEFAULT: usize = 10 << 20;
/// Below this per executor, registered buffers are not worth having.
pub const IO_MEMORY_MIN: usize = 512 << 10;

/// Fail with the real reason when io_uring cannot be set up in this process.
pub fn check_io_uring() -> Result<(), String> {
    match io_uring::IoUring::new(4) {
        Ok(_) => Ok(()),
        Err(e) => Err(explain_io_uring_error(&e)),
    }
}

fn explain_io_uring_error(e: &io::Error) -> String {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let why = match e.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel has no io_uring (Linux 5.1+ needed) or a seccomp filter hides it".to_string(),
        Some(libc::EPERM) if disabled == "2" => "io_uring is disabled by the sysctl kernel.io_uring_disabled=2".into(),
        Some(libc::EPERM) if disabled == "1" => "kernel.io_uring_disabled=1 allows io_uring only for the group in kernel.io_uring_group".into(),
        Some(libc::EPERM) => "io_uring_setup was refused, most likely by a seccomp filter (containers often block it)".into(),
        Some(libc::ENOMEM) => "not enough locked memory for the ring (raise RLIMIT_MEMLOCK, e.g. LimitMEMLOCK=)".into(),
        _ => "unexpected error from io_uring_setup".into(),
    };
    format!("io_uring is unavailable here: {why} ({e})")
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_a_seccomp_refusal() {
        let msg = explain_io_uring_error(&io::Error::from_raw_os_error(libc::ENOSYS));
        assert!(msg.starts_with("io_uring is unavailable here"), "{msg}");
    }
}
