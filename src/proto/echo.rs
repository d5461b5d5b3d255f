//! The article's first program: write back what the client sends.
//!
//! Byte-exact. Line mode writes each complete line back as soon as its `\n`
//! arrives; raw mode writes back whatever arrives. Memory is one fixed buffer
//! per connection: a "line" longer than the buffer goes back in pieces, never
//! held whole. It must never buffer more than that one buffer. With an
//! access log on, each session is one line (bytes in and out, duration).

use std::io;
use std::time::Instant;

use crate::access::Entry;
use crate::io::{Buf, Connection};
use crate::proto::Protocol;

/// The default per-connection buffer: 64 KiB.
pub const DEFAULT_BUFFER: usize = 64 * 1024;

/// When echoed bytes are written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EchoMode {
    /// Each complete line as soon as its `\n` arrives (the article's server).
    #[default]
    Line,
    /// Whatever arrives, as it arrives.
    Raw,
}

/// The echo protocol.
#[derive(Debug, Clone)]
pub struct Echo {
    mode: EchoMode,
    buffer: usize,
}

impl Echo {
    /// An echo server in `mode` with a `buffer`-byte buffer per connection.
    ///
    /// # Panics
    /// If `buffer` is zero.
    pub fn new(mode: EchoMode, buffer: usize) -> Echo {
        assert!(buffer > 0, "echo buffer must hold at least one byte");
        Echo { mode, buffer }
    }
}

impl Default for Echo {
    fn default() -> Echo {
        Echo::new(EchoMode::Line, DEFAULT_BUFFER)
    }
}

impl Protocol for Echo {
    async fn serve<C: Connection>(&self, conn: &mut C) -> io::Result<()> {
        let started = Instant::now();
        let mut bytes = (0, 0);
        let ended = self.session(conn, &mut bytes).await;
        // One access log line for the whole session, however it ended.
        if let Some(log) = conn.access_log() {
            log.log(&Entry::Session {
                client: conn.peer(),
                service: "echo",
                bytes_in: bytes.0,
                bytes_out: bytes.1,
                duration: started.elapsed(),
            });
        }
        ended
    }
}

impl Echo {
    /// Echo until the client closes; `bytes` counts what came in and went back.
    async fn session<C: Connection>(&self, conn: &mut C, bytes: &mut (u64, u64)) -> io::Result<()> {
        let mut buf = Buf::with_capacity(self.buffer);
        loop {
            let (res, b) = conn.read(buf).await;
            buf = b;
            let n = res?;
            bytes.0 += n as u64;
            if n == 0 {
                // The client closed its side: a last line without `\n` still goes back.
                if !buf.is_empty() {
                    let len = buf.len() as u64;
                    conn.write_all(buf).await.0?;
                    bytes.1 += len;
                }
                return Ok(());
            }
            let cut = match self.mode {
                EchoMode::Raw => buf.len(),
                EchoMode::Line => line_cut(buf.filled(), buf.len() - n, buf.is_full()),
            };
            if cut > 0 {
                let (res, b) = conn.write_prefix(buf, cut).await;
                buf = b;
                res?;
                bytes.1 += cut as u64;
                buf.consume(cut);
                // The server is stopping: everything sent is echoed; end here.
                if buf.is_empty() && conn.draining() {
                    return Ok(());
                }
            }
            conn.yield_if_needed().await;
        }
    }
}

/// How many leading bytes of `filled` to write back in line mode, given that
/// the bytes from `new_from` on just arrived: everything up to the last `\n`,
/// or everything when the buffer is full (an over-long line goes in pieces).
pub fn line_cut(filled: &[u8], new_from: usize, full: bool) -> usize {
    match memchr::memrchr(b'\n', &filled[new_from..]) {
        Some(i) => new_from + i + 1,
        None if full => filled.len(),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::line_cut;

    #[test]
    fn cuts_after_the_last_newline_that_arrived() {
        assert_eq!(line_cut(b"foo\nbar\nba", 0, false), 8);
        assert_eq!(line_cut(b"foo", 0, false), 0);
        // Only new bytes are scanned; older ones had no newline.
        assert_eq!(line_cut(b"abc\n", 3, false), 4);
    }

    #[test]
    fn a_full_buffer_without_newline_goes_out_whole() {
        assert_eq!(line_cut(b"abcd", 2, true), 4);
    }
}
