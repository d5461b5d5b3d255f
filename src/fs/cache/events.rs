//! How entries leave the open-file cache: the inotify events read (at
//! most `MAX_EVENTS` at once) and each applied to what it names; the
//! least recently used evicted for room; everything dropped when events
//! were lost. Each entry's watch goes with its last user.

use std::mem::MaybeUninit;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use rustix::fs::inotify::{self, ReadFlags};

use super::bounds::release;
use super::{Cache, ENTRIES, Entry, Event, INVALIDATIONS, MAX_EVENTS, Users};

impl Cache {
    /// Read the events waiting (at most [`MAX_EVENTS`]: more, and the
    /// cache is emptied instead), and drop what each names.
    pub(super) fn drain(&mut self) {
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

    pub(super) fn drop_dir(&mut self, path: &[u8]) {
        if let Some(dir) = self.dirs.remove(path) {
            release(1);
            self.forget_dir_watch(path, dir.wd);
        }
    }

    /// An entry leaves (its descriptor closes once no request holds it).
    pub(super) fn forget_entry(&mut self, path: &[u8], entry: Entry) {
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
    pub(super) fn evict(&mut self) {
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

    pub(super) fn forget_file_watch(&mut self, path: &[u8], wd: i32) {
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
}
