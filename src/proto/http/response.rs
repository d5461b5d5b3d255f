//! Writing a response head: the status line and header lines, written once,
//! straight into where they are sent from (a [`Buf`] on the file path, a
//! `Vec<u8>` for the metrics endpoint). No I/O here, and no decision about
//! what an answer says.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::SystemTime;

use crate::io::Buf;
use crate::proto::http::status::Status;

/// Where a response head is written.
pub trait Target {
    /// Append `bytes`; `false` when they did not all fit.
    fn put(&mut self, bytes: &[u8]) -> bool;
}

impl Target for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) -> bool {
        self.extend_from_slice(bytes);
        true
    }
}

/// A `Buf` has a fixed capacity: a head that does not fit is refused (see
/// [`HeadWriter::end`]), never cut silently.
impl Target for Buf {
    fn put(&mut self, bytes: &[u8]) -> bool {
        self.extend_from_slice(bytes) == bytes.len()
    }
}

/// What an answer's head says of its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// Kept open, HTTP/1.1's default: nothing to say.
    Kept,
    /// Kept open for an HTTP/1.0 client that asked (`Connection:
    /// keep-alive`), which it needs to hear back.
    KeptHttp10,
    /// Closed after this answer: `Connection: close`.
    Closing,
}

/// Writes one response head into a [`Target`]: [`HeadWriter::new`] the
/// status line, [`HeadWriter::field`] each header line, [`HeadWriter::end`]
/// the lines every head of that status and persistence needs (`Allow`,
/// `Connection`) and the blank line.
///
/// ```
/// use ringlet::proto::http::{HeadWriter, Persist, Status};
/// let mut out = Vec::new();
/// let whole = HeadWriter::new(&mut out, Status::MethodNotAllowed)
///     .field("Content-Length", 0)
///     .end(Persist::Closing);
/// assert!(whole);
/// assert_eq!(
///     out,
///     b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\
///       Allow: GET, HEAD\r\nConnection: close\r\n\r\n"
/// );
/// ```
#[must_use = "a head is whole only once `end` wrote its blank line"]
pub struct HeadWriter<'a, T: Target + ?Sized> {
    out: &'a mut T,
    status: Status,
    fits: bool,
}

impl<'a, T: Target + ?Sized> HeadWriter<'a, T> {
    /// Start a head of `status` at the end of `out`: its status line.
    pub fn new(out: &'a mut T, status: Status) -> Self {
        let mut w = HeadWriter {
            out,
            status,
            fits: true,
        };
        w.put(b"HTTP/1.1 ");
        w.put(status.text_body().trim_end().as_bytes());
        w.put(b"\r\n");
        w
    }

    /// A header line, `name: value`.
    pub fn field(mut self, name: &str, value: impl fmt::Display) -> Self {
        self.put(name.as_bytes());
        self.put(b": ");
        // Writing into a Target cannot fail: what does not fit is noted.
        let _ = write!(Lines(&mut self), "{value}");
        self.put(b"\r\n");
        self
    }

    /// `Date:` now, formatted once a second per thread.
    pub fn date(mut self) -> Self {
        self.put(b"Date: ");
        DATE.with_borrow_mut(|date| {
            let text = date.now();
            self.fits &= self.out.put(text.as_bytes());
        });
        self.put(b"\r\n");
        self
    }

    /// End the head: the status's `Allow` line (405), the `Connection` line
    /// `persist` needs, and the blank line. `false` when the target could
    /// not hold the whole head (a `Buf` too small): it must not be sent.
    pub fn end(mut self, persist: Persist) -> bool {
        if let Some(allow) = self.status.allow() {
            self = self.field("Allow", allow);
        }
        match persist {
            Persist::Kept => {}
            Persist::KeptHttp10 => self.put(b"Connection: keep-alive\r\n"),
            Persist::Closing => self.put(b"Connection: close\r\n"),
        }
        self.put(b"\r\n");
        self.fits
    }

    fn put(&mut self, bytes: &[u8]) {
        self.fits &= self.out.put(bytes);
    }
}

/// `fmt::Write` into a head, for a field's value.
struct Lines<'w, 'a, T: Target + ?Sized>(&'w mut HeadWriter<'a, T>);

impl<T: Target + ?Sized> fmt::Write for Lines<'_, '_, T> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.put(s.as_bytes());
        Ok(())
    }
}

/// The `Date` of a response, formatted again only when the second changes.
struct Date {
    at: u64,
    text: String,
}

impl Date {
    fn now(&mut self) -> &str {
        let now = SystemTime::now();
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.at != secs || self.text.is_empty() {
            self.at = secs;
            self.text = httpdate::fmt_http_date(now);
        }
        &self.text
    }
}

thread_local! {
    static DATE: RefCell<Date> = const {
        RefCell::new(Date {
            at: 0,
            text: String::new(),
        })
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_in_a_buf_is_the_same_as_in_a_vec() {
        let write = |out: &mut dyn Target| {
            HeadWriter::new(out, Status::PartialContent)
                .field("Content-Length", 10u64)
                .field("Content-Range", format_args!("bytes {}-{}/{}", 0, 9, 100))
                .end(Persist::KeptHttp10)
        };
        let mut v = Vec::new();
        assert!(write(&mut v));
        let mut b = Buf::with_capacity(256);
        assert!(write(&mut b));
        assert_eq!(b.filled(), v.as_slice());
        assert_eq!(
            v,
            b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n\
              Content-Range: bytes 0-9/100\r\nConnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn a_head_too_long_for_its_buf_says_so() {
        let mut b = Buf::with_capacity(20);
        assert!(
            !HeadWriter::new(&mut b, Status::Ok)
                .date()
                .end(Persist::Kept)
        );
    }

    #[test]
    fn the_date_is_an_http_date() {
        let mut v = Vec::new();
        assert!(
            HeadWriter::new(&mut v, Status::Ok)
                .date()
                .end(Persist::Kept)
        );
        let text = String::from_utf8(v).unwrap();
        let date = text.lines().nth(1).unwrap().strip_prefix("Date: ").unwrap();
        assert!(httpdate::parse_http_date(date).is_ok(), "{date:?}");
    }
}
