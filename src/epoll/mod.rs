//! The epoll backend: the same protocols on tokio, the same shape.
//!
//! One tokio `current_thread` runtime per shard, its thread pinned to one
//! CPU, accepting on its own `SO_REUSEPORT` listener per service; admission,
//! back-off, isolation and supervision are the shared ones from `server/`.
//! It is the baseline the uring backend is measured against and the fallback
//! where io_uring is unavailable. It must stay a fair fight: no handicaps.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::server::admit::Backoff;
use crate::server::control::{self, Event, ShardSpec};
use crate::server::monitor::ShardStats;
use crate::server::{Handler, Handlers, isolate};

mod conn;

pub use conn::{EpollConn, SENDFILE_CHUNK};

/// Start an epoll shard's thread. Reports `Ready`, `StartFailed` or `Exited`.
pub(crate) fn spawn(spec: ShardSpec<Handlers>) -> io::Result<std::thread::JoinHandle<()>> {
    control::spawn_thread(spec, |spec| {
        let (id, events) = (spec.id, spec.events.clone());
        let runtime = pin_to(spec.cpu).and_then(|()| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot build the tokio runtime: {e}"))
        });
        match runtime {
            Ok(rt) => tokio::task::LocalSet::new().block_on(&rt, run(spec)),
            Err(reason) => {
                let _ = events.send(Event::StartFailed { shard: id, reason });
            }
        }
    })
}

fn pin_to(cpu: usize) -> Result<(), String> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)
        .map_err(|e| format!("cannot pin to CPU {cpu}: {e}"))
}

async fn run(spec: ShardSpec<Handlers>) {
    let admit = Arc::new(Semaphore::new(spec.max_conns.min(Semaphore::MAX_PERMITS)));
    let tracker = TaskTracker::new();
    tokio::task::spawn_local(control::heartbeat(
        spec.stats.clone(),
        spec.started,
        tokio::time::sleep,
    ));
    let mut accepting = Vec::new();
    for l in spec.listeners {
        let listener = match adopt_listener(l.fd) {
            Ok(listener) => listener,
            Err(e) => {
                let _ = spec.events.send(Event::StartFailed {
                    shard: spec.id,
                    reason: format!("cannot register the {} listener with epoll: {e}", l.service),
                });
                return;
            }
        };
        let shard = Shard {
            id: spec.id,
            admit: admit.clone(),
            tracker: tracker.clone(),
            stats: spec.stats.clone(),
            timeouts: spec.timeouts,
        };
        accepting.push(tokio::task::spawn_local(accept_loop(
            l.service,
            l.handler.epoll,
            listener,
            shard,
        )));
    }
    let control = match adopt_control(spec.control) {
        Ok(control) => control,
        Err(e) => {
            let _ = spec.events.send(Event::StartFailed {
                shard: spec.id,
                reason: format!("cannot register the control socket: {e}"),
            });
            return;
        }
    };
    let _ = spec.events.send(Event::Ready { shard: spec.id });
    control_loop(spec.id, control).await;
    // Stop accepting: aborting the loops closes this shard's listeners.
    for task in accepting {
        task.abort();
        let _ = task.await;
    }
    debug!(shard = spec.id, "stopped accepting");
    control::drain(spec.id, &tracker, spec.drain, tokio::time::sleep).await;
}

/// What every accept loop of one shard shares.
struct Shard {
    id: usize,
    admit: Arc<Semaphore>,
    tracker: TaskTracker,
    stats: Arc<ShardStats>,
    timeouts: crate::io::Timeouts,
}

fn adopt_listener(fd: OwnedFd) -> io::Result<TcpListener> {
    TcpListener::from_std(std::net::TcpListener::from(fd))
}

fn adopt_control(fd: OwnedFd) -> io::Result<UnixStream> {
    let std = std::os::unix::net::UnixStream::from(fd);
    std.set_nonblocking(true)?;
    UnixStream::from_std(std)
}

async fn control_loop(id: usize, mut control: UnixStream) {
    let mut byte = [0u8; 1];
    loop {
        let read = control.read(&mut byte).await;
        if control::on_control(id, read, byte[0]).is_some() {
            return;
        }
    }
}

/// Accept connections for one service until the shard stops.
async fn accept_loop(
    service: String,
    handler: Handler<EpollConn>,
    listener: TcpListener,
    shard: Shard,
) {
    let mut backoff = Backoff::new();
    loop {
        // Wait for room before accepting: connection N+1 waits in the backlog.
        let Ok(permit) = shard.admit.clone().acquire_owned().await else {
            return; // closed: the shard is stopping
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                let pause = backoff.on_error(&service, &e);
                drop(permit);
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                continue;
            }
        };
        backoff.reset();
        let _ = stream.set_nodelay(true);
        debug!("{service}: shard {} accepted {peer}", shard.id);
        let work = handler(EpollConn::new(
            stream,
            peer,
            shard.stats.clone(),
            shard.timeouts,
        ));
        let (name, stats) = (service.clone(), shard.stats.clone());
        shard.tracker.spawn_local(async move {
            isolate::run(&name, peer, &stats, work).await;
            drop(permit);
        });
    }
}
