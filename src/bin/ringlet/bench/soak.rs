//! `ringlet bench soak`: a long, mixed, hostile workload where every byte is
//! still checked.
//!
//! N connection slots run until the deadline, each opening session after
//! session: echo sessions (lines of random length, every byte compared),
//! framed file sessions (several requests, CRC-32 against the local copy),
//! given a plain-mode server, plain file sessions in which the client
//! misbehaves harmlessly — a stray byte sent late, or a second request
//! pipelined — and must still get the whole file, then a FIN, and given an
//! HTTP server, keep-alive sessions of several `GET`s whose bodies are
//! checked the same way (the answer's head and body read by
//! [`super::http`]). Faults are thrown in on purpose — resets in the middle
//! of an echo or a file, and slow readers — and counted apart: an error that
//! was not injected is a failure of the server, and so is a whole-file
//! answer cut short.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::wire::{self, Body, connect, read_body};
use super::{Threads, run_connections};

/// What `ringlet bench soak` runs.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    pub echo: SocketAddr,
    /// A file server in framed mode (`--file-header`).
    pub file: SocketAddr,
    /// A file server in plain mode serving the same file, if any.
    pub plain: Option<SocketAddr>,
    /// An HTTP server (`serve --http`) serving the same file, if any.
    pub http: Option<SocketAddr>,
    pub path: String,
    /// The local copy of the served file.
    pub expect: PathBuf,
    pub conns: usize,
    pub duration: Duration,
    pub threads: Threads,
    /// One session in this many resets its connection on purpose.
    pub reset_every: u64,
    /// One session in this many reads slowly on purpose.
    pub slow_every: u64,
}

/// Soak counters.
#[derive(Debug, Default)]
struct Counters {
    sessions: AtomicU64,
    echo_bytes: AtomicU64,
    file_bytes: AtomicU64,
    injected_resets: AtomicU64,
    slow_sessions: AtomicU64,
    plain_sessions: AtomicU64,
    late_bytes: AtomicU64,
    pipelined: AtomicU64,
    truncated: AtomicU64,
    http_sessions: AtomicU64,
    http_requests: AtomicU64,
}

/// The soak's result.
#[derive(Debug, Serialize)]
pub struct SoakOutcome {
    pub seconds: f64,
    pub sessions: u64,
    /// Bytes compared against what they should be (echo + file).
    pub bytes_verified: u64,
    pub echo_bytes: u64,
    pub file_bytes: u64,
    pub injected_resets: u64,
    pub slow_sessions: u64,
    /// Plain-mode sessions, and how many sent a stray byte late or a second
    /// request pipelined.
    pub plain_sessions: u64,
    pub late_stray_bytes: u64,
    pub pipelined_requests: u64,
    /// HTTP sessions, and the `GET`s they made (answers checked whole).
    pub http_sessions: u64,
    pub http_requests: u64,
    /// Whole-file answers cut short (a reset, or a FIN too early): should be 0.
    pub truncated_answers: u64,
    /// Errors that were not injected: should be 0.
    pub unexpected_errors: u64,
    pub error_samples: Vec<String>,
}

/// Run the soak.
pub fn run(cfg: &SoakConfig) -> anyhow::Result<SoakOutcome> {
    let data =
        std::fs::read(&cfg.expect).with_context(|| format!("reading {}", cfg.expect.display()))?;
    let want = (data.len() as u64, crc32fast::hash(&data));
    let counters = Arc::new(Counters::default());
    let c = cfg.clone();
    let k = counters.clone();
    let started = Instant::now();
    let totals = run_connections(
        cfg.conns,
        &cfg.threads,
        cfg.duration,
        false,
        move |slot, totals, deadline| {
            let (c, k) = (c.clone(), k.clone());
            async move {
                let mut rng =
                    Rng(0x9e37_79b9_7f4a_7c15
                        ^ (slot as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
                while Instant::now() < deadline {
                    let n = k.sessions.fetch_add(1, Ordering::Relaxed) + 1;
                    let reset = n % c.reset_every == 0;
                    let slow = !reset && n % c.slow_every == 0;
                    if slow {
                        k.slow_sessions.fetch_add(1, Ordering::Relaxed);
                    }
                    let s = Session {
                        c: &c,
                        k: &k,
                        want,
                        reset,
                        slow,
                    };
                    let result = match (rng.next() % 4, c.plain, c.http) {
                        (0, _, _) => echo_session(&s, &mut rng).await,
                        (1, Some(plain), _) => plain_session(plain, &s, &mut rng).await,
                        (2, _, Some(http)) => http_session(http, &s, &mut rng).await,
                        _ => file_session(&s, &mut rng).await,
                    };
                    match result {
                        Ok(()) if reset => {
                            k.injected_resets.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(()) => totals.add(1, 0),
                        Err(e) => totals.error(&e.context(format!("slot {slot}, session {n}"))),
                    }
                }
                Ok(())
            }
        },
    )?;
    let outcome = totals.outcome("soak", serde_json::Value::Null);
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (echo_bytes, file_bytes) = (get(&counters.echo_bytes), get(&counters.file_bytes));
    Ok(SoakOutcome {
        seconds: started.elapsed().as_secs_f64(),
        sessions: get(&counters.sessions),
        bytes_verified: echo_bytes + file_bytes,
        echo_bytes,
        file_bytes,
        injected_resets: get(&counters.injected_resets),
        slow_sessions: get(&counters.slow_sessions),
        plain_sessions: get(&counters.plain_sessions),
        late_stray_bytes: get(&counters.late_bytes),
        pipelined_requests: get(&counters.pipelined),
        http_sessions: get(&counters.http_sessions),
        http_requests: get(&counters.http_requests),
        truncated_answers: get(&counters.truncated),
        unexpected_errors: outcome.errors,
        error_samples: outcome.error_samples,
    })
}

/// A small xorshift generator: each slot its own stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What one session is given: the run's config and counters, the file
/// every whole answer must be, and the faults it injects.
struct Session<'a> {
    c: &'a SoakConfig,
    k: &'a Counters,
    /// The file's length and CRC-32.
    want: (u64, u32),
    /// Reset the connection partway through.
    reset: bool,
    /// Read slowly: a pause after every read of a file's bytes.
    slow: bool,
}

impl Session<'_> {
    /// The pause after every read, in a slow session.
    fn pause(&self) -> Option<Duration> {
        self.slow.then_some(Duration::from_millis(2))
    }

    /// A whole-file answer (its length and CRC-32) checked against the
    /// file; `what` names it in errors. One cut short counts as truncated.
    fn check_whole(&self, what: &str, (got, crc): (u64, u32)) -> anyhow::Result<()> {
        let (size, want_crc) = self.want;
        if got != size {
            self.k.truncated.fetch_add(1, Ordering::Relaxed);
            bail!("{what} of {got} bytes, the file has {size}");
        }
        if crc != want_crc {
            bail!("{what} differs from the local copy");
        }
        self.k.file_bytes.fetch_add(size, Ordering::Relaxed);
        Ok(())
    }
}

/// Close with RST: the server sees a reset in the middle of its work.
fn reset(s: TcpStream) -> anyhow::Result<()> {
    s.set_zero_linger()?;
    drop(s);
    Ok(())
}

async fn echo_session(session: &Session<'_>, rng: &mut Rng) -> anyhow::Result<()> {
    let (k, inject_reset) = (session.k, session.reset);
    let mut s = connect(session.c.echo).await?;
    let lines = 1 + rng.next() % 20;
    let mut line = Vec::new();
    let mut back = Vec::new();
    for i in 0..lines {
        let len = 1 + (rng.next() % 2000) as usize;
        line.clear();
        line.extend((0..len - 1).map(|_| b'a' + (rng.next() % 26) as u8));
        line.push(b'\n');
        s.write_all(&line).await?;
        if inject_reset && i == lines / 2 {
            return reset(s); // mid-echo, the answer unread
        }
        back.resize(len, 0);
        s.read_exact(&mut back).await.context("reading the echo")?;
        if back != line {
            bail!("echo differs from what was sent ({len}-byte line)");
        }
        k.echo_bytes.fetch_add(len as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// Framed requests on one connection, each answer `OK <size>` and the
/// file; an injected reset comes a third of the way into a file.
async fn file_session(session: &Session<'_>, rng: &mut Rng) -> anyhow::Result<()> {
    let size = session.want.0;
    let mut s = connect(session.c.file).await?;
    let request = wire::file_request(&session.c.path);
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..1 + rng.next() % 3 {
        s.write_all(&request).await?;
        // Status line.
        let mut line = Vec::new();
        loop {
            let b = s.read_u8().await.context("reading the status line")?;
            if b == b'\n' {
                break;
            }
            line.push(b);
            if line.len() > 100 {
                bail!("no status line: is the file server running with --file-header?");
            }
        }
        let line = String::from_utf8_lossy(&line).into_owned();
        if line != format!("OK {size}") {
            bail!("server answered {line:?}, expected \"OK {size}\"");
        }
        let mut body = Body::new();
        let cut = session.reset && size > 0;
        let until = if cut { size / 3 } else { size };
        read_body(&mut s, &mut buf, &mut body, until, size, session.pause()).await?;
        if cut {
            return reset(s); // mid-file
        }
        session.check_whole("file content", body.finish())?;
    }
    Ok(())
}

/// One plain-mode request, the article's way: the path, the file, the
/// close. The client sends a stray byte late or a second request pipelined
/// behind the first; either way the whole file must arrive, then a FIN
/// (a reset would have thrown away the end of the answer).
async fn plain_session(
    addr: SocketAddr,
    session: &Session<'_>,
    rng: &mut Rng,
) -> anyhow::Result<()> {
    let (k, size) = (session.k, session.want.0);
    k.plain_sessions.fetch_add(1, Ordering::Relaxed);
    let mut s = connect(addr).await?;
    let request = wire::file_request(&session.c.path);
    s.write_all(&request).await?;
    let (late, pipelined) = match rng.next() % 3 {
        0 => (true, false),
        1 => (false, true),
        _ => (false, false),
    };
    let extra_after = Duration::from_micros(rng.next() % 20_000);
    let mut extra_sent = !(late || pipelined);
    let started = Instant::now();
    let mut body = Body::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if !extra_sent && started.elapsed() >= extra_after {
            if late {
                s.write_all(b"\n").await?;
                k.late_bytes.fetch_add(1, Ordering::Relaxed);
            } else {
                s.write_all(&request).await?;
                k.pipelined.fetch_add(1, Ordering::Relaxed);
            }
            extra_sent = true;
        }
        if session.reset && body.got() >= size / 3 {
            return reset(s); // mid-file
        }
        let read = if extra_sent {
            s.read(&mut buf).await
        } else {
            match tokio::time::timeout(
                extra_after.saturating_sub(started.elapsed()),
                s.read(&mut buf),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => continue, // time for the extra bytes
            }
        };
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                k.truncated.fetch_add(1, Ordering::Relaxed);
                bail!("plain answer cut after {} of {size} bytes: {e}", body.got());
            }
        };
        if n == 0 {
            break;
        }
        body.take(&buf[..n]);
        if let Some(pause) = session.pause() {
            tokio::time::sleep(pause).await;
        }
    }
    session.check_whole("plain answer", body.finish())
}

/// Keep-alive `GET`s of the file over HTTP/1.1, every body checked whole
/// (its `Content-Length` and CRC-32). A slow session reads through a small
/// receive buffer, so the server waits on a full socket again and again; an
/// injected reset comes a third of the way into a body.
async fn http_session(
    addr: SocketAddr,
    session: &Session<'_>,
    rng: &mut Rng,
) -> anyhow::Result<()> {
    let (c, k, size) = (session.c, session.k, session.want.0);
    k.http_sessions.fetch_add(1, Ordering::Relaxed);
    let socket = tokio::net::TcpSocket::new_v4()?;
    if session.slow {
        socket.set_recv_buffer_size(16 << 10)?;
    }
    let mut s = socket
        .connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_nodelay(true)?;
    let request = super::http::request(&c.path, &addr.to_string());
    let mut buf = vec![0u8; 64 * 1024];
    let requests = 1 + rng.next() % 3;
    for i in 0..requests {
        s.write_all(&request).await?;
        if session.reset {
            // The head and a third of the body in, the rest unread.
            let mut got = 0u64;
            while got < size / 3 {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    bail!("HTTP: the server closed after {got} bytes");
                }
                got += n as u64;
            }
            return reset(s);
        }
        let answer = match super::http::read_answer(&mut s, &mut buf, &c.path).await {
            Ok(a) => a,
            Err(e) => {
                k.truncated.fetch_add(1, Ordering::Relaxed);
                return Err(e.context(format!("HTTP request {} of {requests}", i + 1)));
            }
        };
        k.http_requests.fetch_add(1, Ordering::Relaxed);
        session.check_whole("HTTP body", (answer.size, answer.crc))?;
        if answer.close && i + 1 < requests {
            bail!(
                "the HTTP server closed a keep-alive connection after request {}",
                i + 1
            );
        }
    }
    Ok(())
}
