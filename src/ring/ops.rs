//! The operations: one function each, building the SQE and the data it
//! points into. Buffers are owned ([`Buf`], boxed paths), so they can outlive
//! a dropped future inside the slab.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types};

use super::Ring;
use super::bufs::{self, Provided};
use super::op::{Completion, MultiOp, Op, close_fd};
use crate::io::Buf;

impl Ring {
    /// Nothing: a completion for testing the ring's plumbing.
    pub fn nop(&self) -> Op<()> {
        // SAFETY: NOP points at no memory.
        unsafe { Op::push(self, opcode::Nop::new().build(), ()) }
    }

    /// Accept connections on `listener` until dropped: each completion is a
    /// new descriptor (or -errno). Needs Linux 5.19; see [`Ring::accept`].
    pub fn accept_multi(&self, listener: RawFd) -> MultiOp<()> {
        let sqe = opcode::AcceptMulti::new(types::Fd(listener))
            .flags(libc::SOCK_CLOEXEC)
            .build();
        // SAFETY: multishot accept passes no address buffer: no memory.
        unsafe { MultiOp::push(self, sqe, ()) }.discard_with(close_fd)
    }

    /// Accept one connection (the pre-5.19 way).
    pub fn accept(&self, listener: RawFd) -> Op<()> {
        let sqe = opcode::Accept::new(
            types::Fd(listener),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
        .flags(libc::SOCK_CLOEXEC)
        .build();
        // SAFETY: no address buffer is passed: no memory.
        unsafe { Op::push(self, sqe, ()) }.discard_with(close_fd)
    }

    /// Receive into `buf`'s spare room.
    pub async fn recv(&self, fd: RawFd, mut buf: Buf) -> (io::Result<usize>, Buf) {
        let (ptr, len) = buf.spare_ptr();
        let sqe = opcode::Recv::new(types::Fd(fd), ptr, len as u32).build();
        // SAFETY: the SQE points into `buf`'s heap bytes, owned by the op.
        let (c, mut buf) = unsafe { Op::push(self, sqe, buf) }.await;
        (filled(c, &mut buf), buf)
    }

    /// Receive into `buf`'s spare room, giving up after `limit`
    /// (`TimedOut`): a linked timeout, so no user-space timer is armed.
    pub async fn recv_within(
        &self,
        fd: RawFd,
        mut buf: Buf,
        limit: Duration,
    ) -> (io::Result<usize>, Buf) {
        let (ptr, len) = buf.spare_ptr();
        let sqe = opcode::Recv::new(types::Fd(fd), ptr, len as u32).build();
        let ts = Box::new(types::Timespec::from(limit));
        let ts_ptr: *const types::Timespec = &*ts;
        // SAFETY: the SQE points into `buf`'s heap bytes and the timespec's
        // box, both owned by the op.
        let (c, (mut buf, _ts)) =
            unsafe { Op::push_with_timeout(self, sqe, ts_ptr, (buf, ts)) }.await;
        (filled(timed_out_if_cancelled(c), &mut buf), buf)
    }

    /// Receive up to `max` bytes into one of the shard's provided buffers,
    /// giving up after `limit` (`TimedOut`): nothing of the caller's is held
    /// while it waits. `ENOBUFS` when every buffer is in use or the kernel
    /// has no buffer rings; the caller then receives into its own memory.
    pub async fn recv_provided_within(
        &self,
        fd: RawFd,
        max: usize,
        limit: Duration,
    ) -> io::Result<Provided> {
        let Some(size) = self.buffers().map(|b| b.size()) else {
            return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
        };
        let len = max.min(size as usize) as u32;
        let sqe = opcode::Recv::new(types::Fd(fd), std::ptr::null_mut(), len)
            .buf_group(bufs::GROUP)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT);
        let ts = Box::new(types::Timespec::from(limit));
        let ts_ptr: *const types::Timespec = &*ts;
        // SAFETY: the kernel writes into a provided buffer (owned by the
        // ring, recycled only once its completion is read); the timespec's
        // box is owned by the op.
        let (c, _ts) = unsafe { Op::push_with_timeout(self, sqe, ts_ptr, ts) }.await;
        let c = timed_out_if_cancelled(c);
        let got = Provided::new(
            self,
            cqueue::buffer_select(c.flags),
            c.result.max(0) as usize,
            cqueue::sock_nonempty(c.flags),
        );
        match c.into_result() {
            Ok(_) => Ok(got),
            Err(e) => {
                if e.raw_os_error() == Some(libc::ENOBUFS) {
                    self.inner().note_no_buffers();
                }
                Err(e) // `got` recycles a buffer an error may still name
            }
        }
    }

    /// Send `buf.filled()[from..to]` once, giving up after `limit`
    /// (`TimedOut`). It may send less: see the count.
    pub async fn send_within(
        &self,
        fd: RawFd,
        buf: Buf,
        from: usize,
        to: usize,
        limit: Duration,
    ) -> (io::Result<usize>, Buf) {
        let part = &buf.filled()[from..to];
        let sqe = opcode::Send::new(types::Fd(fd), part.as_ptr(), part.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build();
        let ts = Box::new(types::Timespec::from(limit));
        let ts_ptr: *const types::Timespec = &*ts;
        // SAFETY: the SQE points into `buf`'s heap bytes and the timespec's
        // box, both owned by the op.
        let (c, (buf, _ts)) = unsafe { Op::push_with_timeout(self, sqe, ts_ptr, (buf, ts)) }.await;
        let res = timed_out_if_cancelled(c).into_result().map(|n| n as usize);
        (res, buf)
    }

    /// Send `buf.filled()[from..to]` once (it may send less: see the count).
    pub async fn send(
        &self,
        fd: RawFd,
        buf: Buf,
        from: usize,
        to: usize,
    ) -> (io::Result<usize>, Buf) {
        let part = &buf.filled()[from..to];
        let sqe = opcode::Send::new(types::Fd(fd), part.as_ptr(), part.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build();
        // SAFETY: the SQE points into `buf`'s heap bytes, owned by the op.
        let (c, buf) = unsafe { Op::push(self, sqe, buf) }.await;
        (c.into_result().map(|n| n as usize), buf)
    }

    /// Send `buf.filled()[from..to]` once with `SEND_ZC`: the kernel sends
    /// from `buf` without copying it first, and says when it no longer
    /// needs it (a second, notification completion); only then is `buf`
    /// handed back. Not used by the server: `benches/send_zc.rs` measures
    /// it against [`Ring::send`] (see BENCHMARKS.md).
    pub async fn send_zc(
        &self,
        fd: RawFd,
        buf: Buf,
        from: usize,
        to: usize,
    ) -> (io::Result<usize>, Buf) {
        let part = &buf.filled()[from..to];
        let sqe = opcode::SendZc::new(types::Fd(fd), part.as_ptr(), part.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build();
        // SAFETY: the SQE points into `buf`'s heap bytes, owned by the op
        // until its last completion (the notification).
        let mut op = unsafe { MultiOp::push(self, sqe, buf) };
        let mut result = None;
        while let Some(c) = op.next().await {
            if !cqueue::notif(c.flags) {
                result = Some(c.into_result().map(|n| n as usize));
            }
        }
        let res = result.unwrap_or_else(|| Err(io::Error::other("SEND_ZC posted no result")));
        (res, op.into_data())
    }

    /// Read into `buf`'s spare room from `fd` at `offset`.
    pub async fn read_at(&self, fd: RawFd, mut buf: Buf, offset: u64) -> (io::Result<usize>, Buf) {
        let (ptr, len) = buf.spare_ptr();
        let sqe = opcode::Read::new(types::Fd(fd), ptr, len as u32)
            .offset(offset)
            .build();
        // SAFETY: the SQE points into `buf`'s heap bytes, owned by the op.
        let (c, mut buf) = unsafe { Op::push(self, sqe, buf) }.await;
        (filled(c, &mut buf), buf)
    }

    /// Move up to `len` bytes from `fd_in` at `off_in` (or its position when
    /// `None`) to `fd_out`, one of them a pipe.
    pub async fn splice(
        &self,
        fd_in: RawFd,
        off_in: Option<u64>,
        fd_out: RawFd,
        len: u32,
    ) -> io::Result<usize> {
        let off = off_in.map_or(-1, |o| o as i64);
        let sqe = opcode::Splice::new(types::Fd(fd_in), off, types::Fd(fd_out), -1, len).build();
        // SAFETY: splice points at no memory.
        let (c, ()) = unsafe { Op::push(self, sqe, ()) }.await;
        c.into_result().map(|n| n as usize)
    }

    /// Splice up to `len` bytes of `file` at `offset` into the pipe
    /// `(pipe_r, pipe_w)` and, chained in the same submission, from the pipe
    /// into `sock`: one round trip per chunk. Returns (bytes into the pipe,
    /// bytes out to the socket); when the first moved fewer than `len`, the
    /// second was cancelled and reports 0: the caller drains the pipe.
    pub async fn splice_through(
        &self,
        file: RawFd,
        offset: u64,
        pipe: (RawFd, RawFd),
        sock: RawFd,
        len: u32,
    ) -> (io::Result<usize>, io::Result<usize>) {
        let into =
            opcode::Splice::new(types::Fd(file), offset as i64, types::Fd(pipe.1), -1, len).build();
        let out = opcode::Splice::new(types::Fd(pipe.0), -1, types::Fd(sock), -1, len).build();
        // SAFETY: splice points at no memory.
        let (a, b) = unsafe { Op::push_chain(self, into, (), out, ()) };
        let ((ca, ()), (cb, ())) = futures_lite::future::zip(a, b).await;
        let second = match cb.into_result() {
            Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => Ok(0),
            r => r.map(|n| n as usize),
        };
        (ca.into_result().map(|n| n as usize), second)
    }

    /// `openat2(dirfd, path, how)` through the ring; the new descriptor.
    pub async fn openat2(
        &self,
        dirfd: RawFd,
        path: &[u8],
        flags: u64,
        resolve: u64,
    ) -> io::Result<RawFd> {
        let path = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let how = Box::new(types::OpenHow::new().flags(flags).resolve(resolve));
        let data = (path, how);
        let sqe = opcode::OpenAt2::new(types::Fd(dirfd), data.0.as_ptr(), &*data.1).build();
        // SAFETY: the SQE points into the CString's and the Box's heap
        // memory, both owned by the op.
        let (c, _) = unsafe { Op::push(self, sqe, data) }
            .discard_with(close_fd)
            .await;
        c.into_result().map(|fd| fd as RawFd)
    }
}

/// A read-like completion: on success, mark that many bytes of `buf` filled.
fn filled(c: Completion, buf: &mut Buf) -> io::Result<usize> {
    c.into_result().map(|n| {
        // SAFETY: the kernel wrote `n` bytes at `buf`'s spare pointer.
        unsafe { buf.assume_written(n as usize) };
        n as usize
    })
}

/// An operation cancelled by its linked timeout ran out of time: -ETIME
/// rather than -ECANCELED, so that `into_result` says `TimedOut`.
fn timed_out_if_cancelled(c: Completion) -> Completion {
    if c.result == -libc::ECANCELED {
        Completion {
            result: -libc::ETIMEDOUT,
            ..c
        }
    } else {
        c
    }
}

/// Read a completion's descriptor result.
pub fn fd_of(c: Completion) -> io::Result<RawFd> {
    c.into_result().map(|fd| fd as RawFd)
}
