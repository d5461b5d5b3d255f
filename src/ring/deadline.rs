//! Deadlines, checked by a sweep instead of a timer per operation.
//!
//! A `LINK_TIMEOUT` beside every receive and send doubles the SQEs and arms
//! and cancels a kernel timer per message: about a tenth of the server's
//! CPU per message at 20,000 messages/s (measured, docs/bench/history.md). Here a
//! connection registers one [`Watch`]; before each wait it arms the watch
//! with its deadline (a cell write), and the shard sweeps every watch a few
//! times a second ([`Deadlines::sweep`]). A deadline is therefore honoured
//! to within a sweep period (the shard's heartbeat, 100 ms).
//!
//! A watch covers one of two kinds of wait:
//! - one ring operation ([`Watch::run`]): an overdue one is cancelled and
//!   completes as `TimedOut`;
//! - a span of work of several operations ([`Watch::within`], e.g. a
//!   file → pipe → socket splice chain and its drain): an overdue span is
//!   ended in user space, its waiter woken to give up, whether or not the
//!   kernel has let go of the operations yet (a splice blocked on a full
//!   socket in an io-wq worker may not end on a cancel alone; the waiter
//!   drops them and cuts the connection).

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Instant;

use slab::Slab;

use super::Ring;
use super::lifecycle::Op;
use super::op::Single;

/// What a watch is armed with, and when it is due.
#[derive(Clone, Copy)]
enum Armed {
    /// One operation (slot and epoch): cancelled when due.
    Op(usize, u64, Instant),
    /// A span of work: its waiter is woken when due.
    Span(Instant),
}

/// One watch's cell, shared by the watch and the sweep.
#[derive(Default)]
struct WatchCell {
    armed: Cell<Option<Armed>>,
    /// Who waits on a [`Armed::Span`].
    waker: Cell<Option<Waker>>,
}

/// A shard's watches.
#[derive(Default)]
pub struct Deadlines {
    watches: RefCell<Slab<Rc<WatchCell>>>,
}

impl Deadlines {
    pub fn new() -> Rc<Deadlines> {
        Rc::new(Deadlines::default())
    }

    /// A watch for one connection, removed when dropped.
    pub fn watch(self: &Rc<Deadlines>) -> Watch {
        let cell = Rc::new(WatchCell::default());
        let index = self.watches.borrow_mut().insert(cell.clone());
        Watch {
            deadlines: self.clone(),
            index,
            cell,
        }
    }

    /// End every watched wait whose deadline is not after `now`: cancel
    /// the operation, or wake the span's waiter.
    pub fn sweep(&self, ring: &Ring, now: Instant) {
        let mut ops = Vec::new();
        let mut spans = Vec::new();
        for (_, cell) in self.watches.borrow().iter() {
            match cell.armed.get() {
                Some(Armed::Op(key, epoch, at)) if at <= now => {
                    cell.armed.set(None);
                    ops.push((key, epoch));
                }
                Some(Armed::Span(at)) if at <= now => {
                    cell.armed.set(None);
                    spans.extend(cell.waker.take());
                }
                _ => {}
            }
        }
        for (key, epoch) in ops {
            ring.inner().expire(key, epoch);
        }
        for waker in spans {
            waker.wake();
        }
    }

    /// Watches registered (connections), for tests.
    #[cfg(test)]
    pub fn watched(&self) -> usize {
        self.watches.borrow().len()
    }
}

/// One connection's deadline: at most one wait is watched at a time.
pub struct Watch {
    deadlines: Rc<Deadlines>,
    index: usize,
    cell: Rc<WatchCell>,
}

impl Watch {
    /// Run `op`, cancelling it (it fails with `TimedOut`) if it is still in
    /// flight once `at` has passed.
    pub async fn run<T: Single>(&self, op: Op<T>, at: Instant) -> T::Output {
        if let Some((key, epoch)) = op.id() {
            self.cell.armed.set(Some(Armed::Op(key, epoch, at)));
        }
        let out = op.await;
        self.cell.armed.set(None);
        out
    }

    /// Run `work` (any number of operations), or give up on it once `at`
    /// has passed: `None`, and `work` is dropped (its operations
    /// cancelled). What the kernel still holds of them stays theirs.
    pub async fn within<F: Future>(&self, work: F, at: Instant) -> Option<F::Output> {
        self.cell.armed.set(Some(Armed::Span(at)));
        let _disarm = Disarm(&self.cell);
        let mut work = pin!(work);
        poll_fn(|cx| {
            if let Poll::Ready(out) = work.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            if self.cell.armed.get().is_none() {
                return Poll::Ready(None); // the sweep found it overdue
            }
            let waker = match self.cell.waker.take() {
                Some(w) if w.will_wake(cx.waker()) => w,
                _ => cx.waker().clone(),
            };
            self.cell.waker.set(Some(waker));
            Poll::Pending
        })
        .await
    }
}

/// Disarms a span's watch when its wait ends, however it ends.
struct Disarm<'a>(&'a WatchCell);

impl Drop for Disarm<'_> {
    fn drop(&mut self) {
        self.0.armed.set(None);
        drop(self.0.waker.take());
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.deadlines.watches.borrow_mut().try_remove(self.index);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ring::op::Timeout;
    use crate::ring::tests::run_returning;

    /// A span ends when the sweep finds it overdue (not before), and a
    /// span that finished in time leaves nothing armed for the next wait.
    #[test]
    fn a_span_ends_at_the_sweep_after_its_deadline() {
        let (early, late, again) = run_returning(|ring| async move {
            let deadlines = Deadlines::new();
            let watch = deadlines.watch();
            let sleep = |ms| ring.submit(Timeout::new(Duration::from_millis(ms)));
            let at = Instant::now() + Duration::from_millis(50);
            let early = watch.within(sleep(10), at).await.is_some();
            let sweeper = async {
                loop {
                    let _ = sleep(20).await;
                    deadlines.sweep(&ring, Instant::now());
                }
            };
            let at = Instant::now() + Duration::from_millis(50);
            let late = futures_lite::future::or(watch.within(sleep(10_000), at), sweeper).await;
            let late = (late.is_none(), Instant::now() >= at);
            deadlines.sweep(&ring, Instant::now() + Duration::from_secs(60));
            let again = watch.within(sleep(10), Instant::now() + Duration::from_secs(60));
            (early, late, again.await.is_some())
        });
        assert!(early, "a span done in time gave up");
        assert_eq!(late, (true, true), "(given up, not early)");
        assert!(again, "a stale deadline ended the next span");
    }
}
