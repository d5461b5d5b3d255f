//! What the open-file cache may take, and how much: only what lies on a
//! local filesystem (where every change raises an inotify event), watched
//! through a procfs at `/proc`, within one descriptor budget for the whole
//! process (a sixteenth of the soft `ulimit -n`).

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use tracing::warn;

/// The filesystems (`statfs`'s `f_type`) whose every change raises an
/// inotify event: local ones, where only this kernel changes files.
const LOCAL_FILESYSTEMS: [i64; 9] = [
    0xEF53,      // ext2, ext3, ext4
    0x5846_5342, // xfs
    0x9123_683E, // btrfs
    0xF2F5_2010, // f2fs
    0x2FC1_2FC1, // zfs
    0xCA45_1A4E, // bcachefs
    0x0102_1994, // tmpfs
    0x8584_58F6, // ramfs
    0x794C_7630, // overlayfs
];
/// `statfs("/proc/self/fd")`'s `f_type` when `/proc` is procfs.
pub(super) const PROC_SUPER_MAGIC: i64 = 0x9FA0;

/// Is `fd` on a filesystem whose changes inotify always sees?
pub(super) fn on_local_filesystem(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstatfs(fd).is_ok_and(|st| LOCAL_FILESYSTEMS.contains(&fs_type(&st)))
}

/// `statfs`'s `f_type`, whose C type differs by architecture.
#[allow(clippy::unnecessary_cast)]
pub(super) fn fs_type(st: &rustix::fs::StatFs) -> i64 {
    st.f_type as i64
}

/// Descriptors every cache of the process may hold together: a sixteenth
/// of the soft limit, so that connections always have room.
static BUDGET: LazyLock<usize> = LazyLock::new(|| {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    usize::try_from(soft / 16).unwrap_or(usize::MAX)
});
/// Descriptors the caches hold now.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// Take one descriptor of the budget; false if it is spent.
pub(super) fn reserve() -> bool {
    if HELD.fetch_add(1, Relaxed) < *BUDGET {
        return true;
    }
    HELD.fetch_sub(1, Relaxed);
    false
}

pub(super) fn release(n: usize) {
    HELD.fetch_sub(n, Relaxed);
}

/// A watch the kernel refused (its `max_user_watches`): said once.
pub(super) fn watch_refused(e: rustix::io::Errno) {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Relaxed) {
        warn!(
            "open-file cache: inotify refused a watch: {e} (see fs.inotify.max_user_watches); what cannot be watched is not cached"
        );
    }
}

/// `/proc/self/fd/N`: how inotify is told to watch an inode we hold open.
pub(super) fn proc_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}
