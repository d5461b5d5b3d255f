//! [`Connection`] on a tokio socket: the epoll baseline.
//!
//! Reads and writes are tokio's (readiness via epoll, then the syscall).
//! Files go out with `sendfile(2)` from the event loop, as nginx does: one
//! copy, no user-space buffer, the strongest epoll contender. Its known cost:
//! a `sendfile` of pages not in the page cache blocks this shard's thread on
//! the disk. This module must not paper over that; the benchmark shows it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::io::{Buf, Connection, full_buffer_error};
use crate::proto::root::RegularFile;
use crate::server::monitor::ShardStats;

/// Most bytes one `sendfile` call may move before the task yields
/// (nginx's `sendfile_max_chunk` default).
pub const SENDFILE_CHUNK: usize = 2 << 20;

/// An accepted TCP connection on an epoll shard.
pub struct EpollConn {
    stream: TcpStream,
    peer: SocketAddr,
    stats: Arc<ShardStats>,
}

impl EpollConn {
    /// Wrap an accepted stream; bytes are counted in its shard's `stats`.
    pub(crate) fn new(stream: TcpStream, peer: SocketAddr, stats: Arc<ShardStats>) -> EpollConn {
        EpollConn {
            stream,
            peer,
            stats,
        }
    }
}

impl Connection for EpollConn {
    fn peer(&self) -> SocketAddr {
        self.peer
    }

    async fn read(&mut self, mut buf: Buf) -> (io::Result<usize>, Buf) {
        if buf.is_full() {
            return (Err(full_buffer_error()), buf);
        }
        let res = self.stream.read(buf.spare_mut()).await;
        if let Ok(n) = res {
            buf.advance(n);
            self.stats.received(n);
        }
        (res, buf)
    }

    async fn write_prefix(&mut self, buf: Buf, len: usize) -> (io::Result<()>, Buf) {
        let res = self.stream.write_all(&buf.filled()[..len]).await;
        if res.is_ok() {
            self.stats.sent(len as u64);
        }
        (res, buf)
    }

    async fn send_file(&mut self, file: RegularFile) -> io::Result<u64> {
        let size = file.size();
        let mut offset = 0u64;
        while offset < size {
            let want = (size - offset).min(SENDFILE_CHUNK as u64) as usize;
            self.stream.writable().await?;
            let sent = self.stream.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(&self.stream, &file, Some(&mut offset), want)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => break, // the file ended early: it shrank
                Ok(n) => {
                    self.stats.sent(n as u64);
                    tokio::task::coop::consume_budget().await;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(offset)
    }

    async fn yield_if_needed(&mut self) {
        tokio::task::coop::consume_budget().await;
    }
}
