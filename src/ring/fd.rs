//! [`SharedFd`]: a descriptor that stays open while any ring operation
//! names it.
//!
//! A ring operation names its socket, file or pipe by number, and the kernel
//! resolves that number only when it issues the operation: a queued SQE, or
//! the second SQE of a linked chain, may be issued well after the future
//! that pushed it was dropped. Closing the number in between would let the
//! old operation act on whatever the number means next (another client's
//! socket). So every operation holds a clone of its descriptor's
//! `SharedFd`, and the descriptor is closed only when its owner *and* every
//! operation naming it are done: after the final completion of an abandoned
//! operation, never before (monoio's `SharedFd`, on one thread).
//!
//! Shared descriptors never leave their shard's thread.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;

/// A descriptor shared by its owner and the operations in flight on it.
/// Closed when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct SharedFd(Rc<OwnedFd>);

impl SharedFd {
    /// Take ownership of `fd`.
    pub fn new(fd: OwnedFd) -> SharedFd {
        SharedFd(Rc::new(fd))
    }

    /// Share a descriptor others hold too (it closes when the last goes).
    pub fn from_rc(fd: Rc<OwnedFd>) -> SharedFd {
        SharedFd(fd)
    }

    /// The number, for an SQE. Valid while this `SharedFd` is alive.
    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl AsFd for SharedFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl From<OwnedFd> for SharedFd {
    fn from(fd: OwnedFd) -> SharedFd {
        SharedFd::new(fd)
    }
}
