//! [`Connection`] on the completion ring: the uring backend's sockets.
//!
//! Every operation is a ring operation. Receives and sends run under the
//! connection's [`Watch`] (idle, request deadline, write timeout): the shard
//! sweeps the deadlines on its heartbeat and cancels what is overdue, so no
//! timer is armed per message, in the kernel or out of it. A read into an
//! empty buffer parks it and receives into one of the shard's provided
//! buffers, then copies: an idle connection holds no buffer. While data
//! keeps coming (the kernel says more is waiting, or a receive filled all
//! the room it had), reads go straight into the connection's own buffer
//! instead.
//!
//! Files are opened by a direct `openat2` when the path resolves from the
//! kernel's caches (`RESOLVE_CACHED`: it cannot block), otherwise by
//! `openat2` through the ring (a lookup that must read the disk does not
//! stall the core; each such open is logged at debug), both with the retry
//! policy of `fs`. Sending a file is a [`FileStream`]'s job (`stream.rs`);
//! writing to the socket is [`RingSocket`]'s (`socket.rs`).
//!
//! The socket, the files and the pipes are [`SharedFd`]s: each operation
//! holds its own clone, so none is closed while an operation naming it is
//! queued, linked or in flight.
//!
//! [`SharedFd`]: crate::ring::SharedFd

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::backend::Socket;
use crate::fs::{self, DisplayPath, OpenError, RegularFile, Root};
use crate::io::{Buf, Connection, Timeouts, read_limit, timed_out};
use crate::ring::deadline::Watch;
use crate::ring::op::{OpenAt2, Recv, RecvProvided};
use crate::ring::pipes::PipePool;
use crate::ring::{Ring, SharedFd};

use super::socket::RingSocket;
use super::stream::{FileStream, Routes};

/// An accepted TCP connection served through the shard's ring.
pub(crate) struct RingConn {
    sock: RingSocket,
    routes: Routes,
    peer: SocketAddr,
    read_deadline: Option<Instant>,
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
        cached_sendfile: bool,
    ) -> io::Result<RingConn> {
        let sock = socket2::SockRef::from(&fd);
        let peer = sock
            .peer_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("accepted a socket with no IP peer"))?;
        sock.set_tcp_nodelay(true)?;
        Ok(RingConn {
            sock: RingSocket {
                fd: SharedFd::new(fd),
                ring,
                watch,
                timeouts,
            },
            routes: Routes {
                pipes,
                cached_sendfile,
            },
            peer,
            read_deadline: None,
            streaming: false,
        })
    }
}

impl Socket for RingConn {
    fn socket(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl Connection for RingConn {
    fn peer(&self) -> SocketAddr {
        self.peer
    }

    async fn read(&mut self, mut buf: Buf) -> (io::Result<usize>, Buf) {
        let idle = self.sock.timeouts.idle;
        let Some((limit, by_deadline)) = read_limit(idle, self.read_deadline) else {
            return (Err(timed_out(idle, true)), buf);
        };
        let (ring, fd, watch) = (&self.sock.ring, &self.sock.fd, &self.sock.watch);
        if buf.is_empty()
            && !self.streaming
            && let Some(recv) = ring
                .buffers()
                .map(|b| RecvProvided::new(b, fd, buf.capacity()))
        {
            buf.park();
            match watch.run(ring.submit(recv), Instant::now() + limit).await {
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
        let recv = ring.submit(Recv::new(fd, buf));
        let (res, buf) = watch.run(recv, Instant::now() + limit).await;
        match res {
            Ok(n) => {
                self.streaming = n == room;
                (Ok(n), buf)
            }
            Err(e) => (Err(read_error(e, idle, by_deadline)), buf),
        }
    }

    async fn write_prefix(&mut self, buf: Buf, len: usize) -> (io::Result<()>, Buf) {
        self.sock.send(buf, 0, len).await
    }

    async fn open_file(&mut self, root: &Root, request: &[u8]) -> Result<RegularFile, OpenError> {
        // A path in the kernel's caches opens at once, without a trip
        // through the ring; one that needs the disk goes through it.
        if let Some(opened) = root.open_file_cached(request) {
            return opened;
        }
        debug!(
            "{}: OPENAT2 {} through the ring",
            self.peer,
            DisplayPath(request)
        );
        let (flags, resolve) = fs::open_how();
        let ring = &self.sock.ring;
        fs::open_beneath(request, |relative| {
            let open = OpenAt2::new(root.dir(), relative, flags, resolve);
            async move { ring.submit(open?).await }
        })
        .await
    }

    async fn send_file(&mut self, file: RegularFile) -> io::Result<u64> {
        FileStream::new(&self.sock, &self.routes, file).run().await
    }

    /// A small file is read in behind the head and goes out in the same
    /// send: one READ and one SEND for a whole answer.
    async fn send_file_after(&mut self, head: Buf, file: RegularFile) -> (io::Result<u64>, Buf) {
        FileStream::after_head(&self.sock, &self.routes, head, file).await
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
