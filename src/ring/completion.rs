//! What the kernel hands back for one operation: a [`Completion`] (its
//! result and flags), and how to release what one carries when nobody will
//! read it ([`Discard`], [`close_fd`]).
//!
//! The ground floor of the ring: every other module speaks of completions,
//! and this one imports nothing of them.

use std::io;

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
