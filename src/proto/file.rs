//! The article's second program: a path ending in NUL in, that file's bytes out.
//!
//! Plain mode is the article's: one request, the file, then close. A refused
//! request closes at once with nothing sent (the article's client hung there).
//! Framed mode (`--file-header`) is for programs: `OK <size>\n` and the bytes,
//! or `ERR <reason>\n`, and the connection stays open for the next request.
//! Every refusal is one log line: peer, path, reason; with an access log on,
//! every request is one line there too. Files are opened only
//! through [`Root`], so nothing outside the served directory is ever opened.

use std::io;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info};

use crate::access::Entry;
use crate::fs::{DisplayPath, Root};
use crate::io::{Buf, Connection, Outcome};
use crate::proto::request::{self, MAX_REQUEST, Request};
use crate::proto::{Protocol, window};

/// The file protocol, serving files beneath one root.
#[derive(Debug, Clone)]
pub struct FileServer {
    root: Arc<Root>,
    framed: bool,
    request_timeout: Duration,
}

pub use crate::proto::DEFAULT_REQUEST_TIMEOUT;

impl FileServer {
    /// Serve files beneath `root`, the article's way (one file, then close).
    pub fn new(root: Root) -> FileServer {
        FileServer {
            root: Arc::new(root),
            framed: false,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Once a request's first byte arrives, the whole request must arrive
    /// within `limit` (default [`DEFAULT_REQUEST_TIMEOUT`]): a client
    /// dripping a byte at a time is cut off.
    pub fn request_timeout(mut self, limit: Duration) -> FileServer {
        self.request_timeout = limit;
        self
    }

    /// Framed mode: a status line before each file, and keep-alive.
    pub fn framed(mut self, framed: bool) -> FileServer {
        self.framed = framed;
        self
    }

    /// The directory served.
    pub fn root(&self) -> &Root {
        &self.root
    }
}

impl Protocol for FileServer {
    async fn serve<C: Connection>(&self, conn: &mut C) -> io::Result<()> {
        let peer = conn.peer();
        let mut buf = Buf::with_capacity(MAX_REQUEST);
        // Framed mode's status lines; a reason is short, so 256 bytes hold any.
        let mut status = Buf::with_capacity(if self.framed { 256 } else { 0 });
        loop {
            let (res, b) = request::read(conn, buf, self.request_timeout).await;
            buf = b;
            let started = conn.access_log().map(|_| Instant::now());
            let len = match res? {
                Request::Path(len) => len,
                Request::Closed => return Ok(()),
                Request::Truncated => {
                    done(conn, buf.filled(), Outcome::Incomplete, 0, started);
                    info!(
                        "file: {peer}: refused: connection closed before the NUL ending the path"
                    );
                    return Ok(());
                }
                Request::TooSlow(kind) => {
                    done(conn, buf.filled(), Outcome::Timeout, 0, started);
                    info!(
                        "file: {peer}: refused: request {}",
                        request::too_slow(kind, self.request_timeout)
                    );
                    self.send_status(conn, &mut status, format_args!("ERR request timeout"))
                        .await?;
                    return Ok(());
                }
                Request::TooLong => {
                    done(conn, buf.filled(), Outcome::TooLong, 0, started);
                    info!("file: {peer}: refused: no NUL within {MAX_REQUEST} bytes");
                    self.send_status(conn, &mut status, format_args!("ERR request too long"))
                        .await?;
                    return Ok(());
                }
            };
            let path = &buf.filled()[..len];
            debug!("file: {peer} requested {}", DisplayPath(path));
            let file = match conn.open_file(&self.root, path).await {
                Ok(file) => file,
                Err(reason) => {
                    done(conn, path, Outcome::from(&reason), 0, started);
                    info!(
                        "file: {peer} requested {}: refused: {reason}",
                        DisplayPath(path)
                    );
                    if !self.framed {
                        return Ok(());
                    }
                    self.send_status(conn, &mut status, format_args!("ERR {reason}"))
                        .await?;
                    buf.consume(len + 1);
                    if buf.is_empty() && conn.draining() {
                        return Ok(()); // stopping: nothing more was asked
                    }
                    continue;
                }
            };
            let size = file.size();
            let sent = if self.framed {
                // The status line and a small file leave in one send.
                let mut b = std::mem::replace(&mut status, Buf::with_capacity(0));
                b.clear();
                b.extend_from_slice(format!("OK {size}\n").as_bytes());
                let (res, b) = conn.send_file_after(b, file).await;
                status = b;
                res
            } else {
                conn.send_file(file).await
            };
            if let Err(cut) = window::whole(sent, size, path) {
                done(conn, path, Outcome::Truncated, cut.sent, started);
                return Err(cut.error);
            }
            done(conn, path, Outcome::Served, size, started);
            if !self.framed {
                return Ok(());
            }
            buf.consume(len + 1);
            if buf.is_empty() && conn.draining() {
                return Ok(()); // stopping: nothing more was asked
            }
            conn.yield_if_needed().await;
        }
    }
}

/// Count what became of one request, and log it when an access log is on
/// (`started`: when its handling began; `None` when no log is).
fn done<C: Connection>(
    conn: &mut C,
    path: &[u8],
    outcome: Outcome,
    bytes: u64,
    started: Option<Instant>,
) {
    conn.record(outcome);
    if let (Some(log), Some(started)) = (conn.access_log(), started) {
        // A refused over-long request: the start of it is enough.
        let path = &path[..path.len().min(256)];
        log.log(&Entry::File {
            client: conn.peer(),
            path,
            outcome: outcome.label(),
            bytes,
            duration: started.elapsed(),
        });
    }
}

impl FileServer {
    /// In framed mode, send one status line; in plain mode, nothing.
    async fn send_status<C: Connection>(
        &self,
        conn: &mut C,
        status: &mut Buf,
        line: std::fmt::Arguments<'_>,
    ) -> io::Result<()> {
        if !self.framed {
            return Ok(());
        }
        let mut text = Vec::with_capacity(64);
        // Writing into a Vec cannot fail.
        let _ = writeln!(text, "{line}");
        let mut b = std::mem::replace(status, Buf::with_capacity(0));
        b.clear();
        b.extend_from_slice(&text);
        let (res, b) = conn.write_all(b).await;
        *status = b;
        res
    }
}
