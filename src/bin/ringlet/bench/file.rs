//! `ringlet bench file`: fetch one file again and again, in either of the
//! file server's protocols.
//!
//! - **plain** (the article's, `ringlet serve`'s default): connect, send the
//!   path and NUL, read to the end of the stream, reconnect. The server ends a
//!   whole answer with a FIN and a cut one with a reset, which is an error.
//! - **framed** (`--file-header`): keep-alive connections, each answer
//!   `OK <size>\n` and exactly that many bytes.
//! - **http** (`ringlet serve --http`, nginx, any static file server):
//!   keep-alive connections, one `GET` at a time (`bench/http.rs`), so the
//!   same client measures every server on the same files.
//!
//! `auto` asks once before the load and picks by the answer's first line
//! (an HTTP server answers the article's request with an HTTP error).
//! Every answer's length and CRC-32 must match the reference: the local file
//! given with `--expect`, or else the first answer received (every later one
//! must be identical). An answer that does not parse is reported in one line
//! (what was expected, a printable prefix, the byte count), never as raw
//! bytes. `--evict` drops the local file from the page cache before each
//! request, so the server reads it cold from disk.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::stats::{self, Outcome, Totals};
use super::wire::{self, Body, connect, printable, read_body};
use super::{Threads, run_connections};

/// Bytes read from the socket per call.
const READ_BUF: usize = 256 * 1024;

/// Which file protocol the server speaks (`--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Ask once, pick by the answer.
    Auto,
    /// A connection per request, the file, then the end of the stream.
    Plain,
    /// `OK <size>` status lines on keep-alive connections (--file-header).
    Framed,
    /// HTTP/1.1 GET on keep-alive connections (one request at a time).
    Http,
}

impl Mode {
    /// As `--mode` spells it, and the outcome's JSON records it.
    fn name(self) -> String {
        use clap::ValueEnum as _;
        let value = self.to_possible_value().expect("no mode is skipped");
        value.get_name().to_string()
    }
}

/// What `ringlet bench file` runs.
#[derive(Debug, Clone)]
pub struct FileConfig {
    pub addr: SocketAddr,
    pub mode: Mode,
    /// The request path, as the server resolves it beneath its root.
    pub path: String,
    pub conns: usize,
    pub duration: std::time::Duration,
    pub threads: Threads,
    pub progress: bool,
    /// A local copy to check the content against.
    pub expect: Option<PathBuf>,
    /// A local path to evict from the page cache before every request.
    pub evict: Option<PathBuf>,
}

/// Run the load and return the verified figures.
pub fn run(cfg: &FileConfig) -> anyhow::Result<Outcome> {
    if cfg.path.contains('\0') {
        bail!("the path must not contain a NUL byte");
    }
    let reference: Arc<OnceLock<(u64, u32)>> = Arc::default();
    if let Some(local) = &cfg.expect {
        let data = std::fs::read(local).with_context(|| format!("reading {}", local.display()))?;
        let _ = reference.set((data.len() as u64, crc32fast::hash(&data)));
    }
    let mut c = cfg.clone();
    if c.mode == Mode::Auto {
        c.mode = detect(cfg)?;
    }
    let mode = c.mode;
    let totals = run_connections(
        cfg.conns,
        &cfg.threads,
        cfg.duration,
        cfg.progress,
        move |_, totals, deadline| {
            let (c, reference) = (c.clone(), reference.clone());
            async move { fetch_loop(&c, &reference, &totals, deadline).await }
        },
    )?;
    Ok(totals.outcome(
        "file",
        serde_json::json!({
            "addr": cfg.addr.to_string(), "path": cfg.path, "conns": cfg.conns,
            "duration_s": cfg.duration.as_secs_f64(), "threads": cfg.threads.count,
            "evict": cfg.evict.is_some(), "mode": mode.name(),
        }),
    ))
}

/// Fetch until `deadline`: framed on one keep-alive connection, plain with
/// a connection per request; every answer checked against the reference.
async fn fetch_loop(
    c: &FileConfig,
    reference: &OnceLock<(u64, u32)>,
    totals: &Arc<Totals>,
    deadline: Instant,
) -> anyhow::Result<()> {
    let request = if c.mode == Mode::Http {
        super::http::request(&c.path, &c.addr.to_string())
    } else {
        wire::file_request(&c.path)
    };
    let mut buf = vec![0u8; READ_BUF];
    let mut hist = stats::histogram();
    let mut kept: Option<TcpStream> = None;
    let result = async {
        while Instant::now() < deadline {
            if let Some(local) = &c.evict {
                evict(local)?;
            }
            let started = Instant::now();
            let (size, crc) = if c.mode == Mode::Plain {
                let mut stream = connect(c.addr).await?;
                stream.write_all(&request).await?;
                read_to_end(&mut stream, &mut buf).await?
            } else {
                if kept.is_none() {
                    kept = Some(connect(c.addr).await?);
                }
                let stream = kept.as_mut().expect("connected just now");
                stream.write_all(&request).await?;
                if c.mode == Mode::Http {
                    let answer = super::http::read_answer(stream, &mut buf, &c.path).await?;
                    if answer.close {
                        kept = None;
                    }
                    (answer.size, answer.crc)
                } else {
                    read_answer(stream, &mut buf).await?
                }
            };
            check(reference, size, crc)?;
            stats::record(&mut hist, started.elapsed());
            totals.add(1, size);
        }
        anyhow::Ok(())
    }
    .await;
    totals.merge(&hist);
    result
}

/// Fail unless (`size`, `crc`) is the reference's; the first answer is
/// the reference when no local copy was given.
fn check(reference: &OnceLock<(u64, u32)>, size: u64, crc: u32) -> anyhow::Result<()> {
    let &(want_size, want_crc) = reference.get_or_init(|| (size, crc));
    if (size, crc) != (want_size, want_crc) {
        bail!(
            "answer differs from the reference: {size} bytes crc {crc:08x}, expected {want_size} bytes crc {want_crc:08x}"
        );
    }
    Ok(())
}

/// A plain answer: everything up to the end of the stream (a reset is an
/// error: the answer was cut). Returns its size and CRC-32.
async fn read_to_end(stream: &mut TcpStream, buf: &mut [u8]) -> anyhow::Result<(u64, u32)> {
    let mut body = Body::new();
    loop {
        let n = stream
            .read(buf)
            .await
            .map_err(|e| anyhow::anyhow!("the answer was cut after {} bytes: {e}", body.got()))?;
        if n == 0 {
            break;
        }
        body.take(&buf[..n]);
    }
    if body.got() == 0 {
        bail!(
            "the server closed without a byte: in plain mode that is a refusal (no such file?); its log says why"
        );
    }
    Ok(body.finish())
}

/// Ask once and pick the mode by the answer: a first line `OK <size>` or
/// `ERR <reason>` is the framed protocol, `HTTP/` an HTTP server (its
/// error for a request it cannot parse), anything else the plain one.
fn detect(c: &FileConfig) -> anyhow::Result<Mode> {
    let mut s = std::net::TcpStream::connect_timeout(&c.addr, std::time::Duration::from_secs(10))
        .with_context(|| format!("connecting to {}", c.addr))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    s.write_all(c.path.as_bytes())?;
    s.write_all(b"\0")?;
    let mut head = [0u8; 128];
    let mut filled = 0;
    while filled < head.len() && memchr::memchr(b'\n', &head[..filled]).is_none() {
        match s.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if filled == 0 && e.kind() == std::io::ErrorKind::WouldBlock => {
                bail!(
                    "no answer within 10 s to the article's request (path, NUL); for an HTTP server give --mode http"
                );
            }
            Err(e) if filled == 0 => {
                return Err(e).context("asking the server for the file once, to tell its mode");
            }
            Err(_) => break,
        }
    }
    let head = &head[..filled];
    if head.starts_with(b"HTTP/") {
        return Ok(Mode::Http);
    }
    if filled == 0 {
        bail!(
            "the server closed without a byte: a plain-mode refusal (no such file {:?}?); its log says why",
            c.path
        );
    }
    if let Some(reason) = head.strip_prefix(b"ERR ") {
        bail!(
            "server refused {:?}: {}",
            c.path,
            printable(reason, reason.len())
        );
    }
    let framed = head
        .strip_prefix(b"OK ")
        .and_then(|rest| {
            let end = memchr::memchr(b'\n', rest)?;
            std::str::from_utf8(&rest[..end]).ok()?.parse::<u64>().ok()
        })
        .is_some();
    if framed {
        return Ok(Mode::Framed);
    }
    // Read the rest, so the server's answer ends whole rather than reset.
    std::io::copy(&mut s, &mut std::io::sink())
        .context("reading the first plain answer to its end")?;
    Ok(Mode::Plain)
}

/// Read one framed answer: returns its size and the CRC-32 of its bytes.
async fn read_answer(stream: &mut TcpStream, buf: &mut [u8]) -> anyhow::Result<(u64, u32)> {
    // The status line is short: read until its newline.
    let mut filled = 0;
    let newline = loop {
        if let Some(i) = memchr::memchr(b'\n', &buf[..filled]) {
            break i;
        }
        if filled > 512 {
            bail!(
                "expected a status line `OK <size>`, got {} with no newline: is the server in plain mode (no --file-header)? try --mode plain",
                printable(&buf[..filled], filled)
            );
        }
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            bail!("the server closed the connection before answering");
        }
        filled += n;
    };
    let line = &buf[..newline];
    let size = line
        .strip_prefix(b"OK ")
        .and_then(|n| std::str::from_utf8(n).ok()?.parse::<u64>().ok());
    let Some(size) = size else {
        if let Some(reason) = line.strip_prefix(b"ERR ") {
            bail!("server refused: {}", printable(reason, reason.len()));
        }
        bail!(
            "expected a status line `OK <size>`, got {}",
            printable(&buf[..filled], filled)
        );
    };
    let mut body = Body::new();
    body.take(&buf[newline + 1..filled]);
    if body.got() > size {
        bail!("more bytes than announced ({} > {size})", body.got());
    }
    read_body(stream, buf, &mut body, size, size, None).await?;
    Ok(body.finish())
}

/// Drop a local file's pages from the page cache.
pub fn evict(path: &std::path::Path) -> anyhow::Result<()> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    rustix::fs::fadvise(f.as_fd(), 0, None, rustix::fs::Advice::DontNeed)
        .with_context(|| format!("evicting {}", path.display()))?;
    Ok(())
}
