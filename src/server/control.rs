//! What passes between the supervising thread and a shard, for any backend.
//!
//! A shard gets a [`ShardSpec`] (its CPU, its listeners, a control socket, the
//! event channel) and runs on a thread named `ringlet-shard-N`. The main
//! thread writes single bytes to the control socket ([`STOP`], then maybe
//! [`CUT`]); the shard
//! reports [`Event`]s back, and [`ExitGuard`] reports its exit however the
//! thread ends, panics included. Nothing here knows glommio or tokio.

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use futures_lite::future;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::isolate;
use super::monitor::{HEARTBEAT, ShardStats};
use crate::backend::StartError;

/// Control byte: stop accepting and end the shard.
pub(crate) const STOP: u8 = b'S';
/// Control byte, during a drain: reset every live connection now.
pub(crate) const CUT: u8 = b'C';
/// Control byte: panic outside any connection (fault injection for tests).
pub(crate) const PANIC: u8 = b'P';

/// What shards tell the supervising thread.
#[derive(Debug)]
pub(crate) enum Event {
    Ready { shard: usize },
    StartFailed { shard: usize, reason: StartError },
    Exited { shard: usize, panic: Option<String> },
    StopRequested,
    CutRequested,
}

/// One service's listener on one shard.
pub(crate) struct ShardListener<H> {
    pub service: String,
    /// The service's place in the shard's figures (`ShardStats::services`).
    pub index: usize,
    pub handler: H,
    pub fd: OwnedFd,
    /// One socket shared by every shard (socket activation), rather than a
    /// shard's own `SO_REUSEPORT` listener.
    pub shared: bool,
    /// Every connection must open with a PROXY header (behind a balancer).
    pub proxy: Option<Arc<super::proxied::ProxyPolicy>>,
}

/// What a shard needs, moved onto its thread. `H` is the backend's handler.
pub(crate) struct ShardSpec<H> {
    pub id: usize,
    pub cpu: usize,
    /// Live connections at most (`--max-conns`); `None`: no limit.
    pub max_conns: Option<usize>,
    pub listeners: Vec<ShardListener<H>>,
    pub control: OwnedFd,
    pub events: Sender<Event>,
    /// This shard's counters and heartbeat.
    pub stats: Arc<ShardStats>,
    /// When the server started (heartbeats count from here).
    pub started: Instant,
    /// How long live connections may run on after a stop.
    pub drain: Duration,
    /// Every connection's idle and write timeouts.
    pub timeouts: crate::io::Timeouts,
    /// Whether the uring backend sends what the page cache holds by
    /// `sendfile` (see [`ServerBuilder::cached_sendfile`](crate::ServerBuilder::cached_sendfile)).
    pub cached_sendfile: bool,
    /// How every connection that ended well is closed.
    pub linger: crate::io::Linger,
    /// Where every connection's requests are logged (`--access-log`).
    pub access: Option<crate::access::AccessLog>,
    /// How many shards the server runs (to share per-user kernel budgets).
    pub shards: usize,
}

impl<H> ShardSpec<H> {
    /// The same spec with each listener's handler turned into another type
    /// (erased for the chosen backend's connections).
    pub(crate) fn map_handlers<G>(self, f: impl Fn(H) -> G) -> ShardSpec<G> {
        ShardSpec {
            listeners: self
                .listeners
                .into_iter()
                .map(|l| ShardListener {
                    service: l.service,
                    index: l.index,
                    handler: f(l.handler),
                    fd: l.fd,
                    shared: l.shared,
                    proxy: l.proxy,
                })
                .collect(),
            id: self.id,
            cpu: self.cpu,
            max_conns: self.max_conns,
            control: self.control,
            events: self.events,
            stats: self.stats,
            started: self.started,
            drain: self.drain,
            timeouts: self.timeouts,
            cached_sendfile: self.cached_sendfile,
            linger: self.linger,
            access: self.access,
            shards: self.shards,
        }
    }
}

/// Sends `Exited` however the shard's thread ends, panics included.
struct ExitGuard {
    id: usize,
    events: Sender<Event>,
    stats: Arc<ShardStats>,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.stats.mark_exited();
        let panic = std::thread::panicking().then(|| isolate::take_last_panic(None));
        let _ = self.events.send(Event::Exited {
            shard: self.id,
            panic,
        });
    }
}

/// Run `body` on a new shard thread, with the exit guard in place.
pub(crate) fn spawn_thread<H: Send + 'static>(
    spec: ShardSpec<H>,
    body: impl FnOnce(ShardSpec<H>) + Send + 'static,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("{}{}", isolate::SHARD_THREAD_PREFIX, spec.id))
        .spawn(move || {
            let _guard = ExitGuard {
                id: spec.id,
                events: spec.events.clone(),
                stats: spec.stats.clone(),
            };
            body(spec);
        })
}

/// Whether a control read asks the shard to stop (a `PANIC` byte panics).
pub(crate) fn stops(shard: usize, read: io::Result<Option<u8>>) -> bool {
    match read {
        Ok(Some(PANIC)) => panic!("shard {shard} asked to panic (fault injection)"),
        Ok(Some(byte)) => byte == STOP,
        // The main thread's end closed, or an error: stop.
        _ => true,
    }
}

/// Beat the shard's heartbeat forever; `sleep` is the backend's timer,
/// `publish` copies the backend's own figures into `stats`. Each beat also
/// returns buffer memory freed after a burst to the kernel (see
/// [`crate::buf::trim_if_quiet`]).
pub(crate) async fn heartbeat<S: Future<Output = ()>>(
    stats: Arc<ShardStats>,
    started: Instant,
    sleep: impl Fn(Duration) -> S,
    publish: impl Fn(&ShardStats),
) {
    loop {
        stats.beat(started.elapsed());
        publish(&stats);
        crate::buf::trim_if_quiet();
        sleep(HEARTBEAT).await;
    }
}

/// Whether a control read during the drain asks to cut every connection
/// now (`CUT`). A closed or failing control socket asks nothing: the drain
/// then runs its course on its own clock.
pub(crate) fn cuts(shard: usize, read: &io::Result<Option<u8>>) -> Option<bool> {
    match read {
        Ok(Some(PANIC)) => panic!("shard {shard} asked to panic (fault injection)"),
        Ok(Some(CUT)) => Some(true),
        Ok(Some(_)) => Some(false),
        _ => None,
    }
}

/// After accepting stopped: let the connections in `tracker` finish, for at
/// most `limit` or until `cut_asked` completes (a second signal); then `cut`
/// the rest (their clients get a reset) and wait for them to go.
pub(crate) async fn drain<S: Future<Output = ()>>(
    shard: usize,
    tracker: &TaskTracker,
    cut: &super::signal::Signal,
    limit: Duration,
    sleep: impl Fn(Duration) -> S,
    cut_asked: impl Future<Output = ()>,
) {
    tracker.close();
    let open = tracker.len();
    if open == 0 {
        return;
    }
    info!("shard {shard}: stopped accepting; waiting up to {limit:?} for {open} connection(s)");
    let why = future::or(
        async {
            tracker.wait().await;
            None
        },
        future::or(
            async {
                sleep(limit).await;
                Some(format!("the drain's {limit:?} are up"))
            },
            async {
                cut_asked.await;
                Some("a second stop signal".to_string())
            },
        ),
    )
    .await;
    if let Some(why) = why {
        warn!(
            "shard {shard}: resetting {} connection(s) still open: {why}",
            tracker.len()
        );
        cut.raise();
        tracker.wait().await;
    }
}
