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
//! stall the core; each such open is logged at debug). Files up to 16 KiB
//! are read and sent (with an HTTP head in the same send): a page-cache
//! read and a send complete inline. Larger
//! ones go 2 MiB at a time: a chunk the page cache holds whole (asked with
//! `cachestat`, Linux 6.5) leaves by `sendfile` on this thread, the socket
//! non-blocking while it does, a full socket waited for through the ring,
//! and the task yielding every 512 KiB (no copy through user space and no
//! io-wq hop: 1 MiB files over HTTP went from 0.92x to 1.9x nginx by wrk);
//! a chunk that needs the disk goes by `splice`, file → pipe → socket,
//! through the ring, whose io-wq workers wait on the disk instead of the
//! core, and the stream stays on the ring for its rest (pages whose
//! readahead is still in flight count as cached). The pipe comes from the
//! shard's [`PipePool`] (sized to the file), and when the pool is spent
//! (the kernel's `pipe-user-pages-soft` budget) a stream falls back to ring
//! reads and sends. `--cached-sendfile off` (or a kernel without `cachestat`) sends
//! every chunk through the ring.
//!
//! The socket, the file and the pipe are [`SharedFd`]s: each operation holds
//! its own clone, so none is closed while an operation naming it is queued,
//! linked or in flight.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::backend::Socket;
use crate::fs::{self, DisplayPath, OpenError, RegularFile, Root};
use crate::io::{Buf, Connection, Timeouts, read_limit, timed_out, write_timed_out};
use crate::pagecache;
use crate::ring::deadline::Watch;
use crate::ring::op::{self, OpenAt2, PollWritable, Read, Recv, RecvProvided, Splice, Timeout};
use crate::ring::pipes::{Pipe, PipePool};
use crate::ring::{Ring, SharedFd};

/// Bytes read per chunk when no pipe is left.
const READ_CHUNK: usize = 128 * 1024;
/// Bytes checked for residency at a time (one `cachestat`), and sent from
/// the page cache if all there.
const CACHED_CHUNK: u64 = 2 << 20;
/// Bytes sent by `sendfile` in one turn of the connection's task (then every
/// other task runs first): about a quarter of a millisecond of the core over
/// loopback. Without it a stream ran until glommio's preempt timer (5 ms).
const CACHED_TURN: u64 = 512 << 10;
/// How long a write-timeout cut waits for the kernel to let it reset a
/// socket a splice is blocked on before it shuts the socket down to wake
/// the worker (see `cut_for_write_timeout`).
const CUT_PATIENCE: Duration = Duration::from_millis(500);
/// How long it goes on trying after that. Generous: an io-wq worker on a
/// loaded machine (a TCG guest) can take seconds to let go, and the client
/// cannot see the queued FIN meanwhile (its window is closed, and it has
/// not been told anything yet).
const CUT_GIVE_UP: Duration = Duration::from_secs(5);
/// Files up to this size go out by read + send rather than splice.
const SMALL_FILE: u64 = 16 * 1024;
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
    /// Send what the page cache holds by `sendfile` here.
    cached_sendfile: bool,
}

impl RingConn {
    /// Wrap a descriptor the ring accepted. Fails if the client is gone.
    pub(crate) fn accepted(
        fd: OwnedFd,
        ring: Ring,
        pipes: Rc<PipePool>,
        watch: Watch,
        timeouts: Timeouts,
        cached_sendfile: bool,
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
            cached_sendfile,
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
                None => return (Err(self.cut_for_write_timeout().await), false),
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
                    None => return (Err(self.cut_for_write_timeout().await), false),
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
    /// timeout cannot reach it: on timeout, reset the connection now
    /// (`connect(AF_UNSPEC)`: the kernel's disconnect sends the RST, drops
    /// the unsent bytes and wakes the blocked splice with an error). Not a
    /// `shutdown`: that queues a FIN behind the unsent bytes, and a client
    /// that drained them before the socket's last reference went (the
    /// abandoned splice's, on a loaded machine) read a clean end of file.
    /// Linux 5.10 LTS refuses the disconnect (`EBUSY`) while a thread waits
    /// on the socket: it is retried while the cancellation of the dropped
    /// splice (sent with the ring's next enter) interrupts the worker. Only
    /// if that fails too is the socket shut down (which wakes any waiter),
    /// and the disconnect tried again: the FIN is still queued behind bytes
    /// the client has not taken, and the disconnect drops it with them.
    async fn cut_for_write_timeout(&self) -> io::Error {
        let sock = socket2::SockRef::from(&self.fd);
        // Whatever happens below, the last close resets.
        let _ = sock.set_linger(Some(Duration::ZERO));
        let started = Instant::now();
        let mut shut = false;
        loop {
            match rustix::net::connect_unspec(&self.fd) {
                Ok(()) => break,
                Err(rustix::io::Errno::BUSY) if started.elapsed() < CUT_GIVE_UP => {
                    if !shut && started.elapsed() >= CUT_PATIENCE {
                        let _ = sock.shutdown(std::net::Shutdown::Both);
                        shut = true;
                    }
                    let _ = self
                        .ring
                        .submit(Timeout::new(Duration::from_millis(1)))
                        .await;
                }
                Err(_) => {
                    // No disconnect: end the splice all the same.
                    let _ = sock.shutdown(std::net::Shutdown::Both);
                    break;
                }
            }
        }
        write_timed_out(self.timeouts.write)
    }

    /// Send `len` bytes of `file` from `at` by `sendfile(2)` on this thread,
    /// if `cachestat` says the page cache holds every one of them (a copy of
    /// page references, no disk, no io-wq hop; the socket is non-blocking
    /// meanwhile, and a full socket is waited for through the ring).
    /// `None`: not in the cache, or the kernel cannot tell; nothing sent.
    /// `known_cached`: the caller has just asked `cachestat` about this range.
    async fn sendfile_cached(
        &mut self,
        file: &SharedFd,
        at: u64,
        len: u64,
        known_cached: bool,
    ) -> io::Result<Option<u64>> {
        if !self.cached_sendfile
            || !(known_cached || pagecache::resident(file.as_fd(), at, len) == Some(true))
        {
            return Ok(None);
        }
        let nonblocking = NonBlocking::set(&self.fd)?;
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
            match rustix::fs::sendfile(&self.fd, file, Some(&mut offset), want) {
                Ok(0) => break, // the file shrank
                Ok(n) => turn += n as u64,
                Err(rustix::io::Errno::AGAIN) => {
                    let writable = self.ring.submit(PollWritable::new(&self.fd));
                    match self
                        .watch
                        .run(writable, Instant::now() + self.timeouts.write)
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                            return Err(write_timed_out(self.timeouts.write));
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        drop(nonblocking);
        Ok(Some(offset - at))
    }

    /// Send `buf.filled()[done..len]` through the ring, under the write
    /// timeout.
    async fn write_range(
        &mut self,
        mut buf: Buf,
        mut done: usize,
        len: usize,
    ) -> (io::Result<()>, Buf) {
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

    /// The body of [`Connection::send_file`]. `first_cached`: the caller has
    /// just found the first chunk in the page cache (asked once, not twice).
    async fn stream_file(&mut self, file: RegularFile, first_cached: bool) -> io::Result<u64> {
        let (start, size) = (file.start(), file.size());
        let file = SharedFd::new(file.into_fd());
        // The kernel runs every splice on an io-wq thread; a small file read
        // from the page cache and sent both complete inline, with no hop.
        if size <= SMALL_FILE {
            return self.read_send_file(&file, start, size).await;
        }
        // Chunk by chunk: what the page cache holds goes out by `sendfile`
        // here, what it does not through the ring (taken on first need: a
        // pipe, or else reads and sends). A stream that met the disk once
        // stays on the ring: the kernel's readahead is filling the pages
        // after it, and `cachestat` counts a page whose read is still in
        // flight as cached, where a `sendfile` would wait for the disk.
        let mut cold = false;
        let mut pipe: Option<Option<Pipe>> = None;
        let mut pipe_empty = true;
        let mut off = 0u64;
        let res = loop {
            if off >= size {
                break Ok(off);
            }
            let want = (size - off).min(CACHED_CHUNK);
            if !cold {
                let known = first_cached && off == 0;
                match self.sendfile_cached(&file, start + off, want, known).await {
                    Ok(Some(0)) => break Ok(off), // the file shrank
                    Ok(Some(n)) => {
                        off += n;
                        // Every other task's turn (see CACHED_TURN).
                        futures_lite::future::yield_now().await;
                        continue;
                    }
                    Ok(None) => cold = true,
                    Err(e) => break Err(e),
                }
            }
            let taken = pipe.get_or_insert_with(|| self.pipes.take(size));
            let moved = match taken {
                Some(p) => {
                    let (moved, empty) = self.splice_file(&file, start + off, want, p).await;
                    pipe_empty = empty;
                    moved
                }
                None => self.read_send_file(&file, start + off, want).await,
            };
            match moved {
                Ok(0) => break Ok(off),
                Ok(n) => off += n,
                Err(e) => break Err(e),
            }
        };
        if let Some(Some(p)) = pipe {
            self.pipes.give_back(p, pipe_empty && res.is_ok());
        }
        res
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

    async fn write_prefix(&mut self, buf: Buf, len: usize) -> (io::Result<()>, Buf) {
        self.write_range(buf, 0, len).await
    }

    async fn open_file(&mut self, root: &Root, request: &[u8]) -> Result<RegularFile, OpenError> {
        // A path in the kernel's caches opens at once, without a trip
        // through the ring; one that needs the disk goes through it.
        if let Some(opened) = root.open_file_cached(request) {
            return opened;
        }
        let relative = fs::relative_path(request)?;
        debug!(
            "{}: OPENAT2 {} through the ring",
            self.peer,
            DisplayPath(request)
        );
        let (flags, resolve) = fs::open_how();
        let mut tries = 0;
        loop {
            let open = OpenAt2::new(root.dir(), relative, flags, resolve)
                .map_err(|e| fs::open_error_from_io(&e))?;
            match self.ring.submit(open).await {
                Ok(fd) => return fs::finish_open(fd),
                Err(e) if fs::retry_race(e.raw_os_error(), &mut tries) => {}
                Err(e) => return Err(fs::open_error_from_io(&e)),
            }
        }
    }

    async fn send_file(&mut self, file: RegularFile) -> io::Result<u64> {
        self.stream_file(file, false).await
    }

    /// A small file is read in behind the head and goes out in the same
    /// send: one READ and one SEND for a whole answer.
    async fn send_file_after(&mut self, head: Buf, file: RegularFile) -> (io::Result<u64>, Buf) {
        let (start, size) = (file.start(), file.size());
        if size > SMALL_FILE || head.len() > HEAD_ROOM {
            // A head in front of a file from the page cache is held back
            // (MSG_MORE) to leave in the same segment as the file's first
            // bytes; sent here, at once, when the socket has room for it.
            let cached = self.cached_sendfile
                && pagecache::resident(file.as_fd(), start, size.min(CACHED_CHUNK)) == Some(true);
            let direct = if cached {
                send_nonblocking(&self.fd, head.filled(), libc::MSG_MORE).unwrap_or(0)
            } else {
                0
            };
            if direct < head.len() {
                let len = head.len();
                let (res, b) = self.write_range(head, direct, len).await;
                if let Err(e) = res {
                    return (Err(e), b);
                }
                return (self.stream_file(file, cached).await, b);
            }
            return (self.stream_file(file, cached).await, head);
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

/// The socket made non-blocking while a connection sends from the page
/// cache, blocking again when dropped (also when the sending future is):
/// the ring's own sends, receives and splices on it expect a blocking
/// socket, and none runs while its connection sends a file; a poll does
/// not care.
struct NonBlocking<'a>(&'a SharedFd);

impl<'a> NonBlocking<'a> {
    fn set(sock: &'a SharedFd) -> io::Result<NonBlocking<'a>> {
        rustix::fs::fcntl_setfl(sock, rustix::fs::OFlags::NONBLOCK)?;
        Ok(NonBlocking(sock))
    }
}

impl Drop for NonBlocking<'_> {
    fn drop(&mut self) {
        let _ = rustix::fs::fcntl_setfl(self.0, rustix::fs::OFlags::empty());
    }
}

/// One `send` that never waits (`MSG_DONTWAIT`); returns the bytes sent,
/// `Ok(0)` when the socket has no room.
fn send_nonblocking(sock: &SharedFd, bytes: &[u8], flags: i32) -> io::Result<usize> {
    let flags = rustix::net::SendFlags::from_bits_retain(
        (flags | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as u32,
    );
    match rustix::net::send(sock, bytes, flags) {
        Ok(n) => Ok(n),
        Err(rustix::io::Errno::AGAIN) => Ok(0),
        Err(e) => Err(e.into()),
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

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::net::{TcpListener, TcpStream};

    use super::*;
    use crate::ring::deadline::Deadlines;
    use crate::ring::tests::run_returning;

    /// An answer's head in front of a file from the page cache: the file's
    /// first chunk is asked about once (the head's `MSG_MORE` decision), not
    /// again when the stream starts; every byte arrives, head first.
    #[test]
    fn a_cached_file_behind_a_head_asks_the_page_cache_once() {
        let dir = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("f"), &body).unwrap(); // in the cache now
        let root = Root::open(dir.path()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut got = Vec::new();
            TcpStream::connect(addr)
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            got
        });
        let (sent, asked) = run_returning(move |ring| async move {
            let (sock, _) = listener.accept().unwrap();
            let mut conn = RingConn::accepted(
                sock.into(),
                ring,
                PipePool::for_shard(1),
                Deadlines::new().watch(),
                Timeouts::default(),
                true,
            )
            .unwrap();
            let file = root.open_file(b"f").unwrap();
            let mut head = Buf::with_capacity(64);
            head.extend_from_slice(b"HEAD\r\n");
            let before = pagecache::asked_here();
            let (sent, _) = conn.send_file_after(head, file).await;
            (sent.unwrap(), pagecache::asked_here() - before)
        });
        assert_eq!(sent, body.len() as u64);
        let got = client.join().unwrap();
        assert!(
            got.starts_with(b"HEAD\r\n") && got[6..] == body[..],
            "{} bytes",
            got.len()
        );
        if pagecache::resident(
            std::fs::File::open(dir.path().join("f")).unwrap().as_fd(),
            0,
            1,
        )
        .is_some()
        {
            assert_eq!(asked, 1, "cachestat calls for one answer");
        }
    }

    /// A splice cut by the write timeout resets the client at once: no FIN
    /// is queued behind the unsent bytes. The connection stays open here
    /// after the cut, as it does when its close waits for an abandoned
    /// operation (a loaded machine, an io-wq worker slow to let the socket
    /// go): a client that drains meanwhile must see a reset, never an end
    /// of file.
    #[test]
    fn a_splice_cut_by_the_write_timeout_resets_at_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), vec![7u8; 16 << 20]).unwrap();
        let root = Root::open(dir.path()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut_tx, cut_rx) = std::sync::mpsc::channel::<()>();
        let client = std::thread::spawn(move || {
            let sock =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            sock.set_recv_buffer_size(64 << 10).unwrap();
            sock.connect(&addr.into()).unwrap();
            let mut s: TcpStream = sock.into();
            // Not a byte read until the server has cut the stream.
            cut_rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the server never cut the stream");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = vec![0u8; 64 << 10];
            let mut got = 0usize;
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return (got, "a FIN".to_string()),
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                        return (got, "a reset".to_string());
                    }
                    Err(e) => return (got, format!("{e}")),
                }
            }
        });
        let (sent, (got, end)) = run_returning(move |ring| async move {
            let (sock, _) = listener.accept().unwrap();
            let timeouts = Timeouts {
                idle: Duration::from_secs(60),
                write: Duration::from_secs(1),
            };
            // `false`: no sendfile from the page cache, every chunk splices.
            let mut conn = RingConn::accepted(
                sock.into(),
                ring.clone(),
                PipePool::for_shard(1),
                Deadlines::new().watch(),
                timeouts,
                false,
            )
            .unwrap();
            let file = root.open_file(b"big").unwrap();
            let sent = conn.send_file(file).await.map_err(|e| e.kind());
            cut_tx.send(()).unwrap();
            // The connection is still open while the client reads.
            let end = client.join().unwrap();
            drop(conn);
            // The abandoned splices end too (the socket's last references).
            let waited = Instant::now();
            while ring.in_flight() > 0 && waited.elapsed() < Duration::from_secs(20) {
                let _ = ring.submit(Timeout::new(Duration::from_millis(10))).await;
            }
            assert_eq!(ring.in_flight(), 0, "operations still in flight");
            (sent, end)
        });
        assert_eq!(sent, Err(io::ErrorKind::TimedOut));
        assert!(got < 16 << 20, "{got} bytes");
        assert_eq!(end, "a reset", "after {got} bytes");
    }
}
