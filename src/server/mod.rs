//! The thread-per-core runtime shared by every protocol.
//!
//! [`Server::builder`] collects services (a name, an address, a
//! [`Protocol`](crate::Protocol)); [`ServerBuilder::start`] binds every
//! listener, starts one pinned shard per CPU and returns once all of them
//! accept. The returned [`Server`] supervises: [`Server::wait`] returns when
//! a stop was asked for, or with an error as soon as a shard's thread dies,
//! so a process never runs on with a dead listener swallowing connections.
//!
//! Backends run the same protocols on the same shard skeleton
//! (`shard.rs`, generic over `crate::backend::Runtime`): `uring` (glommio
//! shards whose sockets and files go through a completion ring,
//! `crate::uring`) and `epoll` (tokio shards, `crate::epoll`); `auto` picks
//! uring when [`probe`](crate::probe) says io_uring works and says why when
//! it falls back. `backends.rs` is the one place that names the backends.
//!
//! Rooms: `builder` (services and settings; binding and starting),
//! `supervisor` (the running [`Server`], [`Stopper`]), `error`
//! ([`ServerError`]), `backends` ([`Backend`], per-backend handlers, the
//! choice), `listener` (sockets, one owner per port), `shard` (the
//! skeleton), `control` (shard plumbing), `admit` (admission under
//! `--max-conns`, accept-error back-off), `conn` (byte counting and how a
//! connection ends), `proxied` (a connection's PROXY header), `signal` (a
//! shard-local stop signal), `isolate` (panics), `monitor` (live figures).

pub(crate) mod admit;
mod backends;
mod builder;
pub(crate) mod conn;
pub(crate) mod control;
mod error;
pub(crate) mod isolate;
mod listener;
pub(crate) mod monitor;
mod proxied;
mod shard;
mod signal;
mod supervisor;

pub use backends::{Backend, UnknownBackend};
pub use builder::{DEFAULT_SHUTDOWN_TIMEOUT, ServerBuilder};
pub use error::{ListenError, ServerError, ShardDeath};
pub use monitor::{Monitor, RingFigures, ServiceFigures, ShardFigures, Snapshot, Summary};
pub use proxied::ProxyPolicy;
pub use supervisor::{Server, Stopper};
