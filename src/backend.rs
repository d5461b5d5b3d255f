//! What a backend is: the little the shard skeleton needs from it.
//!
//! A backend (`uring/`, `epoll/`) is an executor on a pinned thread with a
//! timer, a way to adopt and accept on listening sockets, and a connection
//! type that implements [`Connection`]. The skeleton in `server/shard.rs` is
//! written once against [`Runtime`]: heartbeat, accept loops, admission,
//! isolation, closing, the control byte, the drain. A backend never decides
//! any of that.
//!
//! This module sits below both `server/` and the backends, so that neither
//! imports the other: the backends implement it, the skeleton drives it,
//! and only `server/backends.rs`, where the backend is chosen, names them.

use std::future::Future;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use crate::io::{Connection, Timeouts};

/// Where a shard runs and what its connections get.
#[derive(Debug, Clone)]
pub(crate) struct ShardConfig {
    pub id: usize,
    pub cpu: usize,
    /// How many shards the server runs (to share per-user kernel budgets).
    pub shards: usize,
    pub timeouts: Timeouts,
    /// Send what the page cache holds by `sendfile` (uring backend).
    pub cached_sendfile: bool,
}

/// A backend, as the shard skeleton drives it. One value per shard, living
/// on the shard's thread.
pub(crate) trait Runtime: Sized + 'static {
    /// What `prepare` computes once, on the main thread, for every shard.
    type Setup: Clone + Send + 'static;
    /// An accepted connection.
    type Conn: Connection + Socket + 'static;
    /// A listening socket adopted by one shard.
    type Listener: 'static;
    /// The shard's end of its control socket.
    type Control: 'static;

    /// The backend's name in log lines.
    const NAME: &'static str;

    /// Once per server, before any shard starts (e.g. size locked memory).
    fn prepare(shards: usize) -> Self::Setup;

    /// On the shard's new thread: build the executor pinned to `config.cpu`,
    /// set up the shard's I/O, and run `main` on it to completion. `Err`
    /// says why the shard could not start.
    fn run<F: Future<Output = ()> + 'static>(
        config: ShardConfig,
        setup: Self::Setup,
        main: impl FnOnce(Rc<Self>) -> F + 'static,
    ) -> Result<(), StartError>;

    /// Run `task` on this shard, detached.
    fn spawn(&self, task: impl Future<Output = ()> + 'static);

    /// Sleep on this shard's timer.
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + 'static + use<Self>;

    /// Adopt a listening socket. `exclusive`: no other shard accepts on it
    /// and connections need not wait for a permit, so the backend may keep
    /// an accept armed continuously (multishot).
    fn listener(&self, fd: OwnedFd, exclusive: bool) -> io::Result<Self::Listener>;

    /// Accept the next connection. Dropping the future loses no connection
    /// the kernel accepted for it: the next accept, or the close, has it.
    fn accept(&self, l: &mut Self::Listener) -> impl Future<Output = io::Result<Self::Conn>>;

    /// Stop accepting on `l` and close it: the connections the kernel
    /// accepted for it meanwhile (in flight when it was told), to serve.
    fn close_listener(&self, l: Self::Listener) -> impl Future<Output = Vec<Self::Conn>>;

    /// Adopt the shard's end of its control socket.
    fn control(&self, fd: OwnedFd) -> io::Result<Self::Control>;

    /// Read one control byte; `Ok(None)` when the other end closed.
    fn read_control(&self, c: &mut Self::Control) -> impl Future<Output = io::Result<Option<u8>>>;

    /// Called on every heartbeat (100 ms): room for periodic upkeep.
    fn tick(&self) {}

    /// What the backend's own machinery has done so far (read by the
    /// shard's heartbeat).
    fn figures(&self) -> RingFigures {
        RingFigures::default()
    }
}

/// Why a shard could not start: what failed, with the OS error as its
/// [`source`](std::error::Error::source) where there is one. The message
/// says what failed; print the chain (`{:#}` with anyhow, or walk
/// `source()`) for why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The shard's thread could not be pinned to its CPU.
    #[error("cannot pin to CPU {cpu}")]
    Pin {
        /// The CPU asked for.
        cpu: usize,
        /// What `sched_setaffinity` said.
        #[source]
        source: io::Error,
    },
    /// The epoll backend's tokio runtime could not be built.
    #[error("cannot build the tokio runtime")]
    Runtime(#[source] io::Error),
    /// The uring backend's glommio executor could not be built.
    #[error("cannot start the executor on CPU {cpu}{}", hint(locked_memory))]
    Executor {
        /// The CPU it was to run on.
        cpu: usize,
        /// Set when the kernel ran out of locked memory for it.
        locked_memory: Option<LockedMemory>,
        /// What glommio said.
        #[source]
        source: io::Error,
    },
    /// The shard's completion ring could not be set up.
    #[error("cannot set up the completion ring{}", hint(locked_memory))]
    Ring {
        /// Set when the kernel ran out of locked memory for it.
        locked_memory: Option<LockedMemory>,
        /// What `io_uring_setup` said.
        #[source]
        source: io::Error,
    },
    /// A listening socket could not be adopted by the shard's backend.
    #[error("cannot adopt the {service} listener on the {backend} backend")]
    Listener {
        /// The service it listens for.
        service: String,
        /// The backend's name (`uring`, `epoll`).
        backend: &'static str,
        /// What the backend said.
        #[source]
        source: io::Error,
    },
    /// The shard's control socket could not be adopted.
    #[error("cannot adopt the control socket")]
    Control(#[source] io::Error),
    /// The shard's thread panicked before it accepted.
    #[error("it panicked: {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// The shard's thread ended before it accepted.
    #[error("its thread ended")]
    Ended,
    /// The shard did not report that it accepts in time.
    #[error("not ready within {0:?}")]
    NotReady(Duration),
}

/// Locked memory a ring could not get: RLIMIT_MEMLOCK, which kernels
/// before 5.12 charge io_uring rings to, and what it should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedMemory {
    /// RLIMIT_MEMLOCK's soft limit now, in bytes (`None`: unlimited).
    pub limit: Option<u64>,
    /// What the server's shards need together, in bytes.
    pub wanted: u64,
}

impl std::fmt::Display for LockedMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let limit = self
            .limit
            .map_or("unlimited".to_string(), |c| (c >> 10).to_string());
        write!(
            f,
            "RLIMIT_MEMLOCK is {limit} KiB, and kernels before 5.12 charge io_uring rings to it; \
             raise it to at least {} KiB (ulimit -l, LimitMEMLOCK= in the unit)",
            self.wanted >> 10
        )
    }
}

/// ` (RLIMIT_MEMLOCK is ...)` after what failed, or nothing.
fn hint(locked_memory: &Option<LockedMemory>) -> String {
    locked_memory.map_or(String::new(), |m| format!(" ({m})"))
}

/// One shard's completion ring, as its backend reports it (all zero on
/// the epoll backend, which has none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingFigures {
    /// `io_uring_enter` calls.
    pub enters: u64,
    /// Completions reaped.
    pub completions: u64,
    /// Receives that found every provided buffer in use.
    pub no_buffers: u64,
    /// Times the completion queue overflowed.
    pub cq_overflows: u64,
    /// Operations in flight now (abandoned ones too).
    pub in_flight: u64,
    /// Pipes held for splicing now (in use or kept for reuse).
    pub pipes: u64,
}

/// A connection's socket, for what the server does at its end (half-close,
/// reset) whatever the backend.
pub(crate) trait Socket {
    fn socket(&self) -> BorrowedFd<'_>;
}
