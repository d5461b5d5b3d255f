//! `IORING_OP_READ` at an offset: file reads that never block the shard.

use std::io;

use io_uring::{opcode, squeue, types};

use super::{Operation, Single, filled};
use crate::buf::Buf;
use crate::ring::completion::Completion;
use crate::ring::fd::SharedFd;

/// Read into `buf`'s spare room from `fd` at `offset`.
pub struct Read {
    fd: SharedFd,
    buf: Buf,
    offset: u64,
}

impl Read {
    pub fn new(fd: &SharedFd, buf: Buf, offset: u64) -> Read {
        Read {
            fd: fd.clone(),
            buf,
            offset,
        }
    }
}

// SAFETY: the SQE points into `buf`'s heap bytes; both it and the file are
// held by `self`.
unsafe impl Operation for Read {
    fn sqe(&mut self) -> squeue::Entry {
        let (ptr, len) = self.buf.spare_ptr();
        opcode::Read::new(types::Fd(self.fd.raw()), ptr, len as u32)
            .offset(self.offset)
            .build()
    }
}

impl Single for Read {
    type Output = (io::Result<usize>, Buf);

    fn complete(mut self, c: Completion) -> Self::Output {
        (filled(c, &mut self.buf), self.buf)
    }
}
