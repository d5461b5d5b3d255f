//! Pipes for splicing files into sockets: a shard's reusable pool, within
//! the kernel's per-user pipe budget.
//!
//! A spliced chunk is at most a pipe's capacity, and every chunk is a round
//! trip through io-wq threads, so big files want big pipes: a stream of a
//! file of 1 MiB or more gets a 1 MiB pipe (4x fewer round trips than
//! 256 KiB: the warm 1 GiB stream went from 0.73x to 1.0x epoll's
//! `sendfile`), smaller ones 256 KiB. The budget is counted in pages, as
//! the kernel counts `pipe-user-pages-soft` (past it, the kernel silently
//! shrinks new pipes to one page): when a large pipe does not fit, a stream
//! gets a small one, and when none fits, the caller reads and sends instead.
//! Returned pipes are shrunk back to small, so that a burst of big files does
//! not keep the budget from the many small streams that follow.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::fd::SharedFd;

/// The usual pipe, and the pipe for files of at least its size.
pub const SMALL: usize = 256 * 1024;
pub const LARGE: usize = 1024 * 1024;
/// Empty pipes a shard keeps for the next streams; more are closed.
const IDLE_PIPES: usize = 8;
const PAGE: usize = 4096;

/// A pipe and its capacity. Its ends are shared with the splices naming
/// them, so a pipe given up mid-stream closes only once they are done.
pub struct Pipe {
    pub read: SharedFd,
    pub write: SharedFd,
    size: usize,
}

impl Pipe {
    /// Its capacity in bytes: the most one splice into it moves.
    pub fn size(&self) -> usize {
        self.size
    }
}

/// A shard's reusable pipes.
pub struct PipePool {
    free: RefCell<Vec<Pipe>>,
    /// Pipes in existence (in use or free).
    live: Cell<usize>,
    /// Pages their capacities add up to.
    pages: Cell<usize>,
    cap_pages: usize,
}

impl PipePool {
    /// A pool for one of `shards` shards: each gets an equal share of three
    /// quarters of `pipe-user-pages-soft`, leaving room for everything else
    /// the user runs.
    pub fn for_shard(shards: usize) -> Rc<PipePool> {
        let soft_pages: usize = std::fs::read_to_string("/proc/sys/fs/pipe-user-pages-soft")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(16384);
        let total = if soft_pages == 0 {
            // No soft limit: a generous budget all the same.
            1024 * (SMALL / PAGE) * shards
        } else {
            soft_pages * 3 / 4
        };
        PipePool::with_pages((total / shards.max(1)).max(SMALL / PAGE))
    }

    /// A pool whose pipes add up to at most `cap_pages` pages.
    pub fn with_pages(cap_pages: usize) -> Rc<PipePool> {
        Rc::new(PipePool {
            free: RefCell::new(Vec::new()),
            live: Cell::new(0),
            pages: Cell::new(0),
            cap_pages,
        })
    }

    /// A pipe for streaming a file of `file_size` bytes; `None` when the
    /// budget is spent.
    pub fn take(&self, file_size: u64) -> Option<Pipe> {
        let want = if file_size >= LARGE as u64 {
            LARGE
        } else {
            SMALL
        };
        if let Some(mut pipe) = self.free.borrow_mut().pop() {
            if pipe.size < want {
                self.resize(&mut pipe, want);
            }
            return Some(pipe);
        }
        if self.pages.get() + SMALL / PAGE > self.cap_pages {
            return None;
        }
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).ok()?;
        let size = rustix::pipe::fcntl_getpipe_size(&write).unwrap_or(16 * PAGE);
        let mut pipe = Pipe {
            read: read.into(),
            write: write.into(),
            size,
        };
        self.live.set(self.live.get() + 1);
        self.pages.set(self.pages.get() + size / PAGE);
        self.resize(&mut pipe, want);
        if pipe.size < want {
            self.resize(&mut pipe, SMALL);
        }
        Some(pipe)
    }

    /// Return a pipe: an empty one is kept (shrunk to small) for the next
    /// stream; one that may hold bytes is closed, and so is one beyond the
    /// few kept idle (a quiet server holds few).
    pub fn give_back(&self, mut pipe: Pipe, empty: bool) {
        let mut free = self.free.borrow_mut();
        if empty && free.len() < IDLE_PIPES {
            if pipe.size > SMALL {
                self.resize(&mut pipe, SMALL);
            }
            free.push(pipe);
        } else {
            self.live.set(self.live.get() - 1);
            self.pages.set(self.pages.get() - pipe.size / PAGE);
        }
    }

    /// Make `pipe` hold `to` bytes if the budget allows (best effort: the
    /// pipe keeps its size when the budget or the kernel says no).
    fn resize(&self, pipe: &mut Pipe, to: usize) {
        let (old, new) = (pipe.size / PAGE, to / PAGE);
        if self.pages.get() - old + new > self.cap_pages {
            return;
        }
        if let Ok(size) = rustix::pipe::fcntl_setpipe_size(&pipe.write, to) {
            self.pages.set(self.pages.get() - old + size / PAGE);
            pipe.size = size;
        }
    }

    /// Pipes in existence (in use or free).
    pub fn live(&self) -> usize {
        self.live.get()
    }

    /// Pages the pipes in existence hold, for tests.
    #[cfg(test)]
    pub fn pages(&self) -> usize {
        self.pages.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: usize = SMALL / PAGE;
    const L: usize = LARGE / PAGE;

    fn real_size(p: &Pipe) -> usize {
        rustix::pipe::fcntl_getpipe_size(&p.write).unwrap()
    }

    #[test]
    fn the_pool_reuses_pipes_and_never_exceeds_its_budget() {
        let pool = PipePool::with_pages(3 * S);
        let taken: Vec<_> = (0..3)
            .map(|_| pool.take(100_000).expect("within budget"))
            .collect();
        assert!(
            taken
                .iter()
                .all(|p| p.size() == SMALL && real_size(p) == SMALL)
        );
        assert!(
            pool.take(100_000).is_none(),
            "a fourth pipe beyond a budget of three"
        );
        assert_eq!((pool.live(), pool.pages()), (3, 3 * S));
        let mut it = taken.into_iter();
        pool.give_back(it.next().unwrap(), true); // empty: kept for reuse
        pool.give_back(it.next().unwrap(), false); // may hold bytes: closed
        assert_eq!((pool.live(), pool.pages()), (2, 2 * S));
        let reused = pool.take(100_000).expect("the kept pipe");
        assert_eq!(pool.live(), 2, "reuse must not create a pipe");
        assert!(
            pool.take(100_000).is_some(),
            "the closed one's budget is free again"
        );
        assert!(pool.take(100_000).is_none());
        drop(reused);
    }

    #[test]
    fn big_files_get_big_pipes_while_the_budget_lasts_and_give_it_back() {
        let pool = PipePool::with_pages(L + 2 * S);
        let big = pool.take(1 << 30).expect("a large pipe fits");
        assert_eq!((big.size(), real_size(&big)), (LARGE, LARGE));
        let second = pool.take(1 << 30).expect("a small one still fits");
        assert_eq!(
            (second.size(), real_size(&second)),
            (SMALL, SMALL),
            "no room for a second large pipe: small"
        );
        assert_eq!(pool.pages(), L + S);
        // Returned empty, the large pipe shrinks back to small...
        pool.give_back(big, true);
        assert_eq!(pool.pages(), 2 * S);
        // ... and grows again for the next big file, budget permitting.
        let again = pool.take(1 << 30).unwrap();
        assert_eq!((again.size(), real_size(&again)), (LARGE, LARGE));
        assert_eq!(pool.pages(), L + S);
        let small = pool.take(10_000).expect("room for one more small");
        assert_eq!(small.size(), SMALL);
        assert!(pool.take(10_000).is_none());
    }
}
