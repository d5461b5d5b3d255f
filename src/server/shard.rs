//! A uring-backend shard: a glommio executor pinned to one CPU, its
//! completion ring, its listeners, its connections.
//!
//! The shard accepts on its own listener for each service through its ring
//! (multishot accept where the kernel has it), admits each connection under
//! its semaphore (`--max-conns`), and runs the protocol on it in an isolated
//! task. It talks to the main thread only through its control socket and the
//! event channel (see `control`). It must never let an accept error end the
//! accept loop, and never block its thread.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::AsyncReadExt;
use glommio::net::UnixStream;
use glommio::sync::Semaphore;
use glommio::{LocalExecutorBuilder, Placement};
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::admit::Backoff;
use super::control::{self, Event, ShardSpec};
use super::monitor::ShardStats;
use super::{Handlers, isolate};
use crate::ring::Ring;
use crate::ring::conn::RingConn;
use crate::ring::pipes::PipePool;

/// glommio's default is 100 ms; a busy connection yields after this long.
const PREEMPT: Duration = Duration::from_millis(5);
/// Submission queue slots of a shard's ring (it grows nothing; a full queue
/// is submitted early).
const RING_ENTRIES: u32 = 1024;

/// Start the shard's thread. Reports `Ready`, `StartFailed` or `Exited`.
pub(crate) fn spawn(
    spec: ShardSpec<Handlers>,
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

async fn run(spec: ShardSpec<Handlers>) {
    let ring = match Ring::new(RING_ENTRIES).and_then(|r| r.start().map(|()| r)) {
        Ok(r) => r,
        Err(e) => {
            let _ = spec.events.send(Event::StartFailed {
                shard: spec.id,
                reason: format!("cannot set up the completion ring: {e}"),
            });
            return;
        }
    };
    let pipes = PipePool::for_shard(spec.shards);
    let tracker = TaskTracker::new();
    glommio::spawn_local(control::heartbeat(
        spec.stats.clone(),
        spec.started,
        glommio::timer::sleep,
    ))
    .detach();
    let mut accepting = Vec::new();
    for l in spec.listeners {
        let shard = Shard {
            id: spec.id,
            service: l.service,
            admit: Rc::new(Semaphore::new(spec.max_conns as u64)),
            // A multishot accept on a socket every shard shares would take
            // every connection for this shard alone.
            multishot: spec.max_conns >= usize::MAX >> 4 && !l.shared,
            tracker: tracker.clone(),
            stats: spec.stats.clone(),
            timeouts: spec.timeouts,
        };
        accepting.push(glommio::spawn_local(ring_accept_loop(
            shard,
            l.handler.ring,
            l.fd,
            ring.clone(),
            pipes.clone(),
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

/// What an accept loop needs.
struct Shard {
    id: usize,
    service: String,
    /// Live connections admitted (`--max-conns`).
    admit: Rc<Semaphore>,
    /// Accept with one multishot operation: no `--max-conns` asks
    /// connections to wait in the backlog, and no other shard shares the
    /// socket.
    multishot: bool,
    tracker: TaskTracker,
    stats: Arc<ShardStats>,
    timeouts: crate::io::Timeouts,
}

impl Shard {
    /// Run `work` for the connection from `peer` as an isolated, tracked task.
    fn serve(
        &self,
        peer: std::net::SocketAddr,
        permit: glommio::sync::StaticPermit,
        work: super::Work,
    ) {
        let (name, stats) = (self.service.clone(), self.stats.clone());
        glommio::spawn_local(self.tracker.track_future(async move {
            isolate::run(&name, peer, &stats, work).await;
            drop(permit);
        }))
        .detach();
    }
}

/// Accept through the ring until the shard stops: multishot where the kernel
/// has it and nothing speaks against it (see [`Shard::multishot`]), one
/// accept at a time otherwise.
async fn ring_accept_loop(
    shard: Shard,
    handler: super::Handler<RingConn>,
    listener: OwnedFd,
    ring: Ring,
    pipes: Rc<PipePool>,
) {
    // The ring waits for connections itself: a blocking listener makes it
    // park the accept in the kernel instead of failing with EAGAIN.
    let _ = rustix::fs::fcntl_setfl(&listener, rustix::fs::OFlags::empty());
    let fd = listener.as_raw_fd();
    let mut backoff = Backoff::new();
    let mut multishot = shard.multishot;
    loop {
        let Ok(permit) = shard.admit.acquire_static_permit(1).await else {
            return;
        };
        let accepted = if multishot {
            let mut stream = ring.accept_multi(fd);
            let mut permit = Some(permit);
            loop {
                let Some(c) = stream.next().await else {
                    break None;
                };
                match crate::ring::ops::fd_of(c) {
                    Ok(conn_fd) => {
                        // SAFETY: the kernel made this descriptor for us alone.
                        let conn_fd = unsafe { OwnedFd::from_raw_fd(conn_fd) };
                        backoff.reset();
                        let p = match permit.take() {
                            Some(p) => p,
                            None => match shard.admit.acquire_static_permit(1).await {
                                Ok(p) => p,
                                Err(_) => return,
                            },
                        };
                        start_ring_conn(&shard, &handler, &ring, &pipes, conn_fd, p);
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        warn!(
                            "{}: multishot accept unsupported here (Linux 5.19+): accepting one at a time",
                            shard.service
                        );
                        multishot = false;
                        break None;
                    }
                    Err(e) => break Some(e),
                }
            }
        } else {
            match crate::ring::ops::fd_of(ring.accept(fd).await.0) {
                Ok(conn_fd) => {
                    // SAFETY: the kernel made this descriptor for us alone.
                    let conn_fd = unsafe { OwnedFd::from_raw_fd(conn_fd) };
                    backoff.reset();
                    start_ring_conn(&shard, &handler, &ring, &pipes, conn_fd, permit);
                    continue;
                }
                Err(e) => Some(e),
            }
        };
        if let Some(e) = accepted {
            let pause = backoff.on_error(&shard.service, &e);
            if !pause.is_zero() {
                glommio::timer::sleep(pause).await;
            }
        }
    }
}

fn start_ring_conn(
    shard: &Shard,
    handler: &super::Handler<RingConn>,
    ring: &Ring,
    pipes: &Rc<PipePool>,
    fd: OwnedFd,
    permit: glommio::sync::StaticPermit,
) {
    let Some(peer) = socket2::SockRef::from(&fd)
        .peer_addr()
        .ok()
        .and_then(|a| a.as_socket())
    else {
        return; // gone already
    };
    let _ = socket2::SockRef::from(&fd).set_tcp_nodelay(true);
    debug!("{}: shard {} accepted {peer}", shard.service, shard.id);
    let conn = RingConn::new(
        fd,
        peer,
        ring.clone(),
        pipes.clone(),
        shard.stats.clone(),
        shard.timeouts,
    );
    shard.serve(peer, permit, handler(conn));
}
