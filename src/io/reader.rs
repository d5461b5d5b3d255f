//! [`Reader`]: lines, delimited records and exact counts off a [`Connection`],
//! in one buffer of fixed capacity, on the one framing loop.

use std::io;
use std::time::Duration;

use super::{Buf, Connection, TimeoutKind};
use crate::proto::request::Framed;

/// Buffered reading on a [`Connection`]: lines, delimited records and
/// exact counts, so that a handler reads like the article's
/// (`x = reader.readline()`), with no buffer to thread through by hand.
///
/// A `Reader` owns one [`Buf`] of the capacity it is made with, and that is
/// all the memory it ever holds: a line longer than the capacity comes in
/// pieces ([`Reader::read_line`]) or is refused ([`Reader::read_record`]),
/// never held whole. Bytes that arrive after the item returned stay
/// buffered for the next call. What a call returns borrows the reader
/// until the next call, not the connection, so it can be written straight
/// back with [`Connection::write_bytes`]:
///
/// ```no_run
/// # use ringlet::{Connection, Reader};
/// # async fn echo<C: Connection>(conn: &mut C) -> std::io::Result<()> {
/// let mut reader = Reader::with_capacity(4096);
/// while let Some(line) = reader.read_line(conn).await? {
///     conn.write_bytes(line).await?;
/// }
/// # Ok(()) }
/// ```
///
/// Every method is built on the one framing loop,
/// [`proto::request::read_framed`](crate::proto::request::read_framed): the
/// idle timeout bounds each read, and [`Reader::request_timeout`] bounds a
/// whole item once its first byte is in. A future dropped before it is
/// done (its connection cut) loses the bytes it had buffered.
#[derive(Debug)]
pub struct Reader {
    buf: Buf,
    capacity: usize,
    /// Where the bytes not yet returned begin in `buf`.
    start: usize,
    /// The length of the item last returned (at `start`), dropped on the
    /// next call.
    taken: usize,
    /// The client closed its side: nothing more will come.
    eof: bool,
    request_timeout: Option<Duration>,
}

/// Why [`Reader::read_record`] returned no record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// No delimiter within the reader's capacity: the record is longer
    /// than the protocol allows. The bytes stay in [`Reader::buffered`]
    /// (for a log line), and calling again returns the same error: a
    /// protocol ends the connection here.
    #[error("no '{}' within {limit} bytes", .delim.escape_ascii())]
    TooLong {
        /// The delimiter looked for.
        delim: u8,
        /// The reader's capacity, the most a record may take.
        limit: usize,
    },
    /// The client closed in the middle of a record, after this many bytes
    /// of it. They stay in [`Reader::buffered`].
    #[error("the client closed after {0} bytes, before the record's end")]
    Truncated(usize),
    /// The record began but did not arrive whole in time: by
    /// [`Reader::request_timeout`] (`Deadline`) or the idle timeout.
    #[error("the request did not arrive in time: {0}")]
    TooSlow(TimeoutKind),
    /// The connection failed (or stayed idle before a record began).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// For `?` in a protocol's `serve`: `TooLong` is `InvalidData`, `Truncated`
/// `UnexpectedEof`, `TooSlow` `TimedOut` with its [`TimeoutKind`] (so the
/// server ends an idle connection with a FIN, as for a read), and `Io` the
/// error itself.
impl From<ReadError> for io::Error {
    fn from(e: ReadError) -> io::Error {
        match e {
            ReadError::Io(e) => e,
            ReadError::TooSlow(kind) => kind.into(),
            e @ ReadError::TooLong { .. } => io::Error::new(io::ErrorKind::InvalidData, e),
            e @ ReadError::Truncated(_) => io::Error::new(io::ErrorKind::UnexpectedEof, e),
        }
    }
}

impl Reader {
    /// A reader holding at most `capacity` bytes: the longest line it
    /// returns whole, the longest record it accepts. No memory is taken
    /// until bytes arrive.
    ///
    /// # Panics
    /// If `capacity` is zero.
    pub fn with_capacity(capacity: usize) -> Reader {
        assert!(capacity > 0, "a reader must hold at least one byte");
        Reader {
            buf: Buf::with_capacity(capacity),
            capacity,
            start: 0,
            taken: 0,
            eof: false,
            request_timeout: None,
        }
    }

    /// Once the first byte of an item (a line, a record, an exact count)
    /// is in, the whole of it must arrive within `limit`, however slowly
    /// it is dripped; without this, only the idle timeout bounds each read.
    pub fn request_timeout(mut self, limit: Duration) -> Reader {
        self.request_timeout = Some(limit);
        self
    }

    /// The most bytes this reader holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The bytes received and not returned yet (after a [`ReadError`], the
    /// ones it is about).
    pub fn buffered(&self) -> &[u8] {
        &self.buf.filled()[self.start + self.taken..]
    }

    /// Python's `readline`: the next line with its `\n`; the last one
    /// without, if the client closed after it; `None` once the client has
    /// closed and every byte was returned. A line longer than the capacity
    /// comes in pieces of exactly the capacity, then its rest: never an
    /// error, never a reset, and the memory stays bounded.
    pub async fn read_line<C: Connection>(&mut self, conn: &mut C) -> io::Result<Option<&[u8]>> {
        self.read_until(conn, b'\n').await
    }

    /// As [`Reader::read_line`], with `delim` ending a line.
    pub async fn read_until<C: Connection>(
        &mut self,
        conn: &mut C,
        delim: u8,
    ) -> io::Result<Option<&[u8]>> {
        let mut scanned = 0;
        let framed = self
            .fill(conn, |bytes, full| {
                let found = memchr::memchr(delim, &bytes[scanned..]).map(|i| scanned + i + 1);
                scanned = bytes.len();
                found.or(full.then_some(bytes.len()))
            })
            .await;
        let len = match framed? {
            Framed::Done(len) => len,
            Framed::Truncated => self.buf.len() - self.start,
            Framed::Closed => return Ok(None),
            Framed::TooSlow(kind) => return Err(kind.into()),
        };
        Ok(Some(self.take(len)))
    }

    /// A record ending in `delim`, returned without it: the strict form,
    /// for a protocol that bounds its requests (the file protocol's path,
    /// up to a NUL). `Ok(None)`: the client closed before a byte of it (a
    /// clean end). A record longer than the capacity is
    /// [`ReadError::TooLong`]; one the client closed in the middle of,
    /// [`ReadError::Truncated`]; one too slow, [`ReadError::TooSlow`].
    pub async fn read_record<C: Connection>(
        &mut self,
        conn: &mut C,
        delim: u8,
    ) -> Result<Option<&[u8]>, ReadError> {
        let mut scanned = 0;
        let framed = self
            .fill(conn, |bytes, full| {
                let found = memchr::memchr(delim, &bytes[scanned..]).map(|i| Some(scanned + i));
                scanned = bytes.len();
                found.or(full.then_some(None))
            })
            .await?;
        match framed {
            Framed::Done(Some(len)) => Ok(Some(&self.take(len + 1)[..len])),
            Framed::Done(None) => Err(ReadError::TooLong {
                delim,
                limit: self.capacity,
            }),
            Framed::Truncated => Err(ReadError::Truncated(self.buf.len() - self.start)),
            Framed::Closed => Ok(None),
            Framed::TooSlow(kind) => Err(ReadError::TooSlow(kind)),
        }
    }

    /// Exactly `n` bytes (a length-prefixed body, a fixed header). Fails
    /// with `UnexpectedEof` if the client closes first (the bytes that came
    /// stay in [`Reader::buffered`]), and with `InvalidInput` if `n` is
    /// more than the capacity.
    pub async fn read_exact<C: Connection>(&mut self, conn: &mut C, n: usize) -> io::Result<&[u8]> {
        if n > self.capacity {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("read_exact({n}) on a reader of {} bytes", self.capacity),
            ));
        }
        let framed = self
            .fill(conn, |bytes, _| (bytes.len() >= n).then_some(()))
            .await?;
        match framed {
            Framed::Done(()) => Ok(self.take(n)),
            Framed::Closed | Framed::Truncated => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the client closed after {} of {n} bytes",
                    self.buf.len() - self.start
                ),
            )),
            Framed::TooSlow(kind) => Err(kind.into()),
        }
    }

    /// Drop the item last returned, then read until `parse` (given the
    /// bytes not returned yet, and whether the buffer is full) decides.
    async fn fill<C: Connection, R>(
        &mut self,
        conn: &mut C,
        mut parse: impl FnMut(&[u8], bool) -> Option<R>,
    ) -> io::Result<Framed<R>> {
        if self.buf.capacity() != self.capacity {
            // A read was dropped halfway, with the buffer it held.
            self.buf = Buf::with_capacity(self.capacity);
            (self.start, self.taken) = (0, 0);
        }
        self.start += self.taken;
        self.taken = 0;
        let rest = &self.buf.filled()[self.start..];
        if let Some(done) = parse(rest, self.start == 0 && self.buf.is_full()) {
            return Ok(Framed::Done(done));
        }
        // Make room: the rest moves to the front, once per read.
        self.buf.consume(self.start);
        self.start = 0;
        if self.eof {
            return Ok(if self.buf.is_empty() {
                Framed::Closed
            } else {
                Framed::Truncated
            });
        }
        let buf = std::mem::replace(&mut self.buf, Buf::with_capacity(0));
        let (res, buf) =
            crate::proto::request::read_framed(conn, buf, self.request_timeout, parse).await;
        self.buf = buf;
        if let Ok(Framed::Closed | Framed::Truncated) = res {
            self.eof = true;
        }
        res
    }

    /// Return the first `len` bytes not returned yet, and drop them on the
    /// next call.
    fn take(&mut self, len: usize) -> &[u8] {
        self.taken = len;
        &self.buf.filled()[self.start..self.start + len]
    }
}
