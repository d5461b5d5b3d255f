//! The completion ring: one io_uring per shard, beside glommio's own, for the
//! operations glommio lacks or does readiness-style.
//!
//! - **Operations** are one struct each (see [`op`]), owning what the kernel
//!   reads: buffers, paths, and a [`SharedFd`] clone of each descriptor they
//!   name, so no descriptor is closed (and its number reused) while an
//!   operation naming it is queued, linked or in flight.
//! - **Bookkeeping**: every operation in flight has a [`slab`] entry; its key
//!   is the SQE's `user_data`. The entry says who waits for the result, or,
//!   once the waiting future was dropped, holds that operation's data until
//!   the kernel's completion arrives (see [`lifecycle`]): memory the kernel
//!   may still write is never freed early.
//! - **The shard sleeps in one place: this ring** (see [`driver`]). A
//!   driver task on the shard's glommio executor lets every runnable task
//!   run, and when none is left it blocks in one `io_uring_enter` that
//!   submits what is queued and waits for a completion. Timers are ring
//!   timeouts; nothing waits on glommio's own rings, so glommio never parks
//!   (its park/wake cycle costs about eight enters and a `membarrier`).
//! - **Submissions are batched**: pushing an operation only queues its SQE;
//!   the driver's enter takes every SQE queued in the turn (a send and the
//!   next receive go out together, with the wait).
//! - **Receive buffers are provided** (see [`bufs`]): a `recv` waiting for
//!   data holds no memory of its own; the kernel picks a shard buffer when
//!   bytes arrive.
//!
//! Setup flags are probed: `SINGLE_ISSUER` and `COOP_TASKRUN` (5.19:
//! completion work waits for the thread's next kernel entry, no interrupt)
//! with `TASKRUN_FLAG` (so the driver sees when such work is waiting),
//! else none (5.10). `DEFER_TASKRUN` (6.1), possible now that only we wait
//! on the ring, was measured and lost: completion work then runs only in
//! our own enter, in bursts, and at 1,000 connections the p99 tripled
//! (BENCHMARKS.md).
//!
//! This module (and its children) hold the crate's ring `unsafe`; each block
//! says why it is sound. It knows nothing of servers or protocols.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::task::Waker;
use std::time::Duration;

use io_uring::{IoUring, cqueue, squeue, types};
use slab::Slab;

pub mod bufs;
pub mod deadline;
pub mod driver;
mod fd;
pub mod lifecycle;
pub mod op;
pub mod pipes;

use bufs::BufRing;
pub use fd::SharedFd;
use lifecycle::{Completion, MultiOp, Op, Slot};
use op::{Operation, Single};

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
    /// Completion work waits for the thread's next kernel entry (5.19).
    pub coop_taskrun: bool,
    /// A provided-buffer ring is registered (Linux 5.19).
    pub provided_buffers: bool,
}

/// What the ring has done so far.
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
    /// Times the completion queue overflowed into the kernel's list.
    pub cq_overflows: u64,
}

/// A shard's ring. Cheap to clone; never leaves its thread.
#[derive(Clone)]
pub struct Ring {
    inner: Rc<Inner>,
}

pub(crate) struct Inner {
    uring: RefCell<IoUring>,
    pub(crate) slots: RefCell<Slab<Slot>>,
    stats: Cell<RingStats>,
    /// The driver, when it waits for something to be pushed (nothing was in
    /// flight, so it let glommio park instead of blocking in the ring).
    driver: Cell<Option<Waker>>,
    /// Set once the executor's main work is done: the driver must not block.
    stopped: Cell<bool>,
    /// Single-shot operations pushed so far: each one's epoch.
    epochs: Cell<u64>,
    features: Features,
    /// Declared after `uring`, so dropped after it (see `Drop for Inner`).
    bufs: Option<BufRing>,
}

impl Ring {
    /// Build a ring of `entries` submission slots with the best setup flags
    /// this kernel accepts. Build it on the thread that will use it (the
    /// single issuer), and drive it from there ([`driver`]).
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
                ..Features::default()
            },
            Features {
                coop_taskrun: true,
                ..Features::default()
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
        // Older kernels: receives use the connection's own buffer.
        let bufs = BufRing::register(&uring, bufs.0, bufs.1).ok();
        features.provided_buffers = bufs.is_some();
        Ok(Ring {
            inner: Rc::new(Inner {
                uring: RefCell::new(uring),
                slots: RefCell::new(Slab::with_capacity(256)),
                stats: Cell::new(RingStats::default()),
                driver: Cell::new(None),
                stopped: Cell::new(false),
                epochs: Cell::new(0),
                features,
                bufs,
            }),
        })
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

    /// Submit `op`; the returned future resolves to its result. Dropping
    /// the future early cancels the operation (its data stays alive until
    /// the kernel is done with it). For a deadline, run it under a
    /// [`deadline::Watch`].
    pub fn submit<T: Single>(&self, mut op: T) -> Op<T> {
        let epoch = self.inner.next_epoch();
        let key = self.inner.slots.borrow_mut().insert(Slot::waiting(epoch));
        self.inner.enqueue(&[op.sqe().user_data(key as u64)]);
        Op::new(self, key, epoch, op)
    }

    /// Submit a multishot operation: a stream of completions.
    pub fn submit_multi<T: Operation>(&self, mut op: T) -> MultiOp<T> {
        let key = self.inner.slots.borrow_mut().insert(Slot::Multi {
            queue: Default::default(),
            waker: None,
            ended: false,
        });
        self.inner.enqueue(&[op.sqe().user_data(key as u64)]);
        MultiOp::new(self, key, op)
    }

    /// Submit two operations as a chain: the second starts only if the
    /// first completes in full (a short first result cancels the second,
    /// which then fails with `ECANCELED`).
    pub fn submit_chain<A: Single, B: Single>(&self, mut a: A, mut b: B) -> (Op<A>, Op<B>) {
        let (ea, eb) = (self.inner.next_epoch(), self.inner.next_epoch());
        let (ka, kb) = {
            let mut slots = self.inner.slots.borrow_mut();
            (
                slots.insert(Slot::waiting(ea)),
                slots.insert(Slot::waiting(eb)),
            )
        };
        self.inner.enqueue(&[
            a.sqe().user_data(ka as u64).flags(squeue::Flags::IO_LINK),
            b.sqe().user_data(kb as u64),
        ]);
        (Op::new(self, ka, ea, a), Op::new(self, kb, eb, b))
    }

    #[cfg(feature = "internals")]
    /// Send `buf.filled()[from..to]` once with `SEND_ZC`, and hand `buf`
    /// back only once the kernel's notification says it is done with it.
    pub async fn send_zc(
        &self,
        fd: &SharedFd,
        buf: crate::buf::Buf,
        from: usize,
        to: usize,
    ) -> (io::Result<usize>, crate::buf::Buf) {
        let mut op = self.submit_multi(op::SendZc::new(fd, buf, from, to));
        let mut result = None;
        while let Some(c) = op.next().await {
            if !cqueue::notif(c.flags) {
                result = Some(c.into_result().map(|n| n as usize));
            }
        }
        let res = result.unwrap_or_else(|| Err(io::Error::other("SEND_ZC posted no result")));
        (res, op.into_data().into_buf())
    }
}

impl Inner {
    fn next_epoch(&self) -> u64 {
        let e = self.epochs.get().wrapping_add(1);
        self.epochs.set(e);
        e
    }

    /// Put `entries` on the submission queue together (a linked chain must
    /// be contiguous), submitting early if it is full, and make sure the
    /// driver will submit them.
    fn enqueue(&self, entries: &[squeue::Entry]) {
        let mut uring = self.uring.borrow_mut();
        loop {
            // SAFETY: every pointer in these SQEs points into data owned by
            // its operation, alive until that operation's final completion
            // (see `op::Operation`); cancels point at no memory.
            let pushed = unsafe { uring.submission().push_multiple(entries) };
            if pushed.is_ok() {
                break;
            }
            drop(uring);
            self.enter(0);
            uring = self.uring.borrow_mut();
        }
        drop(uring);
        let mut s = self.stats.get();
        s.pushed += entries.len() as u64;
        self.stats.set(s);
        if let Some(driver) = self.driver.take() {
            driver.wake();
        }
    }

    /// One `io_uring_enter`: submit everything queued, run the completion
    /// work the kernel deferred, wait until at least `wait` completions are
    /// posted, then hand every posted completion to its slot.
    pub(crate) fn enter(&self, wait: u32) {
        {
            let uring = self.uring.borrow();
            // EINTR: a signal landed on this thread; EBUSY/EAGAIN: the
            // completion queue is backed up (reaping below frees it). Either
            // way the caller comes back for what is left.
            let _ = uring.submitter().submit_and_wait(wait as usize);
        }
        let mut s = self.stats.get();
        s.enters += 1;
        self.stats.set(s);
        self.reap();
    }

    /// Are SQEs queued and not yet submitted?
    pub(crate) fn queued(&self) -> bool {
        !self.uring.borrow_mut().submission().is_empty()
    }

    /// Does the kernel hold completion work only an enter runs (deferred
    /// task work, or completions the queue could not hold)?
    pub(crate) fn deferred_work(&self) -> bool {
        let mut uring = self.uring.borrow_mut();
        let sq = uring.submission();
        sq.taskrun() || sq.cq_overflow()
    }

    /// Are completions posted and not yet handed to their slots?
    pub(crate) fn has_completions(&self) -> bool {
        !self.uring.borrow_mut().completion().is_empty()
    }

    /// Hand every posted completion to its slot; how many there were.
    pub(crate) fn reap(&self) -> usize {
        let mut done = Vec::new();
        let mut overflowed = false;
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
                // Completions that found the queue full wait in the kernel's
                // overflow list: an enter with GETEVENTS (which `submit` adds
                // when it sees the flag) moves them in.
                if !uring.submission().cq_overflow() {
                    break;
                }
                overflowed = true;
                let _ = uring.submit();
            }
        }
        if done.is_empty() {
            return 0;
        }
        let mut s = self.stats.get();
        s.completions += done.len() as u64;
        s.cq_overflows += u64::from(overflowed);
        self.stats.set(s);
        let count = done.len();
        for (key, result, flags) in done {
            if let (Some(_), Some(bufs)) = (cqueue::buffer_select(flags), &self.bufs) {
                bufs.handed_out();
            }
            if key != DETACHED {
                self.deliver(key as usize, Completion { result, flags });
            }
        }
        count
    }

    /// Count a receive that found no provided buffer free.
    pub(crate) fn note_no_buffers(&self) {
        let mut s = self.stats.get();
        s.no_buffers += 1;
        self.stats.set(s);
    }

    /// Cancel every operation in flight and wait (at most `limit`) for their
    /// final completions, so that their data is released and their
    /// descriptors closed (a listener no longer accepts) before the ring
    /// goes away.
    pub(crate) fn cancel_all(&self, limit: Duration) {
        let keys: Vec<usize> = self.slots.borrow().iter().map(|(k, _)| k).collect();
        for key in keys {
            self.cancel(key);
        }
        let deadline = std::time::Instant::now() + limit;
        self.enter(0);
        // Slots whose completion is in (a cancelled sleep of a task that
        // will never be polled again) hold nothing of the kernel's: waiting
        // for them to empty would only burn the whole grace.
        let in_kernel = || self.slots.borrow().iter().any(|(_, s)| s.awaits_kernel());
        while in_kernel() && std::time::Instant::now() < deadline {
            let ts = types::Timespec::from(
                deadline.saturating_duration_since(std::time::Instant::now()),
            );
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.uring.borrow().submitter().submit_with_args(1, &args);
            self.reap();
        }
    }

    /// Ask the kernel to cancel the operation in slot `key`; its completion
    /// (with -ECANCELED, or its real result if it won the race) still comes.
    pub(crate) fn cancel(&self, key: usize) {
        self.enqueue(&[op::cancel::sqe(key as u64).user_data(DETACHED)]);
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
pub(crate) mod tests;
