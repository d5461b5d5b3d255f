//! The slots of the operations in flight: one [`Slots`] entry per
//! operation, keyed by its SQE's `user_data`, saying where it stands in its
//! life (after monoio's `driver/op` and `uring/lifecycle`).
//!
//! ```text
//! pushed ──► Waiting(waker) ──CQE──► Done(completion) ──poll──► slot freed, the op's data back
//!    │
//!    └─ future dropped ──► Abandoned(data) + cancel ──final CQE──► slot freed, data dropped
//! ```
//!
//! A multishot operation's slot queues each completion until its owner
//! polls it, and ends with the completion that says there will be no more.
//! An abandoned slot keeps the operation's data (buffers, paths,
//! descriptors) alive until the kernel's final completion: memory the
//! kernel may still write is never freed early, and a descriptor is never
//! closed (its number reused) under it.
//!
//! This is bookkeeping only: the slots submit nothing and touch no buffer;
//! the ring ([`super::queues`]) pushes the cancels and recycles the provided
//! buffers of completions nobody will read, which [`Slots::deliver`] hands
//! back to it.

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use io_uring::cqueue;
use slab::Slab;

use super::completion::{Completion, Discard};

/// Where one operation in flight stands.
enum Slot {
    /// Single-shot, someone waits (or will poll). `epoch` tells this
    /// operation from another that later takes the same slot; `expired`:
    /// its deadline passed and it was cancelled for it; `selects`: it
    /// receives into a provided buffer.
    Waiting {
        waker: Option<Waker>,
        epoch: u64,
        expired: bool,
        selects: bool,
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
        selects: bool,
    },
    /// The owner is gone; this keeps its data (and descriptors) alive until
    /// the final CQE, and releases what late completions hand over.
    Abandoned(#[allow(dead_code)] Box<dyn Any>, Option<Discard>),
}

impl Slot {
    /// Is the kernel still to post a completion here? (A `Done` slot, or a
    /// multishot one that ended, only waits for its owner to poll it.)
    fn awaits_kernel(&self) -> bool {
        match self {
            Slot::Waiting { .. } | Slot::Abandoned(..) => true,
            Slot::Multi { ended, .. } => !ended,
            Slot::Done(..) => false,
        }
    }
}

/// Every operation in flight, abandoned ones included.
pub(crate) struct Slots(RefCell<Slab<Slot>>);

impl Slots {
    pub(crate) fn with_capacity(capacity: usize) -> Slots {
        Slots(RefCell::new(Slab::with_capacity(capacity)))
    }

    /// A single-shot operation, just pushed: its key. `selects`: it
    /// receives into a provided buffer.
    pub(crate) fn waiting(&self, epoch: u64, selects: bool) -> usize {
        self.0.borrow_mut().insert(Slot::Waiting {
            waker: None,
            epoch,
            expired: false,
            selects,
        })
    }

    /// A multishot operation, just pushed: its key.
    pub(crate) fn multi(&self, selects: bool) -> usize {
        self.0.borrow_mut().insert(Slot::Multi {
            queue: VecDeque::new(),
            waker: None,
            ended: false,
            selects,
        })
    }

    /// Operations in flight.
    pub(crate) fn len(&self) -> usize {
        self.0.borrow().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }

    /// The keys of every operation in flight.
    pub(crate) fn keys(&self) -> Vec<usize> {
        self.0.borrow().iter().map(|(k, _)| k).collect()
    }

    /// Is the kernel still to post a completion to any slot?
    pub(crate) fn any_awaits_kernel(&self) -> bool {
        self.0.borrow().iter().any(|(_, s)| s.awaits_kernel())
    }

    /// Does the operation in slot `key`, whose owner still waits, receive
    /// into a provided buffer?
    pub(crate) fn selects_buffer(&self, key: usize) -> bool {
        matches!(
            self.0.borrow().get(key),
            Some(Slot::Waiting { selects: true, .. } | Slot::Multi { selects: true, .. })
        )
    }

    /// Hand one completion to slot `key`, waking its owner; frees the slot
    /// when it was the final completion of an abandoned operation. A
    /// completion nobody will read comes back (its descriptor already
    /// released): the ring recycles the provided buffer it names.
    pub(crate) fn deliver(&self, key: usize, c: Completion) -> Option<Completion> {
        let mut slots = self.0.borrow_mut();
        let slot = slots.get_mut(key)?;
        let more = cqueue::more(c.flags);
        match slot {
            Slot::Waiting { waker, expired, .. } => {
                let (w, expired) = (waker.take(), *expired);
                *slot = Slot::Done(c, expired);
                if let Some(w) = w {
                    w.wake();
                }
                None
            }
            Slot::Multi {
                queue,
                waker,
                ended,
                ..
            } => {
                queue.push_back(c);
                *ended |= !more;
                if let Some(w) = waker.take() {
                    w.wake();
                }
                None
            }
            Slot::Abandoned(_, discard) => {
                if let Some(d) = discard {
                    d(c);
                }
                if !more {
                    // Final: now the kernel is done with its memory and
                    // descriptors.
                    slots.remove(key);
                }
                Some(c)
            }
            Slot::Done(..) => None,
        }
    }

    /// The deadline of the operation `(key, epoch)` passed: if it is still
    /// waiting, mark it expired (it completes as `TimedOut`) and say so:
    /// the ring then cancels it.
    pub(crate) fn expire(&self, key: usize, epoch: u64) -> bool {
        match self.0.borrow_mut().get_mut(key) {
            Some(Slot::Waiting {
                epoch: e, expired, ..
            }) if *e == epoch && !*expired => {
                *expired = true;
                true
            }
            _ => false,
        }
    }

    /// The owner of slot `key` is gone before its final completion: keep
    /// `data` in the slot until then.
    pub(crate) fn abandon(&self, key: usize, data: Box<dyn Any>, discard: Option<Discard>) {
        self.0.borrow_mut()[key] = Slot::Abandoned(data, discard);
    }

    /// Free slot `key`.
    pub(crate) fn remove(&self, key: usize) {
        self.0.borrow_mut().remove(key);
    }

    /// The single-shot operation in slot `key`: its completion once in (the
    /// slot freed; cancelled for its deadline, it reads `ETIMEDOUT`), else
    /// `Pending` with the waker kept.
    pub(crate) fn poll_single(&self, key: usize, cx: &mut Context<'_>) -> Poll<Completion> {
        let mut slots = self.0.borrow_mut();
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
                // Cancelled for its deadline: the time ran out.
                if expired && c.result == -libc::ECANCELED {
                    c.result = -libc::ETIMEDOUT;
                }
                Poll::Ready(c)
            }
            _ => unreachable!("single-shot op in a multishot slot"),
        }
    }

    /// The owner of single-shot slot `key` lets go: if its completion is
    /// in, the slot is freed and the completion comes back (to release);
    /// `None` while the kernel still has the operation.
    pub(crate) fn take_done(&self, key: usize) -> Option<Completion> {
        let mut slots = self.0.borrow_mut();
        let Slot::Done(c, _) = slots[key] else {
            return None;
        };
        slots.remove(key);
        Some(c)
    }

    /// The multishot operation in slot `key`: its next completion, `None`
    /// once it ended and all were taken (the slot freed), else `Pending`
    /// with the waker kept.
    pub(crate) fn poll_multi(&self, key: usize, cx: &mut Context<'_>) -> Poll<Option<Completion>> {
        let mut slots = self.0.borrow_mut();
        let Slot::Multi {
            queue,
            waker,
            ended,
            ..
        } = &mut slots[key]
        else {
            unreachable!("multishot op in a single-shot slot")
        };
        if let Some(c) = queue.pop_front() {
            return Poll::Ready(Some(c));
        }
        if *ended {
            slots.remove(key);
            return Poll::Ready(None);
        }
        *waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The owner of multishot slot `key` lets go: the completions it never
    /// read (to release), and whether the kernel already ended it.
    pub(crate) fn take_queued(&self, key: usize) -> (VecDeque<Completion>, bool) {
        let mut slots = self.0.borrow_mut();
        let Slot::Multi { queue, ended, .. } = &mut slots[key] else {
            unreachable!("multishot op in a single-shot slot")
        };
        (std::mem::take(queue), *ended)
    }

    /// Forget every slot without dropping its data: the kernel may still
    /// write into it (a ring closed with operations in flight).
    pub(crate) fn leak(&mut self) {
        std::mem::forget(std::mem::take(self.0.get_mut()));
    }
}
