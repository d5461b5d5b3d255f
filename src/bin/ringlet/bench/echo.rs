//! `ringlet bench echo`: N connections sending messages and checking the echo.
//!
//! Each message is `size` bytes: printable filler with the message's sequence
//! number in it and a final `\n` (so line-mode servers echo it at once), and
//! every echoed byte is compared with what was sent. Ping-pong by default;
//! `--pipeline K` keeps K messages in flight; `--rate R` paces sends to R per
//! second in all and measures latency from the scheduled send time.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::stats::{self, Outcome, Totals};
use super::{Threads, run_connections};

/// How long after the deadline in-flight messages may take to come back.
const DRAIN: Duration = Duration::from_secs(5);

/// What `ringlet bench echo` runs.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    pub addr: SocketAddr,
    pub conns: usize,
    /// Bytes per message, the final newline included.
    pub size: usize,
    pub duration: Duration,
    /// Messages in flight per connection (1: ping-pong).
    pub pipeline: usize,
    /// Total messages per second over all connections; `None`: as fast as possible.
    pub rate: Option<f64>,
    pub threads: Threads,
    pub progress: bool,
}

/// Run the load and return the verified figures.
pub fn run(cfg: &EchoConfig) -> anyhow::Result<Outcome> {
    if cfg.size == 0 || cfg.conns == 0 || cfg.pipeline == 0 {
        bail!("--size, --conns and --pipeline must be at least 1");
    }
    if cfg.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        bail!("--rate must be positive");
    }
    let c = cfg.clone();
    let totals = run_connections(
        cfg.conns,
        &cfg.threads,
        cfg.duration,
        cfg.progress,
        move |id, totals, deadline| {
            let c = c.clone();
            async move {
                let stream = TcpStream::connect(c.addr)
                    .await
                    .with_context(|| format!("connecting to {}", c.addr))?;
                stream.set_nodelay(true)?;
                if c.pipeline == 1 && c.rate.is_none() {
                    ping_pong(stream, id, &c, &totals, deadline).await
                } else {
                    pipelined(stream, id, &c, &totals, deadline).await
                }
            }
        },
    )?;
    Ok(totals.outcome(
        "echo",
        serde_json::json!({
            "addr": cfg.addr.to_string(), "conns": cfg.conns, "size": cfg.size,
            "duration_s": cfg.duration.as_secs_f64(), "pipeline": cfg.pipeline,
            "rate": cfg.rate, "threads": cfg.threads.count,
        }),
    ))
}

/// Fill `buf` with message `seq` of connection `conn`.
pub fn fill_message(buf: &mut [u8], conn: usize, seq: u64) {
    let n = buf.len();
    if n == 0 {
        return;
    }
    for (i, b) in buf.iter_mut().enumerate() {
        *b = b'a' + ((i + conn * 7) % 26) as u8;
    }
    // The sequence number in hex, as many low digits as fit before the newline.
    let digits = (n - 1).min(16);
    for d in 0..digits {
        let nibble = (seq >> (4 * d)) & 0xf;
        buf[digits - 1 - d] = b"0123456789abcdef"[nibble as usize];
    }
    buf[n - 1] = b'\n';
}

/// Wait until `due`: tokio's timer ticks in whole milliseconds and rounds up,
/// so sleep until a tick before and yield the rest of the way. Without this a
/// paced send is up to 1 ms late, and that lateness counts as latency.
async fn pace_until(due: Instant) {
    let tick = Duration::from_millis(1);
    if let Some(early) = due.checked_sub(tick)
        && early > Instant::now()
    {
        tokio::time::sleep_until(early.into()).await;
    }
    while Instant::now() < due {
        tokio::task::yield_now().await;
    }
}

fn check(got: &[u8], expected: &[u8], conn: usize, seq: u64) -> anyhow::Result<()> {
    if got != expected {
        let at = got
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        bail!(
            "connection {conn}, message {seq}: echo differs at byte {at} (got {:?}, sent {:?})",
            got[at] as char,
            expected[at] as char
        );
    }
    Ok(())
}

async fn ping_pong(
    mut stream: TcpStream,
    conn: usize,
    c: &EchoConfig,
    totals: &Arc<Totals>,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut hist = stats::histogram();
    let mut msg = vec![0u8; c.size];
    let mut echo = vec![0u8; c.size];
    let mut seq = 0u64;
    let result = async {
        while Instant::now() < deadline {
            fill_message(&mut msg, conn, seq);
            let sent = Instant::now();
            stream.write_all(&msg).await?;
            stream
                .read_exact(&mut echo)
                .await
                .context("reading the echo")?;
            stats::record(&mut hist, sent.elapsed());
            check(&echo, &msg, conn, seq)?;
            totals.add(1, c.size as u64);
            seq += 1;
        }
        anyhow::Ok(())
    }
    .await;
    totals.merge(&hist);
    result
}

async fn pipelined(
    stream: TcpStream,
    conn: usize,
    c: &EchoConfig,
    totals: &Arc<Totals>,
    deadline: Instant,
) -> anyhow::Result<()> {
    let (mut rx, mut tx) = stream.into_split();
    let in_flight: Rc<RefCell<VecDeque<(Instant, u64)>>> = Rc::default();
    let window = Rc::new(Semaphore::new(c.pipeline.min(Semaphore::MAX_PERMITS)));
    let interval = c.rate.map(|r| Duration::from_secs_f64(c.conns as f64 / r));
    let size = c.size;

    let writer = {
        let (in_flight, window) = (in_flight.clone(), window.clone());
        async move {
            let mut msg = vec![0u8; size];
            // Stagger the connections over one interval.
            let mut next = Instant::now()
                + interval.map_or(Duration::ZERO, |i| i.mul_f64(conn as f64 / c.conns as f64));
            let mut seq = 0u64;
            loop {
                window.acquire().await?.forget();
                if interval.is_some() {
                    pace_until(next).await;
                }
                if Instant::now() >= deadline {
                    return anyhow::Ok(());
                }
                // With a rate, latency counts from when the message was due.
                let due = if interval.is_some() {
                    next
                } else {
                    Instant::now()
                };
                fill_message(&mut msg, conn, seq);
                in_flight.borrow_mut().push_back((due, seq));
                tx.write_all(&msg).await?;
                seq += 1;
                if let Some(i) = interval {
                    next += i;
                }
            }
        }
    };
    let reader = {
        let in_flight = in_flight.clone();
        async move {
            let mut hist = stats::histogram();
            let mut echo = vec![0u8; size];
            let mut expected = vec![0u8; size];
            let result = async {
                loop {
                    let writing = Instant::now() < deadline;
                    if !writing && in_flight.borrow().is_empty() {
                        return anyhow::Ok(());
                    }
                    let read = tokio::time::timeout_at(
                        (deadline + DRAIN).into(),
                        rx.read_exact(&mut echo),
                    );
                    match read.await {
                        Ok(Ok(_)) => {}
                        // The writer finished and closed its side with nothing in flight.
                        Ok(Err(e))
                            if e.kind() == std::io::ErrorKind::UnexpectedEof
                                && in_flight.borrow().is_empty() =>
                        {
                            return Ok(());
                        }
                        Ok(Err(e)) => {
                            return Err(anyhow::Error::from(e).context("reading the echo"));
                        }
                        Err(_) => bail!("{} messages never came back", in_flight.borrow().len()),
                    }
                    let Some((due, seq)) = in_flight.borrow_mut().pop_front() else {
                        bail!("connection {conn}: echo of a message never sent");
                    };
                    stats::record(&mut hist, due.elapsed());
                    fill_message(&mut expected, conn, seq);
                    check(&echo, &expected, conn, seq)?;
                    totals.add(1, size as u64);
                    window.add_permits(1);
                }
            }
            .await;
            totals.merge(&hist);
            result
        }
    };
    let (w, r) = futures_lite::future::zip(writer, reader).await;
    w.and(r)
}

#[cfg(test)]
mod tests {
    use super::fill_message;

    #[test]
    fn messages_carry_their_sequence_and_end_in_newline() {
        let mut a = vec![0u8; 24];
        fill_message(&mut a, 0, 0x1f);
        assert_eq!(&a[..16], b"000000000000001f");
        assert_eq!(a[23], b'\n');
        assert_eq!(a.iter().filter(|&&b| b == b'\n').count(), 1);
        let mut tiny = vec![0u8; 1];
        fill_message(&mut tiny, 3, 99);
        assert_eq!(tiny, b"\n");
        let mut b = vec![0u8; 24];
        fill_message(&mut b, 0, 0x20);
        assert_ne!(a, b);
    }
}
