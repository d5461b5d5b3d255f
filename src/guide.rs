//! Writing your own protocol: what a [`Connection`] promises, how a
//! connection ends, the time limits, what the server counts for you, and
//! the helpers that read lines and records. This module holds no code.
//!
//! # A protocol is one `async fn`
//!
//! A [`Protocol`] is a value with one `serve` method, run once for each
//! accepted connection as a task of its own, on the core that accepted it.
//! The value is shared by every core (hence `Send + Sync`); the future
//! `serve` returns stays on its core and need not be `Send`. It is written
//! as a sequential program (read a request, answer it, repeat) and must
//! never block its thread: no `std::thread::sleep`, no blocking file or
//! socket calls (open and send files with [`Connection::open_file`] and
//! [`Connection::send_file`]), and a loop that computes for long calls
//! [`Connection::yield_if_needed`] as it goes.
//!
//! A server that greets each name it is sent, one per line:
//!
//! ```no_run
//! use std::io;
//! use std::time::Duration;
//!
//! use ringlet::{Connection, Outcome, Protocol, ReadError, Reader, Server};
//!
//! /// `NAME\n` in, `hello, NAME\n` out. A name takes at most 64 bytes,
//! /// and must arrive whole within 5 seconds of its first byte.
//! struct Greeter;
//!
//! impl Protocol for Greeter {
//!     async fn serve<C: Connection>(&self, conn: &mut C) -> io::Result<()> {
//!         let mut reader = Reader::with_capacity(64).request_timeout(Duration::from_secs(5));
//!         loop {
//!             let name = match reader.read_record(conn, b'\n').await {
//!                 Ok(Some(name)) => name,
//!                 Ok(None) => return Ok(()), // the client is done: a FIN
//!                 Err(ReadError::TooLong { .. }) => {
//!                     conn.record(Outcome::TooLong);
//!                     conn.write_bytes(b"name too long\n").await?;
//!                     return Ok(()); // a whole answer: a FIN
//!                 }
//!                 Err(e) => return Err(e.into()), // cut or too slow: a reset
//!             };
//!             let answer = format!("hello, {}\n", String::from_utf8_lossy(name));
//!             conn.write_bytes(answer.as_bytes()).await?;
//!             conn.record(Outcome::Served);
//!             conn.yield_if_needed().await; // one turn per request
//!         }
//!     }
//! }
//!
//! fn main() -> Result<(), ringlet::ServerError> {
//!     Server::builder()
//!         .service("greeter", "127.0.0.1:7000".parse().unwrap(), Greeter)
//!         .start()?
//!         .wait()
//! }
//! ```
//!
//! # What a `Connection` promises
//!
//! - **Owned buffers.** [`Connection::read`] takes a [`Buf`] by value,
//!   appends what arrived to its filled part, and hands it back with the
//!   result, an error included: a completion-based backend owns the memory
//!   while the kernel writes into it, and nothing can free it under the
//!   kernel. A `Buf`'s capacity, chosen once, is what bounds a connection's
//!   memory; an empty one costs nothing while its connection waits.
//! - **`Ok(0)` means end of file**: the client closed its side (it may
//!   still be reading the answer). It is never an error, and never means
//!   "the buffer is full": a read into a full buffer fails with
//!   `InvalidInput` (consume bytes first). [`Reader`] never does that.
//! - **Writes are whole.** [`Connection::write_prefix`] and
//!   [`Connection::write_all`] send every byte asked for or fail;
//!   [`Connection::write_bytes`] does the same for a slice (copied into
//!   bounded buffers). [`Connection::send_file`] returns the bytes it sent:
//!   fewer than the file's size means the file shrank while it was sent.
//! - **Files only beneath a [`Root`]**: [`Connection::open_file`] opens
//!   nothing outside it; on the io_uring backend it opens through the
//!   ring, so a lookup that goes to the disk does not stall the core.
//! - [`Connection::peer`] is the client's address (the one a trusted
//!   balancer's PROXY header gave, when that is on);
//!   [`Connection::draining`] says the server was asked to stop (answer the
//!   request in hand, then end); [`Connection::access_log`] is the access
//!   log when one is on.
//!
//! # Lines, records and exact counts: `Reader`
//!
//! [`Reader`] holds one buffer of the capacity you choose and keeps the
//! bytes that arrive after what it returned for the next call:
//!
//! - [`Reader::read_line`] (and [`Reader::read_until`] for any delimiter)
//!   is Python's `readline`: a line with its `\n`, a last line without one
//!   when the client closed after it, `None` at end of file. A line longer
//!   than the capacity comes in pieces of the capacity: a lenient protocol
//!   such as echo answers it whole, with bounded memory, and never fails
//!   because a line is long.
//! - [`Reader::read_record`] is the strict form, for a protocol that bounds
//!   its requests: a record longer than the capacity is
//!   [`ReadError::TooLong`], one cut by the client's close
//!   [`ReadError::Truncated`], one too slow [`ReadError::TooSlow`].
//! - [`Reader::read_exact`] reads exactly `n` bytes, or fails with
//!   `UnexpectedEof`.
//!
//! A [`ReadError`] converts into the `io::Error` that ends the connection
//! as its kind calls for (below). All of them are built on one framing
//! loop, [`proto::request::read_framed`](crate::proto::request::read_framed),
//! which a protocol with another framing (an HTTP head) calls with its own
//! `parse`.
//!
//! # How a connection ends
//!
//! The server owns each connection and ends it when `serve` returns:
//!
//! | `serve`...                               | the client gets                      |
//! |------------------------------------------|--------------------------------------|
//! | returned `Ok(())`                        | the whole answer, then a FIN         |
//! | returned an idle timeout (from a read)   | a FIN                                |
//! | returned any other error                 | a reset                              |
//! | panicked                                 | a reset                              |
//!
//! - `Ok` is a lingering close: the server half-closes, so the client gets
//!   everything sent and then end of file, and reads and discards what the
//!   client still sends until it closes, bounded by [`Linger`] (2 s and
//!   64 KiB by default, the time counted once the client has acknowledged
//!   the whole answer). Closing with unread input would make the kernel
//!   reset the connection and drop the end of the answer.
//! - An error is logged with the client's address (INFO when the client
//!   brought it on itself: it reset, stopped reading, timed out; WARN
//!   otherwise) and the connection is reset, so that a client can tell a
//!   cut answer from a whole one: end of file always means "all of it".
//!   Return an error when the answer cannot be completed.
//! - A panic is caught: one ERROR log line, a reset for that client, and
//!   nothing else on the core is affected.
//! - When the server stops, a connection that was answered and now waits
//!   for its next request, with nothing buffered, reads end of file
//!   (after a short grace for a request already on its way), so its
//!   protocol ends with `Ok`; a connection not answered yet waits for its
//!   first request as usual. Those still open when the shutdown timeout
//!   ([`ServerBuilder::shutdown_timeout`](crate::ServerBuilder::shutdown_timeout))
//!   passes are reset.
//!
//! # Timeouts
//!
//! The server applies [`Timeouts`] to every connection
//! ([`ServerBuilder::timeouts`](crate::ServerBuilder::timeouts)):
//!
//! - **idle** (60 s by default): a read that waits this long for a byte
//!   fails with `TimedOut` ([`TimeoutKind::Idle`]). Returned by `serve`
//!   (`?` does it), it ends the connection with a FIN.
//! - **write** (30 s): a write that cannot move a byte for this long (the
//!   client stopped reading) fails with `TimedOut` ([`TimeoutKind::Write`]);
//!   returned, the connection is reset.
//! - **a request deadline**, which the protocol sets:
//!   [`Connection::set_read_deadline`] makes reads fail with `TimedOut`
//!   ([`TimeoutKind::Deadline`]) once it passes, however slowly a request
//!   is dripped; `None` clears it. [`Reader::request_timeout`] sets it when
//!   an item's first byte arrives and clears it when the item is whole.
//!
//! [`timeout_kind`] tells which limit a `TimedOut` error stands for.
//!
//! # What the server counts for you
//!
//! [`Server::monitor`](crate::Server::monitor) reads every shard's figures
//! ([`Monitor::snapshot`]: per shard, per service, a [`ServiceFigures`]):
//! connections accepted and open, those that failed (an error or a panic)
//! and panicked, bytes in and out (every read and write, file bytes
//! included, counted once by the server), and time limits hit by kind
//! (`idle`, `request`, `write`). A protocol adds what became of each
//! request with [`Connection::record`] and an [`Outcome`]: that is the one
//! figure the server cannot know. Each shard is the only writer of its
//! figures, so counting costs no lock; a reader sees values a moment old.
//!
//! # State shared between connections
//!
//! A core runs one thread, and a task gives way to the others on it only at
//! an `.await`. So state kept per core (a `thread_local!`, an
//! `Rc<RefCell<_>>`) needs no lock, as long as no update holds it across an
//! `.await`; one that must (it does I/O in the middle) takes an async lock
//! held across it, such as a semaphore. A figure across cores is each
//! core's own, added up by a reader: [`Connection::record`] and the
//! [`Monitor`] do that, or a channel. `examples/shared.rs`, the article's
//! factorial worker, shows all three.
//!
//! [`Buf`]: crate::Buf
//! [`Connection`]: crate::Connection
//! [`Connection::read`]: crate::Connection::read
//! [`Connection::write_prefix`]: crate::Connection::write_prefix
//! [`Connection::write_all`]: crate::Connection::write_all
//! [`Connection::write_bytes`]: crate::Connection::write_bytes
//! [`Connection::open_file`]: crate::Connection::open_file
//! [`Connection::send_file`]: crate::Connection::send_file
//! [`Connection::yield_if_needed`]: crate::Connection::yield_if_needed
//! [`Connection::peer`]: crate::Connection::peer
//! [`Connection::draining`]: crate::Connection::draining
//! [`Connection::access_log`]: crate::Connection::access_log
//! [`Connection::set_read_deadline`]: crate::Connection::set_read_deadline
//! [`Connection::record`]: crate::Connection::record
//! [`Linger`]: crate::Linger
//! [`Monitor`]: crate::Monitor
//! [`Monitor::snapshot`]: crate::Monitor::snapshot
//! [`Outcome`]: crate::Outcome
//! [`Protocol`]: crate::Protocol
//! [`ReadError`]: crate::ReadError
//! [`ReadError::TooLong`]: crate::ReadError::TooLong
//! [`ReadError::Truncated`]: crate::ReadError::Truncated
//! [`ReadError::TooSlow`]: crate::ReadError::TooSlow
//! [`Reader`]: crate::Reader
//! [`Reader::read_line`]: crate::Reader::read_line
//! [`Reader::read_until`]: crate::Reader::read_until
//! [`Reader::read_record`]: crate::Reader::read_record
//! [`Reader::read_exact`]: crate::Reader::read_exact
//! [`Reader::request_timeout`]: crate::Reader::request_timeout
//! [`Root`]: crate::Root
//! [`ServiceFigures`]: crate::ServiceFigures
//! [`TimeoutKind::Idle`]: crate::TimeoutKind::Idle
//! [`TimeoutKind::Write`]: crate::TimeoutKind::Write
//! [`TimeoutKind::Deadline`]: crate::TimeoutKind::Deadline
//! [`Timeouts`]: crate::Timeouts
//! [`timeout_kind`]: crate::timeout_kind
