//! The metrics endpoint's HTTP side: many scrapers at once, none able to
//! hold up another.
//!
//! One thread of its own, off the shards, runs a tokio `current_thread`
//! runtime with one task per connection. Each connection has one deadline
//! for all of it ([`DEADLINE`] from its accept): the request head must
//! arrive and the answer be written within it however the client paces its
//! bytes, and the lingering read after the answer ends with it too. At most
//! [`MAX_CONNS`] are open at once: the next one closes the oldest (a debug
//! line each, a warning at most once a minute, and a counter), so a flood
//! costs a bounded number of descriptors and buffers, and a new scrape still
//! gets in. The HTTP is the least a scraper or a load balancer's health
//! check needs: one request per connection (parsed by `httparse`), `GET` or
//! `HEAD` of `/metrics`, `/ready` (200 while every shard accepts, 503 from
//! the moment a drain or an upgrade begins) or `/live` (200 while the
//! process runs), then close. It knows nothing of the figures: `render`
//! makes the page, `ready` says whether the server takes new work.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ringlet::proto::http::{HeadWriter, MAX_HEAD, Persist, Status};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tracing::{debug, warn};

/// How long a connection may take, from its accept to its answer written.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// The most metrics connections open at once; the next closes the oldest.
pub const MAX_CONNS: usize = 64;
/// At most one warning about the cap in this long.
const WARN_EVERY: Duration = Duration::from_secs(60);
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Makes the page, at every scrape.
pub type Render = Arc<dyn Fn() -> io::Result<String> + Send + Sync>;
/// Whether the server takes new connections now (`/ready`); why not if not.
pub type Ready = Arc<dyn Fn() -> Result<(), &'static str> + Send + Sync>;

/// What the endpoint answers with.
#[derive(Clone)]
pub struct Pages {
    pub render: Render,
    pub ready: Ready,
}

/// The endpoint's own figures, read by the collector.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections closed to make room under [`MAX_CONNS`].
    pub evicted: AtomicU64,
    /// Connections cut by [`DEADLINE`] before their answer was written.
    pub timed_out: AtomicU64,
}

/// Serve `listener` from a thread of its own until the process ends.
pub fn spawn(listener: std::net::TcpListener, pages: Pages, stats: Arc<Stats>) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("ringlet-metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                // A task like the connections, so that they run in turn.
                let _ = tokio::spawn(accept_loop(listener, pages, stats)).await;
            })
        })?;
    Ok(())
}

async fn accept_loop(listener: std::net::TcpListener, pages: Pages, stats: Arc<Stats>) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("metrics: cannot serve: {e}");
            return;
        }
    };
    let mut live: VecDeque<(SocketAddr, JoinHandle<()>)> = VecDeque::with_capacity(MAX_CONNS);
    let mut warned: Option<Instant> = None;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors, say: the shards matter more; try later.
            Err(e) => {
                debug!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        live.retain(|(_, task)| !task.is_finished());
        if live.len() >= MAX_CONNS
            && let Some((old, task)) = live.pop_front()
        {
            task.abort();
            stats.evicted.fetch_add(1, Ordering::Relaxed);
            if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                warned = Some(Instant::now());
                warn!(
                    "metrics: {MAX_CONNS} connections open (the cap): each new one closes the oldest, \
                     now one from {old}; the next at debug level, counted in ringlet_metrics_evictions_total"
                );
            } else {
                debug!(
                    "metrics: at the cap of {MAX_CONNS} connections: closed the oldest, from {old}"
                );
            }
            // Let the aborted task drop its socket before the next accept.
            tokio::task::yield_now().await;
        }
        let task = tokio::spawn(serve_one(stream, peer, pages.clone(), stats.clone()));
        live.push_back((peer, task));
    }
}

/// One connection, all of it within [`DEADLINE`].
async fn serve_one(mut s: TcpStream, peer: SocketAddr, pages: Pages, stats: Arc<Stats>) {
    let until = Instant::now() + DEADLINE;
    match timeout_at(until, answer(&mut s, &pages)).await {
        // Let the client read the answer before the close (no reset for
        // input it sent after its head), as long as the deadline allows.
        Ok(Ok(())) => {
            let _ = timeout_at(until, drain(&mut s)).await;
        }
        Ok(Err(e)) => debug!("metrics: {peer}: a scrape failed: {e}"),
        Err(_) => {
            stats.timed_out.fetch_add(1, Ordering::Relaxed);
            debug!("metrics: {peer}: no whole request and answer within {DEADLINE:?}; closed");
        }
    }
}

/// Read one request head and answer it.
async fn answer(s: &mut TcpStream, pages: &Pages) -> io::Result<()> {
    let mut head = vec![0u8; MAX_HEAD];
    let mut filled = 0;
    let (method, path) = loop {
        if filled == head.len() {
            return respond(s, Status::HeaderFieldsTooLarge, TEXT, "", false).await;
        }
        let n = s.read(&mut head[filled..]).await?;
        if n == 0 {
            return Ok(()); // gone before a whole request
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&head[..filled]) {
            Ok(httparse::Status::Complete(_)) => {
                break (
                    req.method.unwrap_or("").to_string(),
                    req.path.unwrap_or("").to_string(),
                );
            }
            Ok(httparse::Status::Partial) => continue,
            Err(e) => {
                return respond(s, Status::BadRequest, TEXT, &format!("{e}\n"), false).await;
            }
        }
    };
    drop(head);
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(s, Status::MethodNotAllowed, TEXT, "GET or HEAD\n", false).await;
    }
    // A scraper may add a query string (`?name[]=…`); every figure is sent.
    let (status, kind, body) = match path.split('?').next() {
        Some("/metrics") => (Status::Ok, CONTENT_TYPE, (pages.render)()?),
        Some("/live") => (Status::Ok, TEXT, "alive\n".to_string()),
        Some("/ready") => match (pages.ready)() {
            Ok(()) => (Status::Ok, TEXT, "ready\n".to_string()),
            Err(why) => (
                Status::ServiceUnavailable,
                TEXT,
                format!("not ready: {why}\n"),
            ),
        },
        _ => (
            Status::NotFound,
            TEXT,
            "try /metrics, /ready or /live\n".to_string(),
        ),
    };
    respond(s, status, kind, &body, head_only).await
}

/// Write a whole response (its head by the library's [`HeadWriter`]: a
/// 405 says `Allow`, every answer `Connection: close`) and shut the sending
/// side; for a HEAD request, the head alone (with the body's length).
async fn respond(
    s: &mut TcpStream,
    status: Status,
    kind: &str,
    body: &str,
    head_only: bool,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(160 + body.len());
    let whole = HeadWriter::new(&mut out, status)
        .field("Content-Type", kind)
        .field("Content-Length", body.len())
        .end(Persist::Closing);
    debug_assert!(whole, "a Vec holds any head");
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    s.write_all(&out).await?;
    s.shutdown().await
}

/// Read (and drop) what the client still sends, up to a head's worth, until
/// it closes.
async fn drain(s: &mut TcpStream) -> io::Result<u64> {
    tokio::io::copy(&mut s.take(MAX_HEAD as u64), &mut tokio::io::sink()).await
}
