//! The protocols: what is said on a connection, written once for every backend.
//!
//! A protocol is a type with one `async fn serve` that talks to a
//! [`Connection`]. It knows nothing of rings, epoll,
//! shards or listeners; it must never block the thread it runs on.
//!
//! This file is the [`Protocol`] trait and what every protocol here shares
//! ([`DEFAULT_REQUEST_TIMEOUT`]); `echo`, `file` and `http` are the
//! protocols, `request` reads one request within a time limit, and
//! `window.rs` is the check that a file window went out whole (or the
//! connection is cut).

use std::future::Future;
use std::io;
use std::time::Duration;

use crate::io::Connection;

pub mod echo;
pub mod file;
pub mod http;
pub mod request;
mod window;

/// How long a request may take to arrive whole once its first byte came, by
/// default (the file protocol's path, an HTTP head).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What a server says on each connection of one listener.
///
/// `serve` runs once per accepted connection, as its own task, isolated from
/// the others: an error or a panic in it ends that connection only. One value
/// is shared by every shard, hence `Send + Sync`; the future it returns stays
/// on the core that accepted the connection and need not be `Send`.
///
/// The server owns the connection and ends it once `serve` returns:
/// - `Ok(())`: the answer is complete. The server half-closes the
///   connection, so the client gets everything sent and then end of file,
///   and reads what the client still sends until it closes (a bounded
///   lingering close, see [`Linger`](crate::Linger)).
/// - `Err(e)`: logged with the peer's address, and the connection is reset,
///   so the client can tell a cut answer from a whole one. An idle timeout
///   (nothing received for the idle time) ends with a plain close instead.
/// - a panic: as an error; nothing else on the core is affected.
pub trait Protocol: Send + Sync + 'static {
    /// Serve one connection until it is done.
    fn serve<C: Connection>(&self, conn: &mut C) -> impl Future<Output = io::Result<()>>;
}
