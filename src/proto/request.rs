//! Reading one request off a connection, whatever its framing, within a
//! time limit ([`read_until`]; [`read_framed`] with the limit optional, the
//! one loop under [`Reader`](crate::Reader)); and the file protocol's
//! framing: a path, then a NUL byte.
//!
//! A file request that has no NUL within [`MAX_REQUEST`] bytes is refused;
//! this module never reads more than the buffer holds before deciding.

use std::io;
use std::time::{Duration, Instant};

use crate::io::{Buf, Connection, TimeoutKind, timeout_kind};

/// The most bytes a request may take, its NUL included.
pub const MAX_REQUEST: usize = 4096;

/// What came in on a connection where a request was expected.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// A path of this many bytes, followed by its NUL, at the front of the buffer.
    Path(usize),
    /// The client closed before sending a byte: a clean end.
    Closed,
    /// The client closed in the middle of a request (no NUL came).
    Truncated,
    /// The buffer filled up without a NUL.
    TooLong,
    /// The request started but did not arrive whole in time (slowloris),
    /// by this limit (see [`too_slow`]).
    TooSlow(TimeoutKind),
}

/// Look for a complete request in `filled`. `None`: read more.
pub fn parse(filled: &[u8], full: bool) -> Option<Request> {
    match memchr::memchr(0, filled) {
        Some(i) => Some(Request::Path(i)),
        None if full => Some(Request::TooLong),
        None => None,
    }
}

/// Read until `buf` holds one whole request (or the client stops). Bytes
/// after the NUL stay in `buf`: they are the start of the next request.
///
/// Once the first byte of a request has arrived, the whole of it must arrive
/// within `limit`, however slowly it is dripped (the read deadline).
pub async fn read<C: Connection>(
    conn: &mut C,
    buf: Buf,
    limit: Duration,
) -> (io::Result<Request>, Buf) {
    let (res, buf) = read_until(conn, buf, limit, parse).await;
    let req = res.map(|r| match r {
        Framed::Done(req) => req,
        Framed::Closed => Request::Closed,
        Framed::Truncated => Request::Truncated,
        Framed::TooSlow(kind) => Request::TooSlow(kind),
    });
    (req, buf)
}

/// How reading a request of any framing ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed<R> {
    /// `parse` decided: a whole request, or a refusal.
    Done(R),
    /// The client closed before sending a byte: a clean end.
    Closed,
    /// The client closed in the middle of a request.
    Truncated,
    /// The request started but did not arrive whole: the request limit
    /// passed (`Deadline`), or nothing more came for the idle timeout.
    TooSlow(TimeoutKind),
}

/// Why a request that had begun was given up on, for its log line.
pub fn too_slow(kind: TimeoutKind, request_timeout: Duration) -> String {
    match kind {
        TimeoutKind::Idle(d) => format!("nothing more arrived for {d:?} (idle timeout)"),
        _ => format!("not complete within {request_timeout:?} (request timeout)"),
    }
}

/// Read into `buf` until `parse(filled, full)` decides (any framing: the
/// file protocol's NUL, an HTTP head). `parse` returns `None` to read
/// more; it is told when the buffer is full and must decide then. Once a
/// request's first byte is in, the rest must come within `limit`.
pub async fn read_until<C: Connection, R>(
    conn: &mut C,
    buf: Buf,
    limit: Duration,
    parse: impl FnMut(&[u8], bool) -> Option<R>,
) -> (io::Result<Framed<R>>, Buf) {
    read_framed(conn, buf, Some(limit), parse).await
}

/// As [`read_until`], with the request limit optional: `None` bounds only
/// each read (by the server's idle timeout), not the whole request. Either
/// way, a read that times out once the request has begun ends as
/// [`Framed::TooSlow`]; before its first byte, as the read's error. This
/// is the one framing loop: [`Reader`](crate::Reader)'s lines, records and
/// exact reads are built on it.
pub async fn read_framed<C: Connection, R>(
    conn: &mut C,
    mut buf: Buf,
    limit: Option<Duration>,
    mut parse: impl FnMut(&[u8], bool) -> Option<R>,
) -> (io::Result<Framed<R>>, Buf) {
    let mut deadline = None;
    let outcome = loop {
        if let Some(req) = parse(buf.filled(), buf.is_full()) {
            break Ok(Framed::Done(req));
        }
        // Reads only append, so once begun a request stays begun.
        let begun = !buf.is_empty();
        if let (None, Some(limit), true) = (deadline, limit, begun) {
            let at = Instant::now() + limit;
            conn.set_read_deadline(Some(at));
            deadline = Some(at);
        }
        let (res, b) = conn.read(buf).await;
        buf = b;
        match res {
            Err(e) if e.kind() == io::ErrorKind::TimedOut && begun => {
                break Ok(Framed::TooSlow(
                    timeout_kind(&e).unwrap_or(TimeoutKind::Deadline),
                ));
            }
            Err(e) => break Err(e),
            Ok(0) if buf.is_empty() => break Ok(Framed::Closed),
            Ok(0) => break Ok(Framed::Truncated),
            Ok(_) => {}
        }
    };
    if deadline.is_some() {
        conn.set_read_deadline(None);
    }
    (outcome, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_nul() {
        assert_eq!(parse(b"/tmp/y\0next\0", false), Some(Request::Path(6)));
        assert_eq!(parse(b"/tmp/y", false), None);
        assert_eq!(parse(b"\0", false), Some(Request::Path(0)));
    }

    #[test]
    fn a_full_buffer_without_nul_is_too_long() {
        assert_eq!(parse(&[b'a'; 8], true), Some(Request::TooLong));
    }
}
