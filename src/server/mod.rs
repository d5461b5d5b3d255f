//! The thread-per-core runtime shared by every protocol.
//!
//! [`Server::builder`] collects services (a name, an address, a
//! [`Protocol`]); [`ServerBuilder::start`] binds every listener, starts one
//! pinned glommio shard per CPU and returns once all of them accept. The
//! returned [`Server`] supervises: [`Server::wait`] returns when a stop was
//! asked for, or with an error as soon as a shard's thread dies, so a process
//! never runs on with a dead listener swallowing connections.
//!
//! Backends run the same protocols: `uring` (glommio shards whose sockets and
//! files go through a completion ring, `crate::ring`) and `epoll` (tokio
//! shards, `crate::epoll`); `auto` picks uring when [`probe`](crate::probe)
//! says io_uring works and says why when it falls back. (glommio's own
//! readiness-based sockets were a third backend until the ring beat or
//! matched them in every measured case.)
//!
//! Rooms: `placement` (which CPUs), `listener` (sockets), `limits`
//! (locked memory), `control` (shard plumbing), `admit` (accept policy),
//! `shard` (the glommio shard), `isolate` (panics), `monitor` (live
//! figures).

use std::future::Future;
use std::io;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, error, warn};

use crate::epoll::{self, EpollConn};
use crate::probe;
use crate::proto::Protocol;

pub(crate) mod admit;
pub(crate) mod control;
pub(crate) mod isolate;
mod limits;
mod listener;
pub mod monitor;
pub mod placement;
mod shard;

use control::{Event, ShardListener, ShardSpec};
pub use monitor::{Monitor, Summary};

/// How long live connections may finish after a stop, by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long start-up may take before it is called failed.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shards get to exit after their drain, before `wait` gives up on them.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// One connection's work, as a shard runs it.
pub(crate) type Work = Pin<Box<dyn Future<Output = io::Result<()>>>>;

/// A protocol, erased to what a shard calls per connection of type `C`.
pub(crate) type Handler<C> = Arc<dyn Fn(C) -> Work + Send + Sync>;

/// Which I/O runtime the shards run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// io_uring when it works here, else epoll (logging the real reason).
    #[default]
    Auto,
    /// glommio shards, sockets and files on the shard's completion ring;
    /// refuses to start where io_uring is blocked.
    Uring,
    /// tokio shards on epoll, `sendfile` for files: the baseline.
    Epoll,
}

impl Backend {
    /// `uring` / `epoll` / `auto`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Uring => "uring",
            Backend::Epoll => "epoll",
        }
    }
}

/// One protocol, erased once for each backend's connection type.
#[derive(Clone)]
pub(crate) struct Handlers {
    pub ring: Handler<crate::ring::conn::RingConn>,
    pub epoll: Handler<EpollConn>,
}

/// A protocol erased for one connection type.
fn erase<P: Protocol, C: crate::Connection + 'static>(protocol: Arc<P>) -> Handler<C> {
    Arc::new(move |conn| {
        let protocol = protocol.clone();
        Box::pin(async move { protocol.serve(conn).await })
    })
}

/// Why a server could not start, or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Nothing to serve.
    #[error("no service to run: enable at least one listener")]
    NoServices,
    /// The CPU choice cannot be met.
    #[error("{0}")]
    Placement(String),
    /// io_uring cannot be used in this process.
    #[error("{0}")]
    IoUring(String),
    /// A listener could not be bound.
    #[error("cannot listen for {service} on {addr}: {source}")]
    Bind {
        service: String,
        addr: SocketAddr,
        source: io::Error,
    },
    /// A shard could not start.
    #[error("shard {shard} failed to start: {reason}")]
    Start { shard: usize, reason: String },
    /// A shard's thread died while serving.
    #[error(
        "shard {shard} (CPU {cpu}) died: {reason}; stopping so a supervisor can restart the server"
    )]
    ShardDied {
        shard: usize,
        cpu: usize,
        reason: String,
    },
    /// Some other system call failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Where a service's connections come from.
enum Source {
    /// Bind this address, one `SO_REUSEPORT` listener per shard.
    Bind(SocketAddr),
    /// A socket already listening (socket activation): every shard accepts on it.
    Inherited(std::os::fd::OwnedFd),
}

struct Service {
    name: String,
    source: Source,
    handlers: Handlers,
}

/// Collects services and settings; [`ServerBuilder::start`] runs them.
pub struct ServerBuilder {
    services: Vec<Service>,
    cores: Option<usize>,
    max_conns: Option<usize>,
    backend: Backend,
    shutdown_timeout: Duration,
    timeouts: crate::io::Timeouts,
}

/// A running server: its addresses, and the means to stop or wait for it.
pub struct Server {
    addrs: Vec<(String, SocketAddr)>,
    cpus: Vec<usize>,
    backend: Backend,
    events: Receiver<Event>,
    stopper: Stopper,
    threads: Vec<std::thread::JoinHandle<()>>,
    monitor: Monitor,
    shutdown_timeout: Duration,
}

/// Asks a running server to stop, from any thread. Cheap to clone.
#[derive(Clone)]
pub struct Stopper {
    controls: Arc<Mutex<Vec<UnixStream>>>,
    events: Sender<Event>,
}

impl Server {
    /// Start describing a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            services: Vec::new(),
            cores: None,
            max_conns: None,
            backend: Backend::Auto,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            timeouts: crate::io::Timeouts::default(),
        }
    }

    /// Live figures of every shard, readable from any thread.
    pub fn monitor(&self) -> Monitor {
        self.monitor.clone()
    }

    /// The backend actually running (`Uring` or `Epoll`, never `Auto`).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The address service `name` listens on (port 0 resolved).
    pub fn local_addr(&self, name: &str) -> Option<SocketAddr> {
        self.addrs.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// The CPUs the shards are pinned to, one shard each.
    pub fn cpus(&self) -> &[usize] {
        &self.cpus
    }

    /// A handle that stops this server from another thread (a signal handler).
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Ask to stop, then wait for every shard to end.
    pub fn stop(self) -> Result<(), ServerError> {
        self.stopper.stop();
        self.wait()
    }

    /// Block until the server stops. `Ok` after a [`Stopper::stop`]; an error
    /// as soon as a shard dies without being asked to (the others are then
    /// stopped too).
    pub fn wait(self) -> Result<(), ServerError> {
        let mut stopping = false;
        let mut deadline: Option<Instant> = None;
        let mut running = self.threads.len();
        while running > 0 {
            let event = match deadline {
                None => self
                    .events
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => self
                    .events
                    .recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match event {
                Ok(Event::StopRequested) => {
                    stopping = true;
                    deadline.get_or_insert(Instant::now() + self.shutdown_timeout + STOP_GRACE);
                }
                Ok(Event::Exited { shard, panic }) if !stopping => {
                    let reason = panic.unwrap_or_else(|| "its executor returned".into());
                    error!("shard {shard} died: {reason}");
                    self.stopper.stop();
                    return Err(ServerError::ShardDied {
                        shard,
                        cpu: self.cpus[shard],
                        reason,
                    });
                }
                Ok(Event::Exited { shard, .. }) => {
                    debug!(shard, "stopped");
                    running -= 1;
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    error!("{running} shard(s) did not stop in time; leaving them");
                    return Ok(());
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        for t in self.threads {
            let _ = t.join();
        }
        Ok(())
    }

    #[doc(hidden)]
    /// Fault injection for tests: make shard `shard` panic outside any
    /// connection, as a bug in the runtime would.
    pub fn inject_shard_panic(&self, shard: usize) {
        self.stopper.send(Some(shard), control::PANIC);
    }
}

impl Stopper {
    /// Ask every shard to stop accepting, let live connections finish (up to
    /// the shutdown timeout), and end. Returns at once.
    pub fn stop(&self) {
        let _ = self.events.send(Event::StopRequested);
        self.send(None, control::STOP);
    }

    fn send(&self, only: Option<usize>, byte: u8) {
        let mut controls = self.controls.lock().unwrap_or_else(|p| p.into_inner());
        for (i, c) in controls.iter_mut().enumerate() {
            if only.is_none_or(|s| s == i) {
                // A shard that is gone cannot be told; its exit is already known.
                let _ = c.write_all(&[byte]);
            }
        }
    }
}

impl ServerBuilder {
    /// Serve `protocol` on `addr` under `name` (used in log lines and
    /// [`Server::local_addr`]). Port 0 picks a free port.
    pub fn service<P: Protocol>(self, name: &str, addr: SocketAddr, protocol: P) -> Self {
        self.add(name, Source::Bind(addr), protocol)
    }

    /// Serve `protocol` on a socket that is already listening (socket
    /// activation): every shard accepts on it. It is made non-blocking.
    pub fn service_on<P: Protocol>(
        self,
        name: &str,
        listener: std::net::TcpListener,
        protocol: P,
    ) -> Self {
        self.add(name, Source::Inherited(listener.into()), protocol)
    }

    fn add<P: Protocol>(mut self, name: &str, source: Source, protocol: P) -> Self {
        let protocol = Arc::new(protocol);
        self.services.push(Service {
            name: name.to_string(),
            source,
            handlers: Handlers {
                ring: erase(protocol.clone()),
                epoll: erase(protocol),
            },
        });
        self
    }

    /// Every connection's idle and write timeouts (default 60 s and 30 s).
    pub fn timeouts(mut self, timeouts: crate::io::Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// How long live connections may finish after a stop before they are
    /// closed (default [`DEFAULT_SHUTDOWN_TIMEOUT`]).
    pub fn shutdown_timeout(mut self, limit: Duration) -> Self {
        self.shutdown_timeout = limit;
        self
    }

    /// Which backend to run (default [`Backend::Auto`]).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Run `n` shards (default: one per CPU this process may run on).
    pub fn cores(mut self, n: Option<usize>) -> Self {
        self.cores = n;
        self
    }

    /// At most `n` live connections per shard; connection `n + 1` waits in the
    /// listen backlog until one ends (default: no limit).
    pub fn max_conns(mut self, n: Option<usize>) -> Self {
        self.max_conns = n;
        self
    }

    /// Bind, start every shard, and return once all of them accept.
    pub fn start(self) -> Result<Server, ServerError> {
        if self.services.is_empty() {
            return Err(ServerError::NoServices);
        }
        let allowed = placement::allowed_cpus()?;
        let cpus = placement::choose(&allowed, self.cores).map_err(ServerError::Placement)?;
        let backend = resolve_backend(self.backend)?;
        isolate::install_panic_hook();

        let mut addrs = Vec::new();
        let mut per_shard: Vec<Vec<ShardListener<Handlers>>> =
            cpus.iter().map(|_| Vec::new()).collect();
        for svc in &self.services {
            let (fds, actual) = match &svc.source {
                Source::Bind(addr) => {
                    listener::bind_shards(*addr, cpus.len()).map_err(|source| {
                        ServerError::Bind {
                            service: svc.name.clone(),
                            addr: *addr,
                            source,
                        }
                    })?
                }
                Source::Inherited(fd) => listener::share(fd, cpus.len()).map_err(|e| {
                    ServerError::Io(io::Error::new(
                        e.kind(),
                        format!("the inherited {} socket: {e}", svc.name),
                    ))
                })?,
            };
            addrs.push((svc.name.clone(), actual));
            for (shard, fd) in fds.into_iter().enumerate() {
                per_shard[shard].push(ShardListener {
                    service: svc.name.clone(),
                    handler: svc.handlers.clone(),
                    fd,
                    shared: matches!(svc.source, Source::Inherited(_)),
                });
            }
        }

        let io_memory = match backend {
            Backend::Epoll => 0,
            _ => limits::io_memory_per_shard(cpus.len()),
        };
        let max_conns = self.max_conns.unwrap_or(usize::MAX >> 4);
        let (tx, rx) = mpsc::channel();
        let monitor = Monitor::new(cpus.len());
        let mut controls = Vec::new();
        let mut threads = Vec::new();
        for (id, listeners) in per_shard.into_iter().enumerate() {
            let (ours, theirs) = UnixStream::pair()?;
            controls.push(ours);
            let (cpu, control, events) = (cpus[id], theirs.into(), tx.clone());
            let (stats, started, drain) =
                (monitor.shard(id), monitor.started(), self.shutdown_timeout);
            let timeouts = self.timeouts;
            let spec = ShardSpec {
                id,
                cpu,
                max_conns,
                listeners,
                control,
                events,
                stats,
                started,
                drain,
                timeouts,
                shards: cpus.len(),
            };
            threads.push(match backend {
                Backend::Epoll => epoll::spawn(spec)?,
                _ => shard::spawn(spec, io_memory)?,
            });
        }
        let stopper = Stopper {
            controls: Arc::new(Mutex::new(controls)),
            events: tx,
        };
        let server = Server {
            addrs,
            cpus,
            backend,
            events: rx,
            stopper,
            threads,
            monitor,
            shutdown_timeout: self.shutdown_timeout,
        };
        server.await_ready()?;
        Ok(server)
    }
}

/// Turn `Auto` into what this machine can run; refuse `Uring` where it cannot.
fn resolve_backend(asked: Backend) -> Result<Backend, ServerError> {
    if asked == Backend::Epoll {
        return Ok(Backend::Epoll);
    }
    match probe::Report::gather().why_not() {
        None => Ok(Backend::Uring),
        Some(why) if asked != Backend::Auto => Err(ServerError::IoUring(why)),
        Some(why) => {
            warn!("{why}; falling back to the epoll backend");
            Ok(Backend::Epoll)
        }
    }
}

impl Server {
    fn await_ready(&self) -> Result<(), ServerError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut ready = 0;
        while ready < self.threads.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let failure = match self.events.recv_timeout(left) {
                Ok(Event::Ready { shard }) => {
                    debug!(shard, "accepting");
                    ready += 1;
                    continue;
                }
                Ok(Event::StartFailed { shard, reason }) => ServerError::Start { shard, reason },
                Ok(Event::Exited { shard, panic }) => ServerError::Start {
                    shard,
                    reason: panic.unwrap_or_else(|| "its thread ended".into()),
                },
                Ok(Event::StopRequested) => continue,
                Err(_) => ServerError::Start {
                    shard: ready,
                    reason: format!("not ready within {START_TIMEOUT:?}"),
                },
            };
            self.stopper.stop();
            return Err(failure);
        }
        Ok(())
    }
}
