//! The open-file cache: each shard (thread) keeps the files it served
//! recently open, with what `fstat` said of them, so that a request for a
//! file served before pays no `openat2`, `fstat`, `fcntl` or `close`.
//!
//! **Never stale for long, never an escape.** Every cached file is watched
//! through an inotify descriptor of the shard's own (its content and
//! attributes: a write in place, a truncate, a `chmod`, a delete), and so
//! is every directory on its path, from the root down (what it names: a
//! replace by rename, a delete, a directory swapped for a symlink). The
//! directories are watched *before* the open they guard; the file's name
//! is checked to name the opened inode (and not a symlink), then the file
//! is watched and its size and time checked again, so a change made at
//! any moment is reported by some watch. Events are read on lookups (every
//! lookup [`DRAIN_EVERY`], 1 ms, or more after the last read, and every
//! miss) and on the shard's heartbeat, and each invalidates what it names:
//! a change is seen by the first request that arrives 1 ms after it
//! completed. A lost event (the kernel's queue overflowed) or a storm of
//! them empties the cache. Only paths of plain names (no `.`, `..`, empty
//! component or symlink anywhere) are cached; every other request is
//! opened as before, and so is every request while nothing is cached.
//!
//! **Only where inotify sees every change**: files and directories on
//! local filesystems (ext2/3/4, xfs, btrfs, f2fs, zfs, bcachefs, tmpfs,
//! ramfs, overlayfs). On NFS, SMB, FUSE, 9p, virtiofs or Ceph another host
//! changes files without an event, so nothing there is cached. Nor are
//! changes that raise no event seen: writes through a shared memory map, a
//! mount made over a directory on the path (nginx's cache does not see
//! them either, for its `open_file_cache_valid`).
//!
//! **Bounded**: at most `entries` files per shard and root (least recently
//! used evicted), and as many directories; and at most a sixteenth of the
//! process's descriptor limit held by all caches together. Nothing here
//! waits on the disk: directories are opened only from the kernel's caches
//! (`RESOLVE_CACHED`, where the kernel has it), as the uring backend opens
//! files; on a kernel without `RESOLVE_CACHED` (mainline before 5.12; the
//! 5.10 LTS kernels carry it) the uring backend opens every file through
//! its ring and its cache stays empty (the epoll backend, which opens
//! directly, uses it). Without inotify (its limits) or a procfs at `/proc`
//! (the watches go through `/proc/self/fd`), the shard runs without the
//! cache, with one WARN for the process.
//!
//! The counters (hits, misses, invalidations, entries) are the process's,
//! over every shard: [`stats`].
//!
//! The rooms: this file the cache's state, its lookup and its counters;
//! `fill` how an entry gets in (the directories watched before the open,
//! the name checked, the file watched); `events` how entries go (events
//! read and applied, eviction, emptying); `bounds` what may be cached and
//! how much (local filesystems, the descriptor budget).

mod bounds;
mod events;
mod fill;

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use tracing::warn;

use super::{OpenError, RegularFile, Root};
use bounds::{PROC_SUPER_MAGIC, fs_type, on_local_filesystem, proc_path, release, reserve};

/// Events are read at least this often while requests come.
pub(crate) const DRAIN_EVERY: Duration = Duration::from_millis(1);

/// More events than this in one read and the cache is emptied instead
/// (and the reading stops: the watches are gone with the entries).
pub(crate) const MAX_EVENTS: usize = 1024;

/// What a directory's watch reports: changes to the names in it, and to itself.
const DIR_EVENTS: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);
/// What a file's watch reports: its content, attributes, and its end.
const FILE_EVENTS: WatchFlags = WatchFlags::MODIFY
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF);

/// The cache's counters, over every shard of the process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Requests answered from a cached descriptor.
    pub hits: u64,
    /// Requests (of cacheable paths) that had to open the file.
    pub misses: u64,
    /// Entries dropped because their file or a directory on their path changed.
    pub invalidations: u64,
    /// Files held open now.
    pub entries: i64,
}

static HITS: AtomicU64 = AtomicU64::new(0);
static MISSES: AtomicU64 = AtomicU64::new(0);
static INVALIDATIONS: AtomicU64 = AtomicU64::new(0);
static ENTRIES: AtomicI64 = AtomicI64::new(0);

/// The process's counters (for the metrics).
pub fn stats() -> CacheStats {
    CacheStats {
        hits: HITS.load(Relaxed),
        misses: MISSES.load(Relaxed),
        invalidations: INVALIDATIONS.load(Relaxed),
        entries: ENTRIES.load(Relaxed),
    }
}

/// One cached file.
struct Entry {
    fd: Rc<OwnedFd>,
    size: u64,
    modified: SystemTime,
    inode: u64,
    /// Its own watch.
    wd: i32,
    /// For eviction: the lookup count when it was last used.
    used: u64,
}

/// One event read: its watch, what happened, and the name it concerns.
type Event = (i32, ReadFlags, Option<Box<[u8]>>);

/// One watched directory beneath the root (the root itself is `""`).
struct Dir {
    fd: OwnedFd,
    wd: i32,
}

/// What a watch descriptor stands for (a hard link or a bind mount can
/// make two paths one inode, so each is a list).
#[derive(Default)]
struct Users {
    dirs: Vec<Box<[u8]>>,
    files: Vec<Box<[u8]>>,
}

/// One shard's cache for one root.
pub(super) struct Cache {
    inotify: OwnedFd,
    root_wd: i32,
    limit: usize,
    files: HashMap<Box<[u8]>, Entry>,
    dirs: HashMap<Box<[u8]>, Dir>,
    watches: HashMap<i32, Users>,
    last_drain: Instant,
    tick: u64,
}

/// Where a miss will be inserted: the parent directory's path and the
/// file's name in it, with the parent's descriptor to check the binding.
pub(super) struct Slot {
    parent: Box<[u8]>,
    name_at: usize,
}

thread_local! {
    /// This thread's caches, one per root (`None`: inotify refused).
    static CACHES: RefCell<Vec<(u64, Option<Cache>)>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` on this thread's cache for the root `root_id` (made on first
/// use, watching `root`); `None` if it cannot be had.
pub(super) fn with<R>(
    root_id: u64,
    root: BorrowedFd<'_>,
    limit: usize,
    f: impl FnOnce(&mut Cache) -> R,
) -> Option<R> {
    CACHES
        .try_with(|caches| {
            let mut caches = caches.try_borrow_mut().ok()?;
            let i = match caches.iter().position(|(id, _)| *id == root_id) {
                Some(i) => i,
                None => {
                    let made = Cache::new(root, limit).inspect_err(cache_off).ok();
                    caches.push((root_id, made));
                    caches.len() - 1
                }
            };
            caches[i].1.as_mut().map(f)
        })
        .ok()
        .flatten()
}

/// A shard could not have its cache: said once for the process (every
/// shard would say the same).
fn cache_off(why: &String) {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, Relaxed) {
        warn!("open-file cache off: {why}; files are opened for every request");
    }
}

/// The shard's heartbeat: read the events of this thread's caches, so that
/// an idle shard, too, lets go of files deleted or changed.
pub(crate) fn beat() {
    let _ = CACHES.try_with(|caches| {
        if let Ok(mut caches) = caches.try_borrow_mut() {
            for cache in caches.iter_mut().filter_map(|(_, c)| c.as_mut()) {
                cache.drain();
            }
        }
    });
}

impl Cache {
    fn new(root: BorrowedFd<'_>, limit: usize) -> Result<Cache, String> {
        let proc_fd =
            rustix::fs::statfs("/proc/self/fd").map_err(|e| format!("/proc/self/fd: {e}"))?;
        if fs_type(&proc_fd) != PROC_SUPER_MAGIC {
            return Err("/proc is not procfs".into());
        }
        if !on_local_filesystem(root) {
            return Err(
                "the root is not on a local filesystem (inotify would miss changes)".into(),
            );
        }
        if !reserve() {
            return Err("no descriptor to spare (ulimit -n)".into());
        }
        let made = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC)
            .map_err(|e| format!("inotify: {e} (see fs.inotify.max_user_instances)"))
            .and_then(|inotify| {
                let wd = inotify::add_watch(&inotify, proc_path(root), DIR_EVENTS)
                    .map_err(|e| format!("inotify: {e} (see fs.inotify.max_user_watches)"))?;
                Ok((inotify, wd))
            });
        let (inotify, root_wd) = made.inspect_err(|_| release(1))?;
        let mut watches = HashMap::new();
        watches.insert(root_wd, Users::default());
        Ok(Cache {
            inotify,
            root_wd,
            limit: limit.max(1),
            files: HashMap::new(),
            dirs: HashMap::new(),
            watches,
            last_drain: Instant::now(),
            tick: 0,
        })
    }

    /// The cached file at `relative`, if any (after reading the events, if
    /// 1 ms has passed since the last read).
    pub(super) fn lookup(&mut self, relative: &[u8]) -> Option<RegularFile> {
        if self.last_drain.elapsed() >= DRAIN_EVERY {
            self.drain();
        }
        self.tick += 1;
        match self.files.get_mut(relative) {
            Some(e) => {
                e.used = self.tick;
                HITS.fetch_add(1, Relaxed);
                Some(RegularFile {
                    fd: e.fd.clone(),
                    size: e.size,
                    start: 0,
                    modified: e.modified,
                    inode: e.inode,
                })
            }
            None => None,
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.files.len()
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        ENTRIES.fetch_sub(self.files.len() as i64, Relaxed);
        // The files, the directories and the inotify descriptor.
        release(self.files.len() + self.dirs.len() + 1);
    }
}

/// How a [`Root`] reaches this thread's cache of it.
impl Root {
    /// Run `f` on this thread's open-file cache, when there is one.
    pub(super) fn cache<R>(&self, f: impl FnOnce(&mut Cache) -> R) -> Option<R> {
        if self.cache_entries == 0 {
            return None;
        }
        with(self.id, self.dir.as_fd(), self.cache_entries, f)
    }

    /// A cached file, or where a miss's open may be cached (`Err(None)`:
    /// not at all), for a request that is not refused outright.
    pub(super) fn cache_lookup(&self, relative: &[u8]) -> Result<RegularFile, Option<Slot>> {
        match self.cache(|c| {
            c.lookup(relative)
                .ok_or_else(|| c.prepare(self.dir.as_fd(), relative))
        }) {
            Some(found) => found,
            None => Err(None),
        }
    }

    /// Keep what a miss opened.
    pub(super) fn cache_insert(
        &self,
        relative: &[u8],
        slot: Option<Slot>,
        opened: &Result<RegularFile, OpenError>,
    ) {
        if let (Some(slot), Ok(file)) = (slot, opened) {
            self.cache(|c| c.insert(self.dir.as_fd(), relative, slot, file));
        }
    }
}
