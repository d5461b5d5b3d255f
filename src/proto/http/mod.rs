//! Static files over HTTP/1.1: `GET` and `HEAD` of the files beneath a
//! [`Root`], for curl, browsers, wrk and anything else that speaks HTTP.
//! This file is the server and its request loop; the rest of the folder:
//! - `head.rs` reads a request head ([`parse_head`]),
//! - `answer.rs` answers one request,
//! - [`Status`] (`status.rs`), [`Range`] (`range.rs`) and the response head
//!   writer [`HeadWriter`] (`response.rs`), public for any HTTP responder
//!   (the binary's metrics endpoint uses them too),
//! - `log.rs` the access log's line.
//!
//! One connection carries any number of requests (keep-alive, pipelining:
//! bytes after a request's head are the next request). Each answer has a
//! `Content-Length`, a `Content-Type` by extension, `Last-Modified` and a
//! strong `ETag`; `If-None-Match` / `If-Modified-Since` get 304, one
//! `Range: bytes=` gets 206 (or 416), a directory its `index.html` (no
//! listings). Bodies go out through [`Connection::send_file`], as the file
//! protocol's do.
//!
//! Nothing with a body is accepted (see [`parse_head`]); `%2e%2e` decodes to
//! `..`, which the root refuses like any escape (403). A refused request is
//! answered with its status and the connection closes; a 404 or 403 keeps
//! it open. This module never reads more than [`MAX_HEAD`] bytes of one head.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info};

use crate::fs::Root;
use crate::io::{Buf, Connection, Outcome};
use crate::proto::Protocol;
use crate::proto::request::{self, Framed};

mod answer;
mod head;
mod log;
mod range;
mod response;
mod status;

pub use crate::proto::DEFAULT_REQUEST_TIMEOUT;
pub use head::{Head, MAX_HEAD, Method, Request, parse_head};
pub use range::Range;
pub use response::{HeadWriter, Persist, Target};
pub use status::{ALLOW, Status};

use answer::Reply;

/// The buffer each answer's head is written into and sent from: a head is
/// a few hundred bytes, and so is a status's text body.
const OUT: usize = 2048;

/// The HTTP/1.1 static file server.
#[derive(Debug, Clone)]
pub struct HttpServer {
    root: Arc<Root>,
    request_timeout: Duration,
}

impl HttpServer {
    /// Serve the files beneath `root`.
    pub fn new(root: Root) -> HttpServer {
        HttpServer {
            root: Arc::new(root),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// How long a request head may take once its first byte arrived (408
    /// after that; default [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn request_timeout(mut self, limit: Duration) -> HttpServer {
        self.request_timeout = limit;
        self
    }
}

impl Protocol for HttpServer {
    async fn serve<C: Connection>(&self, conn: &mut C) -> io::Result<()> {
        let peer = conn.peer();
        let mut buf = Buf::with_capacity(MAX_HEAD);
        let mut out = Buf::with_capacity(OUT);
        loop {
            let (res, b) = request::read_until(conn, buf, self.request_timeout, parse_head).await;
            buf = b;
            let (req, len) = match res? {
                Framed::Done(Head::Request(req, len)) => (req, len),
                Framed::Done(Head::Refused(status, why)) => {
                    info!("http: {peer}: {status}: {why}");
                    conn.record(match status {
                        Status::UriTooLong | Status::HeaderFieldsTooLarge => Outcome::TooLong,
                        _ => Outcome::Invalid,
                    });
                    return refuse(conn, &mut out, &buf, status).await;
                }
                Framed::Closed => return Ok(()),
                Framed::Truncated => {
                    conn.record(Outcome::Incomplete);
                    debug!("http: {peer}: closed in the middle of a request head");
                    return Ok(());
                }
                Framed::TooSlow(kind) => {
                    info!(
                        "http: {peer}: 408: request head {}",
                        request::too_slow(kind, self.request_timeout)
                    );
                    conn.record(Outcome::Timeout);
                    return refuse(conn, &mut out, &buf, Status::RequestTimeout).await;
                }
            };
            // A drain's request is answered, then the connection closes.
            let persist = req.persist(conn.draining());
            // Timed only for the access log.
            let started = conn.access_log().map(|_| Instant::now());
            let mut reply = Reply {
                conn: &mut *conn,
                out: &mut out,
                persist,
            };
            let (note, answered) = answer::answer(&self.root, &mut reply, &req).await;
            log::answered(conn, &buf.filled()[..len], &req, note, started);
            buf.consume(len);
            answered?;
            if persist == Persist::Closing {
                return Ok(());
            }
            conn.yield_if_needed().await;
        }
    }
}

/// Answer a request refused before any file was looked at (its head is
/// what `buf` holds) with its status alone, log it, and close.
async fn refuse<C: Connection>(
    conn: &mut C,
    out: &mut Buf,
    buf: &Buf,
    status: Status,
) -> io::Result<()> {
    // Timed only for the access log.
    let started = conn.access_log().map(|_| Instant::now());
    let mut reply = Reply {
        conn: &mut *conn,
        out,
        persist: Persist::Closing,
    };
    let (note, sent) = reply.text(status, true).await;
    log::refused(conn, buf.filled(), note, started);
    sent
}
