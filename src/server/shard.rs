//! One shard: a glommio executor pinned to one CPU, its listeners, its connections.
//!
//! The shard accepts on its own listener for each service, admits each
//! connection under its semaphore (`--max-conns`), and runs the protocol on it
//! in an isolated task. It talks to the main thread only through a control
//! socket (stop) and an event channel (ready, exited). It must never let an
//! accept error end the accept loop, and never block its thread.

use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::mpsc::Sender;
use std::time::Duration;

use futures_lite::AsyncReadExt;
use glommio::net::{TcpListener, UnixStream};
use glommio::sync::Semaphore;
use glommio::{LocalExecutorBuilder, Placement};
use tracing::{debug, warn};

use super::conn::GlommioConn;
use super::isolate;
use super::{Event, Handler};

/// Control bytes the main thread writes to a shard.
pub(crate) const STOP: u8 = b'S';
/// Panic outside any connection, to test that a dead shard stops the server.
pub(crate) const PANIC: u8 = b'P';

/// Accept back-off after running out of descriptors or memory: first and cap.
const BACKOFF_FIRST: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// glommio's default is 100 ms; a busy connection yields after this long.
const PREEMPT: Duration = Duration::from_millis(5);

/// What a shard needs, moved onto its thread.
pub(crate) struct ShardSpec {
    pub id: usize,
    pub cpu: usize,
    pub io_memory: usize,
    pub max_conns: usize,
    /// One listener per service, in service order.
    pub listeners: Vec<(String, Handler, OwnedFd)>,
    pub control: OwnedFd,
    pub events: Sender<Event>,
}

/// Sends `Exited` however the shard's thread ends, panics included.
struct ExitGuard {
    id: usize,
    events: Sender<Event>,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let panic = std::thread::panicking().then(|| isolate::take_last_panic(None));
        let _ = self.events.send(Event::Exited {
            shard: self.id,
            panic,
        });
    }
}

/// Start the shard's thread. Reports `Ready`, `StartFailed` or `Exited` on `events`.
pub(crate) fn spawn(spec: ShardSpec) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("{}{}", isolate::SHARD_THREAD_PREFIX, spec.id))
        .spawn(move || {
            let _guard = ExitGuard {
                id: spec.id,
                events: spec.events.clone(),
            };
            let executor = LocalExecutorBuilder::new(Placement::Fixed(spec.cpu))
                .name(&format!("ringlet-{}", spec.id))
                .io_memory(spec.io_memory)
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

async fn run(spec: ShardSpec) {
    let admit = Rc::new(Semaphore::new(spec.max_conns as u64));
    for (service, handler, fd) in spec.listeners {
        // SAFETY: the descriptor is an owned, bound, listening, non-blocking
        // TCP socket; the listener takes it over.
        let listener = unsafe { TcpListener::from_raw_fd(fd.into_raw_fd()) };
        glommio::spawn_local(accept_loop(service, handler, listener, admit.clone())).detach();
    }
    // SAFETY: an owned, connected Unix stream socket; the stream takes it over.
    let mut control = unsafe { UnixStream::from_raw_fd(spec.control.into_raw_fd()) };
    let _ = spec.events.send(Event::Ready { shard: spec.id });
    let mut byte = [0u8; 1];
    loop {
        match control.read(&mut byte).await {
            Ok(1) if byte[0] == PANIC => {
                panic!("shard {} asked to panic (fault injection)", spec.id)
            }
            Ok(1) if byte[0] != STOP => continue,
            // STOP, or the main thread's end closed, or an error: stop.
            _ => break,
        }
    }
    debug!(shard = spec.id, "stopping");
    admit.close();
}

/// Accept connections for one service forever, admitting each under `admit`.
async fn accept_loop(
    service: String,
    handler: Handler,
    listener: TcpListener,
    admit: Rc<Semaphore>,
) {
    let mut backoff = BACKOFF_FIRST;
    let mut backing_off = false;
    loop {
        // Wait for room before accepting: connection N+1 waits in the backlog.
        let Ok(permit) = admit.acquire_static_permit(1).await else {
            return; // closed: the shard is stopping
        };
        match listener.accept().await {
            Ok(stream) => {
                backing_off = false;
                backoff = BACKOFF_FIRST;
                let peer = match stream.peer_addr() {
                    Ok(peer) => peer,
                    Err(e) => {
                        debug!("{service}: accepted a connection that is already gone: {e}");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                debug!("{service}: accepted {peer}");
                let conn = GlommioConn::new(stream, peer);
                let work = handler(conn);
                let name = service.clone();
                glommio::spawn_local(async move {
                    isolate::run(&name, peer, work).await;
                    drop(permit);
                })
                .detach();
            }
            Err(e) => {
                let e = io::Error::from(e);
                if !is_resource_exhaustion(&e) {
                    // The one connection failed (reset before accept, ...): next.
                    debug!("{service}: accept failed: {e}");
                    continue;
                }
                if !backing_off {
                    warn!(
                        "{service}: accept failed: {e}; backing off, existing connections continue"
                    );
                    backing_off = true;
                }
                drop(permit);
                glommio::timer::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
