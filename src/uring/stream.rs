//! A file window on its way to a socket (and a head in front of it, if
//! any): the uring backend's file streams, [`FileStream`].
//!
//! A stream goes chunk by chunk, each by one of three [`Route`]s, chosen
//! and advanced by one step ([`FileStream::step`]):
//!
//! - **read + send** through the ring: every window up to 16 KiB (with an
//!   HTTP head in the same buffer, so one READ and one SEND make a whole
//!   answer: a page-cache read and a send complete inline, where a splice
//!   would hop to an io-wq thread), and a large one when the shard's pipes
//!   are spent (the kernel's `pipe-user-pages-soft` budget);
//! - **sendfile from the page cache**, on this thread, 2 MiB at a time: a
//!   chunk `cachestat` (Linux 6.5) finds there whole leaves by `sendfile`,
//!   the socket non-blocking while it does, a full socket waited for by a
//!   ring poll, the task yielding every 512 KiB (no copy through user space
//!   and no io-wq hop: 1 MiB files over HTTP went from 0.92x to 1.9x nginx
//!   by wrk). `--cached-sendfile off` (or a kernel without `cachestat`)
//!   never takes it;
//! - **splice** through the ring, file → pipe → socket chained in one
//!   submission, one pipe's worth at a time: io-wq workers wait on the disk
//!   instead of the core. The pipe comes from the shard's [`PipePool`]
//!   (sized to the window) and goes back when the stream does.
//!
//! A large window starts on the page cache and leaves it for the ring at the
//! first chunk the page cache does not hold whole, for good: the kernel's
//! readahead is filling the pages after it, and `cachestat` counts a page
//! whose read is still in flight as cached, where a `sendfile` would wait
//! for the disk. A head in front of a file from the page cache is held back
//! (`MSG_MORE`) to leave in the same segment as the file's first bytes.
//!
//! Every wait has the write timeout, on the connection's one [`Watch`],
//! swept by the shard's heartbeat: a ring send or poll is cancelled when
//! overdue, and a splice chunk (two chained operations, then the drain of
//! what a short send left in the pipe) is a span the sweep ends in user
//! space, since a splice blocked on a full socket in an io-wq worker need
//! not end on a cancel: the socket is then reset
//! ([`RingSocket::cut_for_write_timeout`]). No timer is armed per chunk.
//!
//! [`Watch`]: crate::ring::deadline::Watch

use std::io;
use std::os::fd::AsFd;
use std::rc::Rc;

use crate::buf::Buf;
use crate::fs::RegularFile;
use crate::pagecache;
use crate::ring::SharedFd;
use crate::ring::op::{Read, Splice};
use crate::ring::pipes::{Pipe, PipePool};

use super::socket::{NonBlocking, RingSocket};

/// Bytes read per chunk when no pipe is left.
const READ_CHUNK: usize = 128 * 1024;
/// Bytes checked for residency at a time (one `cachestat`), and sent from
/// the page cache if all there.
const CACHED_CHUNK: u64 = 2 << 20;
/// Bytes sent by `sendfile` in one turn of the connection's task (then every
/// other task runs first): about a quarter of a millisecond of the core over
/// loopback. Without it a stream ran until glommio's preempt timer (5 ms).
const CACHED_TURN: u64 = 512 << 10;
/// Windows up to this size go out by read + send rather than splice.
const SMALL_FILE: u64 = 16 * 1024;
/// Room for a head (status line, HTTP headers) in front of a small file.
const HEAD_ROOM: usize = 4096;

/// What a shard's connections stream files with.
pub(crate) struct Routes {
    pub(crate) pipes: Rc<PipePool>,
    /// Send what the page cache holds by `sendfile` here.
    pub(crate) cached_sendfile: bool,
}

/// How the next chunk of a stream leaves.
enum Route {
    /// `sendfile` from the page cache on this thread, while `cachestat`
    /// finds each chunk there whole; `known`: bytes from the stream's
    /// position just found there (not asked about again).
    PageCache { known: u64 },
    /// File → pipe → socket through the ring; `empty`: the pipe holds no
    /// bytes (false while a chunk is on its way through it).
    Splice { pipe: Pipe, empty: bool },
    /// Read into the buffer and sent from it, through the ring. What the
    /// buffer already holds (a head) goes out in front of the bytes read.
    ReadSend(Buf),
}

/// A window of a file streamed to a connection's socket.
pub(super) struct FileStream<'c> {
    sock: &'c RingSocket,
    pipes: &'c PipePool,
    file: SharedFd,
    /// Where the window starts, the next byte to send, and where it ends.
    start: u64,
    at: u64,
    end: u64,
    route: Route,
}

impl<'c> FileStream<'c> {
    /// Send `head`, then the window of `file`; `head` comes back. A small
    /// file is read in behind the head and goes out in the same send.
    pub(super) async fn after_head(
        sock: &'c RingSocket,
        routes: &'c Routes,
        head: Buf,
        file: RegularFile,
    ) -> (io::Result<u64>, Buf) {
        if file.size() <= SMALL_FILE && head.len() <= HEAD_ROOM {
            let mut buf = Buf::with_capacity(SMALL_FILE as usize + HEAD_ROOM);
            buf.extend_from_slice(head.filled());
            let stream = FileStream::on(sock, routes, file, Route::ReadSend(buf));
            return (stream.run().await, head);
        }
        let mut stream = FileStream::new(sock, routes, file);
        // Held back to leave with the file's first bytes; sent here, at
        // once, when the socket has room for it.
        let direct = if stream.choose() {
            sock.send_now(head.filled(), libc::MSG_MORE).unwrap_or(0)
        } else {
            0
        };
        let len = head.len();
        let (res, head) = sock.send(head, direct, len).await;
        if let Err(e) = res {
            return (Err(e), head);
        }
        (stream.run().await, head)
    }

    /// The window of `file`, on the route its size chooses.
    pub(super) fn new(sock: &'c RingSocket, routes: &'c Routes, file: RegularFile) -> Self {
        let route = if file.size() <= SMALL_FILE {
            Route::ReadSend(Buf::with_capacity(SMALL_FILE as usize))
        } else if routes.cached_sendfile {
            Route::PageCache { known: 0 }
        } else {
            Route::through_ring(&routes.pipes, file.size())
        };
        FileStream::on(sock, routes, file, route)
    }

    /// The window of `file`, on `route`.
    fn on(sock: &'c RingSocket, routes: &'c Routes, file: RegularFile, route: Route) -> Self {
        let (start, size) = (file.start(), file.size());
        FileStream {
            sock,
            pipes: &routes.pipes,
            file: SharedFd::from_rc(file.into_shared()),
            start,
            at: start,
            end: start + size,
            route,
        }
    }

    /// Send the window: the bytes sent (fewer only if the file shrank).
    pub(super) async fn run(mut self) -> io::Result<u64> {
        while self.step().await? > 0 {}
        Ok(self.at - self.start)
    }

    /// Choose the next chunk's route and send the chunk by it: the bytes
    /// of the file sent, 0 once the window is done (or the file shrank).
    async fn step(&mut self) -> io::Result<u64> {
        let left = self.end - self.at;
        // A head still to go leaves even in front of an empty window.
        let head = matches!(&self.route, Route::ReadSend(buf) if !buf.is_empty());
        if left == 0 && !head {
            return Ok(0);
        }
        self.choose();
        let (sock, file, at) = (self.sock, &self.file, self.at);
        let n = match &mut self.route {
            Route::PageCache { known } => {
                *known = 0;
                let n = sendfile(sock, file, at, left.min(CACHED_CHUNK)).await?;
                if n > 0 {
                    // Every other task's turn (see CACHED_TURN).
                    futures_lite::future::yield_now().await;
                }
                n
            }
            Route::Splice { pipe, empty } => {
                let want = left.min(pipe.size() as u64) as u32;
                splice(sock, file, at, want, pipe, empty).await?
            }
            Route::ReadSend(buf) => read_send(sock, file, at, left, buf).await?,
        };
        self.at += n;
        Ok(n)
    }

    /// Settle the route of the next chunk: it stays on the page cache only
    /// if the page cache holds the chunk whole (asked once), else the
    /// stream moves onto the ring for the rest. True for the page cache.
    fn choose(&mut self) -> bool {
        let Route::PageCache { known } = self.route else {
            return false;
        };
        let want = (self.end - self.at).min(CACHED_CHUNK);
        if known >= want || pagecache::resident(self.file.as_fd(), self.at, want) == Some(true) {
            self.route = Route::PageCache { known: want };
            return true;
        }
        self.route = Route::through_ring(self.pipes, self.end - self.start);
        false
    }
}

impl Drop for FileStream<'_> {
    /// The pipe goes back to the pool: kept for the next stream if empty,
    /// closed if a chunk broke off in it (its ends stay open for the
    /// splices that still name them).
    fn drop(&mut self) {
        let idle = Route::PageCache { known: 0 };
        if let Route::Splice { pipe, empty } = std::mem::replace(&mut self.route, idle) {
            self.pipes.give_back(pipe, empty);
        }
    }
}

impl Route {
    /// The ring's route for a window of `size`: a pipe from the pool, or
    /// else a buffer when the pool is spent.
    fn through_ring(pipes: &PipePool, size: u64) -> Route {
        match pipes.take(size) {
            Some(pipe) => Route::Splice { pipe, empty: true },
            None => Route::ReadSend(Buf::with_capacity(READ_CHUNK)),
        }
    }
}

/// Send `len` bytes of `file` from `at` by `sendfile(2)` on this thread,
/// the page cache holding them (a copy of page references, no disk, no
/// io-wq hop; the socket is non-blocking meanwhile, and a full socket is
/// waited for through the ring).
async fn sendfile(sock: &RingSocket, file: &SharedFd, at: u64, len: u64) -> io::Result<u64> {
    let nonblocking = NonBlocking::set(sock)?;
    let mut offset = at;
    let mut turn = 0u64;
    while offset < at + len {
        if turn >= CACHED_TURN {
            // Sending from the cache never waits for the ring: give
            // every other task a turn.
            futures_lite::future::yield_now().await;
            turn = 0;
        }
        let want = (at + len - offset).min(CACHED_TURN - turn) as usize;
        match rustix::fs::sendfile(&sock.fd, file, Some(&mut offset), want) {
            Ok(0) => break, // the file shrank
            Ok(n) => turn += n as u64,
            Err(rustix::io::Errno::AGAIN) => sock.writable().await?,
            Err(e) => return Err(e.into()),
        }
    }
    drop(nonblocking);
    Ok(offset - at)
}

/// Splice up to `want` bytes (at most the pipe's size) of `file` from `at`
/// into the socket through `pipe`: file → pipe → socket chained, one round
/// trip, then a drain of what a short send left in the pipe.
async fn splice(
    sock: &RingSocket,
    file: &SharedFd,
    at: u64,
    want: u32,
    pipe: &Pipe,
    empty: &mut bool,
) -> io::Result<u64> {
    *empty = false;
    let (into, out) = sock.ring.submit_chain(
        Splice::new(file, Some(at), &pipe.write, want),
        Splice::new(&pipe.read, None, &sock.fd, want),
    );
    let Some((into, out)) = sock
        .within_write_timeout(futures_lite::future::zip(into, out))
        .await
    else {
        return Err(sock.cut_for_write_timeout().await);
    };
    let n = match into {
        Ok(0) => {
            *empty = true;
            return Ok(0); // the file shrank
        }
        Ok(n) => n,
        Err(e) => return Err(e),
    };
    let mut left = match out {
        Ok(m) => n - m,
        // The file moved less than asked: the chain's second half was
        // cancelled; the bytes wait in the pipe.
        Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => n,
        Err(e) => return Err(e),
    };
    // The chain broke on a short read (or a short send): drain the rest.
    while left > 0 {
        let drain = sock
            .ring
            .submit(Splice::new(&pipe.read, None, &sock.fd, left as u32));
        match sock.within_write_timeout(drain).await {
            None => return Err(sock.cut_for_write_timeout().await),
            Some(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Some(Ok(m)) => left -= m,
            Some(Err(e)) => return Err(e),
        }
    }
    *empty = true;
    glommio::yield_if_needed().await;
    Ok(n as u64)
}

/// Read what `buf` has room for of `file` from `at` through the ring, and
/// send it (at most `left` bytes of it) behind what `buf` already held;
/// `buf` comes back empty.
async fn read_send(
    sock: &RingSocket,
    file: &SharedFd,
    at: u64,
    left: u64,
    buf: &mut Buf,
) -> io::Result<u64> {
    let taken = std::mem::replace(buf, Buf::with_capacity(0));
    let ahead = taken.len();
    let (n, taken) = sock.ring.submit(Read::new(file, taken, at)).await;
    let n = match n {
        // Never more than the window.
        Ok(n) => (n as u64).min(left),
        Err(e) => {
            *buf = taken;
            return Err(e);
        }
    };
    let (res, mut taken) = sock.send(taken, 0, ahead + n as usize).await;
    taken.clear();
    *buf = taken;
    res.map(|()| n)
}

#[cfg(test)]
mod tests;
