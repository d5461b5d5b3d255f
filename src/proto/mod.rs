//! The protocols: what is said on a connection, written once for every backend.
//!
//! A protocol is a type with one `async fn serve` that talks to a
//! [`Connection`](crate::Connection). It knows nothing of rings, epoll,
//! shards or listeners; it must never block the thread it runs on.

use std::future::Future;
use std::io;

use crate::io::Connection;

pub mod echo;
pub mod file;
pub mod request;
pub mod root;

/// What a server says on each connection of one listener.
///
/// `serve` runs once per accepted connection, as its own task, isolated from
/// the others: an error or a panic in it ends that connection only. One value
/// is shared by every shard, hence `Send + Sync`; the future it returns stays
/// on the core that accepted the connection and need not be `Send`.
pub trait Protocol: Send + Sync + 'static {
    /// Serve one connection until it is done. An `Err` is logged with the
    /// peer's address and ends the connection.
    fn serve<C: Connection>(&self, conn: C) -> impl Future<Output = io::Result<()>>;
}
