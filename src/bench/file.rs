//! `ringlet bench file`: fetch one file again and again over framed
//! keep-alive connections (`ringlet serve --file-header`).
//!
//! Each answer must be `OK <size>\n` and exactly that many bytes, whose CRC-32
//! must match the reference: the local file given with `--expect`, or else
//! the first answer received (every later answer must be identical).
//! `--evict` drops the local file from the page cache before each request, so
//! the server reads it cold from disk.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::stats::{self, Outcome, Totals};
use super::{Threads, run_connections};

/// Bytes read from the socket per call.
const READ_BUF: usize = 256 * 1024;

/// What `ringlet bench file` runs.
#[derive(Debug, Clone)]
pub struct FileConfig {
    pub addr: SocketAddr,
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
    let c = cfg.clone();
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
            "evict": cfg.evict.is_some(),
        }),
    ))
}

async fn fetch_loop(
    c: &FileConfig,
    reference: &OnceLock<(u64, u32)>,
    totals: &Arc<Totals>,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(c.addr)
        .await
        .with_context(|| format!("connecting to {}", c.addr))?;
    stream.set_nodelay(true)?;
    let mut request = c.path.as_bytes().to_vec();
    request.push(0);
    let mut buf = vec![0u8; READ_BUF];
    let mut hist = stats::histogram();
    let result = async {
        while Instant::now() < deadline {
            if let Some(local) = &c.evict {
                evict(local)?;
            }
            let started = Instant::now();
            stream.write_all(&request).await?;
            let (size, crc) = read_answer(&mut stream, &mut buf).await?;
            let &(want_size, want_crc) = reference.get_or_init(|| (size, crc));
            if (size, crc) != (want_size, want_crc) {
                bail!(
                    "answer differs from the reference: {size} bytes crc {crc:08x}, expected {want_size} bytes crc {want_crc:08x}"
                );
            }
            stats::record(&mut hist, started.elapsed());
            totals.add(1, size);
        }
        anyhow::Ok(())
    }
    .await;
    totals.merge(&hist);
    result
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
                "no status line in the first {filled} bytes: is the server running with --file-header?"
            );
        }
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            bail!("the server closed the connection before answering");
        }
        filled += n;
    };
    let line = String::from_utf8_lossy(&buf[..newline]).into_owned();
    let size: u64 = match line.strip_prefix("OK ") {
        Some(n) => n
            .parse()
            .with_context(|| format!("bad status line {line:?}"))?,
        None => bail!("server answered {line:?}"),
    };
    let mut crc = crc32fast::Hasher::new();
    let mut got = (filled - newline - 1) as u64;
    if got > size {
        bail!("more bytes than announced ({got} > {size})");
    }
    crc.update(&buf[newline + 1..filled]);
    while got < size {
        let want = ((size - got) as usize).min(buf.len());
        let n = stream.read(&mut buf[..want]).await?;
        if n == 0 {
            bail!("the server closed after {got} of {size} bytes");
        }
        crc.update(&buf[..n]);
        got += n as u64;
    }
    Ok((size, crc.finalize()))
}

/// Drop a local file's pages from the page cache.
pub fn evict(path: &std::path::Path) -> anyhow::Result<()> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    rustix::fs::fadvise(f.as_fd(), 0, None, rustix::fs::Advice::DontNeed)
        .with_context(|| format!("evicting {}", path.display()))?;
    Ok(())
}
