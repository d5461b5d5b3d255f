//! The backend-neutral interface that protocols are written against.
//!
//! A protocol sees a [`Connection`]: read into a buffer, write a buffer, open
//! and send a file, let the neighbours run. Every operation takes its buffer
//! **by value** and hands it back with the result, so a completion-based
//! backend (io_uring) can own the memory while the kernel writes into it.
//! Nothing here ever lends the kernel a `&mut [u8]` that a dropped future
//! could free.
//!
//! This module never touches a socket itself; the backends live in `uring/`
//! (the default) and `epoll/`. The buffer is [`Buf`], in `buf.rs`; files and
//! root confinement are in `fs.rs`.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use crate::buf::Buf;
use crate::fs::{OpenError, RegularFile, Root};
use crate::proto::request::Framed;

/// One accepted client connection, as a protocol sees it.
///
/// Implemented by each backend. Futures are not `Send`: a connection lives and
/// dies on the core that accepted it. The server owns it and closes it once
/// the protocol is done (see [`Protocol`](crate::Protocol)).
///
/// # Implementing it yourself: test doubles only
///
/// Not sealed, on purpose: the server never takes a connection of yours
/// (it picks the backend and makes its own), so the one reason to implement
/// this trait outside ringlet is to drive a [`Protocol`](crate::Protocol)
/// without a socket, e.g. a property test that feeds a request split at
/// every possible point (ringlet's `tests/props.rs` does exactly that). A
/// real socket cannot choose where its reads split; a test double can.
///
/// What a double must do: `read` appends to the buffer's spare room and
/// returns how much (`0` at the end); `write_prefix` takes the first `len`
/// bytes; the rest may refuse (`send_file` with `Unsupported`, say) or do
/// nothing (`set_read_deadline`, `yield_if_needed`).
///
/// The promise that keeps such doubles building: a method added to this
/// trait in a later release comes with a default body. Timeouts, linger,
/// counting and the PROXY header are the server's, not a connection's, so
/// a double sees none of them.
#[allow(async_fn_in_trait)]
pub trait Connection {
    /// The client's address, for log lines.
    fn peer(&self) -> SocketAddr;

    /// Receive into `buf`'s spare room, appending. `Ok(0)` means the client
    /// closed its side. A full buffer is an `InvalidInput` error, never EOF.
    ///
    /// Fails with `TimedOut` when nothing arrives within the server's idle
    /// timeout, or when the read deadline (see
    /// [`Connection::set_read_deadline`]) passes first.
    fn read(&mut self, buf: Buf) -> impl Future<Output = (io::Result<usize>, Buf)>;

    /// Make reads fail with `TimedOut` once `deadline` passes (`None`: only
    /// the idle timeout applies). Protocols use it to bound how long a whole
    /// request may take to arrive, however it is dripped.
    fn set_read_deadline(&mut self, deadline: Option<Instant>);

    /// Send the first `len` filled bytes of `buf`, all of them, then hand the
    /// buffer back untouched. Fails with `TimedOut` when the client accepts
    /// no byte for the server's write timeout (it stopped reading).
    fn write_prefix(&mut self, buf: Buf, len: usize)
    -> impl Future<Output = (io::Result<()>, Buf)>;

    /// Send every filled byte of `buf`.
    fn write_all(&mut self, buf: Buf) -> impl Future<Output = (io::Result<()>, Buf)> {
        let len = buf.len();
        self.write_prefix(buf, len)
    }

    /// Send all of `data` (a line a [`Reader`] returned, a formatted
    /// answer): copied into buffers of at most 64 KiB, one at a time, so
    /// the memory it takes is bounded however long `data` is. Where the
    /// bytes are already in a [`Buf`], [`Connection::write_all`] sends
    /// them without the copy.
    fn write_bytes(&mut self, data: &[u8]) -> impl Future<Output = io::Result<()>> {
        async move {
            for piece in data.chunks(WRITE_PIECE) {
                // A handful of sizes (4 KiB to 64 KiB), so that the
                // buffers come back from the thread's pool.
                let mut buf = Buf::with_capacity(piece.len().next_power_of_two().max(4096));
                buf.extend_from_slice(piece);
                self.write_all(buf).await.0?;
            }
            Ok(())
        }
    }

    /// Open the file `request` names beneath `root` (see [`Root::open_file`]).
    /// A backend with its own ring opens through it, so that a path lookup
    /// that must go to the disk does not stall the core.
    fn open_file(
        &mut self,
        root: &Root,
        request: &[u8],
    ) -> impl Future<Output = Result<RegularFile, OpenError>> {
        async move { root.open_file(request) }
    }

    /// Stream `file`: [`RegularFile::size`] bytes from [`RegularFile::start`]
    /// (the whole file as it was when opened, unless narrowed to a range).
    ///
    /// Returns the bytes sent: fewer than [`RegularFile::size`] means the file
    /// shrank while being sent (nothing past its real end is ever sent). The
    /// backend picks its best way (splice through the ring, read and send,
    /// sendfile) and keeps the memory it uses bounded whatever the size.
    fn send_file(&mut self, file: RegularFile) -> impl Future<Output = io::Result<u64>>;

    /// Send the filled bytes of `head` (a status line, HTTP headers), then
    /// `file` as [`Connection::send_file`] does, as one stream: a backend
    /// may carry a small file in the same send as the head. Returns the
    /// file bytes sent (as `send_file` does), and `head` back for reuse.
    fn send_file_after(
        &mut self,
        head: Buf,
        file: RegularFile,
    ) -> impl Future<Output = (io::Result<u64>, Buf)> {
        async move {
            let (res, head) = self.write_all(head).await;
            if let Err(e) = res {
                return (Err(e), head);
            }
            (self.send_file(file).await, head)
        }
    }

    /// Give the other connections on this core their turn if this one has
    /// had its share. Protocols call it once per message so that a client
    /// that always has data cannot starve its neighbours.
    fn yield_if_needed(&mut self) -> impl Future<Output = ()>;

    /// Whether the server is draining (it was asked to stop): a protocol
    /// that keeps connections open between requests should answer the one
    /// in hand and then end (HTTP says `Connection: close`). While draining,
    /// a [`Connection::read`] into an empty buffer, on a connection that has
    /// already sent something, returns `Ok(0)` at once when nothing has
    /// arrived: it was idle between requests, and the server closes it.
    fn draining(&self) -> bool {
        false
    }

    /// The server's access log, when one is on (`--access-log`): a
    /// protocol logs each request (or session) it served there. Logging
    /// never waits on the disk.
    fn access_log(&self) -> Option<&crate::access::AccessLog> {
        None
    }

    /// Count what became of one request in the server's figures (the
    /// metrics endpoint shows them by service and outcome). Costs one
    /// single-writer counter; a connection outside a server ignores it.
    fn record(&mut self, outcome: Outcome) {
        let _ = outcome;
    }
}

/// What became of one request, for the server's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Answered in full.
    Served,
    /// Nothing by that name.
    NotFound,
    /// The path climbed out of the root, or through a magic link.
    Escape,
    /// A directory, device, FIFO or socket.
    NotRegular,
    /// The server may not read it.
    Denied,
    /// Any other refused request (empty or invalid path, the kernel's error).
    Invalid,
    /// Longer than the protocol allows.
    TooLong,
    /// Not complete within the protocol's request timeout.
    Timeout,
    /// The client closed before its request was complete.
    Incomplete,
    /// The answer began but could not be completed (the file shrank, a
    /// write failed): the client got a reset.
    Truncated,
}

impl Outcome {
    /// Every outcome, in the order of [`Outcome::index`].
    pub const ALL: [Outcome; 10] = [
        Outcome::Served,
        Outcome::NotFound,
        Outcome::Escape,
        Outcome::NotRegular,
        Outcome::Denied,
        Outcome::Invalid,
        Outcome::TooLong,
        Outcome::Timeout,
        Outcome::Incomplete,
        Outcome::Truncated,
    ];

    /// Its position in [`Outcome::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// A metric label: `served`, `not_found`, `escape`…
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Served => "served",
            Outcome::NotFound => "not_found",
            Outcome::Escape => "escape",
            Outcome::NotRegular => "not_regular",
            Outcome::Denied => "denied",
            Outcome::Invalid => "invalid",
            Outcome::TooLong => "too_long",
            Outcome::Timeout => "timeout",
            Outcome::Incomplete => "incomplete",
            Outcome::Truncated => "truncated",
        }
    }
}

impl From<&OpenError> for Outcome {
    fn from(e: &OpenError) -> Outcome {
        match e {
            OpenError::NotFound => Outcome::NotFound,
            OpenError::Escapes | OpenError::Link => Outcome::Escape,
            OpenError::NotRegular(_) => Outcome::NotRegular,
            OpenError::PermissionDenied => Outcome::Denied,
            OpenError::Empty | OpenError::Invalid(_) | OpenError::Raced | OpenError::Io(_) => {
                Outcome::Invalid
            }
        }
    }
}

/// Per-connection time limits, set by the server for every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A read that waits this long for a byte fails: the connection is idle.
    pub idle: Duration,
    /// A write that cannot move a byte for this long fails: the client
    /// stopped reading.
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            idle: Duration::from_secs(60),
            write: Duration::from_secs(30),
        }
    }
}

/// The lingering close: after a protocol is done with a connection, the
/// server half-closes it (the client gets a FIN after the whole answer) and
/// reads and discards what the client still sends, until it closes, for at
/// most `time` and `bytes`; only then does it close the socket. Closing with
/// unread input would make the kernel answer with a reset and throw away the
/// end of the answer still queued for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linger {
    /// Longest the server waits for the client to close.
    pub time: Duration,
    /// Most bytes it reads and discards meanwhile.
    pub bytes: u64,
}

impl Default for Linger {
    fn default() -> Linger {
        Linger {
            time: Duration::from_secs(2),
            bytes: 64 * 1024,
        }
    }
}

/// Which time limit ended an operation. Carried inside the `TimedOut`
/// errors that [`Connection`] operations return; see [`timeout_kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// Nothing arrived for the idle timeout.
    Idle(Duration),
    /// The read deadline a protocol set passed (a request arriving too slowly).
    Deadline,
    /// The client accepted no byte for the write timeout.
    Write(Duration),
}

impl TimeoutKind {
    /// Every kind's metric label, in the order of [`TimeoutKind::index`].
    pub const LABELS: [&'static str; 3] = ["idle", "request", "write"];

    /// Its position in [`TimeoutKind::LABELS`].
    pub fn index(self) -> usize {
        match self {
            TimeoutKind::Idle(_) => 0,
            TimeoutKind::Deadline => 1,
            TimeoutKind::Write(_) => 2,
        }
    }
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeoutKind::Idle(d) => write!(f, "idle: nothing received for {d:?}"),
            TimeoutKind::Deadline => write!(f, "read deadline passed"),
            TimeoutKind::Write(d) => write!(f, "the client read nothing for {d:?} (write timeout)"),
        }
    }
}

impl std::error::Error for TimeoutKind {}

impl From<TimeoutKind> for io::Error {
    fn from(kind: TimeoutKind) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, kind)
    }
}

/// Which limit a `TimedOut` error from a [`Connection`] stands for, if any.
pub fn timeout_kind(e: &io::Error) -> Option<TimeoutKind> {
    e.get_ref()?.downcast_ref::<TimeoutKind>().copied()
}

/// How long a read may wait now: the idle timeout, cut short by `deadline`.
/// `None` when the deadline has already passed.
pub(crate) fn read_limit(idle: Duration, deadline: Option<Instant>) -> Option<(Duration, bool)> {
    match deadline {
        None => Some((idle, false)),
        Some(at) => {
            let left = at.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                None
            } else if left < idle {
                Some((left, true))
            } else {
                Some((idle, false))
            }
        }
    }
}

/// The error a read returns when its time is up.
pub(crate) fn timed_out(idle: Duration, by_deadline: bool) -> io::Error {
    if by_deadline {
        TimeoutKind::Deadline.into()
    } else {
        TimeoutKind::Idle(idle).into()
    }
}

/// The error a write returns when the client takes nothing for `limit`.
pub(crate) fn write_timed_out(limit: Duration) -> io::Error {
    TimeoutKind::Write(limit).into()
}

/// The error [`Connection::read`] returns when asked to read into a full buffer.
pub(crate) fn full_buffer_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "read into a full buffer (consume some bytes first)",
    )
}

/// The most bytes [`Connection::write_bytes`] copies into one buffer.
const WRITE_PIECE: usize = 64 * 1024;

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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use futures_lite::future::block_on;

    use super::*;

    /// A connection that hands out `reads` in order (each as far as the
    /// buffer has room), then end of file; and keeps what is written.
    #[derive(Default)]
    struct Script {
        reads: VecDeque<io::Result<Vec<u8>>>,
        written: Vec<u8>,
        deadlines: Vec<Option<Instant>>,
        /// Reads into a full buffer (the error a real one gives).
        full_reads: usize,
    }

    impl Script {
        fn new(chunks: &[&[u8]]) -> Script {
            Script {
                reads: chunks.iter().map(|c| Ok(c.to_vec())).collect(),
                ..Script::default()
            }
        }
    }

    impl Connection for Script {
        fn peer(&self) -> SocketAddr {
            "127.0.0.1:1".parse().unwrap()
        }

        async fn read(&mut self, mut buf: Buf) -> (io::Result<usize>, Buf) {
            if buf.is_full() {
                self.full_reads += 1;
                return (Err(full_buffer_error()), buf);
            }
            match self.reads.pop_front() {
                None => (Ok(0), buf),
                Some(Err(e)) => (Err(e), buf),
                Some(Ok(mut chunk)) => {
                    let n = buf.extend_from_slice(&chunk);
                    if n < chunk.len() {
                        self.reads.push_front(Ok(chunk.split_off(n)));
                    }
                    (Ok(n), buf)
                }
            }
        }

        fn set_read_deadline(&mut self, deadline: Option<Instant>) {
            self.deadlines.push(deadline);
        }

        async fn write_prefix(&mut self, buf: Buf, len: usize) -> (io::Result<()>, Buf) {
            self.written.extend_from_slice(&buf.filled()[..len]);
            (Ok(()), buf)
        }

        async fn send_file(&mut self, _: RegularFile) -> io::Result<u64> {
            unreachable!("no files here")
        }

        async fn yield_if_needed(&mut self) {}
    }

    /// Every line `read_line` returns until it says the client closed.
    fn lines(reader: &mut Reader, conn: &mut Script) -> Vec<Vec<u8>> {
        block_on(async {
            let mut out = Vec::new();
            while let Some(line) = reader.read_line(conn).await.unwrap() {
                out.push(line.to_vec());
            }
            out
        })
    }

    #[test]
    fn lines_come_whole_however_they_are_cut() {
        let mut conn = Script::new(&[b"foo\nba", b"r\n", b"\nqux\nlast"]);
        let got = lines(&mut Reader::with_capacity(64), &mut conn);
        let want: Vec<&[u8]> = vec![b"foo\n", b"bar\n", b"\n", b"qux\n", b"last"];
        assert_eq!(got, want, "the last line, without its newline, comes too");
        assert_eq!(conn.full_reads, 0);
    }

    #[test]
    fn a_line_longer_than_the_capacity_comes_in_pieces_of_the_capacity() {
        let long = vec![b'x'; 10];
        let mut conn = Script::new(&[&long, b"\nnext\n"]);
        let got = lines(&mut Reader::with_capacity(4), &mut conn);
        let want: Vec<&[u8]> = vec![b"xxxx", b"xxxx", b"xx\n", b"next", b"\n"];
        assert_eq!(got, want);
        assert_eq!(conn.full_reads, 0, "never a read into a full buffer");
    }

    #[test]
    fn leftover_bytes_stay_for_the_next_call() {
        let mut conn = Script::new(&[b"a\nbb\0rest"]);
        let mut reader = Reader::with_capacity(16);
        block_on(async {
            assert_eq!(
                reader.read_line(&mut conn).await.unwrap(),
                Some(&b"a\n"[..])
            );
            assert_eq!(reader.buffered(), b"bb\0rest");
            let rec = reader.read_record(&mut conn, 0).await.unwrap();
            assert_eq!(rec, Some(&b"bb"[..]));
            assert_eq!(reader.read_exact(&mut conn, 4).await.unwrap(), b"rest");
            assert_eq!(reader.read_line(&mut conn).await.unwrap(), None);
            assert_eq!(
                reader.read_line(&mut conn).await.unwrap(),
                None,
                "and stays closed"
            );
        });
    }

    #[test]
    fn a_strict_record_longer_than_the_capacity_is_too_long() {
        let mut conn = Script::new(&[b"/a/very/long/path"]);
        let mut reader = Reader::with_capacity(8);
        let err = block_on(reader.read_record(&mut conn, 0)).unwrap_err();
        assert!(
            matches!(err, ReadError::TooLong { delim: 0, limit: 8 }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "no '\\x00' within 8 bytes");
        assert_eq!(reader.buffered(), b"/a/very/");
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidData);
        assert_eq!(conn.full_reads, 0);
    }

    #[test]
    fn a_strict_record_cut_by_the_close_is_truncated_and_none_before_it_begins() {
        let mut reader = Reader::with_capacity(8);
        let mut conn = Script::new(&[b"/tm"]);
        let err = block_on(reader.read_record(&mut conn, 0)).unwrap_err();
        assert!(matches!(err, ReadError::Truncated(3)), "{err:?}");
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::UnexpectedEof);
        let mut reader = Reader::with_capacity(8);
        let mut quiet = Script::new(&[]);
        assert!(matches!(
            block_on(reader.read_record(&mut quiet, 0)),
            Ok(None)
        ));
    }

    #[test]
    fn read_exact_fails_with_unexpected_eof_when_short_and_refuses_more_than_fits() {
        let mut reader = Reader::with_capacity(8);
        let mut conn = Script::new(&[b"ab", b"c"]);
        let err = block_on(reader.read_exact(&mut conn, 4)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        assert_eq!(reader.buffered(), b"abc");
        let err = block_on(reader.read_exact(&mut conn, 9)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        let mut conn = Script::new(&[b"ab", b"cd", b"ef"]);
        let mut reader = Reader::with_capacity(4);
        assert_eq!(block_on(reader.read_exact(&mut conn, 3)).unwrap(), b"abc");
        assert_eq!(block_on(reader.read_exact(&mut conn, 3)).unwrap(), b"def");
        assert_eq!(block_on(reader.read_exact(&mut conn, 0)).unwrap(), b"");
    }

    #[test]
    fn a_request_timeout_bounds_an_item_once_begun_and_keeps_its_kind() {
        let mut conn = Script::new(&[b"/slow"]);
        conn.reads.push_back(Err(TimeoutKind::Deadline.into()));
        let mut reader = Reader::with_capacity(64).request_timeout(Duration::from_secs(5));
        let err = block_on(reader.read_record(&mut conn, 0)).unwrap_err();
        assert!(
            matches!(err, ReadError::TooSlow(TimeoutKind::Deadline)),
            "{err:?}"
        );
        assert!(
            matches!(conn.deadlines[..], [Some(_), None]),
            "set once the first byte was in, cleared after: {:?}",
            conn.deadlines
        );
        let e = io::Error::from(err);
        assert_eq!(timeout_kind(&e), Some(TimeoutKind::Deadline));

        // Idle before a line begins: the read's own error, kind kept (the
        // server ends such a connection with a FIN).
        let idle = TimeoutKind::Idle(Duration::from_secs(60));
        let mut conn = Script::default();
        conn.reads.push_back(Err(idle.into()));
        let mut reader = Reader::with_capacity(64);
        let e = block_on(reader.read_line(&mut conn)).unwrap_err();
        assert_eq!(timeout_kind(&e), Some(idle));
        assert!(conn.deadlines.is_empty(), "no request timeout: no deadline");
    }

    #[test]
    fn write_bytes_sends_everything_in_bounded_pieces() {
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut conn = Script::default();
        block_on(conn.write_bytes(&data)).unwrap();
        assert_eq!(conn.written, data);
    }
}
