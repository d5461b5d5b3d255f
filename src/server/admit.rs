//! Admission and accept-error policy, shared by every backend's accept loop.
//!
//! [`Admission`] is the shard's one semaphore (`--max-conns`: live
//! connections per shard, all services together): connection N+1 waits for
//! a permit before it is accepted (it stays in the kernel's backlog).
//! [`Backoff`]: an accept error that is about one connection is skipped;
//! running out of descriptors or memory backs off exponentially, logging once
//! per episode. This module never decides to stop accepting for good.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

/// First and longest pause after running out of descriptors or memory.
const BACKOFF_FIRST: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A live connection's room under `--max-conns`; dropping it makes room.
pub(crate) type Permit = OwnedSemaphorePermit;

/// One shard's admission: live connections at most, all services together.
#[derive(Debug)]
pub(crate) struct Admission {
    permits: Arc<Semaphore>,
}

impl Admission {
    /// At most `max_conns` live connections; `None`: no limit.
    pub fn new(max_conns: Option<usize>) -> Admission {
        let n = max_conns.map_or(Semaphore::MAX_PERMITS, |n| n.min(Semaphore::MAX_PERMITS));
        Admission {
            permits: Arc::new(Semaphore::new(n)),
        }
    }

    /// Whether the next connection has to wait for one to end.
    pub fn is_full(&self) -> bool {
        self.permits.available_permits() == 0
    }

    /// Wait for room for one more connection; `None` once [`Admission::close`]d.
    pub async fn permit(&self) -> Option<Permit> {
        self.permits.clone().acquire_owned().await.ok()
    }

    /// Admit no more: every wait for a permit ends with `None`.
    pub fn close(&self) {
        self.permits.close();
    }
}

/// Accept-error state for one accept loop.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    in_episode: bool,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff {
            next: BACKOFF_FIRST,
            in_episode: false,
        }
    }

    /// An accept succeeded: the episode, if any, is over.
    pub fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
        self.in_episode = false;
    }

    /// An accept failed: how long to pause before the next (zero: retry now).
    pub fn on_error(&mut self, service: &str, e: &io::Error) -> Duration {
        if !is_resource_exhaustion(e) {
            // The one connection failed (reset before accept, ...): next.
            debug!("{service}: accept failed: {e}");
            return Duration::ZERO;
        }
        if !self.in_episode {
            warn!("{service}: accept failed: {e}; backing off, existing connections continue");
            self.in_episode = true;
        }
        let pause = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        pause
    }
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_exponentially_on_emfile_only() {
        let mut b = Backoff::new();
        let reset = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert_eq!(b.on_error("t", &reset), Duration::ZERO);
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(b.on_error("t", &emfile), Duration::from_millis(10));
        assert_eq!(b.on_error("t", &emfile), Duration::from_millis(20));
        for _ in 0..20 {
            b.on_error("t", &emfile);
        }
        assert_eq!(b.on_error("t", &emfile), BACKOFF_MAX);
        b.reset();
        assert_eq!(b.on_error("t", &emfile), BACKOFF_FIRST);
    }

    #[test]
    fn admission_caps_live_permits_and_closes() {
        let admit = Admission::new(Some(1));
        let first = futures_lite::future::block_on(admit.permit()).expect("room for one");
        assert!(admit.is_full());
        drop(first);
        assert!(!admit.is_full());
        admit.close();
        assert!(futures_lite::future::block_on(admit.permit()).is_none());
        assert!(!Admission::new(None).is_full());
    }
}
