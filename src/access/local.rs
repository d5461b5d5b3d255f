//! The per-thread buffers: each thread that logs keeps, in a thread local,
//! one buffer per log (and the clock its lines are stamped by), and hands
//! a buffer to the writer's queue by a `try_send`: once it holds `BATCH`,
//! on a flush, when the thread ends, and when the last clone of the log
//! goes. A full queue leaves the buffer with its thread; a line that then
//! finds the buffer full too is dropped and counted here (one WARN until
//! the writer has caught up). Nothing here blocks or allocates per line.

use std::cell::RefCell;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::TrySendError;
use std::sync::{Arc, Weak};

use tracing::warn;

use super::Shared;
use super::clock::Clock;
use super::writer::Msg;

/// The WARN of the first dropped line.
const DROP_WARNING: &str = "access log: the disk cannot keep up: lines are being dropped (see ringlet_access_log_dropped_total)";

impl Shared {
    /// Queue `local`'s buffer; true if it went (or had nothing), false if
    /// the queue is full and the buffer stays.
    pub(super) fn hand_off(&self, local: &mut Local) -> bool {
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

    pub(super) fn dropped(&self, lines: u64) {
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
pub(super) struct Locals {
    pub(super) clock: Clock,
    pub(super) logs: Vec<Local>,
}

/// One thread's buffer for one log.
pub(super) struct Local {
    pub(super) id: u64,
    log: Weak<Shared>,
    pub(super) buf: Vec<u8>,
    pub(super) lines: u64,
}

thread_local! {
    pub(super) static LOCAL: RefCell<Locals> = const {
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
pub(super) fn local<'l>(logs: &'l mut Vec<Local>, shared: &Arc<Shared>) -> &'l mut Local {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::test_support::{capture, http, numbered, read_lines, session, untimed};
    use crate::access::{AccessLog, BATCH, BUFFER, Format, QUEUE, Target};
    use std::fs::OpenOptions;
    use std::io::Read;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

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
}
