//! ringlet: the Eventlet idea in Rust, on io_uring.
//!
//! Code that reads like a sequential program — read a line, write it back —
//! run by an event-driven, thread-per-core server: one glommio executor pinned
//! to each CPU, each with its own listener, where a failure in one connection
//! (an error, a vanished client, even a panic) ends only that connection.
//!
//! A protocol is one `async fn`, written against [`Connection`]. The
//! article's line echo server:
//!
//! ```no_run
//! use ringlet::{Connection, Protocol, Reader, Server};
//!
//! /// Writes back every line, as it arrives.
//! struct LineEcho;
//!
//! impl Protocol for LineEcho {
//!     async fn serve<C: Connection>(&self, conn: &mut C) -> std::io::Result<()> {
//!         let mut reader = Reader::with_capacity(4096);
//!         while let Some(line) = reader.read_line(conn).await? {
//!             conn.write_bytes(line).await?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> Result<(), ringlet::ServerError> {
//!     Server::builder()
//!         .service("echo", "127.0.0.1:6000".parse().unwrap(), LineEcho)
//!         .start()?
//!         .wait()
//! }
//! ```
//!
//! [`Reader`] keeps memory bounded (a line longer than its buffer comes in
//! pieces) and gives a typed [`ReadError`] where a protocol wants one. Below
//! it, every [`Connection`] operation takes and returns an owned [`Buf`],
//! so that completion-based I/O can never write into freed memory. The
//! [`guide`] says what a connection promises, how one ends, timeouts, what
//! the server counts for you and how connections share state.
//!
//! The server owns each connection and ends it when the protocol returns
//! (see [`Protocol`]): a whole answer ends with a FIN after a lingering
//! close, a failed one with a reset.
//!
//! The two servers of the article ship ready-made: [`proto::echo::Echo`] and
//! [`proto::file::FileServer`]; `ringlet serve` runs them. Files are opened
//! only beneath a [`Root`].
//!
//! The public modules: [`proto`] (the protocols, and the [`Protocol`] trait),
//! [`access`] (the access log), [`proxy`] (the PROXY protocol header parser
//! and trusted address blocks), [`probe`] (can io_uring run here) and
//! [`systemd`] (readiness, watchdog, socket activation). The server itself
//! ([`Server`], [`ServerBuilder`], [`Backend`], ...) is at the crate's root.
//!
//! The crate's default `cli` feature builds the `ringlet` binary and its load
//! generator; a library user who needs neither depends on ringlet with
//! `default-features = false` and gets none of their dependencies.

#![warn(missing_docs)]

pub mod access;
mod backend;
mod buf;
mod epoll;
mod fs;
pub mod guide;
mod io;
mod pagecache;
mod placement;
pub mod probe;
pub mod proto;
pub mod proxy;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod ring;
#[cfg(not(feature = "internals"))]
mod ring;
// Unstable (`internals`): the glommio ringlet runs on, fix included.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub use glommio;
mod server;
pub mod systemd;
mod uring;

pub use backend::{LockedMemory, StartError};
pub use buf::Buf;
pub use fs::cache::{CacheStats as OpenFileCacheStats, stats as open_file_cache_stats};
pub use fs::{DisplayPath, OpenError, RegularFile, Root};
pub use io::{Connection, Linger, Outcome, ReadError, Reader, TimeoutKind, Timeouts, timeout_kind};
pub use placement::{PlacementError, allowed_cpus};
pub use proto::Protocol;
pub use server::{
    Backend, DEFAULT_SHUTDOWN_TIMEOUT, ListenError, Monitor, ProxyPolicy, RingFigures, Server,
    ServerBuilder, ServerError, ServiceFigures, ShardDeath, ShardFigures, Snapshot, Stopper,
    Summary, UnknownBackend,
};
