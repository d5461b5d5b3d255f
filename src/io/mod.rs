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
//! root confinement are in `fs.rs`. [`Reader`] (`reader.rs`) reads lines and
//! records on top of a `Connection`.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod reader;

pub use reader::{ReadError, Reader};

pub use crate::buf::Buf;
use crate::fs::{OpenError, RegularFile, Root};

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

#[cfg(test)]
mod tests;
