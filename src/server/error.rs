//! Why a server could not start, or stopped badly: [`ServerError`].

use std::io;
use std::net::SocketAddr;

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
