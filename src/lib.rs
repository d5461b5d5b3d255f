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
//!     async fn serve<C: Connection>(&self, mut conn: C) -> std::io::Result<()> {
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
//! The two servers of the article ship ready-made: [`proto::echo::Echo`] and
//! [`proto::file::FileServer`]; `ringlet serve` runs them.

pub mod bench;
pub mod buf;
pub mod epoll;
pub mod io;
pub mod probe;
pub mod proto;
pub mod ring;
pub mod server;
pub mod systemd;

pub use io::{Buf, Connection};
pub use proto::Protocol;
pub use proto::root::{RegularFile, Root};
pub use server::{Backend, Server, ServerBuilder, ServerError, Stopper};
