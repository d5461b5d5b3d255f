//! [`Connection`] on the completion ring: the uring backend's sockets.
//!
//! Every operation is a ring operation. `recv` and `send` run under the
//! connection's [`Watch`] (idle, request deadline, write timeout): the shard
//! sweeps the deadlines on its heartbeat and cancels what is overdue, so no
//! timer is armed per message, in the kernel or out of it. A read into an empty buffer parks it and receives into
//! one of the shard's provided buffers, then copies: an idle connection
//! holds no buffer. While data keeps coming (the kernel says more is
//! waiting, or a receive filled all the room it had), reads go straight
//! into the connection's own buffer instead.
//!
//! Files are opened by a direct `openat2` when the path resolves from the
//! kernel's caches (`RESOLVE_CACHED`: it cannot block), otherwise by
//! `openat2` through the ring (a lookup that must read the disk does not
//! stall the core). They go out by `splice`, file → pipe → socket, with no
//! copy through user space; the pipe comes from the shard's [`PipePool`]
//! (sized to the file), and when the pool is spent (the kernel's
//! `pipe-user-pages-soft` budget) a stream falls back to ring reads and
//! sends. Files up to 64 KiB are read and sent from the start: the kernel
//! runs every splice on an io-wq thread, while a page-cache read and a send
//! complete inline (4 KiB files, 100 connections: 1.35x the requests/s of
//! splicing).
//!
//! The socket, the file and the pipe are [`SharedFd`]s: each operation holds
//! its own clone, so none is closed while an operation naming it is queued,
//! linked or in flight.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::backend::Socket;
use crate::fs::{self, OpenError, RegularFile, Root};
use crate::io::{Buf, Connection, Timeouts, read_limit, timed_out, write_timed_out};
use crate::ring::deadline::Watch;
use crate::ring::op::{self, OpenAt2, Read, Recv, RecvProvided, Splice, Timeout};
use crate::ring::pipes::{Pipe, PipePool};
use crate::ring::{Ring, SharedFd};

/// Bytes read per chunk when no pipe is left.
const READ_CHUNK: usize = 128 * 1024;
/// Files up to this size go out by read + send rather than splice.
const SMALL_FILE: u64 = 64 * 1024;
/// Room for a head (status line, HTTP headers) in front of a small file.
const HEAD_ROOM: usize = 4096;

/// An accepted TCP connection served through the shard's ring.
pub(crate) struct RingConn {
    fd: SharedFd,
    ring: Ring,
    /// The deadline of the receive or send in flight.
    watch: Watch,
    peer: SocketAddr,
    timeouts: Timeouts,
    read_deadline: Option<Instant>,
    pipes: Rc<PipePool>,
    /// More data is likely waiting: receive into our own buffer directly.
    streaming: bool,
}

impl RingConn {
    /// Wrap a descriptor the ring accepted. Fails if the client is gone.
    pub(crate) fn accepted(
        fd: OwnedFd,
        ring: Ring,
        pipes: Rc<PipePool>,
        watch: Watch,
        timeouts: Timeouts,
    ) -> io::Result<RingConn> {
        let sock = socket2::SockRef::from(&fd);
        let peer = sock
            .peer_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("accepted a socket with no IP peer"))?;
        sock.set_tcp_nodelay(true)?;
        Ok(RingConn {
            fd: SharedFd::new(fd),
            ring,
            watch,
            peer,
            timeouts,
            read_deadline: None,
            pipes,
            streaming: false,
        })
    }

    /// Splice `size` bytes of `file` from `start`; also says whether the
    /// pipe was left empty (fit for reuse).
    async fn splice_file(
        &mut self,
        file: &SharedFd,
        start: u64,
        size: u64,
        pipe: &Pipe,
    ) -> (io::Result<u64>, bool) {
        let mut off = 0u64;
        while off < size {
            let want = (size - off).min(pipe.size() as u64) as u32;
            // File -> pipe -> socket, chained: one round trip per chunk.
            let (into, out) = self.ring.submit_chain(
                Splice::new(file, Some(start + off), &pipe.write, want),
                Splice::new(&pipe.read, None, &self.fd, want),
            );
            let (into, out) = match self
                .within_write_timeout(futures_lite::future::zip(into, out))
                .await
            {
                Some(r) => r,
                None => return (Err(self.cut_for_write_timeout()), false),
            };
            let n = match into {
                Ok(0) => break, // the file shrank
                Ok(n) => n,
                Err(e) => return (Err(e), false),
            };
            let mut left = match out {
                Ok(m) => n - m,
                // The file moved less than asked: the chain's second half
                // was cancelled; the bytes wait in the pipe.
                Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => n,
                Err(e) => return (Err(e), false),
            };
            // The chain broke on a short read (or a short send): drain the rest.
            while left > 0 {
                let drain = self
                    .ring
                    .submit(Splice::new(&pipe.read, None, &self.fd, left as u32));
                match self.within_write_timeout(drain).await {
                    None => return (Err(self.cut_for_write_timeout()), false),
                    Some(Ok(0)) => return (Err(io::ErrorKind::WriteZero.into()), false),
                    Some(Ok(m)) => left -= m,
                    Some(Err(e)) => return (Err(e), false),
                }
            }
            off += n as u64;
            glommio::yield_if_needed().await;
        }
        (Ok(off), true)
    }

    /// `work`, or `None` once the write timeout passes first (a timer in
    /// the ring, like every wait of this backend).
    async fn within_write_timeout<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        let timer = self.ring.submit(Timeout::new(self.timeouts.write));
        futures_lite::future::or(async { Some(work.await) }, async {
            let _ = timer.await;
            None
        })
        .await
    }

    /// A splice into a full socket blocks in an io-wq worker, where a linked
    /// timeout cannot reach it: on timeout, shut the socket down, which ends
    /// the blocked splice (the connection is over anyway).
    fn cut_for_write_timeout(&self) -> io::Error {
        let _ = socket2::SockRef::from(&self.fd).shutdown(std::net::Shutdown::Both);
        write_timed_out(self.timeouts.write)
    }

    async fn read_send_file(&mut self, file: &SharedFd, start: u64, size: u64) -> io::Result<u64> {
        let mut off = 0u64;
        // One of two sizes, so that buffers are reused from the pool.
        let mut buf = Buf::with_capacity(if size <= SMALL_FILE {
            SMALL_FILE as usize
        } else {
            READ_CHUNK
        });
        while off < size {
            buf.clear();
            let (n, b) = self.ring.submit(Read::new(file, buf, start + off)).await;
            buf = b;
            let n = n?;
            if n == 0 {
                break; // the file shrank
            }
            let n = n.min((size - off) as usize);
            let (res, b) = self.write_prefix(buf, n).await;
            buf = b;
            res?;
            off += n as u64;
        }
        Ok(off)
    }
}

impl Socket for RingConn {
    fn socket(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Connection for RingConn {
    fn peer(&self) -> SocketAddr {
        self.peer
    }

    async fn read(&mut self, mut buf: Buf) -> (io::Result<usize>, Buf) {
        let idle = self.timeouts.idle;
        let Some((limit, by_deadline)) = read_limit(idle, self.read_deadline) else {
            return (Err(timed_out(idle, true)), buf);
        };
        if buf.is_empty()
            && !self.streaming
            && let Some(recv) = RecvProvided::new(&self.ring, &self.fd, buf.capacity())
        {
            buf.park();
            match self
                .watch
                .run(self.ring.submit(recv), Instant::now() + limit)
                .await
            {
                Ok(got) => {
                    let n = buf.extend_from_slice(got.bytes());
                    self.streaming = got.more_waiting();
                    return (Ok(n), buf);
                }
                // Every provided buffer is in use: data is there, take it
                // into our own buffer below.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                Err(e) => return (Err(read_error(e, idle, by_deadline)), buf),
            }
        }
        let room = buf.capacity() - buf.len();
        let recv = self.ring.submit(Recv::new(&self.fd, buf));
        let (res, buf) = self.watch.run(recv, Instant::now() + limit).await;
        match res {
            Ok(n) => {
                self.streaming = n == room;
                (Ok(n), buf)
            }
            Err(e) => (Err(read_error(e, idle, by_deadline)), buf),
        }
    }

    async fn write_prefix(&mut self, mut buf: Buf, len: usize) -> (io::Result<()>, Buf) {
        let mut done = 0;
        while done < len {
            let send = self.ring.submit(op::Send::new(&self.fd, buf, done, len));
            let (res, b) = self
                .watch
                .run(send, Instant::now() + self.timeouts.write)
                .await;
            buf = b;
            match res {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return (Err(write_timed_out(self.timeouts.write)), buf);
                }
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    async fn open_file(&mut self, root: &Root, request: &[u8]) -> Result<RegularFile, OpenError> {
        // A path in the kernel's caches opens at once, without a trip
        // through the ring; one that needs the disk goes through it.
        if let Some(opened) = root.open_file_cached(request) {
            return opened;
        }
        let relative = fs::relative_path(request)?;
        let mut tries = 0;
        loop {
            let open = OpenAt2::new(
                root.dir(),
                relative,
                fs::OPEN_FLAGS.bits() as u64,
                fs::RESOLVE.bits(),
            )
            .map_err(|e| fs::open_error_from_io(&e))?;
            match self.ring.submit(open).await {
                Ok(fd) => return fs::finish_open(fd),
                // A rename raced with a `..`: the kernel asks for a retry.
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < fs::RACE_RETRIES => {
                    tries += 1
                }
                Err(e) => return Err(fs::open_error_from_io(&e)),
            }
        }
    }

    async fn send_file(&mut self, file: RegularFile) -> io::Result<u64> {
        let (start, size) = (file.start(), file.size());
        let file = SharedFd::new(file.into_fd());
        // The kernel runs every splice on an io-wq thread; a small file read
        // from the page cache and sent both complete inline, with no hop.
        if size <= SMALL_FILE {
            return self.read_send_file(&file, start, size).await;
        }
        match self.pipes.take(size) {
            Some(pipe) => {
                let (res, empty) = self.splice_file(&file, start, size, &pipe).await;
                self.pipes.give_back(pipe, empty && res.is_ok());
                res
            }
            None => self.read_send_file(&file, start, size).await,
        }
    }

    /// A small file is read in behind the head and goes out in the same
    /// send: one READ and one SEND for a whole answer.
    async fn send_file_after(&mut self, head: Buf, file: RegularFile) -> (io::Result<u64>, Buf) {
        let (start, size) = (file.start(), file.size());
        if size > SMALL_FILE || head.len() > HEAD_ROOM {
            let (res, head) = self.write_all(head).await;
            if let Err(e) = res {
                return (Err(e), head);
            }
            return (self.send_file(file).await, head);
        }
        let file = SharedFd::new(file.into_fd());
        let mut b = Buf::with_capacity(SMALL_FILE as usize + HEAD_ROOM);
        b.extend_from_slice(head.filled());
        let head_len = b.len();
        let (n, b) = self.ring.submit(Read::new(&file, b, start)).await;
        // Never more than the size the answer announced.
        let n = match n {
            Ok(n) => (n as u64).min(size),
            Err(e) => return (Err(e), head),
        };
        let (res, _) = self.write_prefix(b, head_len + n as usize).await;
        if let Err(e) = res {
            return (Err(e), head);
        }
        if n == 0 || n == size {
            return (Ok(n), head); // whole, or the file shrank to nothing
        }
        // A short read: the rest the usual way.
        let rest = self.read_send_file(&file, start + n, size - n).await;
        (rest.map(|m| n + m), head)
    }

    fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        self.read_deadline = deadline;
    }

    async fn yield_if_needed(&mut self) {
        glommio::yield_if_needed().await;
    }
}

/// A timed-out receive says which limit ran out.
fn read_error(e: io::Error, idle: Duration, by_deadline: bool) -> io::Error {
    if e.kind() == io::ErrorKind::TimedOut {
        timed_out(idle, by_deadline)
    } else {
        e
    }
}
