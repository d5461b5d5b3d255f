//! `IORING_OP_ACCEPT`, single-shot and multishot (Linux 5.19).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use io_uring::{opcode, squeue, types};

use super::{Operation, Single};
use crate::ring::completion::{Completion, Discard, close_fd};
use crate::ring::fd::SharedFd;

/// Accept one connection on a listening socket.
pub struct Accept {
    listener: SharedFd,
}

impl Accept {
    pub fn new(listener: &SharedFd) -> Accept {
        Accept {
            listener: listener.clone(),
        }
    }
}

// SAFETY: no address buffer is passed; the listener is held by `self`.
unsafe impl Operation for Accept {
    fn sqe(&mut self) -> squeue::Entry {
        opcode::Accept::new(
            types::Fd(self.listener.raw()),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
        .flags(libc::SOCK_CLOEXEC)
        .build()
    }

    const DISCARD: Option<Discard> = Some(close_fd);
}

impl Single for Accept {
    type Output = io::Result<OwnedFd>;

    fn complete(self, c: Completion) -> io::Result<OwnedFd> {
        accepted(c)
    }
}

/// Accept connections until cancelled: each completion is a new descriptor
/// (or -errno); read them with [`accepted`].
pub struct AcceptMulti {
    listener: SharedFd,
}

impl AcceptMulti {
    pub fn new(listener: &SharedFd) -> AcceptMulti {
        AcceptMulti {
            listener: listener.clone(),
        }
    }
}

// SAFETY: no address buffer is passed; the listener is held by `self`.
unsafe impl Operation for AcceptMulti {
    fn sqe(&mut self) -> squeue::Entry {
        opcode::AcceptMulti::new(types::Fd(self.listener.raw()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
    }

    const DISCARD: Option<Discard> = Some(close_fd);
}

/// The descriptor an accept completion carries.
pub fn accepted(c: Completion) -> io::Result<OwnedFd> {
    c.into_result().map(|fd| {
        // SAFETY: the kernel made this descriptor for us alone.
        unsafe { OwnedFd::from_raw_fd(fd as i32) }
    })
}
