//! `IORING_OP_SPLICE`: move bytes between a descriptor and a pipe in the
//! kernel, without a copy through user space.

use std::io;

use io_uring::{opcode, squeue, types};

use super::{Operation, Single};
use crate::ring::SharedFd;
use crate::ring::completion::Completion;

/// Move up to `len` bytes from `fd_in` (at `off_in`, or its own position
/// when `None`) to `fd_out`; one of the two must be a pipe.
pub struct Splice {
    fd_in: SharedFd,
    off_in: Option<u64>,
    fd_out: SharedFd,
    len: u32,
}

impl Splice {
    pub fn new(fd_in: &SharedFd, off_in: Option<u64>, fd_out: &SharedFd, len: u32) -> Splice {
        Splice {
            fd_in: fd_in.clone(),
            off_in,
            fd_out: fd_out.clone(),
            len,
        }
    }
}

// SAFETY: splice points at no memory; both descriptors are held by `self`.
unsafe impl Operation for Splice {
    fn sqe(&mut self) -> squeue::Entry {
        let off = self.off_in.map_or(-1, |o| o as i64);
        opcode::Splice::new(
            types::Fd(self.fd_in.raw()),
            off,
            types::Fd(self.fd_out.raw()),
            -1,
            self.len,
        )
        .build()
    }
}

impl Single for Splice {
    type Output = io::Result<usize>;

    fn complete(self, c: Completion) -> io::Result<usize> {
        c.into_result().map(|n| n as usize)
    }
}
