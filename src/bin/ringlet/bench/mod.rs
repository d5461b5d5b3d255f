//! `ringlet bench`: the load generator. Part of the binary, not the library
//! (its dependencies come with the `cli` feature only).
//!
//! T client threads, each a tokio `current_thread` runtime (optionally
//! pinned), share N connections. Every byte that comes back is checked; a
//! wrong byte is an error, counted and reported, never ignored. Latency goes
//! into HDR histograms merged at the end; with `--rate` it is measured from
//! each message's *scheduled* send time, so a slow server cannot hide its
//! stalls by slowing the client down (no coordinated omission).
//!
//! Rooms: `echo` and `file` (one connection's loop each; `http` is the
//! file loop's HTTP/1.1 request and answer; `wire` what the file clients
//! share: connecting, a body read into its CRC-32, a printable answer),
//! `stats` (counters, histograms, the report), `report` (tables and charts
//! from many runs), `soak` (a long mixed workload with injected faults).

use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod echo;
pub mod file;
pub mod http;
pub mod report;
pub mod soak;
pub mod stats;
mod wire;

pub use stats::Totals;

/// Where the client threads run.
#[derive(Debug, Clone)]
pub struct Threads {
    /// How many client threads.
    pub count: usize,
    /// Pin thread i to the i-th CPU this process may use (round robin).
    pub pin: bool,
}

/// Run `conns` connection tasks spread over `threads`, each built by `task`,
/// until `duration` is over; prints a live line on a terminal when `progress`.
pub(crate) fn run_connections<F, Fut>(
    conns: usize,
    threads: &Threads,
    duration: Duration,
    progress: bool,
    task: F,
) -> anyhow::Result<Totals>
where
    F: Fn(usize, Arc<Totals>, Instant) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + 'static,
{
    let totals = Arc::new(Totals::new());
    let task = Arc::new(task);
    let deadline = Instant::now() + duration;
    let cpus = ringlet::allowed_cpus()?;
    let count = threads.count.clamp(1, conns.max(1));
    let mut handles = Vec::new();
    for t in 0..count {
        let (totals, task) = (totals.clone(), task.clone());
        let pin = threads.pin.then(|| cpus[t % cpus.len()]);
        handles.push(
            std::thread::Builder::new()
                .name(format!("bench-{t}"))
                .spawn(move || -> anyhow::Result<()> {
                    if let Some(cpu) = pin {
                        let mut set = rustix::thread::CpuSet::new();
                        set.set(cpu);
                        rustix::thread::sched_setaffinity(None, &set)?;
                    }
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    let local = tokio::task::LocalSet::new();
                    local.block_on(&rt, async move {
                        let mut tasks = Vec::new();
                        for c in (t..conns).step_by(count) {
                            let fut = task(c, totals.clone(), deadline);
                            tasks.push(tokio::task::spawn_local(fut));
                        }
                        let mut first_err = None;
                        for h in tasks {
                            match h.await {
                                Ok(Ok(())) => {}
                                Ok(Err(e)) => {
                                    totals.error(&e);
                                    first_err.get_or_insert(e);
                                }
                                Err(e) => {
                                    let e = anyhow::anyhow!("connection task failed: {e}");
                                    totals.error(&e);
                                    first_err.get_or_insert(e);
                                }
                            }
                        }
                        match first_err {
                            Some(e) => Err(e),
                            None => Ok(()),
                        }
                    })
                })?,
        );
    }
    let started = Instant::now();
    if progress {
        stats::progress_until(&totals, started, deadline, || {
            handles.iter().all(|h| h.is_finished())
        });
    }
    let mut failure = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(_) => {
                failure.get_or_insert(anyhow::anyhow!("a client thread panicked"));
            }
        }
    }
    totals.finish(started.elapsed());
    let totals = Arc::try_unwrap(totals).map_err(|_| anyhow::anyhow!("totals still shared"))?;
    // Connection errors are counted in the totals; only a run that verified
    // nothing at all is a failure of the run itself.
    if let Some(e) = failure
        && totals.messages() == 0
    {
        return Err(e);
    }
    Ok(totals)
}
