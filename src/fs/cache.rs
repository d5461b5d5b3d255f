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
//! cache, with one WARN.
//!
//! The counters (hits, misses, invalidations, entries) are the process's,
//! over every shard: [`stats`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use tracing::warn;

use super::RegularFile;

/// Events are read at least this often while requests come.
pub(crate) const DRAIN_EVERY: Duration = Duration::from_millis(1);

/// More events than this in one read and the cache is emptied instead
/// (and the reading stops: the watches are gone with the entries).
pub(crate) const MAX_EVENTS: usize = 1024;

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
const PROC_SUPER_MAGIC: i64 = 0x9FA0;

/// Is `fd` on a filesystem whose changes inotify always sees?
fn on_local_filesystem(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstatfs(fd).is_ok_and(|st| LOCAL_FILESYSTEMS.contains(&fs_type(&st)))
}

/// `statfs`'s `f_type`, whose C type differs by architecture.
#[allow(clippy::unnecessary_cast)]
fn fs_type(st: &rustix::fs::StatFs) -> i64 {
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
fn reserve() -> bool {
    if HELD.fetch_add(1, Relaxed) < *BUDGET {
        return true;
    }
    HELD.fetch_sub(1, Relaxed);
    false
}

fn release(n: usize) {
    HELD.fetch_sub(n, Relaxed);
}

/// A watch the kernel refused (its `max_user_watches`): said once.
fn watch_refused(e: rustix::io::Errno) {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Relaxed) {
        warn!(
            "open-file cache: inotify refused a watch: {e} (see fs.inotify.max_user_watches); what cannot be watched is not cached"
        );
    }
}

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
                    let made = Cache::new(root, limit)
                        .inspect_err(|why| warn!("open-file cache off on this shard: {why}"))
                        .ok();
                    caches.push((root_id, made));
                    caches.len() - 1
                }
            };
            caches[i].1.as_mut().map(f)
        })
        .ok()
        .flatten()
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

/// `/proc/self/fd/N`: how inotify is told to watch an inode we hold open.
fn proc_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
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

    /// A miss at `relative`: read every event, and watch each directory on
    /// its path, before the caller opens it. `None`: not a path the cache
    /// takes (the caller just opens it).
    pub(super) fn prepare(&mut self, root: BorrowedFd<'_>, relative: &[u8]) -> Option<Slot> {
        self.drain();
        if relative
            .split(|&b| b == b'/')
            .any(|c| c.is_empty() || c == b"." || c == b"..")
        {
            return None;
        }
        MISSES.fetch_add(1, Relaxed);
        let name_at = relative
            .iter()
            .rposition(|&b| b == b'/')
            .map_or(0, |i| i + 1);
        let parent = if name_at == 0 {
            &[][..]
        } else {
            &relative[..name_at - 1]
        };
        // Each directory from the root down, watched before it is looked in.
        let mut at = 0;
        while at < parent.len() {
            let end = parent[at..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(parent.len(), |i| at + i);
            self.watch_dir(root, &parent[..end], at)?;
            at = end + 1;
        }
        Some(Slot {
            parent: parent.into(),
            name_at,
        })
    }

    /// Watch the directory `prefix` (its last component starts at `from`),
    /// its parent being watched already.
    fn watch_dir(&mut self, root: BorrowedFd<'_>, prefix: &[u8], from: usize) -> Option<()> {
        if self.dirs.contains_key(prefix) {
            return Some(());
        }
        if self.dirs.len() >= self.limit {
            self.prune_dirs();
            if self.dirs.len() >= self.limit {
                return None;
            }
        }
        let parent = match from {
            0 => root,
            _ => self.dirs.get(&prefix[..from - 1])?.fd.as_fd(),
        };
        // From the kernel's caches only (a lookup that would read the disk
        // would block the shard: the directory is watched another time),
        // where the kernel can say so (5.12+).
        let name = OsStr::from_bytes(&prefix[from..]);
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if !reserve() {
            return None;
        }
        let fd = match rustix::fs::openat2(parent, name, flags, Mode::empty(), ResolveFlags::CACHED)
        {
            Err(rustix::io::Errno::INVAL) => rustix::fs::openat(parent, name, flags, Mode::empty()),
            other => other,
        };
        let watched = fd
            .ok()
            .filter(|fd| on_local_filesystem(fd.as_fd()))
            .and_then(|fd| {
                match inotify::add_watch(&self.inotify, proc_path(fd.as_fd()), DIR_EVENTS) {
                    Ok(wd) => Some((fd, wd)),
                    Err(e) => {
                        watch_refused(e);
                        None
                    }
                }
            });
        let Some((fd, wd)) = watched else {
            release(1);
            return None;
        };
        self.watches.entry(wd).or_default().dirs.push(prefix.into());
        self.dirs.insert(prefix.into(), Dir { fd, wd });
        Some(())
    }

    /// The directories' bound is reached: let go of those no cached file
    /// lies beneath.
    fn prune_dirs(&mut self) {
        let mut needed: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
        for path in self.files.keys() {
            let mut end = path.len();
            while let Some(slash) = path[..end].iter().rposition(|&b| b == b'/') {
                needed.insert(&path[..slash]);
                end = slash;
            }
        }
        let unneeded: Vec<Box<[u8]>> = self
            .dirs
            .keys()
            .filter(|d| !needed.contains(&***d))
            .cloned()
            .collect();
        for path in unneeded {
            self.drop_dir(&path);
        }
    }

    /// `file` was opened at `relative` after [`Cache::prepare`] gave `slot`:
    /// keep it, if its name still names it and nothing changed since.
    pub(super) fn insert(
        &mut self,
        root: BorrowedFd<'_>,
        relative: &[u8],
        slot: Slot,
        file: &RegularFile,
    ) {
        let parent = match slot.parent.is_empty() {
            true => root,
            false => match self.dirs.get(&slot.parent) {
                Some(d) => d.fd.as_fd(),
                None => return,
            },
        };
        // The name names the opened inode, and is no symlink (a later
        // change of what it names is the parent's event).
        let named = rustix::fs::statat(
            parent,
            OsStr::from_bytes(&relative[slot.name_at..]),
            AtFlags::SYMLINK_NOFOLLOW,
        );
        let Ok(named) = named else { return };
        if FileType::from_raw_mode(named.st_mode) != FileType::RegularFile
            || named.st_ino != file.inode
            || !on_local_filesystem(file.fd.as_fd())
        {
            return;
        }
        if let Some(old) = self.files.remove(relative) {
            // Two opens of one path raced; the newer is kept.
            self.forget_entry(relative, old);
        }
        if self.files.len() >= self.limit {
            self.evict();
        }
        if !reserve() {
            return;
        }
        let wd = match inotify::add_watch(&self.inotify, proc_path(file.fd.as_fd()), FILE_EVENTS) {
            Ok(wd) => wd,
            Err(e) => {
                watch_refused(e);
                release(1);
                return;
            }
        };
        // After the watch: as it was when opened (a change from here on is
        // this watch's event).
        let same = rustix::fs::fstat(&*file.fd).is_ok_and(|held| {
            (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)
                && held.st_size as u64 == file.size
                && super::mtime(&held) == file.modified
        });
        self.watches
            .entry(wd)
            .or_default()
            .files
            .push(relative.into());
        if !same {
            release(1);
            self.forget_file_watch(relative, wd);
            return;
        }
        self.tick += 1;
        self.files.insert(
            relative.into(),
            Entry {
                fd: file.fd.clone(),
                size: file.size,
                modified: file.modified,
                inode: file.inode,
                wd,
                used: self.tick,
            },
        );
        ENTRIES.fetch_add(1, Relaxed);
    }

    /// Read the events waiting (at most [`MAX_EVENTS`]: more, and the
    /// cache is emptied instead), and drop what each names.
    fn drain(&mut self) {
        self.last_drain = Instant::now();
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = inotify::Reader::new(&self.inotify, &mut buf);
        let mut changed: Vec<Event> = Vec::new();
        let mut lost = false;
        loop {
            match reader.next() {
                Ok(ev) if ev.events().contains(ReadFlags::QUEUE_OVERFLOW) => lost = true,
                Ok(ev) => changed.push((
                    ev.wd(),
                    ev.events(),
                    ev.file_name().map(|n| n.to_bytes().into()),
                )),
                Err(_) => break,
            }
            if lost || changed.len() > MAX_EVENTS {
                lost = true;
                break;
            }
        }
        if lost {
            // Events still queued name watches removed here (ignored) or
            // the root (one more emptying, at worst).
            self.clear();
            return;
        }
        for (wd, events, name) in changed {
            self.changed(wd, events, name.as_deref());
        }
    }

    /// One event on `wd`: drop every entry (and directory) it may concern.
    fn changed(&mut self, wd: i32, events: ReadFlags, name: Option<&[u8]>) {
        let Some(users) = self.watches.get(&wd) else {
            return; // a watch we removed ourselves
        };
        let files = users.files.clone();
        let mut dirs = users.dirs.clone();
        if wd == self.root_wd {
            dirs.push(Box::from(&b""[..]));
        }
        for path in files {
            self.drop_file(&path);
        }
        for dir in dirs {
            let Some(name) = name else {
                // The directory itself: everything beneath it.
                self.drop_beneath(&dir);
                continue;
            };
            // A name in the directory: that file, or all beneath that
            // directory (when it is one we watch).
            let mut child = dir.to_vec();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(name);
            match events.contains(ReadFlags::ISDIR) && self.dirs.contains_key(&child[..]) {
                true => self.drop_beneath(&child),
                false => self.drop_file(&child),
            }
        }
    }

    /// Drop every file and directory at or beneath `prefix` (`""`: all).
    fn drop_beneath(&mut self, prefix: &[u8]) {
        let under = |p: &[u8]| {
            prefix.is_empty()
                || (p.starts_with(prefix) && (p.len() == prefix.len() || p[prefix.len()] == b'/'))
        };
        let files: Vec<Box<[u8]>> = self.files.keys().filter(|p| under(p)).cloned().collect();
        for path in files {
            self.drop_file(&path);
        }
        let dirs: Vec<Box<[u8]>> = self.dirs.keys().filter(|p| under(p)).cloned().collect();
        for path in dirs {
            self.drop_dir(&path);
        }
    }

    fn drop_dir(&mut self, path: &[u8]) {
        if let Some(dir) = self.dirs.remove(path) {
            release(1);
            self.forget_dir_watch(path, dir.wd);
        }
    }

    /// An entry leaves (its descriptor closes once no request holds it).
    fn forget_entry(&mut self, path: &[u8], entry: Entry) {
        ENTRIES.fetch_sub(1, Relaxed);
        release(1);
        self.forget_file_watch(path, entry.wd);
    }

    fn drop_file(&mut self, path: &[u8]) {
        if let Some(entry) = self.files.remove(path) {
            INVALIDATIONS.fetch_add(1, Relaxed);
            self.forget_entry(path, entry);
        }
    }

    /// The least recently used file goes, to make room.
    fn evict(&mut self) {
        if let Some(path) = self
            .files
            .iter()
            .min_by_key(|(_, e)| e.used)
            .map(|(p, _)| p.clone())
            && let Some(entry) = self.files.remove(&path)
        {
            self.forget_entry(&path, entry);
        }
    }

    /// Everything goes (an event lost, or too many at once).
    fn clear(&mut self) {
        let n = self.files.len() as i64;
        ENTRIES.fetch_sub(n, Relaxed);
        INVALIDATIONS.fetch_add(n as u64, Relaxed);
        release(self.files.len() + self.dirs.len());
        for (wd, _) in self.watches.drain() {
            if wd != self.root_wd {
                let _ = inotify::remove_watch(&self.inotify, wd);
            }
        }
        self.watches.insert(self.root_wd, Users::default());
        self.files.clear();
        self.dirs.clear();
    }

    fn forget_file_watch(&mut self, path: &[u8], wd: i32) {
        self.forget(wd, |u| u.files.retain(|p| &**p != path));
    }

    fn forget_dir_watch(&mut self, path: &[u8], wd: i32) {
        self.forget(wd, |u| u.dirs.retain(|p| &**p != path));
    }

    /// Take a user off `wd`; the last one gone, the watch goes too.
    fn forget(&mut self, wd: i32, take: impl FnOnce(&mut Users)) {
        if let Some(users) = self.watches.get_mut(&wd) {
            take(users);
            if users.files.is_empty() && users.dirs.is_empty() && wd != self.root_wd {
                self.watches.remove(&wd);
                let _ = inotify::remove_watch(&self.inotify, wd);
            }
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
