//! A uring-backend shard: a glommio executor pinned to one CPU, its listeners,
//! its connections.
//!
//! The shard accepts on its own listener for each service, admits each
//! connection under its semaphore (`--max-conns`), and runs the protocol on it
//! in an isolated task. It talks to the main thread only through its control
//! socket and the event channel (see `control`). It must never let an accept
//! error end the accept loop, and never block its thread.

use std::io;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::AsyncReadExt;
use glommio::net::{TcpListener, UnixStream};
use glommio::sync::Semaphore;
use glommio::{LocalExecutorBuilder, Placement};
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::admit::Backoff;
use super::conn::GlommioConn;
use super::control::{self, Event, ShardSpec};
use super::monitor::ShardStats;
use super::{Handler, isolate};

/// glommio's default is 100 ms; a busy connection yields after this long.
const PREEMPT: Duration = Duration::from_millis(5);

/// Start the shard's thread. Reports `Ready`, `StartFailed` or `Exited`.
pub(crate) fn spawn(
    spec: ShardSpec<Handler<GlommioConn>>,
    io_memory: usize,
) -> io::Result<std::thread::JoinHandle<()>> {
    control::spawn_thread(spec, move |spec| {
        let executor = LocalExecutorBuilder::new(Placement::Fixed(spec.cpu))
            .name(&format!("ringlet-{}", spec.id))
            .io_memory(io_memory)
            .preempt_timer(PREEMPT)
            .make();
        match executor {
            Ok(ex) => ex.run(run(spec)),
            Err(e) => {
                let _ = spec.events.send(Event::StartFailed {
                    shard: spec.id,
                    reason: format!("cannot start the executor on CPU {}: {e}", spec.cpu),
                });
            }
        }
    })
}

async fn run(spec: ShardSpec<Handler<GlommioConn>>) {
    let admit = Rc::new(Semaphore::new(spec.max_conns as u64));
    let tracker = TaskTracker::new();
    glommio::spawn_local(control::heartbeat(
        spec.stats.clone(),
        spec.started,
        glommio::timer::sleep,
    ))
    .detach();
    let mut accepting = Vec::new();
    for l in spec.listeners {
        // SAFETY: the descriptor is an owned, bound, listening, non-blocking
        // TCP socket; the listener takes it over.
        let listener = unsafe { TcpListener::from_raw_fd(l.fd.into_raw_fd()) };
        let shard = Shard {
            id: spec.id,
            admit: admit.clone(),
            tracker: tracker.clone(),
            stats: spec.stats.clone(),
            timeouts: spec.timeouts,
        };
        accepting.push(glommio::spawn_local(accept_loop(
            l.service, l.handler, listener, shard,
        )));
    }
    // SAFETY: an owned, connected Unix stream socket; the stream takes it over.
    let mut control = unsafe { UnixStream::from_raw_fd(spec.control.into_raw_fd()) };
    let _ = spec.events.send(Event::Ready { shard: spec.id });
    let mut byte = [0u8; 1];
    loop {
        let read = control.read(&mut byte).await;
        if control::on_control(spec.id, read, byte[0]).is_some() {
            break;
        }
    }
    // Stop accepting: cancelling the loops closes this shard's listeners.
    for task in accepting {
        task.cancel().await;
    }
    debug!(shard = spec.id, "stopped accepting");
    control::drain(spec.id, &tracker, spec.drain, glommio::timer::sleep).await;
}

/// What every accept loop of one shard shares.
struct Shard {
    id: usize,
    admit: Rc<Semaphore>,
    tracker: TaskTracker,
    stats: Arc<ShardStats>,
    timeouts: crate::io::Timeouts,
}

/// Accept connections for one service until the shard stops.
async fn accept_loop(
    service: String,
    handler: Handler<GlommioConn>,
    listener: TcpListener,
    shard: Shard,
) {
    let mut backoff = Backoff::new();
    loop {
        // Wait for room before accepting: connection N+1 waits in the backlog.
        let Ok(permit) = shard.admit.acquire_static_permit(1).await else {
            return; // closed: the shard is stopping
        };
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                let pause = backoff.on_error(&service, &io::Error::from(e));
                drop(permit);
                if !pause.is_zero() {
                    glommio::timer::sleep(pause).await;
                }
                continue;
            }
        };
        backoff.reset();
        let Ok(peer) = stream.peer_addr() else {
            continue; // gone already
        };
        let _ = stream.set_nodelay(true);
        debug!("{service}: shard {} accepted {peer}", shard.id);
        let work = handler(GlommioConn::new(
            stream,
            peer,
            shard.stats.clone(),
            shard.timeouts,
        ));
        let (name, stats) = (service.clone(), shard.stats.clone());
        glommio::spawn_local(shard.tracker.track_future(async move {
            isolate::run(&name, peer, &stats, work).await;
            drop(permit);
        }))
        .detach();
    }
}
