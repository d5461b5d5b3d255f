//! [`Signal`]: a one-shot, shard-local "stop now" that many tasks wait on.
//!
//! The shard raises one to end its accept loops, one when its drain begins
//! (connections idle between requests end), and one to cut the connections
//! left when the drain's time is up or a second signal came. Every live
//! connection waits on the last two, and those futures are polled with the
//! connection's on every wake-up, so the unraised case must cost nothing:
//! a `Cell` read, with the waker registered once. It never crosses threads.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use slab::Slab;

/// Raised once; every [`Signal::raised`] future then completes.
#[derive(Clone, Default)]
pub(crate) struct Signal(Rc<Inner>);

#[derive(Default)]
struct Inner {
    raised: Cell<bool>,
    waiters: RefCell<Slab<Waker>>,
}

impl Signal {
    /// Raise it: wake every waiter.
    pub(crate) fn raise(&self) {
        self.0.raised.set(true);
        let waiters = std::mem::take(&mut *self.0.waiters.borrow_mut());
        for waker in waiters.into_iter().map(|(_, w)| w) {
            waker.wake();
        }
    }

    /// Has it been raised?
    pub(crate) fn is_raised(&self) -> bool {
        self.0.raised.get()
    }

    /// Completes once the signal is raised.
    pub(crate) fn raised(&self) -> Raised {
        Raised {
            signal: self.clone(),
            key: None,
        }
    }
}

/// The future of [`Signal::raised`].
pub(crate) struct Raised {
    signal: Signal,
    key: Option<usize>,
}

impl Raised {
    /// Has its signal been raised?
    pub(crate) fn is_raised(&self) -> bool {
        self.signal.is_raised()
    }
}

impl Future for Raised {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let inner = &self.signal.0;
        if inner.raised.get() {
            return Poll::Ready(());
        }
        let mut waiters = inner.waiters.borrow_mut();
        match self.key.and_then(|k| waiters.get_mut(k).map(|w| (k, w))) {
            Some((_, waker)) if waker.will_wake(cx.waker()) => {}
            Some((_, waker)) => *waker = cx.waker().clone(),
            None => {
                let key = waiters.insert(cx.waker().clone());
                drop(waiters);
                self.key = Some(key);
            }
        }
        Poll::Pending
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        if let Some(key) = self.key
            && !self.signal.0.raised.get()
        {
            self.signal.0.waiters.borrow_mut().try_remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future;

    #[test]
    fn raising_wakes_every_waiter_and_dropped_waiters_leave() {
        let signal = Signal::default();
        let mut a = Box::pin(signal.raised());
        let mut b = Box::pin(signal.raised());
        future::block_on(async {
            assert!(future::poll_once(&mut a).await.is_none());
            assert!(future::poll_once(&mut b).await.is_none());
            // Polled again: still registered once.
            assert!(future::poll_once(&mut a).await.is_none());
        });
        assert_eq!(signal.0.waiters.borrow().len(), 2);
        drop(b);
        assert_eq!(signal.0.waiters.borrow().len(), 1);
        signal.raise();
        future::block_on(async {
            assert!(future::poll_once(&mut a).await.is_some());
            assert!(future::poll_once(&mut signal.raised()).await.is_some());
        });
    }
}
