//! The io_uring itself and its two queues: SQEs pushed in batches, the
//! `io_uring_enter` that submits them (and waits), completions reaped into
//! their slots (the kernel's overflow list included), cancellations, and
//! the ring's counters.
//!
//! Reaping is where a completion is first seen, so it is also where the
//! provided buffers are counted: one the kernel handed out, and a receive
//! that found them all in use (`ENOBUFS`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::Waker;
use std::time::{Duration, Instant};

use io_uring::{IoUring, cqueue, squeue, types};

use super::bufs::{self, BufRing};
use super::completion::{Completion, Discard};
use super::op::cancel;
use super::slots::Slots;

/// `user_data` of operations whose completion nobody waits for (cancels).
const DETACHED: u64 = u64::MAX;

/// What the ring has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    /// `io_uring_enter` calls made to submit.
    pub enters: u64,
    /// Operations pushed.
    pub pushed: u64,
    /// Completions reaped.
    pub completions: u64,
    /// Receives into a provided buffer that completed with `ENOBUFS`: every
    /// buffer was in use (counted as reaped, for owners still waiting).
    pub no_buffers: u64,
    /// Times the completion queue overflowed into the kernel's list.
    pub cq_overflows: u64,
}

/// A shard's io_uring, what is in flight in it, and its counters.
pub(crate) struct Queues {
    uring: RefCell<IoUring>,
    pub(crate) slots: Slots,
    stats: Cell<RingStats>,
    /// The driver, when it waits for something to be pushed (nothing was in
    /// flight, so it let glommio park instead of blocking in the ring).
    pub(crate) driver: Cell<Option<Waker>>,
    /// Set once the executor's main work is done: the driver must not block.
    pub(crate) stopped: Cell<bool>,
    /// Single-shot operations pushed so far: each one's epoch.
    epochs: Cell<u64>,
    /// Declared after `uring`, so dropped after it (see `Drop for Queues`).
    pub(crate) bufs: Option<Rc<BufRing>>,
    /// The completions of one reap, copied out of the queue: kept between
    /// reaps so that reaping allocates nothing.
    reaped: Cell<Vec<(u64, i32, u32)>>,
}

impl Queues {
    pub(crate) fn new(uring: IoUring, bufs: Option<BufRing>) -> Queues {
        Queues {
            uring: RefCell::new(uring),
            slots: Slots::with_capacity(256),
            stats: Cell::new(RingStats::default()),
            driver: Cell::new(None),
            stopped: Cell::new(false),
            epochs: Cell::new(0),
            bufs: bufs.map(Rc::new),
            reaped: Cell::new(Vec::new()),
        }
    }

    /// Counters so far.
    pub(crate) fn stats(&self) -> RingStats {
        self.stats.get()
    }

    /// A new single-shot operation's epoch (see [`Slots::waiting`]).
    pub(crate) fn next_epoch(&self) -> u64 {
        let e = self.epochs.get().wrapping_add(1);
        self.epochs.set(e);
        e
    }

    /// Put `entries` on the submission queue together (a linked chain must
    /// be contiguous), submitting early if it is full, and make sure the
    /// driver will submit them.
    pub(crate) fn enqueue(&self, entries: &[squeue::Entry]) {
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
        // Taken, not borrowed: a reap inside a delivery finds it empty.
        let mut done = self.reaped.take();
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
            self.reaped.set(done);
            return 0;
        }
        let count = done.len();
        let mut exhausted = 0;
        for (key, result, flags) in done.drain(..) {
            if let (Some(_), Some(bufs)) = (cqueue::buffer_select(flags), &self.bufs) {
                bufs.handed_out();
            }
            if key == DETACHED {
                continue;
            }
            let key = key as usize;
            if result == -libc::ENOBUFS && self.slots.selects_buffer(key) {
                exhausted += 1;
            }
            if let Some(unread) = self.slots.deliver(key, Completion { result, flags }) {
                self.release(unread);
            }
        }
        let mut s = self.stats.get();
        s.completions += count as u64;
        s.cq_overflows += u64::from(overflowed);
        s.no_buffers += exhausted;
        self.stats.set(s);
        self.reaped.set(done);
        count
    }

    /// Release what a completion nobody will read holds in the ring itself:
    /// the provided buffer it names goes back to the kernel.
    pub(crate) fn release(&self, c: Completion) {
        if let (Some(bid), Some(bufs)) = (cqueue::buffer_select(c.flags), &self.bufs) {
            bufs.recycle(bid);
        }
    }

    /// The owner of slot `key` is gone before its final completion: keep
    /// `data` in the slot until then, and ask the kernel to cancel.
    pub(crate) fn abandon(
        &self,
        key: usize,
        data: Box<dyn std::any::Any>,
        discard: Option<Discard>,
    ) {
        self.slots.abandon(key, data, discard);
        self.cancel(key);
    }

    /// The deadline of the operation `(key, epoch)` passed: if it is still
    /// waiting, cancel it; it completes as `TimedOut`.
    pub(crate) fn expire(&self, key: usize, epoch: u64) {
        if self.slots.expire(key, epoch) {
            self.cancel(key);
        }
    }

    /// Cancel every operation in flight and wait (at most `limit`) for their
    /// final completions, so that their data is released and their
    /// descriptors closed (a listener no longer accepts) before the ring
    /// goes away.
    pub(crate) fn cancel_all(&self, limit: Duration) {
        for key in self.slots.keys() {
            self.cancel(key);
        }
        let deadline = Instant::now() + limit;
        self.enter(0);
        // Slots whose completion is in (a cancelled sleep of a task that
        // will never be polled again) hold nothing of the kernel's: waiting
        // for them to empty would only burn the whole grace.
        while self.slots.any_awaits_kernel() && Instant::now() < deadline {
            let ts = types::Timespec::from(deadline.saturating_duration_since(Instant::now()));
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.uring.borrow().submitter().submit_with_args(1, &args);
            self.reap();
        }
    }

    /// Ask the kernel to cancel the operation in slot `key`; its completion
    /// (with -ECANCELED, or its real result if it won the race) still comes.
    pub(crate) fn cancel(&self, key: usize) {
        self.enqueue(&[cancel::sqe(key as u64).user_data(DETACHED)]);
    }
}

impl Drop for Queues {
    fn drop(&mut self) {
        if !self.slots.is_empty() {
            // Operations still in flight (a shard cut off at shutdown) may
            // write into their buffers or a provided one after the ring's
            // descriptor is closed: leak that memory rather than free it
            // under the kernel.
            self.slots.leak();
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
