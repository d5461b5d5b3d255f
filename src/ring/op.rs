//! One operation's life in the ring, made explicit (after monoio's
//! `driver/op` and `uring/lifecycle`).
//!
//! ```text
//! pushed ──► Waiting(waker) ──CQE──► Done(result) ──poll──► slot freed, data back to the caller
//!    │
//!    └─ future dropped ──► Abandoned(data) + cancel ──final CQE──► slot freed, data dropped
//! ```
//!
//! The data an operation points the kernel at (buffers, paths, `open_how`)
//! lives in the [`Op`] while someone waits, and moves into the slot when the
//! future is dropped early. Either way it outlives the kernel's use of it.
//! Multishot operations ([`MultiOp`]) queue each completion until polled.

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use io_uring::squeue;

use super::Ring;

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

/// What the slab holds for an operation in flight.
pub(crate) enum Slot {
    /// Single-shot, someone waits (or will poll).
    Waiting(Option<Waker>),
    /// Single-shot, the completion is in; the owner takes it.
    Done(Completion),
    /// Multishot: completions queued for the owner; `ended` once the kernel
    /// said there will be no more.
    Multi {
        queue: VecDeque<Completion>,
        waker: Option<Waker>,
        ended: bool,
    },
    /// The owner is gone; this keeps its data alive until the final CQE,
    /// and releases what late completions hand over (e.g. closes accepted
    /// descriptors nobody will take).
    Abandoned(#[allow(dead_code)] Box<dyn Any>, Option<Discard>),
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

impl Slot {
    /// Record a CQE. Returns true when the slot should be freed now (an
    /// abandoned operation's final completion).
    pub(crate) fn complete(&mut self, result: i32, flags: u32, more: bool) -> bool {
        let c = Completion { result, flags };
        match self {
            Slot::Waiting(waker) => {
                let w = waker.take();
                *self = Slot::Done(c);
                if let Some(w) = w {
                    w.wake();
                }
                false
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
                false
            }
            Slot::Abandoned(_, discard) => {
                if let Some(d) = discard {
                    d(c);
                }
                !more
            }
            Slot::Done(_) => false,
        }
    }
}

/// A single-shot operation in flight. Resolves to its completion and gives
/// back the data it owned.
pub struct Op<T: 'static> {
    ring: Ring,
    key: Option<usize>,
    data: Option<T>,
    discard: Option<Discard>,
}

impl<T: 'static> Op<T> {
    /// Push `sqe`, whose pointers all point into `data`.
    ///
    /// # Safety
    /// Every pointer in `sqe` must point into `data` (or be null), and stay
    /// valid while `data` is alive and not moved out of its heap allocation:
    /// `data` is moved into this `Op` and maybe later into a slot, so
    /// pointers into its inline bytes would dangle; pointers into heap memory
    /// it owns (a `Box`, a `Vec`'s buffer) stay valid.
    pub(crate) unsafe fn push(ring: &Ring, sqe: squeue::Entry, data: T) -> Op<T> {
        let key = ring.inner().slots.borrow_mut().insert(Slot::Waiting(None));
        ring.inner().push(sqe, key as u64);
        Op {
            ring: ring.clone(),
            key: Some(key),
            data: Some(data),
            discard: None,
        }
    }

    /// As [`Op::push`], with a linked timeout: past `timespec` the kernel
    /// cancels the operation and it completes with -ECANCELED.
    ///
    /// # Safety
    /// As for [`Op::push`]; `timespec` must point into `data`'s heap memory.
    pub(crate) unsafe fn push_with_timeout(
        ring: &Ring,
        sqe: squeue::Entry,
        timespec: *const io_uring::types::Timespec,
        data: T,
    ) -> Op<T> {
        let key = ring.inner().slots.borrow_mut().insert(Slot::Waiting(None));
        ring.inner().push_with_timeout(sqe, key as u64, timespec);
        Op {
            ring: ring.clone(),
            key: Some(key),
            data: Some(data),
            discard: None,
        }
    }

    /// Push two operations as a chain (see `Inner::push_chain`).
    ///
    /// # Safety
    /// As for [`Op::push`], for each SQE and its data.
    pub(crate) unsafe fn push_chain<U: 'static>(
        ring: &Ring,
        first: squeue::Entry,
        first_data: T,
        second: squeue::Entry,
        second_data: U,
    ) -> (Op<T>, Op<U>) {
        let (k1, k2) = {
            let mut slots = ring.inner().slots.borrow_mut();
            (
                slots.insert(Slot::Waiting(None)),
                slots.insert(Slot::Waiting(None)),
            )
        };
        ring.inner().push_chain(first, k1 as u64, second, k2 as u64);
        (
            Op {
                ring: ring.clone(),
                key: Some(k1),
                data: Some(first_data),
                discard: None,
            },
            Op {
                ring: ring.clone(),
                key: Some(k2),
                data: Some(second_data),
                discard: None,
            },
        )
    }

    /// If this operation is dropped before its result is taken, release
    /// that result with `discard` (e.g. close the descriptor it created).
    pub(crate) fn discard_with(mut self, discard: Discard) -> Self {
        self.discard = Some(discard);
        self
    }
}

// The kernel points into heap memory `T` owns, never into the `Op` itself:
// moving an `Op` is harmless.
impl<T: 'static> Unpin for Op<T> {}

impl<T: 'static> Future for Op<T> {
    type Output = (Completion, T);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let key = this.key.expect("Op polled after completion");
        let mut slots = this.ring.inner().slots.borrow_mut();
        match &mut slots[key] {
            Slot::Waiting(waker) => {
                *waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Slot::Done(c) => {
                let c = *c;
                slots.remove(key);
                this.key = None;
                Poll::Ready((c, this.data.take().expect("data present until completion")))
            }
            _ => unreachable!("single-shot op in a multishot slot"),
        }
    }
}

impl<T: 'static> Drop for Op<T> {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let inner = self.ring.inner().clone();
        let mut slots = inner.slots.borrow_mut();
        match &slots[key] {
            Slot::Done(c) => {
                let c = *c;
                if let Some(d) = self.discard {
                    d(c);
                }
                slots.remove(key);
                drop(slots);
                inner.unclaimed(c);
            }
            _ => {
                // In flight: the kernel may still write into `data`.
                let data: Box<dyn Any> = Box::new(self.data.take());
                slots[key] = Slot::Abandoned(data, self.discard);
                drop(slots);
                inner.cancel(key);
            }
        }
    }
}

/// A multishot operation: a stream of completions until the kernel ends it.
pub struct MultiOp<T: 'static> {
    ring: Ring,
    key: Option<usize>,
    data: Option<T>,
    discard: Option<Discard>,
}

impl<T: 'static> MultiOp<T> {
    /// As [`Op::push`], for an SQE that posts many completions.
    ///
    /// # Safety
    /// As for [`Op::push`].
    pub(crate) unsafe fn push(ring: &Ring, sqe: squeue::Entry, data: T) -> MultiOp<T> {
        let key = ring.inner().slots.borrow_mut().insert(Slot::Multi {
            queue: VecDeque::new(),
            waker: None,
            ended: false,
        });
        ring.inner().push(sqe, key as u64);
        MultiOp {
            ring: ring.clone(),
            key: Some(key),
            data: Some(data),
            discard: None,
        }
    }

    /// Release completions nobody takes (queued at drop, or arriving after).
    pub(crate) fn discard_with(mut self, discard: Discard) -> Self {
        self.discard = Some(discard);
        self
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
}

impl<T: 'static> MultiOp<T> {
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

impl<T: 'static> Drop for MultiOp<T> {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let inner = self.ring.inner().clone();
        let mut slots = inner.slots.borrow_mut();
        let Slot::Multi { queue, ended, .. } = &mut slots[key] else {
            unreachable!("multishot op in a single-shot slot")
        };
        for c in queue.drain(..) {
            if let Some(d) = self.discard {
                d(c);
            }
            inner.unclaimed(c);
        }
        if *ended {
            slots.remove(key);
        } else {
            let data: Box<dyn Any> = Box::new(self.data.take());
            slots[key] = Slot::Abandoned(data, self.discard);
            drop(slots);
            inner.cancel(key);
        }
    }
}
