//! `IORING_OP_POLL_ADD`, single-shot: wait until a socket can take more
//! bytes (for the few writes made outside the ring, like `sendfile` from
//! the page cache).

use std::io;

use io_uring::{opcode, squeue, types};

use super::{Operation, Single};
use crate::ring::completion::Completion;
use crate::ring::fd::SharedFd;

/// Completes once `fd` is writable (or has an error or hang-up to report).
pub struct PollWritable {
    fd: SharedFd,
}

impl PollWritable {
    pub fn new(fd: &SharedFd) -> PollWritable {
        PollWritable { fd: fd.clone() }
    }
}

// SAFETY: a poll points at no memory; the descriptor is held by `self`.
unsafe impl Operation for PollWritable {
    fn sqe(&mut self) -> squeue::Entry {
        opcode::PollAdd::new(types::Fd(self.fd.raw()), libc::POLLOUT as u32).build()
    }
}

impl Single for PollWritable {
    /// The events that fired.
    type Output = io::Result<u32>;

    fn complete(self, c: Completion) -> io::Result<u32> {
        c.into_result()
    }
}
