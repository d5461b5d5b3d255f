//! The completion ring: one io_uring per shard, beside glommio's own, for the
//! operations glommio lacks or does readiness-style.
//!
//! - **Operations** are one struct each (see [`op`]), owning what the kernel
//!   reads: buffers, paths, and a [`SharedFd`] clone of each descriptor they
//!   name, so no descriptor is closed (and its number reused) while an
//!   operation naming it is queued, linked or in flight.
//! - **Bookkeeping**: every operation in flight has a slot (`slots.rs`);
//!   its key is the SQE's `user_data`. The slot says who waits for the
//!   result, or, once the waiting future was dropped, holds that
//!   operation's data until the kernel's completion arrives (the futures'
//!   side is [`lifecycle`]): memory the kernel may still write is never
//!   freed early.
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
//! (docs/bench/history.md).
//!
//! Here is the [`Ring`] handle (setup, submitting); below it, imports run
//! one way: `lifecycle` (the futures) -> `queues` (the io_uring: push,
//! enter, reap, cancel) -> `slots` (the operations in flight) ->
//! [`completion`]; the operations ([`op`]) stand on `completion`, [`bufs`]
//! and `fd` alone. [`driver`] and [`deadline`] use the handle from above.
//!
//! This module (and its children) hold the crate's ring `unsafe`; each block
//! says why it is sound. It knows nothing of servers or protocols.

use std::io;
use std::rc::Rc;

use io_uring::{IoUring, squeue};

pub mod bufs;
pub mod completion;
pub mod deadline;
pub mod driver;
mod fd;
pub mod lifecycle;
pub mod op;
pub mod pipes;
mod queues;
mod slots;

use bufs::BufRing;
pub use fd::SharedFd;
use lifecycle::{MultiOp, Op};
use op::{Operation, Single};
use queues::Queues;
pub use queues::RingStats;

/// Completion queue entries per submission queue entry.
const CQ_PER_SQ: u32 = 8;

/// Receive buffers per shard, and their size: one page each, enough for
/// any file request and most messages (larger arrivals continue with direct
/// receives); 4 MiB per shard, resident once the kernel has cycled through
/// them. 1,024 so that 1,000 connections with a message each rarely run out
/// (out of buffers, a receive costs one more round trip).
pub const RECV_BUFFERS: u16 = 1024;
pub const RECV_BUFFER_SIZE: u32 = 4 * 1024;

/// Which optional features the ring was built with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    pub single_issuer: bool,
    /// Completion work waits for the thread's next kernel entry (5.19).
    pub coop_taskrun: bool,
    /// A provided-buffer ring is registered (Linux 5.19).
    pub provided_buffers: bool,
}

/// A shard's ring. Cheap to clone; never leaves its thread.
#[derive(Clone)]
pub struct Ring {
    inner: Rc<Queues>,
    features: Features,
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
            inner: Rc::new(Queues::new(uring, bufs)),
            features,
        })
    }

    /// The setup flags in use.
    pub fn features(&self) -> Features {
        self.features
    }

    /// Operations whose completion has not arrived yet (abandoned ones too).
    pub fn in_flight(&self) -> usize {
        self.inner.slots.len()
    }

    /// Counters so far.
    pub fn stats(&self) -> RingStats {
        self.inner.stats()
    }

    /// The provided receive buffers, if the kernel has buffer rings.
    pub fn buffers(&self) -> Option<&Rc<BufRing>> {
        self.inner.bufs.as_ref()
    }

    pub(crate) fn inner(&self) -> &Rc<Queues> {
        &self.inner
    }

    /// Submit `op`; the returned future resolves to its result. Dropping
    /// the future early cancels the operation (its data stays alive until
    /// the kernel is done with it). For a deadline, run it under a
    /// [`deadline::Watch`].
    pub fn submit<T: Single>(&self, mut op: T) -> Op<T> {
        let q = &self.inner;
        let epoch = q.next_epoch();
        let key = q.slots.waiting(epoch, T::SELECTS_BUFFER);
        q.enqueue(&[op.sqe().user_data(key as u64)]);
        Op::new(q, key, epoch, op)
    }

    /// Submit a multishot operation: a stream of completions.
    pub fn submit_multi<T: Operation>(&self, mut op: T) -> MultiOp<T> {
        let q = &self.inner;
        let key = q.slots.multi(T::SELECTS_BUFFER);
        q.enqueue(&[op.sqe().user_data(key as u64)]);
        MultiOp::new(q, key, op)
    }

    /// Submit two operations as a chain: the second starts only if the
    /// first completes in full (a short first result cancels the second,
    /// which then fails with `ECANCELED`).
    pub fn submit_chain<A: Single, B: Single>(&self, mut a: A, mut b: B) -> (Op<A>, Op<B>) {
        let q = &self.inner;
        let (ea, eb) = (q.next_epoch(), q.next_epoch());
        let ka = q.slots.waiting(ea, A::SELECTS_BUFFER);
        let kb = q.slots.waiting(eb, B::SELECTS_BUFFER);
        q.enqueue(&[
            a.sqe().user_data(ka as u64).flags(squeue::Flags::IO_LINK),
            b.sqe().user_data(kb as u64),
        ]);
        (Op::new(q, ka, ea, a), Op::new(q, kb, eb, b))
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
            if !io_uring::cqueue::notif(c.flags) {
                result = Some(c.into_result().map(|n| n as usize));
            }
        }
        let res = result.unwrap_or_else(|| Err(io::Error::other("SEND_ZC posted no result")));
        (res, op.into_data().into_buf())
    }
}

#[cfg(test)]
pub(crate) mod tests;
