//! The thread-per-core runtime shared by every protocol.
//!
//! [`Server::builder`] collects services (a name, an address, a
//! [`Protocol`]); [`ServerBuilder::start`] binds every listener, starts one
//! pinned glommio shard per CPU and returns once all of them accept. The
//! returned [`Server`] supervises: [`Server::wait`] returns when a stop was
//! asked for, or with an error as soon as a shard's thread dies, so a process
//! never runs on with a dead listener swallowing connections.
//!
//! Backends run the same protocols on the same shard skeleton
//! (`shard.rs`, generic over `crate::backend::Runtime`): `uring` (glommio shards
//! whose sockets and files go through a completion ring, `crate::uring`) and
//! `epoll` (tokio shards, `crate::epoll`); `auto` picks uring when
//! [`probe`](crate::probe) says io_uring works and says why when it falls
//! back. This file is the one place that names the backends: it chooses.
//!
//! Rooms: `listener` (sockets, one owner per
//! port), `shard` (the skeleton),
//! `control` (shard plumbing), `admit` (accept policy), `conn` (byte
//! counting and how a connection ends), `isolate` (panics), `monitor`
//! (live figures).

use std::io;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, error, warn};

use crate::epoll::Epoll;
use crate::io::{Linger, Timeouts};
use crate::placement;
use crate::probe;
use crate::proto::Protocol;
use crate::uring::Uring;

pub(crate) mod admit;
pub(crate) mod conn;
pub(crate) mod control;
pub(crate) mod isolate;
mod listener;
pub(crate) mod monitor;
mod proxied;
mod shard;
mod signal;

use crate::backend::Runtime;
use conn::{Handler, erase};
use control::{Event, ShardListener, ShardSpec};
pub use monitor::{Monitor, RingFigures, ServiceFigures, ShardFigures, Snapshot, Summary};
pub use proxied::ProxyPolicy;

/// How long live connections may finish after a stop, by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long start-up may take before it is called failed.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shards get to exit after their drain, before `wait` gives up on them.
const STOP_GRACE: Duration = Duration::from_secs(5);

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
    /// Every backend, in the order `--help` lists them: `Auto`, `Uring`, `Epoll`.
    pub const ALL: &'static [Backend] = &[Backend::Auto, Backend::Uring, Backend::Epoll];

    /// `uring` / `epoll` / `auto`: the name on the command line and in figures.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Uring => "uring",
            Backend::Epoll => "epoll",
        }
    }

    /// One line that says what this backend is, for `--help`.
    pub fn about(self) -> &'static str {
        match self {
            Backend::Auto => "io_uring if it works here, else epoll (logging why)",
            Backend::Uring => {
                "io_uring: glommio shards, sockets and files on each shard's completion ring"
            }
            Backend::Epoll => "epoll (tokio shards, sendfile for files), the baseline",
        }
    }

    /// Whether this backend's shards run a completion ring, so that ring
    /// figures ([`RingFigures`]) mean something. `Auto` has none of its own:
    /// ask the backend a [`Server`] actually runs ([`Server::backend`]).
    pub fn has_ring(self) -> bool {
        match self {
            Backend::Uring => true,
            Backend::Auto | Backend::Epoll => false,
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend name that is none of [`Backend::ALL`]'s; it displays the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {0:?}: expected one of {names}", names = backend_names())]
pub struct UnknownBackend(pub String);

/// `auto, uring, epoll`: every [`Backend::name`], for error messages.
fn backend_names() -> String {
    let names: Vec<&str> = Backend::ALL.iter().map(|b| b.name()).collect();
    names.join(", ")
}

impl std::str::FromStr for Backend {
    type Err = UnknownBackend;

    /// A backend by its [`Backend::name`] (exactly, as the command line spells it).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .iter()
            .copied()
            .find(|b| b.name() == s)
            .ok_or_else(|| UnknownBackend(s.to_string()))
    }
}

/// One protocol, erased once for each backend's connection type.
#[derive(Clone)]
struct Handlers {
    uring: Handler<<Uring as Runtime>::Conn>,
    epoll: Handler<<Epoll as Runtime>::Conn>,
}

/// Why a server could not start, or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Nothing to serve.
    #[error("no service to run: enable at least one listener")]
    NoServices,
    /// A setting names a service the server does not run.
    #[error("no service named {0:?} is served")]
    NoSuchService(String),
    /// The CPU choice cannot be met.
    #[error("{0}")]
    Placement(String),
    /// io_uring cannot be used in this process.
    #[error("{0}")]
    IoUring(String),
    /// A listener could not be bound.
    #[error("cannot listen for {service} on {addr}: {reason}")]
    Bind {
        service: String,
        addr: SocketAddr,
        reason: String,
    },
    /// Two services name the same address.
    #[error("{first} and {second} both name {addr}: give each service its own address")]
    SameAddress {
        first: String,
        second: String,
        addr: SocketAddr,
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
    /// Sockets already listening (socket activation, an upgrade's hand-over).
    Inherited(Vec<OwnedFd>),
}

struct Service {
    name: String,
    source: Source,
    handlers: Handlers,
    proxy: Option<Arc<ProxyPolicy>>,
}

/// Collects services and settings; [`ServerBuilder::start`] runs them.
pub struct ServerBuilder {
    services: Vec<Service>,
    cores: Option<usize>,
    max_conns: Option<usize>,
    backend: Backend,
    shutdown_timeout: Duration,
    timeouts: Timeouts,
    linger: Linger,
    cached_sendfile: bool,
    access: Option<crate::access::AccessLog>,
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
    /// Every listening socket, until a stop: what an upgrade hands over.
    handover: Arc<Mutex<Vec<(String, OwnedFd)>>>,
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
            timeouts: Timeouts::default(),
            linger: Linger::default(),
            cached_sendfile: true,
            access: None,
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
                Ok(Event::CutRequested) => {
                    stopping = true;
                    let soon = Instant::now() + STOP_GRACE;
                    deadline = Some(deadline.map_or(soon, |d| d.min(soon)));
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
    /// Ask every shard to stop accepting, end the connections idle between
    /// requests (with a FIN, after their lingering close), let the others
    /// finish (up to the shutdown timeout), and end. Returns at once.
    pub fn stop(&self) {
        // Once the shards close theirs, nothing holds the sockets open (and
        // newcomers are refused), unless a new process was handed them.
        self.handover
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let _ = self.events.send(Event::StopRequested);
        self.send(None, control::STOP);
    }

    /// A new descriptor of every listening socket, with its service's
    /// name: each shard's own `SO_REUSEPORT` socket, or the sockets the
    /// server was given. For a new process taking over (an upgrade): the
    /// same sockets, so that nothing queued on them is lost when this
    /// server stops accepting. Empty once a stop was asked for.
    pub fn listening_sockets(&self) -> io::Result<Vec<(String, OwnedFd)>> {
        let handover = self.handover.lock().unwrap_or_else(|p| p.into_inner());
        handover
            .iter()
            .map(|(name, fd)| Ok((name.clone(), fd.as_fd().try_clone_to_owned()?)))
            .collect()
    }

    /// Stop at once: as [`Stopper::stop`], but every connection still open
    /// is reset now rather than at the end of the drain (a second signal).
    /// Their clients see `ECONNRESET`, never an end of file that could pass
    /// for a whole answer. Returns at once.
    pub fn cut(&self) {
        self.stop();
        let _ = self.events.send(Event::CutRequested);
        self.send(None, control::CUT);
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
        self.service_on_all(name, vec![listener], protocol)
    }

    /// Serve `protocol` on sockets that are already listening, all on one
    /// address: one per shard, as an upgrade hands over the previous
    /// process's (see [`Stopper::listening_sockets`]), each shard then
    /// accepting on its own; any other number, and every shard accepts on
    /// every one. They are made non-blocking.
    pub fn service_on_all<P: Protocol>(
        self,
        name: &str,
        listeners: Vec<std::net::TcpListener>,
        protocol: P,
    ) -> Self {
        let fds = listeners.into_iter().map(OwnedFd::from).collect();
        self.add(name, Source::Inherited(fds), protocol)
    }

    fn add<P: Protocol>(mut self, name: &str, source: Source, protocol: P) -> Self {
        let protocol = Arc::new(protocol);
        self.services.push(Service {
            name: name.to_string(),
            proxy: None,
            source,
            handlers: Handlers {
                uring: erase(protocol.clone()),
                epoll: erase(protocol),
            },
        });
        self
    }

    /// Every connection's idle and write timeouts (default 60 s and 30 s).
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// How long, and for how many bytes, a connection whose protocol
    /// finished is drained before it is closed (default 2 s, 64 KiB); see
    /// [`Linger`].
    pub fn linger(mut self, linger: Linger) -> Self {
        self.linger = linger;
        self
    }

    /// How long live connections may finish after a stop before they are
    /// closed (default [`DEFAULT_SHUTDOWN_TIMEOUT`]).
    pub fn shutdown_timeout(mut self, limit: Duration) -> Self {
        self.shutdown_timeout = limit;
        self
    }

    /// On the uring backend, send the parts of a file the page cache holds
    /// with `sendfile(2)` from the shard's thread (checked first with
    /// `cachestat`, Linux 6.5: a copy of page references, no io-wq hop);
    /// `false` sends every byte through the ring (splice via io-wq, or read
    /// and send), so no file copy ever runs on the core. Default `true`.
    /// The epoll backend always uses `sendfile`.
    pub fn cached_sendfile(mut self, on: bool) -> Self {
        self.cached_sendfile = on;
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

    /// At most `n` live connections per shard, all services together;
    /// connection `n + 1` waits in the listen backlog until one ends
    /// (default: no limit).
    pub fn max_conns(mut self, n: Option<usize>) -> Self {
        self.max_conns = n;
        self
    }

    /// Log every request (HTTP, the file protocol) and every echo session
    /// to `log`, from the shards without ever waiting on its disk.
    pub fn access_log(mut self, log: crate::access::AccessLog) -> Self {
        self.access = Some(log);
        self
    }

    /// Behind a load balancer: every connection of the services named in
    /// `services` must open with a PROXY protocol header (v1 or v2) from a
    /// source `policy` trusts, within its deadline; the client address it
    /// carries replaces the peer's in everything per peer (log lines, the
    /// access log). A connection without a valid header, or from a source
    /// not trusted, is closed with one log line and never served. A v2
    /// `LOCAL` header (a health check) is served as it is.
    pub fn proxy_protocol(
        mut self,
        services: &[&str],
        policy: ProxyPolicy,
    ) -> Result<Self, ServerError> {
        let policy = Arc::new(policy);
        for name in services {
            let svc = self
                .services
                .iter_mut()
                .find(|s| s.name == *name)
                .ok_or_else(|| ServerError::NoSuchService(name.to_string()))?;
            svc.proxy = Some(policy.clone());
        }
        Ok(self)
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

        let mut addrs: Vec<(String, SocketAddr)> = Vec::new();
        // A descriptor of every listening socket, to hand to a new process.
        let mut handover: Vec<(String, OwnedFd)> = Vec::new();
        let mut per_shard: Vec<Vec<ShardListener<Handlers>>> =
            cpus.iter().map(|_| Vec::new()).collect();
        for (index, svc) in self.services.iter().enumerate() {
            let (per_shard_fds, actual, shared) = match &svc.source {
                Source::Bind(addr) => {
                    if let Some(first) = self.services.iter().take(index).find(
                        |s| matches!(s.source, Source::Bind(a) if a == *addr && addr.port() != 0),
                    ) {
                        return Err(ServerError::SameAddress {
                            first: first.name.clone(),
                            second: svc.name.clone(),
                            addr: *addr,
                        });
                    }
                    let (fds, actual) = listener::bind_shards(*addr, cpus.len()).map_err(|e| {
                        ServerError::Bind {
                            service: svc.name.clone(),
                            addr: *addr,
                            reason: listener::explain(&e),
                        }
                    })?;
                    for fd in &fds {
                        handover.push((svc.name.clone(), fd.try_clone()?));
                    }
                    (fds.into_iter().map(|fd| vec![fd]).collect(), actual, false)
                }
                Source::Inherited(fds) => {
                    let (per_shard_fds, actual, shared) = listener::distribute(fds, cpus.len())
                        .map_err(|e| {
                            ServerError::Io(io::Error::new(
                                e.kind(),
                                format!("the inherited {} socket: {e}", svc.name),
                            ))
                        })?;
                    for fd in fds {
                        handover.push((svc.name.clone(), fd.try_clone()?));
                    }
                    (per_shard_fds, actual, shared)
                }
            };
            addrs.push((svc.name.clone(), actual));
            for (shard, fds) in per_shard_fds.into_iter().enumerate() {
                for fd in fds {
                    per_shard[shard].push(ShardListener {
                        service: svc.name.clone(),
                        index,
                        handler: svc.handlers.clone(),
                        fd,
                        shared,
                        proxy: svc.proxy.clone(),
                    });
                }
            }
        }

        let (tx, rx) = mpsc::channel();
        let monitor = Monitor::new(
            cpus.len(),
            self.services.iter().map(|s| s.name.clone()).collect(),
        );
        let mut controls = Vec::new();
        let mut specs = Vec::new();
        for (id, listeners) in per_shard.into_iter().enumerate() {
            let (ours, theirs) = UnixStream::pair()?;
            controls.push(ours);
            specs.push(ShardSpec {
                id,
                cpu: cpus[id],
                max_conns: self.max_conns,
                listeners,
                control: theirs.into(),
                events: tx.clone(),
                stats: monitor.shard(id),
                started: monitor.started(),
                drain: self.shutdown_timeout,
                timeouts: self.timeouts,
                cached_sendfile: self.cached_sendfile,
                linger: self.linger,
                access: self.access.clone(),
                shards: cpus.len(),
            });
        }
        let threads = match backend {
            Backend::Epoll => start_shards::<Epoll>(specs, |h| h.epoll)?,
            _ => start_shards::<Uring>(specs, |h| h.uring)?,
        };
        let stopper = Stopper {
            controls: Arc::new(Mutex::new(controls)),
            events: tx,
            handover: Arc::new(Mutex::new(handover)),
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

/// Start one shard of backend `R` per spec, each with its handlers erased
/// for `R`'s connections by `pick`.
fn start_shards<R: Runtime>(
    specs: Vec<ShardSpec<Handlers>>,
    pick: fn(Handlers) -> Handler<R::Conn>,
) -> io::Result<Vec<std::thread::JoinHandle<()>>> {
    let setup = R::prepare(specs.len());
    specs
        .into_iter()
        .map(|spec| shard::spawn::<R>(spec.map_handlers(pick), setup.clone()))
        .collect()
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
                Ok(Event::StopRequested | Event::CutRequested) => continue,
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

#[cfg(test)]
mod tests {
    use super::{Backend, UnknownBackend};

    #[test]
    fn backend_names_round_trip() {
        for &b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>(), Ok(b));
            assert_eq!(b.to_string(), b.name());
            assert!(!b.about().is_empty());
        }
        assert_eq!(Backend::ALL[0], Backend::default());
        assert!(Backend::Uring.has_ring());
        assert!(!Backend::Epoll.has_ring());
        let err = "io_uring".parse::<Backend>().unwrap_err();
        assert_eq!(err, UnknownBackend("io_uring".into()));
        assert_eq!(
            err.to_string(),
            "unknown backend \"io_uring\": expected one of auto, uring, epoll"
        );
    }
}
