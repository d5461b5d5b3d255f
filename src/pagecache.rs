//! Is a range of a file in the page cache? `cachestat(2)` (Linux 6.5) asks
//! the kernel without reading a byte, so a backend that must never wait on
//! the disk can tell when a synchronous copy from the cache is safe.
//!
//! Kernels without it (or a seccomp filter refusing it) answer `None`, once
//! per process: the caller takes its always-safe path.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// `__NR_cachestat` in the unified syscall table every 64-bit architecture
/// ringlet builds for shares (libc does not name it for all of them).
const SYS_CACHESTAT: libc::c_long = 451;
const PAGE: u64 = 4096;

#[cfg(test)]
thread_local! {
    /// `cachestat` calls made by this thread (tests count them).
    static ASKED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many times this thread has asked the kernel (tests only).
#[cfg(test)]
pub(crate) fn asked_here() -> u64 {
    ASKED.with(|n| n.get())
}

/// Set once `cachestat` is known to be missing here.
static MISSING: AtomicBool = AtomicBool::new(false);

#[repr(C)]
struct Range {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Stat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Whether every page of `len` bytes of `file` from `offset` is in the page
/// cache; `None` where the kernel cannot say. A `true` can go stale (memory
/// pressure may evict the pages a moment later), which costs one wait on
/// the disk, not a wrong byte.
pub fn resident(file: BorrowedFd<'_>, offset: u64, len: u64) -> Option<bool> {
    if len == 0 {
        return Some(true);
    }
    if MISSING.load(Ordering::Relaxed) {
        return None;
    }
    #[cfg(test)]
    ASKED.with(|n| n.set(n.get() + 1));
    let range = Range { off: offset, len };
    let mut stat = Stat::default();
    // SAFETY: `range` and `stat` are live, properly laid out (the kernel's
    // `struct cachestat_range` / `struct cachestat`) for the call; the
    // descriptor is borrowed for its duration; flags must be 0.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const Range,
            &mut stat as *mut Stat,
            0u32,
        )
    };
    if rc != 0 {
        let errno = std::io::Error::last_os_error().raw_os_error();
        if matches!(errno, Some(libc::ENOSYS | libc::EPERM)) {
            MISSING.store(true, Ordering::Relaxed);
        }
        return None;
    }
    let pages = (offset + len).div_ceil(PAGE) - offset / PAGE;
    Some(stat.nr_cache >= pages)
}

/// Whether this kernel answers `cachestat` (for `ringlet probe`).
pub fn available() -> bool {
    let Ok(file) = std::fs::File::open("/proc/self/exe") else {
        return false;
    };
    use std::os::fd::AsFd;
    resident(file.as_fd(), 0, 1).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn a_file_just_written_is_resident_and_an_evicted_one_is_not() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![7u8; 256 * 1024]).unwrap();
        let Some(now) = resident(f.as_fd(), 0, 256 * 1024) else {
            eprintln!("cachestat is not available on this kernel: nothing to check");
            return;
        };
        assert!(now, "pages just written are in the cache");
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        if rustix::fs::fstatfs(&f).unwrap().f_type as i64 == TMPFS_MAGIC {
            return; // tmpfs pages are the file: they cannot be evicted
        }
        f.sync_all().unwrap();
        rustix::fs::fadvise(f.as_fd(), 0, None, rustix::fs::Advice::DontNeed).unwrap();
        assert_eq!(resident(f.as_fd(), 4096, 100_000), Some(false));
    }
}
