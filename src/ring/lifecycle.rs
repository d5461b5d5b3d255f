//! One operation's life in the ring, made explicit (after monoio's
//! `driver/op` and `uring/lifecycle`).
//!
//! ```text
//! pushed ──► Waiting(waker) ──CQE──► Done(completion) ──poll──► slot freed, the op's data back
//!    │
//!    └─ future dropped ──► Abandoned(data) + cancel ──final CQE──► slot freed, data dropped
//! ```
//!
//! The data an operation points the kernel at (buffers, paths, `open_how`)
//! and the descriptors it names live in
//! the [`Op`] while someone waits, and move into the slot when the future is
//! dropped early. Either way they outlive the kernel's use of them: memory
//! the kernel may still write is never freed, and a descriptor an operation
//! names is never closed (and its number reused) before the operation ends.
//! Multishot operations ([`MultiOp`]) queue each completion until polled.
//!
//! Completions nobody will read are released here too: a descriptor the
//! kernel made is closed ([`Discard`]), a provided buffer it filled goes back
//! to the ring. An operation whose deadline passed (see [`deadline`]) is
//! cancelled here and completes as `TimedOut`. This module never submits
//! anything itself but cancellations.
//!
//! [`deadline`]: super::deadline

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use io_uring::cqueue;

use super::op::{Operation, Single};
use super::{Inner, Ring};

/// One completion: the kernel's result (a count, a descriptor, or -errno)
/// and the CQE flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub result: i32,
    pub flags: u32,
}

impl Completion {
    /// The result as `io::Result`: negative values are errnos.
    pub fn into_result(self) -> io::Result<u32> {
        if self.result < 0 {
            Err(io::Error::from_raw_os_error(-self.result))
        } else {
            Ok(self.result as u32)
        }
    }
}

/// Releases what an unwanted completion carries (closes a descriptor).
pub type Discard = fn(Completion);

/// A [`Discard`] for completions that carry a new descriptor.
pub fn close_fd(c: Completion) {
    if c.result >= 0 {
        // SAFETY: the kernel created this descriptor for us and nobody else
        // has seen it; closing it here is its only use.
        unsafe { libc::close(c.result) };
    }
}

/// What the slab holds for an operation in flight.
pub(crate) enum Slot {
    /// Single-shot, someone waits (or will poll). `epoch` tells this
    /// operation from another that later takes the same slot; `expired`:
    /// its deadline passed and it was cancelled for it.
    Waiting {
        waker: Option<Waker>,
        epoch: u64,
        expired: bool,
    },
    /// Single-shot, the completion is in (`true`: cancelled for its
    /// deadline); the owner takes it.
    Done(Completion, bool),
    /// Multishot: completions queued for the owner; `ended` once the kernel
    /// said there will be no more.
    Multi {
        queue: VecDeque<Completion>,
        waker: Option<Waker>,
        ended: bool,
    },
    /// The owner is gone; this keeps its data (and descriptors) alive until
    /// the final CQE, and releases what late completions hand over.
    Abandoned(#[allow(dead_code)] Box<dyn Any>, Option<Discard>),
}

impl Slot {
    /// A single-shot operation, just pushed.
    pub(crate) fn waiting(epoch: u64) -> Slot {
        Slot::Waiting {
            waker: None,
            epoch,
            expired: false,
        }
    }

    /// Is the kernel still to post a completion here? (A `Done` slot, or a
    /// multishot one that ended, only waits for its owner to poll it.)
    pub(crate) fn awaits_kernel(&self) -> bool {
        match self {
            Slot::Waiting { .. } | Slot::Abandoned(..) => true,
            Slot::Multi { ended, .. } => !ended,
            Slot::Done(..) => false,
        }
    }
}

impl Inner {
    /// Hand one completion to slot `key`; frees the slot when it was the
    /// final completion of an abandoned operation.
    pub(crate) fn deliver(&self, key: usize, c: Completion) {
        let mut slots = self.slots.borrow_mut();
        let Some(slot) = slots.get_mut(key) else {
            return;
        };
        let more = cqueue::more(c.flags);
        match slot {
            Slot::Waiting { waker, expired, .. } => {
                let (w, expired) = (waker.take(), *expired);
                *slot = Slot::Done(c, expired);
                if let Some(w) = w {
                    w.wake();
                }
            }
            Slot::Multi {
                queue,
                waker,
                ended,
            } => {
                queue.push_back(c);
                *ended |= !more;
                if let Some(w) = waker.take() {
                    w.wake();
                }
            }
            Slot::Abandoned(_, discard) => {
                if let Some(d) = discard {
                    d(c);
                }
                self.unclaimed(c);
                if !more {
                    // Final: now the kernel is done with its memory and
                    // descriptors.
                    slots.remove(key);
                }
            }
            Slot::Done(..) => {}
        }
    }

    /// The deadline of the operation `(key, epoch)` passed: if it is still
    /// waiting, cancel it; it completes as `TimedOut`.
    pub(crate) fn expire(&self, key: usize, epoch: u64) {
        let mut slots = self.slots.borrow_mut();
        if let Some(Slot::Waiting {
            epoch: e, expired, ..
        }) = slots.get_mut(key)
            && *e == epoch
            && !*expired
        {
            *expired = true;
            drop(slots);
            self.cancel(key);
        }
    }

    /// Release what a completion nobody will read holds in the ring itself:
    /// the provided buffer it names goes back to the kernel.
    pub(crate) fn unclaimed(&self, c: Completion) {
        if let (Some(bid), Some(bufs)) = (cqueue::buffer_select(c.flags), &self.bufs) {
            bufs.recycle(bid);
        }
    }

    /// The owner of slot `key` is gone before its final completion: keep
    /// `data` in the slot until then, and ask the kernel to cancel.
    fn abandon(&self, key: usize, data: Box<dyn Any>, discard: Option<Discard>) {
        self.slots.borrow_mut()[key] = Slot::Abandoned(data, discard);
        self.cancel(key);
    }
}

/// A single-shot operation in flight. Resolves to the operation's output,
/// built from its completion and the data it owned.
pub struct Op<T: Single> {
    ring: Ring,
    key: Option<usize>,
    /// Which operation of slot `key` this is (see [`Op::id`]).
    epoch: u64,
    data: Option<T>,
}

impl<T: Single> Op<T> {
    pub(crate) fn new(ring: &Ring, key: usize, epoch: u64, data: T) -> Op<T> {
        Op {
            ring: ring.clone(),
            key: Some(key),
            epoch,
            data: Some(data),
        }
    }

    /// What names this operation for `Inner::expire`, while in flight.
    pub(crate) fn id(&self) -> Option<(usize, u64)> {
        self.key.map(|k| (k, self.epoch))
    }

    /// Ask the kernel to cancel it, and keep waiting: it still resolves,
    /// with `ECANCELED` or with its real result if that won the race (an
    /// accept that took a connection hands it over rather than lose it).
    pub(crate) fn cancel(&self) {
        if let Some(key) = self.key {
            self.ring.inner().cancel(key);
        }
    }
}

// The kernel points into heap memory `T` owns, never into the `Op` itself:
// moving an `Op` is harmless.
impl<T: Single> Unpin for Op<T> {}

impl<T: Single> Future for Op<T> {
    type Output = T::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let key = this.key.expect("Op polled after completion");
        let mut slots = this.ring.inner().slots.borrow_mut();
        match &mut slots[key] {
            Slot::Waiting { waker, .. } => {
                if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Slot::Done(c, expired) => {
                let (mut c, expired) = (*c, *expired);
                slots.remove(key);
                drop(slots);
                this.key = None;
                // Cancelled for its deadline: the time ran out.
                if expired && c.result == -libc::ECANCELED {
                    c.result = -libc::ETIMEDOUT;
                }
                let data = this.data.take().expect("data present until completion");
                Poll::Ready(data.complete(c))
            }
            _ => unreachable!("single-shot op in a multishot slot"),
        }
    }
}

impl<T: Single> Drop for Op<T> {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let inner = self.ring.inner().clone();
        let done = match &inner.slots.borrow()[key] {
            Slot::Done(c, _) => Some(*c),
            _ => None,
        };
        match done {
            Some(c) => {
                inner.slots.borrow_mut().remove(key);
                if let Some(d) = T::DISCARD {
                    d(c);
                }
                inner.unclaimed(c);
            }
            None => {
                // In flight: the kernel may still use the data and descriptors.
                let data: Box<dyn Any> = Box::new(self.data.take());
                inner.abandon(key, data, T::DISCARD);
            }
        }
    }
}

/// A multishot operation: a stream of completions until the kernel ends it.
pub struct MultiOp<T: Operation> {
    ring: Ring,
    key: Option<usize>,
    data: Option<T>,
}

impl<T: Operation> MultiOp<T> {
    pub(crate) fn new(ring: &Ring, key: usize, data: T) -> MultiOp<T> {
        MultiOp {
            ring: ring.clone(),
            key: Some(key),
            data: Some(data),
        }
    }

    /// Ask the kernel to end it: [`MultiOp::next`] then yields what it
    /// completed meanwhile, and `None` after the last.
    pub(crate) fn cancel(&self) {
        if let Some(key) = self.key {
            self.ring.inner().cancel(key);
        }
    }

    /// The next completion; `None` once the kernel ended the operation
    /// (the last completion says why, e.g. an error).
    pub async fn next(&mut self) -> Option<Completion> {
        std::future::poll_fn(|cx| {
            let Some(key) = self.key else {
                return Poll::Ready(None);
            };
            let mut slots = self.ring.inner().slots.borrow_mut();
            let Slot::Multi {
                queue,
                waker,
                ended,
            } = &mut slots[key]
            else {
                unreachable!("multishot op in a single-shot slot")
            };
            if let Some(c) = queue.pop_front() {
                return Poll::Ready(Some(c));
            }
            if *ended {
                slots.remove(key);
                self.key = None;
                return Poll::Ready(None);
            }
            *waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    #[cfg(feature = "internals")]
    /// The data back, once [`MultiOp::next`] returned `None` (the kernel
    /// posted its last completion and will touch the data no more).
    ///
    /// # Panics
    /// If the operation has not ended.
    pub fn into_data(mut self) -> T {
        assert!(self.key.is_none(), "into_data before the operation ended");
        self.data.take().expect("data present until the end")
    }
}

impl<T: Operation> Drop for MultiOp<T> {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let inner = self.ring.inner().clone();
        let (queued, ended) = {
            let mut slots = inner.slots.borrow_mut();
            let Slot::Multi { queue, ended, .. } = &mut slots[key] else {
                unreachable!("multishot op in a single-shot slot")
            };
            (std::mem::take(queue), *ended)
        };
        for c in queued {
            if let Some(d) = T::DISCARD {
                d(c);
            }
            inner.unclaimed(c);
        }
        if ended {
            inner.slots.borrow_mut().remove(key);
        } else {
            inner.abandon(key, Box::new(self.data.take()), T::DISCARD);
        }
    }
}
