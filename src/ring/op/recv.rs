//! `IORING_OP_RECV`, into the caller's buffer or into one of the ring's
//! provided buffers.

use std::io;

use io_uring::{cqueue, opcode, squeue, types};

use super::{Operation, Single, filled};
use crate::buf::Buf;
use crate::ring::bufs::{self, Provided};
use crate::ring::lifecycle::Completion;
use crate::ring::{Ring, SharedFd};

/// Receive into `buf`'s spare room, appending.
pub struct Recv {
    fd: SharedFd,
    buf: Buf,
}

impl Recv {
    pub fn new(fd: &SharedFd, buf: Buf) -> Recv {
        Recv {
            fd: fd.clone(),
            buf,
        }
    }
}

// SAFETY: the SQE points into `buf`'s heap bytes; both it and the socket
// are held by `self`.
unsafe impl Operation for Recv {
    fn sqe(&mut self) -> squeue::Entry {
        let (ptr, len) = self.buf.spare_ptr();
        opcode::Recv::new(types::Fd(self.fd.raw()), ptr, len as u32).build()
    }
}

impl Single for Recv {
    type Output = (io::Result<usize>, Buf);

    fn complete(mut self, c: Completion) -> Self::Output {
        (filled(c, &mut self.buf), self.buf)
    }
}

/// Receive up to `len` bytes into a buffer the kernel picks from the ring's
/// provided buffers when data arrives: nothing of the caller's is held while
/// it waits. `ENOBUFS` when every buffer is in use.
pub struct RecvProvided {
    fd: SharedFd,
    len: u32,
    ring: Ring,
}

impl RecvProvided {
    /// `None` when the ring has no provided buffers (a kernel before 5.19).
    pub fn new(ring: &Ring, fd: &SharedFd, max: usize) -> Option<RecvProvided> {
        let size = ring.buffers()?.size();
        Some(RecvProvided {
            fd: fd.clone(),
            len: max.min(size as usize) as u32,
            ring: ring.clone(),
        })
    }
}

// SAFETY: the kernel writes into a provided buffer (owned by the ring,
// recycled only once its completion is read); the socket is held by `self`.
unsafe impl Operation for RecvProvided {
    fn sqe(&mut self) -> squeue::Entry {
        opcode::Recv::new(types::Fd(self.fd.raw()), std::ptr::null_mut(), self.len)
            .buf_group(bufs::GROUP)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
    }
}

impl Single for RecvProvided {
    type Output = io::Result<Provided>;

    fn complete(self, c: Completion) -> io::Result<Provided> {
        let got = Provided::new(
            &self.ring,
            cqueue::buffer_select(c.flags),
            c.result.max(0) as usize,
            cqueue::sock_nonempty(c.flags),
        );
        match c.into_result() {
            Ok(_) => Ok(got),
            Err(e) => {
                if e.raw_os_error() == Some(libc::ENOBUFS) {
                    self.ring.inner().note_no_buffers();
                }
                Err(e) // `got` recycles a buffer an error may still name
            }
        }
    }
}
