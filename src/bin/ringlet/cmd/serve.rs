//! `ringlet serve`: build the server from the options and the protocols of
//! the table it is given (`protocols/`; bound here, or on the sockets
//! passed in: systemd's, or the previous process's in an upgrade), log
//! where it listens, tell systemd, and turn signals into a graceful drain
//! (the first `SIGTERM`/`SIGINT`), a cut (the second: every connection
//! still open is reset, never closed as if whole) or an upgrade in place
//! (`SIGHUP`, see `upgrade.rs`).

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use ringlet::access::{self, AccessLog};
use ringlet::systemd::{self, Notifier};
use ringlet::{Linger, Server, Stopper, Timeouts};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use tracing::{info, warn};

use super::upgrade::{self, Plan};
use crate::cli::Serve;
use crate::listen::Listen;
use crate::protocols::Services;

/// The name the metrics socket goes by when it is handed over.
const METRICS: &str = "metrics";

pub fn serve(args: Serve, services: Services) -> anyhow::Result<()> {
    // Signals are caught before the shards start, so none is lost in between.
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP, SIGUSR1]).context("installing signal handlers")?;
    let generation = upgrade::generation();
    // What SIGHUP starts: this binary's path as it was at start (the file
    // there may be replaced meanwhile: that is the upgrade).
    let plan = Plan {
        exe: std::env::current_exe().context("finding this binary's path")?,
        args: std::env::args_os().skip(1).collect(),
        generation: generation + 1,
        timeout: Duration::from_secs_f64(args.upgrade_timeout),
    };
    let mut builder = Server::builder()
        .backend(args.backend)
        .cores(args.cores)
        .max_conns(args.max_conns.map(|n| n as usize))
        .cached_sendfile(args.cached_sendfile)
        .shutdown_timeout(Duration::from_secs_f64(args.shutdown_timeout))
        .timeouts(Timeouts {
            idle: Duration::from_secs_f64(args.idle_timeout),
            write: Duration::from_secs_f64(args.write_timeout),
        })
        .linger(Linger {
            time: Duration::from_secs_f64(args.linger),
            bytes: args.linger_bytes,
        });

    let access = match access::Target::from_arg(&args.access_log) {
        None => None,
        Some(target) => Some(
            AccessLog::open(target.clone(), args.access_log_format)
                .with_context(|| format!("--access-log {target}"))?,
        ),
    };
    if let Some(log) = &access {
        builder = builder.access_log(log.clone());
    }

    let mut names = services.names();
    names.push(METRICS);
    let inherited = systemd::inherited_sockets(&names).map_err(anyhow::Error::msg)?;
    let activated = !inherited.is_empty();
    let mut metrics_socket = None;
    if activated {
        // Socket activation or an upgrade: serve what was passed in.
        for (name, listeners) in inherited {
            if name == METRICS {
                metrics_socket = listeners.into_iter().next();
                continue;
            }
            builder = services.add_on(builder, &name, listeners)?;
        }
    } else {
        builder = services.add_bound(builder)?;
    }

    if !args.proxy_protocol.is_empty() {
        let names: Vec<&str> = args.proxy_protocol.iter().map(String::as_str).collect();
        let policy = ringlet::ProxyPolicy {
            trusted: args.proxy_from.clone(),
            ..ringlet::ProxyPolicy::loopback()
        };
        builder = builder
            .proxy_protocol(&names, policy)
            .map_err(|e| anyhow::anyhow!("--proxy-protocol: {e} (is it on?)"))?;
    }
    let server = builder.start().map_err(in_flags)?;
    log_ready(&server, &args, &services, activated, generation);
    let metrics = match (metrics_socket, args.metrics) {
        (Some(listener), _) => Some(listener),
        (None, Listen::On(addr)) => Some(
            TcpListener::bind(addr)
                .with_context(|| format!("cannot listen for metrics on {addr}"))?,
        ),
        (None, Listen::Off) => None,
    };
    let state = Arc::new(Mutex::new(State::Serving));
    let metrics = match metrics {
        Some(listener) => {
            let kept = listener.try_clone().context("the metrics socket")?;
            let ready = readiness(state.clone(), server.monitor());
            let at = super::metrics::start_on(
                listener,
                server.monitor(),
                server.backend(),
                ready,
                access.clone(),
            )?;
            info!("metrics on http://{at}/metrics");
            Some(OwnedFd::from(kept))
        }
        None => None,
    };
    let notifier = if std::env::var_os(upgrade::READY_FD).is_some() {
        Notifier::start_taking_over(server.monitor())
    } else {
        Notifier::start(server.monitor())
    };
    let stopper = server.stopper();
    if args.fd_store {
        notifier.store_sockets(&handover(&stopper, &metrics)?);
    }
    // Every shard accepts: a process started by an upgrade tells the old one.
    upgrade::say_ready();

    let signals_thread = SignalThread {
        stopper,
        notifier,
        plan,
        metrics,
        state,
        access,
    };
    std::thread::Builder::new()
        .name("ringlet-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                signals_thread.on(sig);
            }
        })
        .context("starting the signal thread")?;

    server.wait()?;
    info!("stopped");
    Ok(())
}

/// Every listening socket to hand over: the server's and the metrics one.
fn handover(
    stopper: &Stopper,
    metrics: &Option<OwnedFd>,
) -> anyhow::Result<Vec<(String, OwnedFd)>> {
    let mut sockets = stopper
        .listening_sockets()
        .context("duplicating the listening sockets")?;
    if let Some(fd) = metrics {
        sockets.push((METRICS.to_string(), fd.try_clone()?));
    }
    Ok(sockets)
}

/// `/ready` on the metrics endpoint: every shard accepting, no drain or
/// upgrade begun (a balancer should send no new work to a process about to
/// go).
fn readiness(state: Arc<Mutex<State>>, monitor: ringlet::Monitor) -> super::metrics::Ready {
    Arc::new(move || {
        match *state.lock().unwrap_or_else(|p| p.into_inner()) {
            State::Serving => {}
            State::Upgrading => return Err("upgrading in place"),
            State::Stopping => return Err("draining"),
        }
        // A shard that missed a few heartbeats is dead or stalled.
        match monitor.stalled(Duration::from_secs(2)) {
            None => Ok(()),
            Some(_) => Err("a shard is not turning"),
        }
    })
}

/// Where the process stands, for what a signal does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Serving,
    /// A new process is starting (SIGHUP).
    Upgrading,
    /// Draining (a stop, or a new process took over).
    Stopping,
}

/// What the signal thread acts on.
struct SignalThread {
    stopper: Stopper,
    notifier: Notifier,
    plan: Plan,
    metrics: Option<OwnedFd>,
    state: Arc<Mutex<State>>,
    access: Option<AccessLog>,
}

impl SignalThread {
    fn on(&self, sig: i32) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let name = match sig {
            SIGHUP => return self.on_hup(&mut state),
            SIGUSR1 => {
                if let Some(log) = &self.access {
                    info!("SIGUSR1: reopening the access log");
                    log.reopen();
                }
                return;
            }
            SIGINT => "SIGINT",
            _ => "SIGTERM",
        };
        match *state {
            State::Stopping => {
                warn!("second {name}: stopping now: every connection still open is reset");
                self.stopper.cut();
            }
            State::Serving | State::Upgrading => {
                if *state == State::Upgrading {
                    warn!(
                        "{name} during an upgrade: this process drains; a new one that becomes ready serves on"
                    );
                }
                *state = State::Stopping;
                info!("{name}: draining: no new connections; live ones may finish");
                self.notifier.stopping();
                self.stopper.stop();
            }
        }
    }

    fn on_hup(&self, state: &mut State) {
        match *state {
            State::Upgrading => {
                return info!("SIGHUP: an upgrade is already under way; ignored");
            }
            State::Stopping => return info!("SIGHUP: stopping; no upgrade"),
            State::Serving => {}
        }
        let sockets = match handover(&self.stopper, &self.metrics) {
            Ok(sockets) => sockets,
            Err(e) => return warn!("SIGHUP: cannot upgrade: {e:#}"),
        };
        *state = State::Upgrading;
        let plan = self.plan.clone();
        let what = format!(
            "upgrading: starting {} (generation {})",
            plan.exe.display(),
            plan.generation
        );
        info!("SIGHUP: {what} with {} listening socket(s)", sockets.len());
        self.notifier.reloading(&what);
        let (stopper, notifier, shared) = (
            self.stopper.clone(),
            self.notifier.clone(),
            self.state.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("ringlet-upgrade".into())
            .spawn(move || {
                let result = upgrade::hand_over(&plan, &sockets);
                drop(sockets);
                let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
                match result {
                    Ok(pid) => {
                        info!(
                            "upgrade: generation {} (pid {pid}) accepts on every shard; this process stops accepting and drains",
                            plan.generation
                        );
                        notifier.handed_over();
                        if *state == State::Upgrading {
                            *state = State::Stopping;
                            stopper.stop();
                        }
                    }
                    Err(why) => {
                        warn!("upgrade failed: {why}; this process serves on");
                        if *state == State::Upgrading {
                            *state = State::Serving;
                            notifier.reload_failed(&why);
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            warn!("SIGHUP: cannot start the upgrade thread: {e}");
            *state = State::Serving;
            self.notifier.reload_failed("no upgrade thread");
        }
    }
}

fn log_ready(server: &Server, args: &Serve, services: &Services, activated: bool, generation: u64) {
    let shards = match server.cpus().len() {
        1 => "1 shard".to_string(),
        n => format!("{n} shards"),
    };
    let cpus: Vec<String> = server.cpus().iter().map(|c| c.to_string()).collect();
    let common = format!(
        "{shards}, {} backend, CPUs {}{}",
        server.backend().name(),
        cpus.join(","),
        match (activated, generation) {
            (false, _) => String::new(),
            (true, 1) => ", socket from systemd".to_string(),
            (true, g) => format!(", sockets from generation {} (upgrade)", g - 1),
        }
    );
    for service in services.iter() {
        if let Some(addr) = server.local_addr(service.name()) {
            info!(
                "{} listening on {addr} ({common}, {})",
                service.name(),
                service.describe(&services.common)
            );
        }
    }
    let serves_files = services
        .iter()
        .any(|s| s.sends_files() && server.local_addr(s.name()).is_some());
    if server.backend().has_ring()
        && args.cached_sendfile
        && serves_files
        && !ringlet::probe::page_cache_visible()
    {
        info!(
            "files leave through the ring only (splice or read and send): this kernel does not answer cachestat (Linux 6.5+; a seccomp filter may refuse it)"
        );
    }
}

/// A start error in the command line's words: where a flag's value is the
/// cause, the flag to change (the library names none).
fn in_flags(e: ringlet::ServerError) -> anyhow::Error {
    use ringlet::{PlacementError, ServerError};
    match e {
        ServerError::Placement(PlacementError::NoCores) => {
            anyhow::anyhow!("--cores must be at least 1")
        }
        ServerError::Placement(p @ PlacementError::TooMany { .. }) => {
            anyhow::anyhow!("{p}; lower --cores or widen the affinity (taskset, cgroup cpuset)")
        }
        e => e.into(),
    }
}
