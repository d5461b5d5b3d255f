//! `IORING_OP_RECV`, into the caller's buffer or into one of the ring's
//! provided buffers.

use std::io;
use std::rc::Rc;

use io_uring::{cqueue, opcode, squeue, types};

use super::{Operation, Single, filled};
use crate::buf::Buf;
use crate::ring::bufs::{self, BufRing, Provided};
use crate::ring::completion::Completion;
use crate::ring::fd::SharedFd;

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
/// it waits. `ENOBUFS` when every buffer is in use (the ring counts those as
/// it reaps them: `RingStats::no_buffers`).
pub struct RecvProvided {
    fd: SharedFd,
    len: u32,
    /// The buffer group the kernel picks from, handed to the [`Provided`].
    bufs: Rc<BufRing>,
}

impl RecvProvided {
    /// Receive at most `max` bytes (and at most a buffer) into one of
    /// `bufs` (see [`Ring::buffers`](crate::ring::Ring::buffers)).
    pub fn new(bufs: &Rc<BufRing>, fd: &SharedFd, max: usize) -> RecvProvided {
        RecvProvided {
            fd: fd.clone(),
            len: max.min(bufs.size() as usize) as u32,
            bufs: bufs.clone(),
        }
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

    const SELECTS_BUFFER: bool = true;
}

impl Single for RecvProvided {
    type Output = io::Result<Provided>;

    fn complete(self, c: Completion) -> io::Result<Provided> {
        let got = Provided::new(
            self.bufs,
            cqueue::buffer_select(c.flags),
            c.result.max(0) as usize,
            cqueue::sock_nonempty(c.flags),
        );
        // On an error, `got` recycles a buffer the completion may still name.
        c.into_result().map(|_| got)
    }
}
