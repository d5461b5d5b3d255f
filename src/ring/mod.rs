//! The completion ring: one io_uring per shard, beside glommio's own, for the
//! operations glommio lacks or does readiness-style.
//!
//! - **Bookkeeping**: every operation in flight has a [`slab`] entry; its key
//!   is the SQE's `user_data`. The entry says who waits for the result, or,
//!   once the waiting future was dropped, holds that future's buffers until
//!   the kernel's completion arrives (see [`op`]): memory the kernel may still
//!   write is never freed early.
//! - **Completions** are announced through an eventfd registered on the ring,
//!   which a glommio task reads through glommio's own ring; no thread ever
//!   blocks, and the shard sleeps in one place.
//! - **Submissions are batched**: pushing an operation only queues its SQE
//!   and wakes a submitter task, which runs after the tasks already ready in
//!   this executor turn: one `io_uring_enter` per turn, not per operation.
//!
//! - **Receive buffers are provided** (see [`bufs`]): a `recv` waiting for
//!   data holds no memory of its own; the kernel picks a shard buffer when
//!   bytes arrive.
//!
//! Setup flags are probed: `SINGLE_ISSUER` and `COOP_TASKRUN` where the kernel
//! has them, none on older 5.x kernels. `DEFER_TASKRUN` is deliberately not
//! used: it posts completions only inside our own `io_uring_enter`, so the
//! eventfd would stay silent while the shard sleeps in glommio's ring.
//!
//! This module (and its children) hold the crate's ring `unsafe`; each block
//! says why it is sound.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::task::{Poll, Waker};

use io_uring::{IoUring, cqueue, squeue, types};
use slab::Slab;

pub mod bufs;
pub mod conn;
pub mod op;
pub mod ops;
pub mod pipes;

use bufs::BufRing;
use op::{Completion, Slot};

/// Completion queue entries per submission queue entry.
const CQ_PER_SQ: u32 = 8;

/// Receive buffers per shard, and their size: one page each, enough for
/// any file request and most messages (larger arrivals continue with direct
/// receives); 4 MiB per shard, resident once the kernel has cycled through
/// them. 1,024 so that 1,000 connections with a message each rarely run out
/// (out of buffers, a receive costs one more round trip).
pub const RECV_BUFFERS: u16 = 1024;
pub const RECV_BUFFER_SIZE: u32 = 4 * 1024;

/// `user_data` of operations whose completion nobody waits for (cancels).
const DETACHED: u64 = u64::MAX;

/// Which optional features the ring was built with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    pub single_issuer: bool,
    pub coop_taskrun: bool,
    /// A provided-buffer ring is registered (Linux 5.19).
    pub provided_buffers: bool,
}

/// Counters, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    /// `io_uring_enter` calls made to submit.
    pub enters: u64,
    /// Operations pushed.
    pub pushed: u64,
    /// Completions reaped.
    pub completions: u64,
    /// Receives that found every provided buffer in use (`ENOBUFS`).
    pub no_buffers: u64,
}

/// A shard's ring. Cheap to clone; never leaves its thread.
#[derive(Clone)]
pub struct Ring {
    inner: Rc<Inner>,
}

pub(crate) struct Inner {
    uring: RefCell<IoUring>,
    pub(crate) slots: RefCell<Slab<Slot>>,
    eventfd: OwnedFd,
    needs_submit: Cell<bool>,
    submitter: Cell<Option<Waker>>,
    stats: Cell<RingStats>,
    features: Features,
    /// Declared after `uring`, so dropped after it (see `Drop for Inner`).
    bufs: Option<BufRing>,
}

impl Ring {
    /// Build a ring of `entries` submission slots with the best setup flags
    /// this kernel accepts, and its eventfd. Call [`Ring::start`] inside the
    /// shard's executor before use.
    pub fn new(entries: u32) -> io::Result<Ring> {
        Ring::with_buffers(entries, RECV_BUFFERS, RECV_BUFFER_SIZE)
    }

    /// As [`Ring::new`], with `count` provided receive buffers (a power of
    /// two) of `size` bytes; none where the kernel lacks buffer rings.
    pub fn with_buffers(entries: u32, count: u16, size: u32) -> io::Result<Ring> {
        let attempts = [
            Features {
                single_issuer: true,
                coop_taskrun: true,
                provided_buffers: false,
            },
            Features {
                single_issuer: false,
                coop_taskrun: true,
                provided_buffers: false,
            },
            Features::default(),
        ];
        let mut last_err = None;
        for features in attempts {
            let mut b = IoUring::builder();
            // Room for a burst of completions from many connections at once
            // (an overflow is handled, but costs an extra enter).
            b.setup_cqsize(entries.saturating_mul(CQ_PER_SQ))
                .setup_clamp();
            if features.single_issuer {
                b.setup_single_issuer();
            }
            if features.coop_taskrun {
                b.setup_coop_taskrun().setup_taskrun_flag();
            }
            match b.build(entries) {
                Ok(uring) => return Ring::with(uring, features, (count, size)),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("io_uring setup failed")))
    }

    fn with(uring: IoUring, mut features: Features, bufs: (u16, u32)) -> io::Result<Ring> {
        // Blocking mode on purpose: glommio reads it through io_uring, which
        // then waits for a count instead of failing with EAGAIN.
        // SAFETY: eventfd(2) with valid flags; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
        uring.submitter().register_eventfd(eventfd.as_raw_fd())?;
        // Older kernels: receives use the connection's own buffer.
        let bufs = BufRing::register(&uring, bufs.0, bufs.1).ok();
        features.provided_buffers = bufs.is_some();
        Ok(Ring {
            inner: Rc::new(Inner {
                uring: RefCell::new(uring),
                slots: RefCell::new(Slab::with_capacity(256)),
                eventfd,
                needs_submit: Cell::new(false),
                submitter: Cell::new(None),
                stats: Cell::new(RingStats::default()),
                features,
                bufs,
            }),
        })
    }

    /// Spawn the submitter and the reaper on the current glommio executor.
    pub fn start(&self) -> io::Result<()> {
        let dup = self.inner.eventfd.try_clone()?;
        // SAFETY: an owned descriptor handed over to glommio, which closes it.
        let efd = unsafe {
            glommio::io::BufferedFile::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(dup))
        };
        let weak = Rc::downgrade(&self.inner);
        glommio::spawn_local(async move {
            loop {
                // Completes once the ring has posted completions.
                if efd.read_at(0, 8).await.is_err() {
                    return;
                }
                let Some(inner) = weak.upgrade() else { return };
                inner.reap();
            }
        })
        .detach();
        let weak = Rc::downgrade(&self.inner);
        glommio::spawn_local(async move {
            loop {
                let go = poll_fn(|cx| match weak.upgrade() {
                    None => Poll::Ready(false),
                    Some(inner) if inner.needs_submit.get() => Poll::Ready(true),
                    Some(inner) => {
                        inner.submitter.set(Some(cx.waker().clone()));
                        Poll::Pending
                    }
                })
                .await;
                let Some(inner) = weak.upgrade().filter(|_| go) else {
                    return;
                };
                inner.submit_now();
            }
        })
        .detach();
        Ok(())
    }

    /// The setup flags in use.
    pub fn features(&self) -> Features {
        self.inner.features
    }

    /// Operations whose completion has not arrived yet (abandoned ones too).
    pub fn in_flight(&self) -> usize {
        self.inner.slots.borrow().len()
    }

    /// Counters so far.
    pub fn stats(&self) -> RingStats {
        self.inner.stats.get()
    }

    /// The provided receive buffers, if the kernel has buffer rings.
    pub fn buffers(&self) -> Option<&BufRing> {
        self.inner.bufs.as_ref()
    }

    pub(crate) fn inner(&self) -> &Rc<Inner> {
        &self.inner
    }
}

impl Inner {
    /// Queue `sqe` for the slot `key` (or detached), to go out this turn.
    pub(crate) fn push(&self, sqe: squeue::Entry, key: u64) {
        self.enqueue(&[sqe.user_data(key)]);
    }

    /// Queue `sqe` for slot `key`, linked to a timeout: if it has not
    /// completed within `timespec`, the kernel cancels it (-ECANCELED).
    pub(crate) fn push_with_timeout(
        &self,
        sqe: squeue::Entry,
        key: u64,
        timespec: *const types::Timespec,
    ) {
        self.enqueue(&[
            sqe.user_data(key).flags(squeue::Flags::IO_LINK),
            io_uring::opcode::LinkTimeout::new(timespec)
                .build()
                .user_data(DETACHED),
        ]);
    }

    /// Queue two SQEs as a chain: the second starts only if the first
    /// completes in full (a short first result cancels the second).
    pub(crate) fn push_chain(
        &self,
        first: squeue::Entry,
        first_key: u64,
        second: squeue::Entry,
        second_key: u64,
    ) {
        self.enqueue(&[
            first.user_data(first_key).flags(squeue::Flags::IO_LINK),
            second.user_data(second_key),
        ]);
    }

    /// Put `entries` on the submission queue together (a linked chain must
    /// be contiguous), submitting early if it is full, and have the
    /// submitter send them this turn.
    fn enqueue(&self, entries: &[squeue::Entry]) {
        let mut uring = self.uring.borrow_mut();
        loop {
            // SAFETY: every pointer in these SQEs points into data owned by
            // its operation's slot, alive until that operation's completion
            // (detached cancels point at no memory; a linked timeout's
            // timespec is copied by the kernel at submission).
            let pushed = unsafe { uring.submission().push_multiple(entries) };
            if pushed.is_ok() {
                break;
            }
            drop(uring);
            self.submit_now();
            uring = self.uring.borrow_mut();
        }
        drop(uring);
        let mut s = self.stats.get();
        s.pushed += entries.len() as u64;
        self.stats.set(s);
        if !self.needs_submit.replace(true)
            && let Some(w) = self.submitter.take()
        {
            w.wake();
        }
    }

    /// One `io_uring_enter` for everything queued.
    pub(crate) fn submit_now(&self) {
        self.needs_submit.set(false);
        let uring = self.uring.borrow();
        loop {
            match uring.submit() {
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // EBUSY/EAGAIN: the completion queue is backed up; reaping
                // frees it, and the next turn submits again.
                Err(_) => {
                    self.needs_submit.set(true);
                    break;
                }
            }
        }
        drop(uring);
        let mut s = self.stats.get();
        s.enters += 1;
        self.stats.set(s);
        self.reap();
    }

    /// Hand every posted completion to its slot.
    pub(crate) fn reap(&self) {
        let mut done = Vec::new();
        {
            let mut uring = self.uring.borrow_mut();
            loop {
                {
                    let mut cq = uring.completion();
                    cq.sync();
                    for cqe in &mut cq {
                        done.push((cqe.user_data(), cqe.result(), cqe.flags()));
                    }
                }
                // Completions that found the queue full wait in the kernel
                // (no eventfd signal will announce them): an enter with
                // GETEVENTS, which `submit` adds when it sees the flag,
                // moves them in.
                if !uring.submission().cq_overflow() {
                    break;
                }
                let _ = uring.submit();
            }
        }
        if done.is_empty() {
            return;
        }
        let mut s = self.stats.get();
        s.completions += done.len() as u64;
        self.stats.set(s);
        let mut slots = self.slots.borrow_mut();
        for (key, result, flags) in done {
            if let (Some(_), Some(bufs)) = (cqueue::buffer_select(flags), &self.bufs) {
                bufs.handed_out();
            }
            if key == DETACHED {
                continue;
            }
            let key = key as usize;
            let more = cqueue::more(flags);
            let finished = match slots.get_mut(key) {
                Some(slot @ Slot::Abandoned(..)) => {
                    self.unclaimed(Completion { result, flags });
                    slot.complete(result, flags, more)
                }
                Some(slot) => slot.complete(result, flags, more),
                None => false,
            };
            if finished {
                // Abandoned and final: now the kernel is done with its memory.
                slots.remove(key);
            }
        }
    }

    /// Release what a completion nobody will read holds in the ring itself:
    /// the provided buffer it names goes back to the kernel.
    pub(crate) fn unclaimed(&self, c: Completion) {
        if let (Some(bid), Some(bufs)) = (cqueue::buffer_select(c.flags), &self.bufs) {
            bufs.recycle(bid);
        }
    }

    /// Count a receive that found no provided buffer free.
    pub(crate) fn note_no_buffers(&self) {
        let mut s = self.stats.get();
        s.no_buffers += 1;
        self.stats.set(s);
    }

    /// Ask the kernel to cancel the operation in slot `key`; its completion
    /// (with -ECANCELED, or its real result if it won the race) still comes.
    pub(crate) fn cancel(&self, key: usize) {
        let sqe = io_uring::opcode::AsyncCancel::new(key as u64).build();
        self.push(sqe, DETACHED);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.slots.get_mut().is_empty() {
            // Operations still in flight (a shard cut off at shutdown) may
            // write into their buffers or a provided one after the ring's
            // descriptor is closed: leak that memory rather than free it
            // under the kernel.
            std::mem::forget(std::mem::take(self.slots.get_mut()));
            std::mem::forget(self.bufs.take());
        } else if self.bufs.is_some() {
            let _ = self
                .uring
                .get_mut()
                .submitter()
                .unregister_buf_ring(bufs::GROUP);
        }
    }
}

#[cfg(test)]
mod tests;
