//! File-request framing: a path, then a NUL byte.
//!
//! Pure parsing plus the loop that reads one request from a connection. A
//! request that has no NUL within [`MAX_REQUEST`] bytes is refused; this
//! module never reads more than that before deciding.

use std::io;
use std::time::{Duration, Instant};

use crate::io::{Buf, Connection};

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
    /// The request started but did not arrive whole in time (slowloris).
    TooSlow,
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
/// Once a request's first byte is in, the rest must follow within `limit`,
/// however slowly it is dripped; before that, only the idle timeout applies.
pub async fn read<C: Connection>(
    conn: &mut C,
    mut buf: Buf,
    limit: Duration,
) -> (io::Result<Request>, Buf) {
    let mut deadline = None;
    let outcome = loop {
        if let Some(req) = parse(buf.filled(), buf.is_full()) {
            break Ok(req);
        }
        if deadline.is_none() && !buf.is_empty() {
            let at = Instant::now() + limit;
            conn.set_read_deadline(Some(at));
            deadline = Some(at);
        }
        let (res, b) = conn.read(buf).await;
        buf = b;
        match res {
            Err(e) if e.kind() == io::ErrorKind::TimedOut && deadline.is_some() => {
                break Ok(Request::TooSlow);
            }
            Err(e) => break Err(e),
            Ok(0) if buf.is_empty() => break Ok(Request::Closed),
            Ok(0) => break Ok(Request::Truncated),
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
