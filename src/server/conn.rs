//! [`Connection`] on glommio's own sockets and buffered file reads: the
//! `glommio` backend, kept to measure the completion ring against.
//!
//! glommio's sockets are readiness-based (a non-blocking `recv`, then an
//! io_uring poll on EAGAIN), so the buffers lent to them are only touched
//! during the call and the owned-buffer contract holds trivially. File bytes
//! are read through io_uring (glommio `BufferedFile`) one chunk ahead of the
//! socket write, so disk and network overlap and at most two chunks are held.
//! This module never blocks its thread.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future::zip;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::io::{BufferedFile, ReadResult};
use glommio::net::TcpStream;

use super::monitor::ShardStats;
use crate::io::{
    Buf, Connection, Timeouts, full_buffer_error, read_limit, timed_out, write_timed_out,
};
use crate::proto::root::RegularFile;

/// Bytes read from a file per io_uring read; two are in memory at most.
///
/// The chunk size `cargo bench --bench file_read` measured buffered reads
/// with (BENCHMARKS.md); not tuned further for this comparison path.
pub const FILE_CHUNK: usize = 128 * 1024;

/// An accepted TCP connection on a glommio shard.
pub struct GlommioConn {
    stream: TcpStream,
    peer: SocketAddr,
    stats: Arc<ShardStats>,
    timeouts: Timeouts,
    read_deadline: Option<Instant>,
    /// The read timeout glommio currently holds, to set it only on change.
    read_timeout: Duration,
}

impl GlommioConn {
    /// Wrap an accepted stream; bytes are counted in its shard's `stats`.
    /// glommio arms its timers only while an operation waits, so the
    /// timeouts cost nothing on a busy connection.
    pub(crate) fn new(
        stream: TcpStream,
        peer: SocketAddr,
        stats: Arc<ShardStats>,
        timeouts: Timeouts,
    ) -> GlommioConn {
        let _ = stream.set_read_timeout(Some(timeouts.idle));
        let _ = stream.set_write_timeout(Some(timeouts.write));
        GlommioConn {
            stream,
            peer,
            stats,
            timeouts,
            read_deadline: None,
            read_timeout: timeouts.idle,
        }
    }
}

/// glommio reports its timeouts with a generic text: say which one it was.
fn explain_timeout(e: io::Error, what: impl FnOnce() -> io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::TimedOut {
        what()
    } else {
        e
    }
}

impl Connection for GlommioConn {
    fn peer(&self) -> SocketAddr {
        self.peer
    }

    async fn read(&mut self, mut buf: Buf) -> (io::Result<usize>, Buf) {
        if buf.is_full() {
            return (Err(full_buffer_error()), buf);
        }
        let Some((limit, by_deadline)) = read_limit(self.timeouts.idle, self.read_deadline) else {
            return (Err(timed_out(self.timeouts.idle, true)), buf);
        };
        if limit != self.read_timeout {
            let _ = self.stream.set_read_timeout(Some(limit));
            self.read_timeout = limit;
        }
        let idle = self.timeouts.idle;
        let res = self
            .stream
            .read(buf.spare_mut())
            .await
            .map_err(|e| explain_timeout(e, || timed_out(idle, by_deadline)));
        if let Ok(n) = res {
            buf.advance(n);
            self.stats.received(n);
        }
        (res, buf)
    }

    async fn write_prefix(&mut self, buf: Buf, len: usize) -> (io::Result<()>, Buf) {
        let limit = self.timeouts.write;
        let res = self
            .stream
            .write_all(&buf.filled()[..len])
            .await
            .map_err(|e| explain_timeout(e, || write_timed_out(limit)));
        if res.is_ok() {
            self.stats.sent(len as u64);
        }
        (res, buf)
    }

    async fn send_file(&mut self, file: RegularFile) -> io::Result<u64> {
        let size = file.size();
        // SAFETY: the descriptor is owned and open; BufferedFile takes it over
        // and closes it when dropped.
        let file = unsafe { BufferedFile::from_raw_fd(file.into_fd().into_raw_fd()) };
        let mut sent = 0u64;
        let mut next = read_chunk(&file, 0, size).await?;
        while let Some(chunk) = next {
            let after = sent + chunk.len() as u64;
            // Write this chunk while the next one is read.
            let (written, next_chunk) = zip(
                self.stream.write_all(&chunk),
                read_chunk(&file, after, size),
            )
            .await;
            written.map_err(|e| explain_timeout(e, || write_timed_out(self.timeouts.write)))?;
            self.stats.sent(after - sent);
            sent = after;
            next = next_chunk?;
            glommio::yield_if_needed().await;
        }
        Ok(sent)
    }

    fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        self.read_deadline = deadline;
    }

    async fn yield_if_needed(&mut self) {
        glommio::yield_if_needed().await;
    }
}

/// Read the chunk at `pos`, never past `size` (the size promised to the
/// client). `None` when there is nothing more: `size` reached, or the file
/// ended early because it shrank.
async fn read_chunk(file: &BufferedFile, pos: u64, size: u64) -> io::Result<Option<ReadResult>> {
    let want = (size.saturating_sub(pos)).min(FILE_CHUNK as u64) as usize;
    if want == 0 {
        return Ok(None);
    }
    let chunk = file.read_at(pos, want).await?;
    Ok((!chunk.is_empty()).then_some(chunk))
}
