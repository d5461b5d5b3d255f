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
//! says why it is sound. It knows nothing of servers or protocols.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use io_uring::{IoUring, cqueue, squeue, types};
use slab::Slab;

pub mod bufs;
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

/// `user_data` of operations whose completion nobody waits for (cancels,
/// linked timeouts).
const DETACHED: u64 = u64::MAX;

/// Which optional features the ring was built with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    pub single_issuer: bool,
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

    /// Submit `op`; the returned future resolves to its result. Dropping
    /// the future early cancels the operation (its data stays alive until
    /// the kernel is done with it).
    pub fn submit<T: Single>(&self, op: T) -> Op<T> {
        self.push_single(op, None)
    }

    /// As [`Ring::submit`], with a linked timeout: if `op` has not completed
    /// within `limit`, the kernel cancels it and it fails with `TimedOut`.
    /// No user-space timer is armed.
    pub fn submit_within<T: Single>(&self, op: T, limit: Duration) -> Op<T> {
        self.push_single(op, Some(limit))
    }

    fn push_single<T: Single>(&self, mut op: T, limit: Option<Duration>) -> Op<T> {
        let key = self.inner.slots.borrow_mut().insert(Slot::Waiting(None));
        let sqe = op.sqe().user_data(key as u64);
        let timeout = limit.map(|l| Box::new(types::Timespec::from(l)));
        match &timeout {
            None => self.inner.enqueue(&[sqe]),
            Some(ts) => self.inner.enqueue(&[
                sqe.flags(squeue::Flags::IO_LINK),
                io_uring::opcode::LinkTimeout::new(&**ts)
                    .build()
                    .user_data(DETACHED),
            ]),
        }
        Op::new(self, key, op, timeout)
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
        let (ka, kb) = {
            let mut slots = self.inner.slots.borrow_mut();
            (
                slots.insert(Slot::Waiting(None)),
                slots.insert(Slot::Waiting(None)),
            )
        };
        self.inner.enqueue(&[
            a.sqe().user_data(ka as u64).flags(squeue::Flags::IO_LINK),
            b.sqe().user_data(kb as u64),
        ]);
        (Op::new(self, ka, a, None), Op::new(self, kb, b, None))
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
    /// Put `entries` on the submission queue together (a linked chain must
    /// be contiguous), submitting early if it is full, and have the
    /// submitter send them this turn.
    fn enqueue(&self, entries: &[squeue::Entry]) {
        let mut uring = self.uring.borrow_mut();
        loop {
            // SAFETY: every pointer in these SQEs points into data owned by
            // its operation, alive until that operation's final completion
            // (see `op::Operation`); cancels point at no memory; a linked
            // timeout's timespec is owned by its `Op` (or its abandoned slot).
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
                // Completions that found the queue full wait in the kernel
                // (no eventfd signal will announce them): an enter with
                // GETEVENTS, which `submit` adds when it sees the flag,
                // moves them in.
                if !uring.submission().cq_overflow() {
                    break;
                }
                overflowed = true;
                let _ = uring.submit();
            }
        }
        if done.is_empty() {
            return;
        }
        let mut s = self.stats.get();
        s.completions += done.len() as u64;
        s.cq_overflows += u64::from(overflowed);
        self.stats.set(s);
        for (key, result, flags) in done {
            if let (Some(_), Some(bufs)) = (cqueue::buffer_select(flags), &self.bufs) {
                bufs.handed_out();
            }
            if key != DETACHED {
                self.deliver(key as usize, Completion { result, flags });
            }
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
mod tests;
