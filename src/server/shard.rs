//! The shard skeleton, written once for every backend.
//!
//! A shard is one thread pinned to one CPU, running its backend's executor.
//! It beats a heartbeat, adopts its listener for each service and accepts on
//! it, admits each connection under the shard's one [`Admission`]
//! (`admit.rs`: `--max-conns`, live connections per shard), runs
//! the protocol in an isolated, tracked task, and waits for the control
//! byte. On `STOP` it stops accepting (its listeners close, so newcomers are
//! refused), ends connections idle between requests, and lets the others
//! finish for the drain time, or until a `CUT` byte (a second signal)
//! resets them.
//!
//! It talks to the main thread only through its control socket and the event
//! channel (see `control`). It must never let an accept error end an accept
//! loop, and never block its thread.

use std::io;
use std::rc::Rc;

use futures_lite::future;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::admit::{Admission, Backoff, Permit};
use super::conn::{self, Handler, Service};
use super::control::{self, Event, ShardListener, ShardSpec};
use super::signal::Signal;
use crate::backend::{Runtime, ShardConfig, StartError};

/// Start shard `spec.id` on its own thread with backend `R`. It reports
/// `Ready`, `StartFailed` or `Exited` on the event channel.
pub(crate) fn spawn<R: Runtime>(
    spec: ShardSpec<Handler<R::Conn>>,
    setup: R::Setup,
) -> io::Result<std::thread::JoinHandle<()>> {
    control::spawn_thread(spec, move |spec| {
        let config = ShardConfig {
            id: spec.id,
            cpu: spec.cpu,
            shards: spec.shards,
            timeouts: spec.timeouts,
            cached_sendfile: spec.cached_sendfile,
        };
        let (id, events) = (spec.id, spec.events.clone());
        if let Err(reason) = R::run(config, setup, move |rt| run(rt, spec)) {
            let _ = events.send(Event::StartFailed { shard: id, reason });
        }
    })
}

/// What every accept loop of one shard shares.
struct Shard<R: Runtime> {
    id: usize,
    rt: Rc<R>,
    /// Live connections admitted, all services together (`--max-conns`).
    admit: Admission,
    /// The live connections, for the drain.
    tracker: TaskTracker,
    /// Raised when the drain begins: connections idle between requests end.
    draining: Signal,
    /// Cuts every live connection (the drain's time is up, or a second
    /// signal came).
    cut: Signal,
}

async fn run<R: Runtime>(rt: Rc<R>, spec: ShardSpec<Handler<R::Conn>>) {
    let fail = |reason: StartError| {
        let _ = spec.events.send(Event::StartFailed {
            shard: spec.id,
            reason,
        });
    };
    let shard = Rc::new(Shard {
        id: spec.id,
        rt: rt.clone(),
        admit: Admission::new(spec.max_conns),
        tracker: TaskTracker::new(),
        draining: Signal::default(),
        cut: Signal::default(),
    });
    let beat_rt = rt.clone();
    let access = spec.access.clone();
    let publish_rt = rt.clone();
    rt.spawn(control::heartbeat(
        spec.stats.clone(),
        spec.started,
        move |d| beat_rt.sleep(d),
        move |stats| {
            publish_rt.tick();
            stats.ring.publish(publish_rt.figures());
            // This shard's access log lines reach the writer every beat.
            if let Some(log) = &access {
                log.flush();
            }
            // And its open-file caches let go of what changed, idle or not.
            crate::fs::cache::beat();
        },
    ));

    let stop = Signal::default();
    let accepting = TaskTracker::new();
    let capped = spec.max_conns.is_some();
    for l in spec.listeners {
        let ShardListener {
            service,
            index,
            handler,
            fd,
            shared,
            proxy,
        } = l;
        // A socket every shard shares must not be drained by one shard's
        // standing accept; nor may a capped shard accept ahead of its permits.
        let listener = match rt.listener(fd, !shared && !capped) {
            Ok(l) => l,
            Err(e) => {
                return fail(StartError::Listener {
                    service,
                    backend: R::NAME,
                    source: e,
                });
            }
        };
        let service = Service {
            name: service.into(),
            stats: spec.stats.services[index].clone(),
            linger: spec.linger,
            write_timeout: spec.timeouts.write,
            proxy,
            access: spec.access.clone(),
        };
        let stopped = stop.clone();
        let shard = shard.clone();
        rt.spawn(accepting.track_future(accept_loop(shard, listener, service, handler, stopped)));
    }
    let mut control = match rt.control(spec.control) {
        Ok(c) => c,
        Err(e) => return fail(StartError::Control(e)),
    };
    let _ = spec.events.send(Event::Ready { shard: spec.id });
    while !control::stops(spec.id, rt.read_control(&mut control).await) {}

    // Stop accepting: the loops end and close this shard's listeners.
    stop.raise();
    shard.draining.raise();
    accepting.close();
    accepting.wait().await;
    shard.admit.close();
    debug!(shard = spec.id, "stopped accepting");
    let cut_asked = async {
        loop {
            let read = rt.read_control(&mut control).await;
            match control::cuts(spec.id, &read) {
                Some(true) => return,
                Some(false) => {}
                None => future::pending::<()>().await,
            }
        }
    };
    control::drain(
        spec.id,
        &shard.tracker,
        &shard.cut,
        spec.drain,
        |d| rt.sleep(d),
        cut_asked,
    )
    .await;
}

/// Accept connections for one service until the shard stops; then close
/// the listener, serving what the kernel had accepted for it meanwhile.
async fn accept_loop<R: Runtime>(
    shard: Rc<Shard<R>>,
    mut listener: R::Listener,
    service: Service,
    handler: Handler<R::Conn>,
    stopped: Signal,
) {
    let mut backoff = Backoff::new();
    loop {
        let next = async {
            // Wait for room before accepting: connection N+1 waits in the backlog.
            if shard.admit.is_full() {
                service.stats.cap_waits.add(1);
            }
            let permit = shard.admit.permit().await?;
            Some((permit, shard.rt.accept(&mut listener).await))
        };
        // Stopping drops the wait, never an accepted connection (see
        // `Runtime::accept`).
        let stopping = async {
            stopped.raised().await;
            None
        };
        let Some((permit, accepted)) = future::or(next, stopping).await else {
            break;
        };
        let conn = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                let pause = backoff.on_error(&service.name, &e);
                drop(permit);
                if !pause.is_zero() {
                    service.stats.accept_backoffs.add(1);
                    shard.rt.sleep(pause).await;
                }
                continue;
            }
        };
        backoff.reset();
        serve(&shard, conn, &service, &handler, Some(permit));
    }
    let left = shard.rt.close_listener(listener).await;
    if !left.is_empty() {
        debug!(
            "{}: shard {}: {} connection(s) accepted as it stopped: serving them",
            service.name,
            shard.id,
            left.len()
        );
    }
    for conn in left {
        serve(&shard, conn, &service, &handler, None);
    }
}

/// Run one accepted connection, tracked for the drain; `permit` is its
/// room under `--max-conns` (none for those accepted as the shard stopped).
fn serve<R: Runtime>(
    shard: &Shard<R>,
    conn: R::Conn,
    service: &Service,
    handler: &Handler<R::Conn>,
    permit: Option<Permit>,
) {
    debug!(
        "{}: shard {} accepted {}",
        service.name,
        shard.id,
        crate::io::Connection::peer(&conn)
    );
    let (service, handler, cut) = (service.clone(), handler.clone(), shard.cut.clone());
    let draining = shard.draining.clone();
    shard.rt.spawn(shard.tracker.track_future(async move {
        // Cut by the drain: the connection is dropped mid-answer, and
        // its client gets a reset.
        future::or(
            conn::serve(conn, &handler, &service, draining),
            cut.raised(),
        )
        .await;
        drop(permit);
    }));
}
