//! `IORING_OP_TIMEOUT`: a timer in the ring, so a shard's sleeps wake it
//! through the same completion queue as its I/O.

use std::io;
use std::time::Duration;

use io_uring::{opcode, squeue, types};

use super::{Operation, Single};
use crate::ring::completion::Completion;

/// Completes once `after` has passed.
pub struct Timeout {
    ts: Box<types::Timespec>,
}

impl Timeout {
    pub fn new(after: Duration) -> Timeout {
        Timeout {
            ts: Box::new(types::Timespec::from(after)),
        }
    }
}

// SAFETY: the SQE points into the timespec's box, held by `self`.
unsafe impl Operation for Timeout {
    fn sqe(&mut self) -> squeue::Entry {
        opcode::Timeout::new(&*self.ts).build()
    }
}

impl Single for Timeout {
    type Output = io::Result<()>;

    fn complete(self, c: Completion) -> io::Result<()> {
        match c.result {
            r if r == -libc::ETIME || r >= 0 => Ok(()),
            _ => c.into_result().map(|_| ()),
        }
    }
}
