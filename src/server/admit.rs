//! Admission and accept-error policy, shared by every backend's accept loop.
//!
//! Connection N+1 waits for a permit before it is accepted (it stays in the
//! kernel's backlog). An accept error that is about one connection is skipped;
//! running out of descriptors or memory backs off exponentially, logging once
//! per episode. This module never decides to stop accepting for good.

use std::io;
use std::time::Duration;

use tracing::{debug, warn};

/// First and longest pause after running out of descriptors or memory.
const BACKOFF_FIRST: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

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
}
