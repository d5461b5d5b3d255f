//! Shared test helpers: run the real `ringlet` binary on ephemeral loopback
//! ports, talk to it with plain blocking sockets, read its memory use.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest any single socket operation in a test may wait: a hang fails the test.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A `ringlet serve` process; killed when dropped.
pub struct Ringlet {
    pub child: Child,
    pub echo: Option<SocketAddr>,
    pub file: Option<SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Ringlet {
    /// Start `ringlet serve` with both services on ephemeral ports plus `args`
    /// (later flags win), and wait until every listener is logged as ready.
    pub fn serve(backend: &str, args: &[&str]) -> Ringlet {
        Ringlet::serve_with(backend, args, |_| {})
    }

    /// As [`Ringlet::serve`], with a hook to adjust the command first.
    pub fn serve_with(backend: &str, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Ringlet {
        Ringlet::serve_program(&bin(), backend, args, adjust)
    }

    /// As [`Ringlet::serve_with`], running the binary at `program` (a copy
    /// a test may replace).
    pub fn serve_program(
        program: &std::path::Path,
        backend: &str,
        args: &[&str],
        adjust: impl FnOnce(&mut Command),
    ) -> Ringlet {
        let mut cmd = Command::new(program);
        cmd.arg("serve")
            .args(["--backend", backend])
            .args(["--echo", "127.0.0.1:0", "--file", "127.0.0.1:0"])
            .args(args)
            .env("RINGLET_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        adjust(&mut cmd);
        let mut child = cmd.spawn().expect("spawn ringlet");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line.clone());
                sink.lock().unwrap().push(line);
            }
        });
        let want_echo = !has_off(args, "--echo");
        let want_file = !has_off(args, "--file");
        let (mut echo, mut file) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while (want_echo && echo.is_none()) || (want_file && file.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => panic!(
                    "ringlet did not become ready; status {:?}; log:\n{}",
                    child.try_wait(),
                    log.lock().unwrap().join("\n")
                ),
            };
            if let Some(addr) = listening_addr(&line, "echo") {
                echo = Some(addr);
            }
            if let Some(addr) = listening_addr(&line, "file") {
                file = Some(addr);
            }
        }
        Ringlet {
            child,
            echo,
            file,
            log,
        }
    }

    pub fn echo(&self) -> SocketAddr {
        self.echo.expect("echo service is off")
    }

    pub fn file(&self) -> SocketAddr {
        self.file.expect("file service is off")
    }

    /// The HTTP service's address (started with `--http 127.0.0.1:0`).
    pub fn http(&self) -> SocketAddr {
        let line = self.wait_for_log(&["http listening on "]);
        listening_addr(&line, "http").unwrap_or_else(|| panic!("no address in {line:?}"))
    }

    /// The metrics listener's address (started with `--metrics
    /// 127.0.0.1:0`), from its "metrics on http://ADDR/metrics" line.
    pub fn metrics(&self) -> SocketAddr {
        let line = self.wait_for_log(&["metrics on http://"]);
        line.split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log line so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Wait (bounded) for a log line containing every one of `parts`.
    pub fn wait_for_log(&self, parts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self
                .log()
                .into_iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return line;
            }
            if Instant::now() > deadline {
                panic!(
                    "no log line with {parts:?}; log:\n{}",
                    self.log().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many log lines so far contain every one of `parts`.
    pub fn count_log(&self, parts: &[&str]) -> usize {
        self.log()
            .iter()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .count()
    }

    /// Wait (bounded) until at least `n` log lines contain every one of
    /// `parts`: a line an earlier request left cannot stand for a later one.
    pub fn wait_for_log_count(&self, parts: &[&str], n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.count_log(parts) < n {
            if Instant::now() > deadline {
                panic!(
                    "fewer than {n} log lines with {parts:?}; log:\n{}",
                    self.log().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send a signal and wait (bounded) for the exit status code.
    pub fn signal_and_wait(&mut self, signal: i32) -> Option<i32> {
        unsafe { libc::kill(self.child.id() as i32, signal) };
        self.wait_exit(Duration::from_secs(10))
    }

    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                panic!("ringlet did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Is the process still running?
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Ringlet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary under test: this build's, or `RINGLET_TEST_BIN` (to see a
/// test fail against an older build before its fix).
pub fn bin() -> std::path::PathBuf {
    std::env::var_os("RINGLET_TEST_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_ringlet").into())
}

fn has_off(args: &[&str], flag: &str) -> bool {
    args.windows(2).any(|w| w[0] == flag && w[1] == "off")
}

/// `... echo listening on 127.0.0.1:PORT (...` → the address.
fn listening_addr(line: &str, service: &str) -> Option<SocketAddr> {
    let marker = format!("{service} listening on ");
    let rest = &line[line.find(&marker)? + marker.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// Generate one `#[test]` per backend for each named `fn name(backend: &str)`:
/// `uring::name` and `epoll::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod uring {
            $( #[test] fn $name() { super::$name("uring") } )*
        }
        mod epoll {
            $( #[test] fn $name() { super::$name("epoll") } )*
        }
    };
}

/// Run `ringlet ARGS` to its end (killed, failing the test, if it runs
/// for 20 s: these invocations are all expected to exit by themselves).
pub fn ringlet(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ringlet");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ringlet {args:?} did not exit within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Connect with the test's timeouts set.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// How the server ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// A FIN: everything it meant to send was sent.
    Closed,
    /// A reset: it cut the connection (and the kernel may have dropped
    /// bytes that were still on their way).
    Reset,
}

/// Everything the server sends until it ends the connection, and how it
/// ended it. Any other read error fails the test.
pub fn read_to_end_or_reset(s: &mut TcpStream) -> (Vec<u8>, End) {
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, End::Closed),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, End::Reset),
            Err(e) => panic!("read failed after {} bytes: {e}", out.len()),
        }
    }
}

/// As [`read_to_end_or_reset`], from any reader of the connection (a
/// `BufReader` over it, say, with what it already buffered).
pub fn read_rest_or_reset(r: &mut impl Read) -> (Vec<u8>, End) {
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (out, End::Closed),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, End::Reset),
            Err(e) => panic!("read failed after {} bytes: {e}", out.len()),
        }
    }
}

/// Everything the server sends until it closes. A reset is not a close:
/// it fails the test (the kernel may have dropped the end of the answer).
pub fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    match read_to_end_or_reset(s) {
        (out, End::Closed) => out,
        (out, End::Reset) => panic!(
            "connection reset after {} bytes instead of closed",
            out.len()
        ),
    }
}

/// The article's file client: `echo -en 'PATH\0' | nc HOST PORT`.
pub fn fetch(addr: SocketAddr, path: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    let mut req = path.to_vec();
    req.push(0);
    s.write_all(&req).unwrap();
    let _ = s.shutdown(Shutdown::Write);
    read_to_close(&mut s)
}

/// Read exactly `n` bytes.
pub fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    s.read_exact(&mut out).unwrap();
    out
}

/// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Deterministic pseudo-random bytes (xorshift), for content checks.
/// Distinct seeds give distinct streams.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2).wrapping_add(1); // odd, never zero, one per seed
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Raise this process's soft descriptor limit to the hard one (the server
/// inherits it); returns the hard limit.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_max
}
