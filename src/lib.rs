//! ringlet: the Eventlet idea in Rust, on io_uring.
//!
//! Code that reads like a sequential program — read a line, write it back —
//! run by an event-driven, thread-per-core server: one glommio executor pinned
//! to each CPU, each with its own listener, where a failure in one connection
//! (an error, a vanished client, even a panic) ends only that connection.
//!
//! A protocol is one `async fn`, written against [`Connection`], whose
//! operations take and return owned [`Buf`]s so that completion-based I/O
//! can never write into freed memory:
//!
//! ```no_run
//! use ringlet::{Buf, Connection, Protocol, Server};
//!
//! /// Writes back whatever arrives.
//! struct Echo;
//!
//! impl Protocol for Echo {
//!     async fn serve<C: Connection>(&self, conn: &mut C) -> std::io::Result<()> {
//!         let mut buf = Buf::with_capacity(4096);
//!         loop {
//!             let (n, b) = conn.read(buf).await;
//!             buf = b;
//!             if n? == 0 {
//!                 return Ok(());
//!             }
//!             let (done, b) = conn.write_all(buf).await;
//!             buf = b;
//!             done?;
//!             buf.clear();
//!         }
//!     }
//! }
//!
//! fn main() -> Result<(), ringlet::ServerError> {
//!     Server::builder()
//!         .service("echo", "127.0.0.1:6000".parse().unwrap(), Echo)
//!         .start()?
//!         .wait()
//! }
//! ```
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
pub use fs::{DisplayPath, OpenError, RegularFile, Root};
pub use io::{Connection, Linger, Outcome, ReadError, Reader, TimeoutKind, Timeouts, timeout_kind};
pub use placement::{PlacementError, allowed_cpus};
pub use proto::Protocol;
pub use server::{
    Backend, DEFAULT_SHUTDOWN_TIMEOUT, ListenError, Monitor, ProxyPolicy, RingFigures, Server,
    ServerBuilder, ServerError, ServiceFigures, ShardDeath, ShardFigures, Snapshot, Stopper,
    Summary, UnknownBackend,
};
