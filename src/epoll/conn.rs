//! [`Connection`] on a tokio socket: the epoll baseline.
//!
//! Reads and writes are tokio's (readiness via epoll, then the syscall).
//! Files go out with `sendfile(2)` from the event loop, as nginx does: one
//! copy, no user-space buffer, at most 2 MiB a call and a yield after each
//! (nginx's `sendfile_max_chunk`): the strongest epoll contender. Its known
//! cost: a `sendfile` of pages not in the page cache blocks this shard's
//! thread on the disk. This module must not paper over that; the benchmark
//! shows it.

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
                // Bytes went, so the socket may take more, and a client
                // that drains faster than the disk reads never fills it:
                // nothing else would stop this loop before tokio's budget
                // (64 chunks). Hand the shard to the other connections
                // first, as nginx does after each `sendfile_max_chunk`.
                Ok(_) => tokio::task::yield_now().await,
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::fs::finish_open;

    /// Bytes written into a TCP socket so far: acknowledged plus queued.
    fn written(fd: BorrowedFd<'_>) -> u64 {
        // SAFETY: tcp_info is plain data; all zeroes is a valid value.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let mut queued: libc::c_int = 0;
        // Queued first: bytes acknowledged in between then count twice
        // rather than not at all.
        // SAFETY: each call writes at most the size of the local it is given.
        let (q, a) = unsafe {
            (
                libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut queued),
                libc::getsockopt(
                    fd.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_INFO,
                    (&raw mut info).cast(),
                    &mut len,
                ),
            )
        };
        assert_eq!((q, a), (0, 0), "SIOCOUTQ / TCP_INFO");
        info.tcpi_bytes_acked + queued as u64
    }

    /// A client that drains as fast as `sendfile` fills seldom leaves the
    /// socket full, so nothing but the yield stops the send loop: another
    /// task on the shard must run after every `sendfile`, not only when
    /// tokio's budget runs out (64 chunks, 128 MiB). Measured at the
    /// socket: the most the stream wrote between two polls of its
    /// neighbour (one chunk, give or take what was acknowledged between
    /// the two reads of the counters; 8-16 MiB without the yield).
    #[test]
    fn a_stream_that_never_fills_its_socket_lets_a_neighbour_run_after_each_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let size = 64usize << 20;
        std::fs::write(&path, vec![7u8; size]).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (most, polls) = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let reader = std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                let mut buf = vec![0u8; 8 << 20];
                let mut total = 0;
                loop {
                    match s.read(&mut buf).unwrap() {
                        0 => return total,
                        n => total += n,
                    }
                }
            });
            let (stream, peer) = listener.accept().await.unwrap();
            let socket = stream.as_fd().try_clone_to_owned().unwrap();
            let mut conn = EpollConn::new(stream, peer, Timeouts::default());
            let file = finish_open(std::fs::File::open(&path).unwrap().into()).unwrap();
            let done = Cell::new(false);
            let stream_side = async {
                let sent = conn.send_file(file).await.unwrap();
                done.set(true);
                drop(conn);
                sent
            };
            let neighbour = async {
                let (mut last, mut most, mut polls) = (0, 0, 0);
                while !done.get() {
                    let now = written(socket.as_fd());
                    most = most.max(now.saturating_sub(last));
                    last = last.max(now);
                    polls += 1;
                    tokio::task::yield_now().await;
                }
                (most, polls)
            };
            let (sent, (most, polls)) = futures_lite::future::zip(stream_side, neighbour).await;
            drop(socket); // the last descriptor: the reader sees the end
            assert_eq!(sent, size as u64);
            assert_eq!(reader.join().unwrap(), size);
            (most, polls)
        });
        eprintln!("most between polls: {} KiB, {polls} polls", most >> 10);
        assert!(
            most <= 2 * SENDFILE_CHUNK as u64,
            "the stream wrote {} MiB while its neighbour waited",
            most >> 20
        );
    }
}
