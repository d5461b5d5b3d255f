//! `IORING_OP_SEND` and `IORING_OP_SEND_ZC`.

use std::io;

use io_uring::{opcode, squeue, types};

use super::{Operation, Single};
use crate::buf::Buf;
use crate::ring::completion::Completion;
use crate::ring::fd::SharedFd;

/// Send `buf.filled()[from..to]` once; it may send less (see the count).
pub struct Send {
    fd: SharedFd,
    buf: Buf,
    from: usize,
    to: usize,
}

impl Send {
    /// # Panics
    /// If `from..to` is not within the filled part of `buf`.
    pub fn new(fd: &SharedFd, buf: Buf, from: usize, to: usize) -> Send {
        assert!(
            from <= to && to <= buf.len(),
            "send range out of the filled bytes"
        );
        Send {
            fd: fd.clone(),
            buf,
            from,
            to,
        }
    }
}

// SAFETY: the SQE points into `buf`'s heap bytes; both it and the socket
// are held by `self`.
unsafe impl Operation for Send {
    fn sqe(&mut self) -> squeue::Entry {
        let part = &self.buf.filled()[self.from..self.to];
        opcode::Send::new(types::Fd(self.fd.raw()), part.as_ptr(), part.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
    }
}

impl Single for Send {
    type Output = (io::Result<usize>, Buf);

    fn complete(self, c: Completion) -> Self::Output {
        (c.into_result().map(|n| n as usize), self.buf)
    }
}

#[cfg(feature = "internals")]
/// As [`Send`], without copying `buf` into the socket first: the kernel
/// posts the result, then a notification once it no longer needs `buf`
/// (a multishot operation: see `Ring::send_zc`). Not used by the server:
/// `benches/send_zc.rs` measures it (it loses over loopback).
pub struct SendZc {
    inner: Send,
}

#[cfg(feature = "internals")]
impl SendZc {
    pub fn new(fd: &SharedFd, buf: Buf, from: usize, to: usize) -> SendZc {
        SendZc {
            inner: Send::new(fd, buf, from, to),
        }
    }

    /// The buffer back, once the notification came.
    pub fn into_buf(self) -> Buf {
        self.inner.buf
    }
}

// SAFETY: as for `Send`; the buffer is held until the final completion
// (the notification).
#[cfg(feature = "internals")]
unsafe impl Operation for SendZc {
    fn sqe(&mut self) -> squeue::Entry {
        let s = &self.inner;
        let part = &s.buf.filled()[s.from..s.to];
        opcode::SendZc::new(types::Fd(s.fd.raw()), part.as_ptr(), part.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
    }
}
