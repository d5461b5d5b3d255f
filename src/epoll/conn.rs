//! [`Connection`] on a tokio socket: the epoll baseline.
//!
//! Reads and writes are tokio's (readiness via epoll, then the syscall).
//! Files go out with `sendfile(2)` from the event loop, as nginx does: one
//! copy, no user-space buffer, the strongest epoll contender. Its known cost:
//! a `sendfile` of pages not in the page cache blocks this shard's thread on
//! the disk. This module must not paper over that; the benchmark shows it.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use rustix::net::SendFlags;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::backend::Socket;
use crate::fs::RegularFile;
use crate::io::{Buf, Connection, Timeouts, read_limit, timed_out, write_timed_out};

/// Most bytes one `sendfile` call may move before the task yields
/// (nginx's `sendfile_max_chunk` default).
pub(crate) const SENDFILE_CHUNK: usize = 2 << 20;

/// An accepted TCP connection on an epoll shard.
pub(crate) struct EpollConn {
    stream: TcpStream,
    peer: SocketAddr,
    timeouts: Timeouts,
    read_deadline: Option<Instant>,
}

impl EpollConn {
    /// Wrap an accepted stream.
    pub(crate) fn new(stream: TcpStream, peer: SocketAddr, timeouts: Timeouts) -> EpollConn {
        EpollConn {
            stream,
            peer,
            timeouts,
            read_deadline: None,
        }
    }

    /// Wait until the socket is writable, for at most the write timeout.
    /// Timers are only armed here, when a write would block.
    async fn writable(&self) -> io::Result<()> {
        let limit = self.timeouts.write;
        match tokio::time::timeout(limit, self.stream.writable()).await {
            Ok(ready) => ready,
            Err(_) => Err(write_timed_out(limit)),
        }
    }
}

impl Socket for EpollConn {
    fn socket(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl Connection for EpollConn {
    fn peer(&self) -> SocketAddr {
        self.peer
    }

    async fn read(&mut self, mut buf: Buf) -> (io::Result<usize>, Buf) {
        let idle = self.timeouts.idle;
        loop {
            match self.stream.try_read(buf.spare_mut()) {
                Ok(n) => {
                    buf.advance(n);
                    return (Ok(n), buf);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return (Err(e), buf),
            }
            // Nothing there: wait for readiness, and only now arm a timer.
            let Some((limit, by_deadline)) = read_limit(idle, self.read_deadline) else {
                return (Err(timed_out(idle, true)), buf);
            };
            match tokio::time::timeout(limit, self.stream.readable()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return (Err(e), buf),
                Err(_) => return (Err(timed_out(idle, by_deadline)), buf),
            }
        }
    }

    async fn write_prefix(&mut self, buf: Buf, len: usize) -> (io::Result<()>, Buf) {
        let mut done = 0;
        while done < len {
            match self.stream.try_write(&buf.filled()[done..len]) {
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.writable().await {
                        return (Err(e), buf);
                    }
                }
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    async fn send_file(&mut self, file: RegularFile) -> io::Result<u64> {
        let (start, size) = (file.start(), file.size());
        let end = start + size;
        let mut offset = start;
        while offset < end {
            let want = (end - offset).min(SENDFILE_CHUNK as u64) as usize;
            self.writable().await?;
            let sent = self.stream.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(&self.stream, &file, Some(&mut offset), want)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => break, // the file ended early: it shrank
                Ok(_) => tokio::task::coop::consume_budget().await,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(offset - start)
    }

    /// The head goes with MSG_MORE, so it leaves in the same segment as
    /// the file's first bytes (nginx corks the same way).
    async fn send_file_after(&mut self, head: Buf, file: RegularFile) -> (io::Result<u64>, Buf) {
        let mut done = 0;
        while done < head.len() {
            let sent = self.stream.try_io(Interest::WRITABLE, || {
                rustix::net::send(&self.stream, &head.filled()[done..], SendFlags::MORE)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.writable().await {
                        return (Err(e), head);
                    }
                }
                Err(e) => return (Err(e), head),
            }
        }
        (self.send_file(file).await, head)
    }

    fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        self.read_deadline = deadline;
    }

    async fn yield_if_needed(&mut self) {
        tokio::task::coop::consume_budget().await;
    }
}
