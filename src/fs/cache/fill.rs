//! How an entry gets into the open-file cache: on a miss, every event is
//! read and each directory on the path is watched before the caller opens
//! the file; after the open, the name is checked to name the opened inode
//! (and no symlink), the file is watched, and its size and time checked
//! again. Only then is it kept.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::Ordering::Relaxed;

use rustix::fs::inotify;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

use super::bounds::{on_local_filesystem, proc_path, release, reserve, watch_refused};
use super::{Cache, DIR_EVENTS, Dir, ENTRIES, Entry, FILE_EVENTS, MISSES, Slot};
use crate::fs::RegularFile;

impl Cache {
    /// A miss at `relative`: read every event, and watch each directory on
    /// its path, before the caller opens it. `None`: not a path the cache
    /// takes (the caller just opens it).
    pub(crate) fn prepare(&mut self, root: BorrowedFd<'_>, relative: &[u8]) -> Option<Slot> {
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
    pub(crate) fn insert(
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
                && crate::fs::mtime(&held) == file.modified
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
}
