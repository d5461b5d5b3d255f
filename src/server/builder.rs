//! [`ServerBuilder`]: the services (a name, where connections come from, a
//! [`Protocol`]) and the settings every shard gets; [`ServerBuilder::start`]
//! places the shards, binds every listener (one owner per port), starts the
//! shards on the chosen backend and returns a running [`Server`] once all of
//! them accept.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::backends::{self, Backend, Handlers};
use super::control::{ShardListener, ShardSpec};
use super::error::{ListenError, ServerError};
use super::monitor::Monitor;
use super::proxied::ProxyPolicy;
use super::supervisor::{Server, Stopper};
use super::{isolate, listener};
use crate::io::{Linger, Timeouts};
use crate::placement::{self, PlacementError};
use crate::proto::Protocol;

/// How long live connections may finish after a stop, by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Every service's listeners, bound and dealt out to the shards.
struct Bound {
    /// Each service's address (port 0 resolved).
    addrs: Vec<(String, SocketAddr)>,
    /// A descriptor of every listening socket, to hand to a new process.
    handover: Vec<(String, OwnedFd)>,
    /// What each shard accepts on.
    per_shard: Vec<Vec<ShardListener<Handlers>>>,
}

// Here rather than in `supervisor.rs`, so that the running server needs
// nothing of how it was built (the builder needs the server: no circle).
impl Server {
    /// Start describing a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::new()
    }
}

impl ServerBuilder {
    /// No services yet, every setting at its default (see [`Server::builder`]).
    fn new() -> ServerBuilder {
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
        self.services.push(Service {
            name: name.to_string(),
            proxy: None,
            source,
            handlers: Handlers::new(Arc::new(protocol)),
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
        let allowed = placement::allowed_cpus().map_err(PlacementError::Affinity)?;
        let cpus = placement::choose(&allowed, self.cores)?;
        let backend = backends::resolve(self.backend)?;
        isolate::install_panic_hook();

        let Bound {
            addrs,
            handover,
            per_shard,
        } = self.bind(cpus.len())?;

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
        let threads = backends::start(backend, specs)?;
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

    /// Bind every service's listeners for `shards` shards (or deal out the
    /// inherited ones), refusing two services on one address.
    fn bind(&self, shards: usize) -> Result<Bound, ServerError> {
        let mut addrs: Vec<(String, SocketAddr)> = Vec::new();
        let mut handover: Vec<(String, OwnedFd)> = Vec::new();
        let mut per_shard: Vec<Vec<ShardListener<Handlers>>> =
            (0..shards).map(|_| Vec::new()).collect();
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
                    let (fds, actual) =
                        listener::bind_shards(*addr, shards).map_err(|e| ServerError::Bind {
                            service: svc.name.clone(),
                            addr: *addr,
                            source: ListenError::from_os(e),
                        })?;
                    for fd in &fds {
                        handover.push((svc.name.clone(), fd.try_clone()?));
                    }
                    (fds.into_iter().map(|fd| vec![fd]).collect(), actual, false)
                }
                Source::Inherited(fds) => {
                    let (per_shard_fds, actual, shared) = listener::distribute(fds, shards)
                        .map_err(|source| ServerError::Inherited {
                            service: svc.name.clone(),
                            source,
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
        Ok(Bound {
            addrs,
            handover,
            per_shard,
        })
    }
}
