//! Files for the protocols: root confinement and [`RegularFile`].
//!
//! Below the protocols and used by them and by the backends (which open
//! through their own ring where they have one): a client-supplied path is
//! opened beneath the served directory, and only regular files come out.
//!
//! The kernel resolves and checks the path in one step (`openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`), so there is no check-then-open
//! race: `..` that climbs out, absolute symlinks, symlinks that leave the root
//! and `/proc` magic links all fail inside the kernel. Only regular files come
//! out of here. This module must never open anything by a path of its own
//! making outside the root directory descriptor.
//!
//! The flags and the retry of a raced lookup are defined here once, for the
//! direct open and for a backend's ring alike ([`open_how`],
//! [`open_beneath`], which takes the single attempt).
//! With [`Root::with_open_file_cache`], files served are kept open per
//! shard and watched for changes (`cache`: the open-file cache); a hit
//! opens nothing (the shard reads its inotify events at most once a
//! millisecond).
//! One test hook: `RINGLET_TEST_COLD_OPEN` set makes the uring backend skip
//! its cached direct open, so tests reach the ring's `OPENAT2`.
//!
//! The rooms: this file the root, the open and [`RegularFile`]; `error`
//! why a path was refused ([`OpenError`]); `cache` the open-file cache.

use std::ffi::OsStr;
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

pub use error::OpenError;
use error::{file_type_name, open_error, open_error_from_io};

/// The directory a file server serves, opened once at start-up.
#[derive(Debug)]
pub struct Root {
    /// Shared so that an open in flight in a ring keeps it open.
    dir: Arc<OwnedFd>,
    path: PathBuf,
    /// Which root this is, for the shards' open-file caches.
    id: u64,
    /// Files each shard keeps open (0: no cache).
    cache_entries: usize,
}

/// A number per [`Root`] opened, naming its caches.
static NEXT_ROOT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A regular file opened beneath a [`Root`], with the size it had when
/// opened, and the part of it to send (all of it unless narrowed with
/// [`RegularFile::range`]).
#[derive(Debug)]
pub struct RegularFile {
    /// Shared with the shard's open-file cache when it came from there.
    fd: Rc<OwnedFd>,
    /// Bytes to send, from `start`.
    size: u64,
    start: u64,
    modified: SystemTime,
    inode: u64,
}

impl Root {
    /// Open `path` as the served root. Fails if it is not a directory.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Root> {
        let path = path.as_ref();
        let dir = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("cannot open root directory {}: {e}", path.display()),
            )
        })?;
        Ok(Root {
            dir: Arc::new(dir),
            path: path.to_path_buf(),
            id: NEXT_ROOT.fetch_add(1, Ordering::Relaxed),
            cache_entries: 0,
        })
    }

    /// Keep up to `entries` files open per shard (thread), so that a file
    /// served again costs no open: the open-file cache (its counters:
    /// [`open_file_cache_stats`](crate::open_file_cache_stats);
    /// 0, the default, turns it off). A change to a cached file or to a
    /// directory on its path is seen by the first request that comes 1 ms
    /// after it completed (on local filesystems only: on NFS, FUSE and the
    /// like nothing is cached); all caches of the process together hold at
    /// most a sixteenth of the descriptor limit, whatever `entries` says.
    pub fn with_open_file_cache(mut self, entries: usize) -> Root {
        self.cache_entries = entries;
        self
    }

    /// How many files each shard keeps open (0: no cache).
    pub fn open_file_cache(&self) -> usize {
        self.cache_entries
    }

    /// The directory as given at start-up.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open the file a client asked for, the way a URL path resolves: leading
    /// slashes are dropped, so `/tmp/y` means `ROOT/tmp/y`. Never blocks on a
    /// FIFO or device, and refuses everything that is not a regular file.
    pub fn open_file(&self, request: &[u8]) -> Result<RegularFile, OpenError> {
        let relative = relative_path(request)?;
        let slot = match self.cache_lookup(relative) {
            Ok(hit) => return Ok(hit),
            Err(slot) => slot,
        };
        let opened = self.open_uncached(request);
        self.cache_insert(relative, slot, &opened);
        opened
    }

    /// [`Root::open_file`] without the cache.
    fn open_uncached(&self, request: &[u8]) -> Result<RegularFile, OpenError> {
        let open = open_beneath(request, |relative| {
            std::future::ready(self.openat2(relative, RESOLVE).map_err(io::Error::from))
        });
        // Every attempt is ready at once, so the first poll ends it.
        match pin!(open).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(opened) => opened,
            Poll::Pending => unreachable!("a direct open never waits"),
        }
    }

    /// As [`Root::open_file`], but only if the path resolves from the kernel's
    /// caches (`RESOLVE_CACHED`, Linux 5.12): `None` when the lookup would
    /// have to read the disk (or the kernel lacks the flag), so that a
    /// backend can open it asynchronously instead, never blocking its core.
    ///
    /// Test hook: with [`COLD_OPEN_ENV`] set, always `None`, as on a kernel
    /// without the flag (read once; nothing changes when it is unset).
    pub(crate) fn open_file_cached(
        &self,
        request: &[u8],
    ) -> Option<Result<RegularFile, OpenError>> {
        /// The kernel refused RESOLVE_CACHED once (before 5.12): never again.
        static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
        static COLD: LazyLock<bool> = LazyLock::new(|| std::env::var_os(COLD_OPEN_ENV).is_some());
        let relative = match relative_path(request) {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        if UNSUPPORTED.load(Ordering::Relaxed) || *COLD {
            return None;
        }
        let slot = match self.cache_lookup(relative) {
            Ok(hit) => return Some(Ok(hit)),
            Err(slot) => slot,
        };
        match self.openat2(relative, RESOLVE.union(ResolveFlags::CACHED)) {
            Ok(fd) => {
                let opened = finish_open(fd);
                self.cache_insert(relative, slot, &opened);
                Some(opened)
            }
            // Not all in the caches (or a rename raced: the slow path retries).
            Err(rustix::io::Errno::AGAIN) => None,
            Err(rustix::io::Errno::INVAL) => {
                UNSUPPORTED.store(true, Ordering::Relaxed);
                None
            }
            Err(e) => Some(Err(open_error(e))),
        }
    }

    /// Whether this kernel resolves paths with `RESOLVE_CACHED` (5.12+).
    pub(crate) fn resolve_cached_supported() -> bool {
        let Ok(dir) = rustix::fs::open(".", OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        else {
            return false;
        };
        // EINVAL is the one answer that means the flag is unknown.
        !matches!(
            rustix::fs::openat2(
                &dir,
                ".",
                OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::CACHED
            ),
            Err(rustix::io::Errno::INVAL)
        )
    }

    /// `openat2` of `relative` beneath the root with [`OPEN_FLAGS`].
    fn openat2(&self, relative: &[u8], resolve: ResolveFlags) -> rustix::io::Result<OwnedFd> {
        rustix::fs::openat2(
            &self.dir,
            OsStr::from_bytes(relative),
            OPEN_FLAGS,
            Mode::empty(),
            resolve,
        )
    }

    /// The root directory's descriptor, for a backend that opens beneath it
    /// itself (with [`open_how`], by [`open_beneath`]).
    pub(crate) fn dir(&self) -> &Arc<OwnedFd> {
        &self.dir
    }
}

/// How every file is opened: read-only; O_NONBLOCK so that opening a FIFO
/// with no writer cannot wait.
pub(crate) const OPEN_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NONBLOCK)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY);

/// How often an open whose `..` lookup raced with a rename (`EAGAIN`) is
/// retried before the request is refused.
const RACE_RETRIES: usize = 16;

/// How every path is resolved: beneath the root, no magic links.
pub(crate) const RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

/// [`OPEN_FLAGS`] and [`RESOLVE`] as a ring's `open_how` takes them:
/// `(flags, resolve)`. Every open beneath a root, direct or on a ring, uses these.
pub(crate) fn open_how() -> (u64, u64) {
    (OPEN_FLAGS.bits() as u64, RESOLVE.bits())
}

/// Open `request` beneath a root, `attempt` being one `openat2` of the
/// relative path with [`OPEN_FLAGS`] and [`RESOLVE`] (made directly, or
/// through a backend's ring): the one retry policy of every open. An
/// attempt whose `..` lookup raced with a rename (the kernel's `EAGAIN`) is
/// made again, at most [`RACE_RETRIES`] times; only a regular file comes
/// out ([`finish_open`]).
pub(crate) async fn open_beneath<F, A>(
    request: &[u8],
    mut attempt: F,
) -> Result<RegularFile, OpenError>
where
    F: FnMut(&[u8]) -> A,
    A: Future<Output = io::Result<OwnedFd>>,
{
    let relative = relative_path(request)?;
    let mut tries = 0;
    loop {
        match attempt(relative).await {
            Ok(fd) => return finish_open(fd),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < RACE_RETRIES => {
                tries += 1;
            }
            Err(e) => return Err(open_error_from_io(&e)),
        }
    }
}

/// Test hook, read once per process: when set, the uring backend never
/// tries the direct `RESOLVE_CACHED` open, so every file is opened by the
/// ring's `OPENAT2` (the path a cold dentry cache takes). For tests only.
pub(crate) const COLD_OPEN_ENV: &str = "RINGLET_TEST_COLD_OPEN";

/// The request as a path relative to the root: leading slashes dropped, the
/// way a URL path resolves. An empty path is refused.
fn relative_path(request: &[u8]) -> Result<&[u8], OpenError> {
    let relative = strip_leading_slashes(request);
    if relative.is_empty() {
        return Err(OpenError::Empty);
    }
    Ok(relative)
}

/// After `openat2` with [`OPEN_FLAGS`] and [`RESOLVE`] succeeded: keep only
/// regular files, note the size, and clear O_NONBLOCK (io_uring honours it
/// on a regular file by failing with EAGAIN instead of waiting for the disk).
pub(crate) fn finish_open(fd: OwnedFd) -> Result<RegularFile, OpenError> {
    let stat = rustix::fs::fstat(&fd).map_err(|e| OpenError::Io(e.into()))?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind != FileType::RegularFile {
        return Err(OpenError::NotRegular(file_type_name(kind)));
    }
    rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(|e| OpenError::Io(e.into()))?;
    Ok(RegularFile {
        fd: Rc::new(fd),
        size: stat.st_size as u64,
        start: 0,
        modified: mtime(&stat),
        inode: stat.st_ino,
    })
}

/// A file's modification time, from its `stat`.
fn mtime(stat: &rustix::fs::Stat) -> SystemTime {
    SystemTime::UNIX_EPOCH
        + Duration::new(
            stat.st_mtime.max(0) as u64,
            (stat.st_mtime_nsec as u32).min(999_999_999),
        )
}

impl RegularFile {
    /// The bytes that will be sent: the size the file had when it was
    /// opened, or the length of the range it was narrowed to.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where sending starts: 0 unless narrowed with [`RegularFile::range`].
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Send only `len` bytes from `offset` (relative to what would have
    /// been sent), clamped to what there is.
    pub fn range(mut self, offset: u64, len: u64) -> RegularFile {
        let offset = offset.min(self.size);
        self.start += offset;
        self.size = len.min(self.size - offset);
        self
    }

    /// Its modification time when it was opened.
    pub fn modified(&self) -> SystemTime {
        self.modified
    }

    /// Its inode number (with the size and modification time, what tells
    /// one version of a file from another).
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// The descriptor, for a backend whose operations each hold a clone
    /// (it may be shared with the open-file cache).
    pub(crate) fn into_shared(self) -> Rc<OwnedFd> {
        self.fd
    }
}

impl AsFd for RegularFile {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn strip_leading_slashes(request: &[u8]) -> &[u8] {
    let start = request
        .iter()
        .position(|&b| b != b'/')
        .unwrap_or(request.len());
    &request[start..]
}

/// Shows a request path for a log line: lossy UTF-8, quoted, escapes kept visible.
pub struct DisplayPath<'a>(pub &'a [u8]);

impl fmt::Display for DisplayPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.0))
    }
}

pub(crate) mod cache;
mod error;
#[cfg(test)]
mod tests;
