//! `IORING_OP_OPENAT2`: open a path beneath a directory without blocking
//! the shard on a lookup that must read the disk.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use io_uring::{opcode, squeue, types};

use super::accept::accepted;
use super::{Operation, Single};
use crate::ring::completion::{Completion, Discard, close_fd};

/// `openat2(dir, path, how)`; the result is the new descriptor.
pub struct OpenAt2 {
    dir: Arc<OwnedFd>,
    path: CString,
    how: Box<types::OpenHow>,
}

impl OpenAt2 {
    /// `EINVAL` when `path` holds a NUL byte.
    pub fn new(dir: &Arc<OwnedFd>, path: &[u8], flags: u64, resolve: u64) -> io::Result<OpenAt2> {
        let path = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok(OpenAt2 {
            dir: dir.clone(),
            path,
            how: Box::new(types::OpenHow::new().flags(flags).resolve(resolve)),
        })
    }
}

// SAFETY: the SQE points into the CString's and the Box's heap memory; they
// and the directory descriptor are held by `self`.
unsafe impl Operation for OpenAt2 {
    fn sqe(&mut self) -> squeue::Entry {
        opcode::OpenAt2::new(
            types::Fd(self.dir.as_raw_fd()),
            self.path.as_ptr(),
            &*self.how,
        )
        .build()
    }

    const DISCARD: Option<Discard> = Some(close_fd);
}

impl Single for OpenAt2 {
    type Output = io::Result<OwnedFd>;

    fn complete(self, c: Completion) -> io::Result<OwnedFd> {
        accepted(c)
    }
}
