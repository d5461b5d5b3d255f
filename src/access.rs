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
//! (64 KiB) of capacity and never grows (a line is at most [`MAX_LINE`],
//! long fields are cut with `...`; a buffer takes a line only while it
//! holds less than [`BATCH`]); at most `QUEUE + 1` buffers (4 MiB + 64 KiB)
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

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{error, info, warn};

/// Buffers the writer's queue holds at most, per log.
pub const QUEUE: usize = 64;
/// A thread's buffer is handed to the writer once it holds this much.
pub const BATCH: usize = 32 * 1024;
/// The capacity of every buffer, allocated once; it never grows.
pub const BUFFER: usize = 64 * 1024;
/// The longest line, newline included: long fields are cut to fit.
pub const MAX_LINE: usize = 32 * 1024;

/// The most bytes (escaped) a request target or a file path takes.
const MAX_TARGET: usize = 16 * 1024;
/// The most bytes (escaped) a referer or a user agent takes.
const MAX_HEADER: usize = 4 * 1024;
/// The most bytes (escaped) a method, version, outcome or service takes.
const MAX_WORD: usize = 64;

/// The WARN of the first dropped line.
const DROP_WARNING: &str = "access log: the disk cannot keep up: lines are being dropped (see ringlet_access_log_dropped_total)";

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
        method: &'a str,
        /// Raw, as sent; escaped in the line.
        target: &'a [u8],
        /// "HTTP/1.1".
        version: &'a str,
        status: u16,
        /// Body bytes sent.
        bytes: u64,
        referer: Option<&'a str>,
        user_agent: Option<&'a str>,
        duration: Duration,
    },
    /// One file-protocol request.
    File {
        client: SocketAddr,
        path: &'a [u8],
        /// e.g. "served", "not_found" (`crate::Outcome::label()`).
        outcome: &'a str,
        bytes: u64,
        duration: Duration,
    },
    /// One echo connection, at its end.
    Session {
        client: SocketAddr,
        service: &'a str,
        bytes_in: u64,
        bytes_out: u64,
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

/// Shared by the loggers and the writer.
#[derive(Default)]
struct State {
    dropped: AtomicU64,
    written: AtomicU64,
    /// Capacity of the buffers queued or being written.
    queued: AtomicU64,
    /// Set by the first drop (its WARN), cleared by the writer once the
    /// queue is empty again.
    dropping: AtomicBool,
    /// A reopen that found the queue full.
    reopen: AtomicBool,
}

enum Msg {
    Lines { data: Vec<u8>, lines: u64 },
    Reopen,
    Sync(mpsc::Sender<()>),
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl AccessLog {
    /// Open `target` (append, create, 0640) and start the writer thread
    /// ("ringlet-access"). The writer logs through the tracing dispatcher
    /// current here.
    pub fn open(target: Target, format: Format) -> io::Result<AccessLog> {
        let file = open_target(&target)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let state = Arc::new(State::default());
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        let writer = Writer {
            rx,
            state: state.clone(),
            target,
            file,
            failing: false,
            reopen_failing: false,
        };
        std::thread::Builder::new()
            .name("ringlet-access".into())
            .spawn(move || {
                let _guard = (!dispatch.is::<tracing::subscriber::NoSubscriber>())
                    .then(|| tracing::dispatcher::set_default(&dispatch));
                writer.run();
            })?;
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
                let stamp = clock.stamp(SystemTime::now());
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

impl Shared {
    /// Queue `local`'s buffer; true if it went (or had nothing), false if
    /// the queue is full and the buffer stays.
    fn hand_off(&self, local: &mut Local) -> bool {
        if local.buf.is_empty() {
            return true;
        }
        let data = std::mem::take(&mut local.buf);
        let capacity = data.capacity() as u64;
        // Counted before the send, so that the writer never takes away
        // what is not yet added.
        self.state.queued.fetch_add(capacity, Relaxed);
        match self.tx.try_send(Msg::Lines {
            data,
            lines: local.lines,
        }) {
            Ok(()) => {
                local.lines = 0;
                true
            }
            Err(TrySendError::Full(Msg::Lines { data, .. })) => {
                self.state.queued.fetch_sub(capacity, Relaxed);
                local.buf = data;
                false
            }
            Err(TrySendError::Full(_)) => unreachable!("a buffer comes back as sent"),
            Err(TrySendError::Disconnected(_)) => {
                // The writer is gone (it panicked): nothing can be written.
                self.state.queued.fetch_sub(capacity, Relaxed);
                self.dropped(std::mem::take(&mut local.lines));
                true
            }
        }
    }

    fn dropped(&self, lines: u64) {
        self.state.dropped.fetch_add(lines, Relaxed);
        if !self.state.dropping.load(Relaxed) && !self.state.dropping.swap(true, Relaxed) {
            warn!("{DROP_WARNING}");
        }
    }
}

impl Drop for Shared {
    /// The last clone goes: hand over the dropping thread's own buffer (the
    /// other threads hand theirs over when they flush or end).
    fn drop(&mut self) {
        let _ = LOCAL.try_with(|locals| {
            if let Ok(mut locals) = locals.try_borrow_mut()
                && let Some(i) = locals.logs.iter().position(|l| l.id == self.id)
            {
                let mut local = locals.logs.swap_remove(i);
                if !self.hand_off(&mut local) {
                    self.dropped(local.lines);
                }
            }
        });
    }
}

/// One thread's buffers, one per log, and its clock.
struct Locals {
    clock: Clock,
    logs: Vec<Local>,
}

/// One thread's buffer for one log.
struct Local {
    id: u64,
    log: Weak<Shared>,
    buf: Vec<u8>,
    lines: u64,
}

thread_local! {
    static LOCAL: RefCell<Locals> = const {
        RefCell::new(Locals {
            clock: Clock::new(),
            logs: Vec::new(),
        })
    };
}

impl Drop for Locals {
    /// The thread ends: hand over what it buffered; with the queue full,
    /// its lines are dropped (and counted): a thread never waits here.
    fn drop(&mut self) {
        for local in &mut self.logs {
            if let Some(shared) = local.log.upgrade()
                && !shared.hand_off(local)
            {
                shared.dropped(local.lines);
            }
        }
    }
}

/// This thread's buffer for `shared`, made on first use (forgetting those of
/// logs that are gone).
fn local<'l>(logs: &'l mut Vec<Local>, shared: &Arc<Shared>) -> &'l mut Local {
    let i = match logs.iter().position(|l| l.id == shared.id) {
        Some(i) => i,
        None => {
            logs.retain(|l| l.log.strong_count() > 0);
            logs.push(Local {
                id: shared.id,
                log: Arc::downgrade(shared),
                buf: Vec::new(),
                lines: 0,
            });
            logs.len() - 1
        }
    };
    &mut logs[i]
}

fn open_target(target: &Target) -> io::Result<File> {
    match target {
        Target::Stdout => Ok(File::from(rustix::io::dup(io::stdout())?)),
        Target::File(path) => OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path),
    }
}

/// The thread that writes: takes buffers from the queue, appends them.
struct Writer {
    rx: Receiver<Msg>,
    state: Arc<State>,
    target: Target,
    file: File,
    /// The last write failed (logged once).
    failing: bool,
    /// The last reopen failed (logged once).
    reopen_failing: bool,
}

impl Writer {
    fn run(mut self) {
        loop {
            let msg = match self.rx.try_recv() {
                Ok(msg) => Some(msg),
                Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => {
                    self.caught_up();
                    match self.rx.recv_timeout(Duration::from_secs(1)) {
                        Ok(msg) => Some(msg),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            };
            if self.state.reopen.swap(false, Relaxed) {
                self.reopen();
            }
            match msg {
                Some(Msg::Lines { data, lines }) => self.write(data, lines),
                Some(Msg::Reopen) => self.reopen(),
                Some(Msg::Sync(ack)) => {
                    let _ = ack.send(());
                }
                None => {}
            }
        }
    }

    fn write(&mut self, data: Vec<u8>, lines: u64) {
        let result = self.file.write_all(&data);
        self.state.queued.fetch_sub(data.capacity() as u64, Relaxed);
        drop(data);
        match result {
            Ok(()) => {
                self.state.written.fetch_add(lines, Relaxed);
                if self.failing {
                    self.failing = false;
                    info!("access log: writing {} again", self.target);
                }
            }
            Err(e) => {
                self.state.dropped.fetch_add(lines, Relaxed);
                if !self.failing {
                    self.failing = true;
                    error!(
                        "access log: writing {} failed: {e}: its lines are dropped (see ringlet_access_log_dropped_total)",
                        self.target
                    );
                }
            }
        }
    }

    fn reopen(&mut self) {
        if self.target == Target::Stdout {
            return;
        }
        match open_target(&self.target) {
            Ok(file) => {
                self.file = file;
                if self.reopen_failing {
                    self.reopen_failing = false;
                    info!("access log: reopened {}", self.target);
                }
            }
            Err(e) => {
                if !self.reopen_failing {
                    self.reopen_failing = true;
                    warn!(
                        "access log: reopening {} failed: {e}: still writing to the file it had",
                        self.target
                    );
                }
            }
        }
    }

    /// The queue is empty: lines flow again, and the next drop warns anew.
    fn caught_up(&self) {
        if self.state.dropping.load(Relaxed) {
            self.state.dropping.store(false, Relaxed);
            info!(
                "access log: caught up; {} lines dropped so far",
                self.state.dropped.load(Relaxed)
            );
        }
    }
}

/// The time of a line, formatted for both formats.
#[derive(Clone, Copy)]
struct Stamp {
    /// `04/Dec/2026:02:45:07 +0000`, as nginx's `$time_local` in UTC.
    local: [u8; 26],
    /// `2026-12-04T02:45:07+00:00`, as nginx's `$time_iso8601`.
    iso: [u8; 25],
}

/// A thread's last stamp: formatted once a second.
struct Clock {
    secs: u64,
    stamp: Stamp,
}

impl Clock {
    const fn new() -> Clock {
        Clock {
            secs: u64::MAX,
            stamp: Stamp {
                local: [0; 26],
                iso: [0; 25],
            },
        }
    }

    fn stamp(&mut self, now: SystemTime) -> &Stamp {
        let secs = unix_secs(now);
        if secs != self.secs {
            self.secs = secs;
            self.stamp = stamp(secs);
        }
        &self.stamp
    }
}

/// 9999-12-31T23:59:59: later times are written as this (four-digit years).
const LAST_SECOND: u64 = 253_402_300_799;

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// (year, month 1-12, day 1-31) of a day counted from 1970-01-01
/// (Howard Hinnant's civil_from_days).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn stamp(secs: u64) -> Stamp {
    let secs = secs.min(LAST_SECOND);
    let (year, month, day) = civil(secs / 86_400);
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    let digits = |out: &mut [u8], n: u64| {
        let mut n = n;
        for b in out.iter_mut().rev() {
            *b = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    let mut local = *b"00/Mon/0000:00:00:00 +0000";
    digits(&mut local[0..2], day);
    local[3..6].copy_from_slice(MONTHS[(month - 1) as usize]);
    digits(&mut local[7..11], year);
    digits(&mut local[12..14], h);
    digits(&mut local[15..17], m);
    digits(&mut local[18..20], s);
    let mut iso = *b"0000-00-00T00:00:00+00:00";
    digits(&mut iso[0..4], year);
    digits(&mut iso[5..7], month);
    digits(&mut iso[8..10], day);
    digits(&mut iso[11..13], h);
    digits(&mut iso[14..16], m);
    digits(&mut iso[17..19], s);
    Stamp { local, iso }
}

/// One line, newline included, appended to `out`: at most [`MAX_LINE`].
fn format_entry(out: &mut Vec<u8>, format: Format, entry: &Entry<'_>, stamp: &Stamp) {
    let start = out.len();
    match format {
        Format::Combined => combined(out, entry, stamp),
        Format::Json => json(out, entry, stamp),
    }
    out.push(b'\n');
    debug_assert!(out.len() - start <= MAX_LINE);
}

fn client(entry: &Entry<'_>) -> SocketAddr {
    match *entry {
        Entry::Http { client, .. } | Entry::File { client, .. } | Entry::Session { client, .. } => {
            client
        }
    }
}

fn push_ip(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip().to_canonical() {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            push_u64(out, a.into());
            for n in [b, c, d] {
                out.push(b'.');
                push_u64(out, n.into());
            }
        }
        v6 => {
            let _ = write!(out, "{v6}");
        }
    }
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Seconds to the microsecond: `0.000123`.
fn push_secs(out: &mut Vec<u8>, d: Duration) {
    push_u64(out, d.as_secs());
    let micros = d.subsec_micros();
    let mut frac = *b".000000";
    let mut n = micros;
    for b in frac[1..].iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&frac);
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// nginx's escaping of a log variable: `"`, `\`, below 0x20, from 0x7f.
fn nginx_escapes(b: u8) -> bool {
    ESCAPED[usize::from(b)]
}

/// The bytes [`nginx_escapes`], as a table.
const ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = b == b'"' as usize || b == b'\\' as usize || b < 0x20 || b >= 0x7f;
        b += 1;
    }
    table
};

/// Printable ASCII but `"` and `\`, within `budget`: written as it is, in
/// both formats (the common case, one pass).
fn plain(s: &[u8], budget: usize) -> bool {
    s.len() <= budget && !s.iter().any(|&b| nginx_escapes(b))
}

/// `s` escaped as nginx does, cut with `...` to at most `budget` bytes.
fn push_nginx(out: &mut Vec<u8>, s: &[u8], budget: usize) {
    if plain(s, budget) {
        out.extend_from_slice(s);
        return;
    }
    let len = |b: u8| if nginx_escapes(b) { 4 } else { 1 };
    let total: usize = s.iter().map(|&b| len(b)).sum();
    let limit = if total <= budget { total } else { budget - 3 };
    let mut used = 0;
    for &b in s {
        used += len(b);
        if used > limit {
            out.extend_from_slice(b"...");
            return;
        }
        if nginx_escapes(b) {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX_UPPER[usize::from(b >> 4)],
                HEX_UPPER[usize::from(b & 15)],
            ]);
        } else {
            out.push(b);
        }
    }
}

fn push_nginx_or_dash(out: &mut Vec<u8>, s: Option<&str>, budget: usize) {
    match s {
        Some(s) => push_nginx(out, s.as_bytes(), budget),
        None => out.push(b'-'),
    }
}

fn combined(out: &mut Vec<u8>, entry: &Entry<'_>, stamp: &Stamp) {
    push_ip(out, client(entry));
    out.extend_from_slice(b" - - [");
    out.extend_from_slice(&stamp.local);
    out.extend_from_slice(b"] \"");
    match *entry {
        Entry::Http {
            method,
            target,
            version,
            status,
            bytes,
            referer,
            user_agent,
            duration,
            ..
        } => {
            push_nginx(out, method.as_bytes(), MAX_WORD);
            out.push(b' ');
            push_nginx(out, target, MAX_TARGET);
            out.push(b' ');
            push_nginx(out, version.as_bytes(), MAX_WORD);
            out.extend_from_slice(b"\" ");
            push_u64(out, u64::from(status));
            out.push(b' ');
            push_u64(out, bytes);
            out.extend_from_slice(b" \"");
            push_nginx_or_dash(out, referer, MAX_HEADER);
            out.extend_from_slice(b"\" \"");
            push_nginx_or_dash(out, user_agent, MAX_HEADER);
            out.extend_from_slice(b"\" rt=");
            push_secs(out, duration);
        }
        Entry::File {
            path,
            outcome,
            bytes,
            duration,
            ..
        } => {
            out.extend_from_slice(b"FILE ");
            push_nginx(out, path, MAX_TARGET);
            out.extend_from_slice(b"\" ");
            push_nginx(out, outcome.as_bytes(), MAX_WORD);
            out.push(b' ');
            push_u64(out, bytes);
            out.extend_from_slice(b" rt=");
            push_secs(out, duration);
        }
        Entry::Session {
            service,
            bytes_in,
            bytes_out,
            duration,
            ..
        } => {
            out.extend_from_slice(b"SESSION ");
            push_nginx(out, service.as_bytes(), MAX_WORD);
            out.extend_from_slice(b"\" in=");
            push_u64(out, bytes_in);
            out.extend_from_slice(b" out=");
            push_u64(out, bytes_out);
            out.extend_from_slice(b" rt=");
            push_secs(out, duration);
        }
    }
}

/// The escaped length of one character in a JSON string.
fn json_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' => 2,
        c if (c as u32) < 0x20 || c == '\x7f' => 6,
        c => c.len_utf8(),
    }
}

fn push_json_char(out: &mut Vec<u8>, c: char) {
    match c {
        '"' => out.extend_from_slice(b"\\\""),
        '\\' => out.extend_from_slice(b"\\\\"),
        '\n' => out.extend_from_slice(b"\\n"),
        '\r' => out.extend_from_slice(b"\\r"),
        '\t' => out.extend_from_slice(b"\\t"),
        c if (c as u32) < 0x20 || c == '\x7f' => {
            let b = c as u8;
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX_LOWER[usize::from(b >> 4)],
                HEX_LOWER[usize::from(b & 15)],
            ]);
        }
        c => {
            let mut utf8 = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        }
    }
}

/// An invalid UTF-8 byte in a JSON string: the four characters `\xHH`,
/// the backslash escaped (five bytes).
const JSON_INVALID_LEN: usize = 5;

/// `s` as a JSON string, quotes included, its contents cut with `...` to at
/// most `budget` bytes.
fn push_json_str(out: &mut Vec<u8>, s: &[u8], budget: usize) {
    if plain(s, budget) {
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
        return;
    }
    let total: usize = s
        .utf8_chunks()
        .map(|c| {
            c.valid().chars().map(json_char_len).sum::<usize>()
                + c.invalid().len() * JSON_INVALID_LEN
        })
        .sum();
    let limit = if total <= budget { total } else { budget - 3 };
    let mut used = 0;
    out.push(b'"');
    'all: for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            used += json_char_len(c);
            if used > limit {
                out.extend_from_slice(b"...");
                break 'all;
            }
            push_json_char(out, c);
        }
        for &b in chunk.invalid() {
            used += JSON_INVALID_LEN;
            if used > limit {
                out.extend_from_slice(b"...");
                break 'all;
            }
            out.extend_from_slice(&[
                b'\\',
                b'\\',
                b'x',
                HEX_UPPER[usize::from(b >> 4)],
                HEX_UPPER[usize::from(b & 15)],
            ]);
        }
    }
    out.push(b'"');
}

fn push_json_opt(out: &mut Vec<u8>, s: Option<&str>, budget: usize) {
    match s {
        Some(s) => push_json_str(out, s.as_bytes(), budget),
        None => out.extend_from_slice(b"null"),
    }
}

fn json(out: &mut Vec<u8>, entry: &Entry<'_>, stamp: &Stamp) {
    out.extend_from_slice(b"{\"time\":\"");
    out.extend_from_slice(&stamp.iso);
    out.extend_from_slice(match entry {
        Entry::Http { .. } => b"\",\"kind\":\"http\",\"client\":\"",
        Entry::File { .. } => b"\",\"kind\":\"file\",\"client\":\"",
        Entry::Session { .. } => b"\",\"kind\":\"session\",\"client\":\"",
    });
    push_ip(out, client(entry));
    out.push(b'"');
    match *entry {
        Entry::Http {
            method,
            target,
            version,
            status,
            bytes,
            referer,
            user_agent,
            duration,
            ..
        } => {
            out.extend_from_slice(b",\"method\":");
            push_json_str(out, method.as_bytes(), MAX_WORD);
            out.extend_from_slice(b",\"target\":");
            push_json_str(out, target, MAX_TARGET);
            out.extend_from_slice(b",\"version\":");
            push_json_str(out, version.as_bytes(), MAX_WORD);
            out.extend_from_slice(b",\"status\":");
            push_u64(out, u64::from(status));
            out.extend_from_slice(b",\"bytes\":");
            push_u64(out, bytes);
            out.extend_from_slice(b",\"referer\":");
            push_json_opt(out, referer, MAX_HEADER);
            out.extend_from_slice(b",\"user_agent\":");
            push_json_opt(out, user_agent, MAX_HEADER);
            out.extend_from_slice(b",\"duration\":");
            push_secs(out, duration);
        }
        Entry::File {
            path,
            outcome,
            bytes,
            duration,
            ..
        } => {
            out.extend_from_slice(b",\"path\":");
            push_json_str(out, path, MAX_TARGET);
            out.extend_from_slice(b",\"outcome\":");
            push_json_str(out, outcome.as_bytes(), MAX_WORD);
            out.extend_from_slice(b",\"bytes\":");
            push_u64(out, bytes);
            out.extend_from_slice(b",\"duration\":");
            push_secs(out, duration);
        }
        Entry::Session {
            service,
            bytes_in,
            bytes_out,
            duration,
            ..
        } => {
            out.extend_from_slice(b",\"service\":");
            push_json_str(out, service.as_bytes(), MAX_WORD);
            out.extend_from_slice(b",\"bytes_in\":");
            push_u64(out, bytes_in);
            out.extend_from_slice(b",\"bytes_out\":");
            push_u64(out, bytes_out);
            out.extend_from_slice(b",\"duration\":");
            push_secs(out, duration);
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    use std::sync::Mutex;
    use tracing_subscriber::fmt::MakeWriter;

    /// 2026-12-04T02:45:07Z.
    const T: u64 = 1_796_352_307;

    fn client() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    fn line(format: Format, entry: &Entry<'_>, secs: u64) -> String {
        let mut out = Vec::new();
        format_entry(&mut out, format, entry, &stamp(secs));
        assert!(out.len() <= MAX_LINE, "a line of {} bytes", out.len());
        String::from_utf8(out).expect("lines are UTF-8")
    }

    fn http<'a>(target: &'a [u8], referer: Option<&'a str>, ua: Option<&'a str>) -> Entry<'a> {
        Entry::Http {
            client: client(),
            method: "GET",
            target,
            version: "HTTP/1.1",
            status: 200,
            bytes: 5120,
            referer,
            user_agent: ua,
            duration: Duration::from_nanos(123_456),
        }
    }

    fn file_entry(path: &[u8]) -> Entry<'_> {
        Entry::File {
            client: client(),
            path,
            outcome: "served",
            bytes: 5120,
            duration: Duration::from_millis(1),
        }
    }

    fn session() -> Entry<'static> {
        Entry::Session {
            client: "[::ffff:10.1.2.3]:9".parse().unwrap(),
            service: "echo",
            bytes_in: 12,
            bytes_out: 34,
            duration: Duration::from_millis(1500),
        }
    }

    #[test]
    fn combined_lines() {
        assert_eq!(
            line(
                Format::Combined,
                &http(b"/a?b", None, Some("curl/8.5.0")),
                T
            ),
            "127.0.0.1 - - [04/Dec/2026:02:45:07 +0000] \"GET /a?b HTTP/1.1\" 200 5120 \"-\" \"curl/8.5.0\" rt=0.000123\n"
        );
        assert_eq!(
            line(
                Format::Combined,
                &http(b"/", Some("http://x/"), Some("")),
                T
            ),
            "127.0.0.1 - - [04/Dec/2026:02:45:07 +0000] \"GET / HTTP/1.1\" 200 5120 \"http://x/\" \"\" rt=0.000123\n"
        );
        assert_eq!(
            line(Format::Combined, &file_entry(b"/etc/motd"), T),
            "127.0.0.1 - - [04/Dec/2026:02:45:07 +0000] \"FILE /etc/motd\" served 5120 rt=0.001000\n"
        );
        assert_eq!(
            line(Format::Combined, &session(), T),
            "10.1.2.3 - - [04/Dec/2026:02:45:07 +0000] \"SESSION echo\" in=12 out=34 rt=1.500000\n"
        );
        let v6 = Entry::Session {
            client: "[2001:db8::1]:9".parse().unwrap(),
            service: "echo",
            bytes_in: 0,
            bytes_out: u64::MAX,
            duration: Duration::ZERO,
        };
        assert_eq!(
            line(Format::Combined, &v6, T),
            "2001:db8::1 - - [04/Dec/2026:02:45:07 +0000] \"SESSION echo\" in=0 out=18446744073709551615 rt=0.000000\n"
        );
    }

    #[test]
    fn json_lines() {
        let cases = [
            (
                http(b"/a?b", None, Some("curl/8.5.0")),
                r#"{"time":"2026-12-04T02:45:07+00:00","kind":"http","client":"127.0.0.1","method":"GET","target":"/a?b","version":"HTTP/1.1","status":200,"bytes":5120,"referer":null,"user_agent":"curl/8.5.0","duration":0.000123}"#,
            ),
            (
                file_entry(b"/etc/motd"),
                r#"{"time":"2026-12-04T02:45:07+00:00","kind":"file","client":"127.0.0.1","path":"/etc/motd","outcome":"served","bytes":5120,"duration":0.001000}"#,
            ),
            (
                session(),
                r#"{"time":"2026-12-04T02:45:07+00:00","kind":"session","client":"10.1.2.3","service":"echo","bytes_in":12,"bytes_out":34,"duration":1.500000}"#,
            ),
        ];
        for (entry, want) in cases {
            let got = line(Format::Json, &entry, T);
            assert_eq!(got, format!("{want}\n"));
            let v: serde_json::Value = serde_json::from_str(&got).unwrap();
            assert_eq!(v["time"], "2026-12-04T02:45:07+00:00");
        }
        let v: serde_json::Value =
            serde_json::from_str(&line(Format::Json, &http(b"/", None, None), T)).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration"], 0.000123);
        assert!(v["user_agent"].is_null());
    }

    #[test]
    fn combined_escapes_as_nginx() {
        let target = b"/q\"\\\x01\t\x7f\xff\xc3\xa9 ~";
        assert_eq!(
            line(
                Format::Combined,
                &http(target, Some("a\"b"), Some("x\ny\\")),
                T
            ),
            "127.0.0.1 - - [04/Dec/2026:02:45:07 +0000] \"GET /q\\x22\\x5C\\x01\\x09\\x7F\\xFF\\xC3\\xA9 ~ HTTP/1.1\" 200 5120 \"a\\x22b\" \"x\\x0Ay\\x5C\" rt=0.000123\n"
        );
        assert_eq!(
            line(Format::Combined, &file_entry(b"a b\x00\"c"), T),
            "127.0.0.1 - - [04/Dec/2026:02:45:07 +0000] \"FILE a b\\x00\\x22c\" served 5120 rt=0.001000\n"
        );
    }

    #[test]
    fn json_escapes_and_parses() {
        let target = b"/q\"\\\x01\t\n\r\x7f\xff\xc3\xa9 ~";
        let got = line(
            Format::Json,
            &http(target, Some("\u{1f600}"), Some("x\x1fy")),
            T,
        );
        assert_eq!(
            got,
            "{\"time\":\"2026-12-04T02:45:07+00:00\",\"kind\":\"http\",\"client\":\"127.0.0.1\",\"method\":\"GET\",\
             \"target\":\"/q\\\"\\\\\\u0001\\t\\n\\r\\u007f\\\\xFF\u{e9} ~\",\"version\":\"HTTP/1.1\",\"status\":200,\
             \"bytes\":5120,\"referer\":\"\u{1f600}\",\"user_agent\":\"x\\u001fy\",\"duration\":0.000123}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(v["target"], "/q\"\\\u{1}\t\n\r\u{7f}\\xFF\u{e9} ~");
        assert_eq!(v["referer"], "\u{1f600}");
        assert_eq!(v["user_agent"], "x\u{1f}y");
        let got = line(Format::Json, &file_entry(b"\xfe\"\x00"), T);
        let v: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(v["path"], "\\xFE\"\u{0}");
    }

    #[test]
    fn long_fields_are_cut_to_one_bounded_line() {
        // Worst case: every byte escaped four times (combined) or six (JSON).
        let target = vec![1u8; 100_000];
        let header = "\u{1}".repeat(100_000);
        let word = "\u{1}".repeat(1000);
        let entry = Entry::Http {
            client: "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:1"
                .parse()
                .unwrap(),
            method: &word,
            target: &target,
            version: &word,
            status: u16::MAX,
            bytes: u64::MAX,
            referer: Some(&header),
            user_agent: Some(&header),
            duration: Duration::MAX,
        };
        let c = line(Format::Combined, &entry, u64::MAX);
        assert!(c.contains("\\x01\\x01...\" 65535"), "{}", &c[..200]);
        assert_eq!(c.matches("...").count(), 5);
        let j = line(Format::Json, &entry, u64::MAX);
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        let t = v["target"].as_str().unwrap();
        assert!(t.ends_with("\u{1}..."));
        assert_eq!(t.len(), (MAX_TARGET - 3) / 6 + 3);
        assert_eq!(v["time"], "9999-12-31T23:59:59+00:00");
        // A cut never splits a character.
        let wide = "é".repeat(20_000);
        let entry = file_entry(wide.as_bytes());
        let v: serde_json::Value = serde_json::from_str(&line(Format::Json, &entry, T)).unwrap();
        assert_eq!(
            v["path"].as_str().unwrap(),
            format!("{}...", "é".repeat((MAX_TARGET - 3) / 2))
        );
        // A field that fits exactly is not cut.
        let fits = "a".repeat(MAX_TARGET);
        let c = line(Format::Combined, &file_entry(fits.as_bytes()), T);
        assert!(c.contains(&format!("FILE {fits}\"")));
    }

    #[test]
    fn clock() {
        let s = stamp(T);
        assert_eq!(&s.local, b"04/Dec/2026:02:45:07 +0000");
        assert_eq!(&s.iso, b"2026-12-04T02:45:07+00:00");
        assert_eq!(&stamp(1_709_251_199).local, b"29/Feb/2024:23:59:59 +0000");
        assert_eq!(&stamp(951_868_800).iso, b"2000-03-01T00:00:00+00:00");
        assert_eq!(&stamp(0).local, b"01/Jan/1970:00:00:00 +0000");
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(5)), 0);
        // Every day from 1970 to 2100 agrees with httpdate.
        let mut secs = 0u64;
        while secs < 4_102_444_800 {
            let s = stamp(secs);
            let http = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
            // "Fri, 04 Dec 2026 02:45:07 GMT" against "04/Dec/2026:02:45:07 +0000".
            let want = format!(
                "{}/{}/{}:{} +0000",
                &http[5..7],
                &http[8..11],
                &http[12..16],
                &http[17..25]
            );
            assert_eq!(std::str::from_utf8(&s.local).unwrap(), want, "{secs}");
            secs += 86_400 - 7;
        }
        let mut clock = Clock::new();
        let at = UNIX_EPOCH + Duration::from_millis(T * 1000 + 999);
        assert_eq!(&clock.stamp(at).iso, b"2026-12-04T02:45:07+00:00");
        let later = at + Duration::from_millis(1);
        assert_eq!(&clock.stamp(later).iso, b"2026-12-04T02:45:08+00:00");
    }

    /// What tracing wrote, for counting WARNs.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
        fn count(&self, needle: &str) -> usize {
            self.text().matches(needle).count()
        }
        /// Wait (up to 10 s) for `needle` to appear.
        fn wait_for(&self, needle: &str) -> bool {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if self.count(needle) > 0 {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            false
        }
    }

    fn capture() -> (Captured, tracing::Dispatch) {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        (captured, tracing::Dispatch::new(subscriber))
    }

    /// A line with its time checked for shape and replaced by `[T]`.
    fn untimed(line: &str) -> String {
        let open = line.find('[').expect("a time");
        let close = open + 27;
        assert_eq!(&line[close..close + 1], "]", "{line}");
        let t = &line.as_bytes()[open + 1..close];
        assert_eq!(&t[2..3], b"/");
        assert_eq!(&t[20..], b" +0000");
        format!("{}[T]{}", &line[..open], &line[close + 1..])
    }

    fn read_lines(path: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(untimed)
            .collect()
    }

    fn numbered(prefix: &str, i: usize) -> String {
        format!("{prefix}/{i}")
    }

    #[test]
    fn two_threads_each_in_order_all_present() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(Target::File(path.clone()), Format::Combined).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640, "{mode:o}");
        const N: usize = 5000;
        let threads: Vec<_> = ["/a", "/b"]
            .into_iter()
            .map(|prefix| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..N {
                        let target = numbered(prefix, i);
                        log.log(&http(target.as_bytes(), None, None));
                    }
                    // "/a" hands its last lines over itself; "/b" leaves
                    // them to the end of its thread.
                    if prefix == "/a" {
                        log.flush();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(log.sync(Duration::from_secs(10)));
        assert_eq!((log.written(), log.dropped()), (2 * N as u64, 0));
        assert_eq!(log.queued_bytes(), 0);
        let lines = read_lines(&path);
        assert_eq!(lines.len(), 2 * N);
        for prefix in ["/a", "/b"] {
            let got: Vec<&String> = lines
                .iter()
                .filter(|l| l.contains(&format!("\"GET {prefix}/")))
                .collect();
            let want: Vec<String> = (0..N)
                .map(|i| {
                    format!(
                        "127.0.0.1 - - [T] \"GET {} HTTP/1.1\" 200 5120 \"-\" \"-\" rt=0.000123",
                        numbered(prefix, i)
                    )
                })
                .collect();
            assert_eq!(got, want.iter().collect::<Vec<_>>(), "{prefix}");
        }
    }

    #[test]
    fn reopen_after_rename_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let rotated = dir.path().join("access.log.1");
        let log = AccessLog::open(Target::File(path.clone()), Format::Combined).unwrap();
        for i in 0..3 {
            log.log(&file_entry(numbered("/old", i).as_bytes()));
        }
        log.flush();
        // logrotate: rename, then SIGUSR1.
        std::fs::rename(&path, &rotated).unwrap();
        log.reopen();
        for i in 0..2 {
            log.log(&file_entry(numbered("/new", i).as_bytes()));
        }
        assert!(log.sync(Duration::from_secs(10)));
        let want = |name: &str, n: usize| -> Vec<String> {
            (0..n)
                .map(|i| format!("127.0.0.1 - - [T] \"FILE {name}/{i}\" served 5120 rt=0.001000"))
                .collect()
        };
        assert_eq!(read_lines(&rotated), want("/old", 3));
        assert_eq!(read_lines(&path), want("/new", 2));
        assert_eq!(log.written(), 5);
    }

    #[test]
    fn stalled_disk_drops_and_counts_with_one_warn_and_bounded_memory() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // A reader that reads nothing until told: the writer blocks once the
        // pipe holds 64 KiB, as on a disk that stalls.
        let mut reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let (captured, dispatch) = capture();
        let log = tracing::dispatcher::with_default(&dispatch, || {
            AccessLog::open(Target::File(fifo.clone()), Format::Combined).unwrap()
        });
        const N: usize = 60_000;
        let (done, finished) = mpsc::channel();
        let logger = {
            let log = log.clone();
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                let _guard = tracing::dispatcher::set_default(&dispatch);
                let mut slowest = Duration::ZERO;
                let started = Instant::now();
                for i in 0..N {
                    let target = numbered("/s", i);
                    let t = Instant::now();
                    log.log(&http(target.as_bytes(), None, None));
                    slowest = slowest.max(t.elapsed());
                }
                let t = Instant::now();
                log.flush();
                slowest = slowest.max(t.elapsed());
                let _ = done.send((slowest, started.elapsed()));
            })
        };
        let (slowest, took) = finished
            .recv_timeout(Duration::from_secs(60))
            .expect("log() returned while the writer was blocked");
        // Its end drops what it still buffered: counted too.
        logger.join().unwrap();
        assert!(
            slowest < Duration::from_secs(1),
            "one log() took {slowest:?}"
        );
        eprintln!("{N} lines logged in {took:?}, the slowest call {slowest:?}");
        let dropped = log.dropped();
        assert!(dropped > 0 && dropped < N as u64, "{dropped} dropped");
        // At most what the pipe took (64 KiB) reached the end of a write.
        assert!(log.written() < 1000, "{} written", log.written());
        // The queue is full, and holds no more than it may: QUEUE buffers,
        // and one in the blocked write.
        let queued = log.queued_bytes();
        assert!(
            queued >= (QUEUE * BUFFER) as u64 && queued <= ((QUEUE + 1) * BUFFER) as u64,
            "{queued} bytes queued"
        );
        // This thread's buffer, too, fills to BATCH, takes one line more at
        // most, and never grows: then its lines are dropped.
        let before = log.dropped();
        let mut mine = 0u64;
        while log.dropped() == before {
            log.log(&http(b"/main", None, None));
            mine += 1;
            assert!(mine < 10_000, "no line of this thread was dropped");
        }
        LOCAL.with(|locals| {
            let locals = locals.borrow();
            let local = locals.logs.iter().find(|l| l.id == log.shared.id).unwrap();
            assert_eq!(local.buf.capacity(), BUFFER);
            assert!((BATCH..BUFFER).contains(&local.buf.len()));
        });
        let dropped = log.dropped();
        assert_eq!(captured.count(DROP_WARNING), 1, "{}", captured.text());
        assert_eq!(captured.count(" WARN "), 1);

        // The disk comes back: everything kept is written, in order.
        rustix::fs::fcntl_setfl(&reader, rustix::fs::OFlags::empty()).unwrap();
        let drainer = std::thread::spawn(move || {
            let mut all = Vec::new();
            reader.read_to_end(&mut all).unwrap();
            all
        });
        assert!(log.sync(Duration::from_secs(30)));
        assert_eq!(log.written() + log.dropped(), N as u64 + mine);
        assert_eq!(log.dropped(), dropped);
        assert!(
            captured.wait_for(&format!(
                "access log: caught up; {dropped} lines dropped so far"
            )),
            "{}",
            captured.text()
        );
        let written = log.written();
        assert_eq!(log.queued_bytes(), 0);
        drop(log); // the writer ends and closes the FIFO: end of file
        let all = String::from_utf8(drainer.join().unwrap()).unwrap();
        let main_line = "127.0.0.1 - - [T] \"GET /main HTTP/1.1\" 200 5120 \"-\" \"-\" rt=0.000123";
        let ours = all.lines().filter(|l| untimed(l) == main_line).count() as u64;
        assert_eq!(
            ours,
            mine - 1,
            "all of this thread's lines but the dropped one"
        );
        let seqs: Vec<usize> = all
            .lines()
            .filter(|l| untimed(l) != main_line)
            .map(|l| {
                let l = untimed(l);
                let rest = l
                    .strip_prefix("127.0.0.1 - - [T] \"GET /s/")
                    .expect("a whole line");
                let (n, tail) = rest.split_once(' ').unwrap();
                assert_eq!(tail, "HTTP/1.1\" 200 5120 \"-\" \"-\" rt=0.000123");
                n.parse().unwrap()
            })
            .collect();
        assert_eq!(seqs.len() as u64 + ours, written);
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order");
        assert_eq!(seqs[0], 0, "the first lines are kept, the later dropped");
        assert_eq!(captured.count(" WARN "), 1);
    }

    #[test]
    fn write_errors_count_log_once_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let good = dir.path().join("good.log");
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        let (captured, dispatch) = capture();
        let log = tracing::dispatcher::with_default(&dispatch, || {
            AccessLog::open(Target::File(path.clone()), Format::Json).unwrap()
        });
        for _ in 0..3 {
            log.log(&session());
        }
        assert!(log.sync(Duration::from_secs(10)));
        for _ in 0..2 {
            log.log(&session());
        }
        assert!(log.sync(Duration::from_secs(10)));
        assert_eq!((log.written(), log.dropped()), (0, 5));
        let failed = format!("access log: writing {} failed:", path.display());
        assert_eq!(captured.count(&failed), 1, "{}", captured.text());
        assert_eq!(captured.count(" ERROR "), 1);
        // The disk has room again (here: the path now names a file).
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&good, &path).unwrap();
        log.reopen();
        log.log(&session());
        assert!(log.sync(Duration::from_secs(10)));
        assert_eq!((log.written(), log.dropped()), (1, 5));
        assert!(captured.wait_for(&format!("access log: writing {} again", path.display())));
        let text = std::fs::read_to_string(&good).unwrap();
        assert!(text.ends_with(
            "\"service\":\"echo\",\"bytes_in\":12,\"bytes_out\":34,\"duration\":1.500000}\n"
        ));
        assert_eq!(text.lines().count(), 1);
        assert_eq!(captured.count(" ERROR "), 1);
    }

    #[test]
    fn a_reopen_that_fails_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("logs");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("access.log");
        let rotated = dir.path().join("access.log.1");
        let (captured, dispatch) = capture();
        let log = tracing::dispatcher::with_default(&dispatch, || {
            AccessLog::open(Target::File(path.clone()), Format::Combined).unwrap()
        });
        std::fs::rename(&path, &rotated).unwrap();
        std::fs::remove_dir(&sub).unwrap();
        log.reopen();
        log.log(&session());
        assert!(log.sync(Duration::from_secs(10)));
        assert_eq!(
            read_lines(&rotated),
            ["10.1.2.3 - - [T] \"SESSION echo\" in=12 out=34 rt=1.500000"]
        );
        assert!(captured.wait_for("still writing to the file it had"));
    }

    #[test]
    fn the_last_clone_going_writes_what_its_thread_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(Target::File(path.clone()), Format::Combined).unwrap();
        let other = log.clone();
        log.log(&session());
        drop(log);
        other.log(&session());
        drop(other); // no flush, no sync: the writer writes and ends
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&path).unwrap().lines().count() < 2
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            read_lines(&path),
            ["10.1.2.3 - - [T] \"SESSION echo\" in=12 out=34 rt=1.500000"; 2]
        );
    }

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

    const CHILD: &str = "RINGLET_ACCESS_STDOUT_CHILD";

    /// Run by `stdout_is_fd_1` in a child process: logs one line to stdout.
    #[test]
    fn stdout_child() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let log = AccessLog::open(Target::Stdout, Format::Combined).unwrap();
        log.log(&session());
        assert!(log.sync(Duration::from_secs(10)));
        assert_eq!(log.written(), 1);
    }

    #[test]
    fn stdout_is_fd_1() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "access::tests::stdout_child", "--nocapture"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let ours: Vec<String> = stdout
            .lines()
            .filter_map(|l| l.find("10.1.2.3 - - [").map(|i| untimed(&l[i..])))
            .collect();
        assert_eq!(
            ours,
            ["10.1.2.3 - - [T] \"SESSION echo\" in=12 out=34 rt=1.500000"]
        );
    }
}
