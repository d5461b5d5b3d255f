//! Drives a shard's ring from its glommio executor, so that the shard
//! sleeps in one place: one `io_uring_enter` on this ring.
//!
//! The driver is a task like the others. Each turn it yields; if any other
//! task ran meanwhile (they may have woken more tasks, or queued
//! operations), it goes round again; once a yield comes back with no other
//! task having run, the run queue holds only the driver, and it blocks in
//! one enter that submits every queued SQE and waits for a completion, then
//! hands the completions out, waking their tasks. glommio itself never
//! parks (its park/wake cycle costs about eight enters on its own rings and
//! a `membarrier`): it only runs tasks, and preempts a busy one after its
//! time slice.
//!
//! While tasks keep running, the driver still submits and hands out
//! completions (one enter, without waiting, when anything queued in an
//! earlier turn is still queued, or the kernel holds completion work), so a
//! busy core starves no connection: an SQE waits at most one turn. What the
//! last turn's tasks queued before the run queue emptied goes in with the
//! blocking enter itself.
//!
//! "No other task ran" is counted, not guessed: every task of the shard is
//! spawned through [`spawn`] (and the main one run through [`run`]), whose
//! wrapper counts polls. A task woken some other way — by glommio's own
//! timers or I/O, or from another thread — is not seen while the driver is
//! blocked: on a shard driven this way everything waits on the ring (sleeps
//! are ring timeouts, the control socket is read through the ring). The
//! shard's heartbeat, a ring timeout, bounds how long such a task could be
//! kept waiting.
//!
//! When nothing is in flight in the ring the driver does not block in it
//! (nothing could wake it): it lets glommio park, and the next operation
//! pushed wakes it. Once the main task is done it stops.

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use super::Ring;
use super::queues::Queues;

thread_local! {
    /// Polls of this thread's counted tasks (all but the driver).
    static POLLS: Cell<u64> = const { Cell::new(0) };
}

fn polls() -> u64 {
    POLLS.with(Cell::get)
}

/// A future whose every poll is counted (see the module header).
struct Counted<F>(F);

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        POLLS.with(|p| p.set(p.get().wrapping_add(1)));
        // SAFETY: structural pinning: the inner future is never moved.
        unsafe { self.map_unchecked_mut(|c| &mut c.0) }.poll(cx)
    }
}

/// Spawn `task` on this thread's glommio executor, counted, detached.
pub fn spawn(task: impl Future<Output = ()> + 'static) {
    glommio::spawn_local(Counted(task)).detach();
}

/// How long a stopping ring waits for its cancelled operations to end.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Run `main` with `ring` driven, on the current glommio executor: the
/// driver starts now and stops once `main` is done, and what is still in
/// flight then is cancelled (its descriptors closed: a listener stops
/// accepting).
pub async fn run<F: Future>(ring: &Ring, main: F) -> F::Output {
    glommio::spawn_local(drive(Rc::downgrade(&ring.inner))).detach();
    let out = Counted(main).await;
    ring.inner.stopped.set(true);
    ring.inner.cancel_all(STOP_GRACE);
    out
}

/// The driver task: see the module header.
async fn drive(ring: Weak<Queues>) {
    // SQEs queued in a turn in which other tasks ran, not yet submitted.
    let mut owed = false;
    loop {
        let before = polls();
        glommio::executor().yield_now().await;
        let Some(inner) = ring.upgrade() else {
            tracing::debug!(target: "ringlet::driver", "ring gone: driver ends");
            return;
        };
        if inner.stopped.get() {
            tracing::debug!(target: "ringlet::driver", "stopped: driver ends");
            return;
        }
        if polls() != before {
            // Others ran: keep operations and completions flowing, one
            // enter per turn at most, without blocking. What this turn's
            // tasks queued waits one turn: if no task runs then, the
            // blocking enter below submits it with the wait (one enter,
            // not two, for an answer and its next receive).
            if (owed && inner.queued()) || inner.deferred_work() {
                inner.enter(0);
            } else if inner.has_completions() {
                inner.reap();
            }
            owed = inner.queued();
            continue;
        }
        owed = false;
        if inner.slots.is_empty() {
            // Nothing in flight could wake a blocked enter: submit what is
            // queued (cancels), then let glommio park until a push.
            inner.enter(0);
            if inner.slots.is_empty() && !inner.queued() {
                tracing::debug!(target: "ringlet::driver", "nothing in flight: idle");
                idle(&inner).await;
                tracing::debug!(target: "ringlet::driver", "pushed: busy again");
            }
            continue;
        }
        inner.enter(1);
    }
}

/// Wait (without blocking the thread) until an operation is pushed.
async fn idle(inner: &Rc<Queues>) {
    let mut parked = false;
    poll_fn(|cx| {
        if parked {
            return Poll::Ready(());
        }
        parked = true;
        inner.driver.set(Some(cx.waker().clone()));
        Poll::Pending
    })
    .await;
}
