//! The owner's side of an operation's life: the futures [`Op`] (single-shot)
//! and [`MultiOp`] (a stream of completions), from the push to the final
//! completion (the states are in `slots.rs`).
//!
//! The data an operation points the kernel at (buffers, paths, `open_how`)
//! and the descriptors it names live in the future while someone waits, and
//! move into the slot when the future is dropped early. Either way they
//! outlive the kernel's use of them: memory the kernel may still write is
//! never freed, and a descriptor an operation names is never closed (and
//! its number reused) before the operation ends.
//!
//! Completions nobody will read are released here too: a descriptor the
//! kernel made is closed ([`Discard`]), a provided buffer it filled goes back
//! to the ring. This module never submits anything itself but
//! cancellations (an early drop, or `Op::cancel`); an operation whose
//! deadline passed is cancelled by the ring for the sweep ([`deadline`]).
//!
//! [`Discard`]: super::completion::Discard
//! [`deadline`]: super::deadline

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::completion::Completion;
use super::op::{Operation, Single};
use super::queues::Queues;

/// A single-shot operation in flight. Resolves to the operation's output,
/// built from its completion and the data it owned.
pub struct Op<T: Single> {
    ring: Rc<Queues>,
    key: Option<usize>,
    /// Which operation of slot `key` this is (see [`Op::id`]).
    epoch: u64,
    data: Option<T>,
}

impl<T: Single> Op<T> {
    pub(crate) fn new(ring: &Rc<Queues>, key: usize, epoch: u64, data: T) -> Op<T> {
        Op {
            ring: ring.clone(),
            key: Some(key),
            epoch,
            data: Some(data),
        }
    }

    /// What names this operation for `Queues::expire`, while in flight.
    pub(crate) fn id(&self) -> Option<(usize, u64)> {
        self.key.map(|k| (k, self.epoch))
    }

    /// Ask the kernel to cancel it, and keep waiting: it still resolves,
    /// with `ECANCELED` or with its real result if that won the race (an
    /// accept that took a connection hands it over rather than lose it).
    pub(crate) fn cancel(&self) {
        if let Some(key) = self.key {
            self.ring.cancel(key);
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
        let Poll::Ready(c) = this.ring.slots.poll_single(key, cx) else {
            return Poll::Pending;
        };
        this.key = None;
        let data = this.data.take().expect("data present until completion");
        Poll::Ready(data.complete(c))
    }
}

impl<T: Single> Drop for Op<T> {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        match self.ring.slots.take_done(key) {
            Some(c) => {
                if let Some(d) = T::DISCARD {
                    d(c);
                }
                self.ring.release(c);
            }
            None => {
                // In flight: the kernel may still use the data and descriptors.
                let data: Box<dyn Any> = Box::new(self.data.take());
                self.ring.abandon(key, data, T::DISCARD);
            }
        }
    }
}

/// A multishot operation: a stream of completions until the kernel ends it.
pub struct MultiOp<T: Operation> {
    ring: Rc<Queues>,
    key: Option<usize>,
    data: Option<T>,
}

impl<T: Operation> MultiOp<T> {
    pub(crate) fn new(ring: &Rc<Queues>, key: usize, data: T) -> MultiOp<T> {
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
            self.ring.cancel(key);
        }
    }

    /// The next completion; `None` once the kernel ended the operation
    /// (the last completion says why, e.g. an error).
    pub async fn next(&mut self) -> Option<Completion> {
        std::future::poll_fn(|cx| {
            let Some(key) = self.key else {
                return Poll::Ready(None);
            };
            let next = self.ring.slots.poll_multi(key, cx);
            if let Poll::Ready(None) = next {
                self.key = None;
            }
            next
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
        let (unread, ended) = self.ring.slots.take_queued(key);
        for c in unread {
            if let Some(d) = T::DISCARD {
                d(c);
            }
            self.ring.release(c);
        }
        if ended {
            self.ring.slots.remove(key);
        } else {
            self.ring
                .abandon(key, Box::new(self.data.take()), T::DISCARD);
        }
    }
}
