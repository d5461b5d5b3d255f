//! Why a server could not start, or stopped badly: [`ServerError`], and the
//! typed causes under it ([`ListenError`]; [`StartError`], a shard's, is
//! in `backend.rs`, next to the backends that raise it).
//!
//! Each message says what failed, in the library's terms (never a
//! command-line flag: the binary maps errors to its flags); the OS error
//! behind it is its [`source`](std::error::Error::source). Print the
//! chain (`{:#}` with anyhow, or walk `source()`) to see both.

use std::io;
use std::net::SocketAddr;

use crate::backend::StartError;
use crate::placement::PlacementError;
use crate::probe::Unavailable;

/// Why a server could not start, or stopped badly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Nothing to serve.
    #[error("no service to run: enable at least one listener")]
    NoServices,
    /// A setting names a service the server does not run.
    #[error("no service named {0:?} is served")]
    NoSuchService(String),
    /// The CPU choice cannot be met.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// io_uring cannot be used in this process (asked for the uring backend).
    #[error(transparent)]
    IoUring(#[from] Unavailable),
    /// A listener could not be bound.
    #[error("cannot listen for {service} on {addr}")]
    Bind {
        /// The service it was for.
        service: String,
        /// The address asked for.
        addr: SocketAddr,
        /// Why, with the OS error.
        #[source]
        source: ListenError,
    },
    /// A socket handed to the server (by systemd, or by the process it
    /// replaces) cannot be served.
    #[error("the inherited {service} socket")]
    Inherited {
        /// The service it was for.
        service: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Two services name the same address.
    #[error("{first} and {second} both name {addr}: give each service its own address")]
    SameAddress {
        /// The service named first.
        first: String,
        /// The service that names it again.
        second: String,
        /// The address both name.
        addr: SocketAddr,
    },
    /// A shard could not start.
    #[error("shard {shard} failed to start")]
    Start {
        /// Which shard (0-based).
        shard: usize,
        /// Why.
        #[source]
        source: StartError,
    },
    /// A shard's thread died while serving.
    #[error(
        "shard {shard} (CPU {cpu}) died: {cause}; stopping so a supervisor can restart the server"
    )]
    ShardDied {
        /// Which shard (0-based).
        shard: usize,
        /// The CPU it ran on.
        cpu: usize,
        /// How it died.
        cause: ShardDeath,
    },
    /// Some other system call failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// How a shard's thread died while serving.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardDeath {
    /// It panicked outside any connection (a bug in the runtime).
    #[error("{message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// Its executor returned without being asked to stop.
    #[error("its executor returned")]
    Returned,
}

/// Why a listening socket could not be bound: what the OS error means
/// here, in one phrase. The OS error itself is [`ListenError::os_error`];
/// it is not also the `source`, since the message already says it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenError {
    /// `EADDRINUSE`.
    #[error("address already in use: another process (maybe another ringlet) listens there")]
    InUse(io::Error),
    /// `EADDRNOTAVAIL`.
    #[error("no interface of this machine has that address")]
    NotHere(io::Error),
    /// `EACCES`.
    #[error("permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)")]
    Denied(io::Error),
    /// Anything else: the OS error as it is.
    #[error(transparent)]
    Other(io::Error),
}

impl ListenError {
    /// `e`, from binding a listener, by what it means.
    pub(crate) fn from_os(e: io::Error) -> ListenError {
        match e.raw_os_error() {
            Some(libc::EADDRINUSE) => ListenError::InUse(e),
            Some(libc::EADDRNOTAVAIL) => ListenError::NotHere(e),
            Some(libc::EACCES) => ListenError::Denied(e),
            _ => ListenError::Other(e),
        }
    }

    /// The OS error behind it.
    pub fn os_error(&self) -> &io::Error {
        match self {
            ListenError::InUse(e)
            | ListenError::NotHere(e)
            | ListenError::Denied(e)
            | ListenError::Other(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    /// `err` and its sources, joined as anyhow's `{:#}` prints them.
    fn chain(err: &dyn std::error::Error) -> String {
        let mut text = err.to_string();
        let mut next = err.source();
        while let Some(e) = next {
            text.push_str(&format!(": {e}"));
            next = e.source();
        }
        text
    }

    #[test]
    fn a_port_in_use_says_so_once_with_the_os_error_at_hand() {
        let err = ServerError::Bind {
            service: "echo".into(),
            addr: "127.0.0.1:7".parse().unwrap(),
            source: ListenError::from_os(io::Error::from_raw_os_error(libc::EADDRINUSE)),
        };
        let text = chain(&err);
        assert_eq!(
            text,
            "cannot listen for echo on 127.0.0.1:7: address already in use: \
             another process (maybe another ringlet) listens there"
        );
        assert_eq!(text.to_lowercase().matches("in use").count(), 1, "{text}");
        let listen = err.source().unwrap().downcast_ref::<ListenError>().unwrap();
        assert_eq!(listen.os_error().raw_os_error(), Some(libc::EADDRINUSE));
        // An error with no explanation of its own is the OS error, once.
        let other = ListenError::from_os(io::Error::from_raw_os_error(libc::EINVAL));
        assert_eq!(
            chain(&other),
            io::Error::from_raw_os_error(libc::EINVAL).to_string()
        );
    }

    #[test]
    fn a_shard_start_failure_chains_down_to_the_os_error() {
        let err = ServerError::Start {
            shard: 1,
            source: StartError::Control(io::Error::from_raw_os_error(libc::EBADF)),
        };
        assert_eq!(err.to_string(), "shard 1 failed to start");
        let start = err.source().unwrap();
        assert_eq!(start.to_string(), "cannot adopt the control socket");
        let os = start.source().unwrap().downcast_ref::<io::Error>().unwrap();
        assert_eq!(os.raw_os_error(), Some(libc::EBADF));
        assert!(
            chain(&err).starts_with("shard 1 failed to start: cannot adopt the control socket: ")
        );
    }

    #[test]
    fn placement_is_transparent_and_keeps_its_source() {
        let err = ServerError::from(PlacementError::Affinity(io::Error::from_raw_os_error(
            libc::EPERM,
        )));
        assert_eq!(err.to_string(), "cannot read this process's CPU affinity");
        let os = err.source().unwrap().downcast_ref::<io::Error>().unwrap();
        assert_eq!(os.raw_os_error(), Some(libc::EPERM));
    }

    #[test]
    fn a_dead_shard_says_how() {
        let err = ServerError::ShardDied {
            shard: 0,
            cpu: 3,
            cause: ShardDeath::Panicked {
                message: "boom".into(),
            },
        };
        assert_eq!(
            err.to_string(),
            "shard 0 (CPU 3) died: boom; stopping so a supervisor can restart the server"
        );
    }
}
