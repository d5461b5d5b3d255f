//! The writer thread ("ringlet-access"): takes the buffers off the bounded
//! queue in order and appends each with one `write`; reopens the file in
//! order with them (or before the next buffer, when a reopen found the
//! queue full), keeping the old file if that fails; counts a failed
//! write's lines as dropped and logs it once; and, each time the queue
//! runs empty, re-arms the WARN of the next drop. Here too is what it
//! shares with the loggers: the queue's messages and the counters. The
//! only code that opens or writes the log's file; it never formats a line.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;

use tracing::{error, info, warn};

use super::Target;

/// Shared by the loggers and the writer.
#[derive(Default)]
pub(super) struct State {
    pub(super) dropped: AtomicU64,
    pub(super) written: AtomicU64,
    /// Capacity of the buffers queued or being written.
    pub(super) queued: AtomicU64,
    /// Set by the first drop (its WARN), cleared by the writer once the
    /// queue is empty again.
    pub(super) dropping: AtomicBool,
    /// A reopen that found the queue full.
    pub(super) reopen: AtomicBool,
}

pub(super) enum Msg {
    Lines { data: Vec<u8>, lines: u64 },
    Reopen,
    Sync(mpsc::Sender<()>),
}

/// Start the writer thread ("ringlet-access") on `rx`, writing to `file`
/// (opened from `target`). It logs through the tracing dispatcher current
/// here.
pub(super) fn start(
    rx: Receiver<Msg>,
    state: Arc<State>,
    target: Target,
    file: File,
) -> io::Result<()> {
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    let writer = Writer {
        rx,
        state,
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
    Ok(())
}

/// Open `target` to append (created 0640), or duplicate file descriptor 1.
pub(super) fn open_target(target: &Target) -> io::Result<File> {
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

#[cfg(test)]
mod tests {
    use crate::access::test_support::{
        capture, file_entry, numbered, read_lines, session, untimed,
    };
    use crate::access::{AccessLog, Format, Target};
    use std::time::Duration;

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
        // Re-run as a child: fd 1 must not be this process's (libtest's).
        let exe = std::env::current_exe().unwrap();
        if exe
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("ld-"))
        {
            // Run by an explicit dynamic loader (the kernel matrix runs the
            // test executables so in a Debian 11 userland): this binary
            // cannot be re-run by its own path there. The host runs it.
            eprintln!("stdout_is_fd_1: skipped: run through {}", exe.display());
            return;
        }
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "access::writer::tests::stdout_child",
                "--nocapture",
            ])
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
