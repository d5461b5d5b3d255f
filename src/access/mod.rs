//! The access log: one line per HTTP request, per file request and per echo
//! connection, written by a thread of its own ("ringlet-access") so that a
//! shard never waits on the disk.
//!
//! How a line travels: [`AccessLog::log`] formats the entry, with the time
//! now, into a buffer of the calling thread's own (one per thread and log,
//! in a thread local); a buffer that holds [`BATCH`] bytes, or one that
//! [`AccessLog::flush`] is called on (the shards' heartbeat), is handed to
//! the writer through a bounded queue of [`QUEUE`] buffers by a `try_send`.
//! The writer appends each buffer with one `write` and frees it. A thread's
//! lines stay in order; lines of different threads interleave by buffer.
//!
//! **Memory** is bounded: a buffer is allocated once with [`BUFFER`]
//! (128 KiB) of capacity and never grows (a line is at most [`MAX_LINE`],
//! long fields are cut with `...`; a buffer takes a line only while it
//! holds less than [`BATCH`]); at most `QUEUE + 1` buffers (4 MiB + 128 KiB)
//! are queued or being written per log, plus one per thread that logs.
//!
//! **When the disk stalls** the queue fills and a thread keeps its buffer;
//! once that too is full, new lines are dropped and counted
//! ([`AccessLog::dropped`], for `ringlet_access_log_dropped_total`). The
//! first drop logs one WARN; the writer logs one INFO once it has emptied
//! the queue again, which re-arms the WARN. A write error (disk full, EIO)
//! is logged once by the writer, counts the buffer's lines as dropped, and
//! the writer goes on with the next buffer (one INFO when writing works
//! again).
//!
//! **Reopen** ([`AccessLog::reopen`], on SIGUSR1 after logrotate moved the
//! file) is done by the writer, in order with the buffers queued before it;
//! if the queue is full at that moment the writer reopens before the next
//! buffer it takes. A file that cannot be reopened is logged once and the
//! writer keeps the old one.
//!
//! **At the end of a run** each shard flushes (or ends: a thread's end
//! hands its buffer over, or counts it dropped if the queue is full); then
//! [`AccessLog::sync`] (it blocks: the main thread's, never a shard's)
//! waits for the writer to write all that was queued. The writer ends once
//! every clone is gone; lines still buffered by a live thread then are lost.
//!
//! The formats (`rt=` and `duration` in seconds, to the microsecond; the
//! client is the address alone, an IPv4-mapped IPv6 one written as IPv4):
//!
//! ```text
//! combined, HTTP (nginx's combined, plus rt= as nginx users append $request_time):
//! 127.0.0.1 - - [04/Dec/2026:02:45:07 +0000] "GET /a?b HTTP/1.1" 200 5120 "-" "curl/8.5.0" rt=0.000123
//! combined, file protocol:
//! 127.0.0.1 - - [04/Dec/2026:02:45:07 +0000] "FILE /etc/motd" served 5120 rt=0.001000
//! combined, echo connection (in = bytes read, out = bytes written):
//! 127.0.0.1 - - [04/Dec/2026:02:45:07 +0000] "SESSION echo" in=12 out=12 rt=1.500000
//! json (one object a line; kind is http, file or session):
//! {"time":"2026-12-04T02:45:07+00:00","kind":"http","client":"127.0.0.1","method":"GET","target":"/a?b","version":"HTTP/1.1","status":200,"bytes":5120,"referer":null,"user_agent":"curl/8.5.0","duration":0.000123}
//! {"time":"2026-12-04T02:45:07+00:00","kind":"file","client":"127.0.0.1","path":"/etc/motd","outcome":"served","bytes":5120,"duration":0.001000}
//! {"time":"2026-12-04T02:45:07+00:00","kind":"session","client":"127.0.0.1","service":"echo","bytes_in":12,"bytes_out":12,"duration":1.500000}
//! ```
//!
//! Escaping: combined escapes as nginx does (`"`, `\`, bytes below 0x20 and
//! from 0x7f as `\xHH`); a missing referer or user agent is `"-"`. JSON
//! escapes `"`, `\` and control characters as JSON requires, passes valid
//! UTF-8 through, and writes each byte of invalid UTF-8 as the four
//! characters `\xHH`.
//!
//! It never blocks the caller of `log`, `flush` or `reopen` (no waiting on
//! the disk, on the writer, or on a lock the writer holds across I/O: the
//! queue's wake-up takes only the channel's own short lock), never
//! allocates per line (only a buffer per [`BATCH`] bytes), and knows
//! nothing of protocols, the CLI or the metrics: they call it.
//!
//! The rooms: this file is the public API ([`Target`], [`Format`],
//! [`Entry`], [`AccessLog`]); `local` the per-thread buffers and their
//! hand-off to the queue (drops counted there); `writer` the writer thread;
//! `format` a line of either format, `escape` one field escaped and cut;
//! `clock` the per-thread timestamp, formatted once a second.

mod clock;
mod escape;
mod format;
mod local;
#[cfg(test)]
mod test_support;
mod writer;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use format::format_entry;
use local::{LOCAL, Locals, local};
use writer::{Msg, State};

/// Buffers the writer's queue holds at most, per log.
pub const QUEUE: usize = 32;
/// A thread's buffer is handed to the writer once it holds this much (the
/// larger, the fewer wake-ups of the writer: one per ~700 HTTP lines).
pub const BATCH: usize = 96 * 1024;
/// The capacity of every buffer, allocated once; it never grows (a buffer
/// under `BATCH` takes one more line of at most `MAX_LINE`).
pub const BUFFER: usize = BATCH + MAX_LINE;
/// The longest line, newline included: long fields are cut to fit.
pub const MAX_LINE: usize = 32 * 1024;

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// File descriptor 1, written by the writer thread.
    Stdout,
    /// A file, opened to append (created 0640).
    File(PathBuf),
}

impl Target {
    /// The command line's `PATH|-|off`: `None` for `off`.
    pub fn from_arg(arg: &str) -> Option<Target> {
        match arg {
            "off" => None,
            "-" => Some(Target::Stdout),
            path => Some(Target::File(PathBuf::from(path))),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Stdout => f.write_str("stdout"),
            Target::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// How lines look (see the module's header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// nginx's combined format, plus `rt=`.
    Combined,
    /// One JSON object a line.
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "combined" => Ok(Format::Combined),
            "json" => Ok(Format::Json),
            other => Err(format!(
                "unknown access log format {other:?} (combined or json)"
            )),
        }
    }
}

/// One record. Borrowed strings: formatting happens in the caller's (the
/// shard's) thread into its own buffer, no allocation per line.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    /// One HTTP request.
    Http {
        /// The client: from the PROXY header when there is one.
        client: SocketAddr,
        /// The request's method, as sent (`GET`, `HEAD`).
        method: &'a str,
        /// Raw, as sent; escaped in the line.
        target: &'a [u8],
        /// "HTTP/1.1".
        version: &'a str,
        /// The status code answered.
        status: u16,
        /// Body bytes sent.
        bytes: u64,
        /// The `Referer` header, if sent.
        referer: Option<&'a str>,
        /// The `User-Agent` header, if sent.
        user_agent: Option<&'a str>,
        /// How long the request took, read and answer.
        duration: Duration,
    },
    /// One file-protocol request.
    File {
        /// The client: from the PROXY header when there is one.
        client: SocketAddr,
        /// The path asked for, raw, as sent (escaped in the line).
        path: &'a [u8],
        /// e.g. "served", "not_found" (`crate::Outcome::label()`).
        outcome: &'a str,
        /// File bytes sent.
        bytes: u64,
        /// How long the request took, read and answer.
        duration: Duration,
    },
    /// One echo connection, at its end.
    Session {
        /// The client: from the PROXY header when there is one.
        client: SocketAddr,
        /// The service's name (`echo`, or a user's own).
        service: &'a str,
        /// Bytes received from the client.
        bytes_in: u64,
        /// Bytes sent to the client.
        bytes_out: u64,
        /// From accept to the connection's end.
        duration: Duration,
    },
}

/// The access log: cheap to clone, Send + Sync. The writer thread ends once
/// every clone is gone and it has written what was queued.
#[derive(Clone)]
pub struct AccessLog {
    shared: Arc<Shared>,
}

/// What the clones share. The writer holds only `state`, so that the queue
/// closes (and the writer ends) when the last clone goes.
struct Shared {
    id: u64,
    format: Format,
    tx: SyncSender<Msg>,
    state: Arc<State>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl AccessLog {
    /// Open `target` (append, create, 0640) and start the writer thread
    /// ("ringlet-access"). The writer logs through the tracing dispatcher
    /// current here.
    pub fn open(target: Target, format: Format) -> io::Result<AccessLog> {
        let file = writer::open_target(&target)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let state = Arc::new(State::default());
        writer::start(rx, state.clone(), target, file)?;
        Ok(AccessLog {
            shared: Arc::new(Shared {
                id: NEXT_ID.fetch_add(1, Relaxed),
                format,
                tx,
                state,
            }),
        })
    }

    /// The format lines are written in.
    pub fn format(&self) -> Format {
        self.shared.format
    }

    /// Format `entry` with the time now into this thread's buffer; hand the
    /// buffer to the writer once it holds [`BATCH`]. Never blocks, never
    /// waits for the disk: when the queue is full and this thread's buffer
    /// too, the line is dropped and counted.
    pub fn log(&self, entry: &Entry<'_>) {
        let kept = LOCAL
            .try_with(|locals| {
                let Ok(mut locals) = locals.try_borrow_mut() else {
                    return false;
                };
                let Locals { clock, logs } = &mut *locals;
                let local = local(logs, &self.shared);
                if local.buf.len() >= BATCH && !self.shared.hand_off(local) {
                    return false;
                }
                if local.buf.capacity() == 0 {
                    local.buf.reserve_exact(BUFFER);
                }
                let stamp = clock.stamp(clock::now());
                format_entry(&mut local.buf, self.shared.format, entry, stamp);
                local.lines += 1;
                if local.buf.len() >= BATCH {
                    self.shared.hand_off(local);
                }
                true
            })
            .unwrap_or(false);
        if !kept {
            self.shared.dropped(1);
        }
    }

    /// Hand this thread's buffered lines to the writer (the shards call it
    /// on every heartbeat). Never blocks: with the queue full they stay
    /// buffered for the next call.
    pub fn flush(&self) {
        self.flush_local();
    }

    /// Reopen the file (after logrotate moved it; SIGUSR1). Done by the
    /// writer thread, in order with the lines queued before. Never blocks.
    /// Nothing to do for [`Target::Stdout`].
    pub fn reopen(&self) {
        match self.shared.tx.try_send(Msg::Reopen) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => self.shared.state.reopen.store(true, Relaxed),
        }
    }

    /// Wait until this thread's lines and every buffer queued before are
    /// written (or dropped), for at most `timeout`; true if they were.
    /// Blocks: for the end of a run and for tests, never on a shard.
    pub fn sync(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let past = || Instant::now() >= deadline;
        while !self.flush_local() {
            if past() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let (ack, acked) = mpsc::channel();
        let mut msg = Msg::Sync(ack);
        loop {
            match self.shared.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) if !past() => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(TrySendError::Full(_)) => return false,
            }
        }
        acked
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }

    /// Lines dropped so far because the writer could not keep up or could
    /// not write (for the metrics).
    pub fn dropped(&self) -> u64 {
        self.shared.state.dropped.load(Relaxed)
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.shared.state.written.load(Relaxed)
    }

    /// Bytes of buffers queued or being written now (their capacity): at
    /// most `(QUEUE + 1) * BUFFER`.
    pub fn queued_bytes(&self) -> u64 {
        self.shared.state.queued.load(Relaxed)
    }

    /// Hand this thread's buffer over; true if it is empty now.
    fn flush_local(&self) -> bool {
        LOCAL
            .try_with(|locals| {
                let Ok(mut locals) = locals.try_borrow_mut() else {
                    return true;
                };
                match locals.logs.iter_mut().find(|l| l.id == self.shared.id) {
                    Some(local) => self.shared.hand_off(local),
                    None => true,
                }
            })
            .unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        assert_eq!(Target::from_arg("off"), None);
        assert_eq!(Target::from_arg("-"), Some(Target::Stdout));
        assert_eq!(
            Target::from_arg("/var/log/a"),
            Some(Target::File("/var/log/a".into()))
        );
        assert_eq!("json".parse::<Format>(), Ok(Format::Json));
        assert_eq!("combined".parse::<Format>(), Ok(Format::Combined));
        assert!("clf".parse::<Format>().is_err());
    }
}
