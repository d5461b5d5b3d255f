//! The one place that names the backends: which ones exist, what each is
//! called and can do, and how the chosen one starts its shards.
//!
//! Everything else in `server/` is generic over [`Runtime`]. Adding a
//! backend is, all in this file: one [`Backend`] variant (with its arms in
//! `name`, `about` and `has_ring`), one [`Handlers`] field, and one arm in
//! [`start`]; plus its folder implementing `crate::backend::Runtime`.
//! `auto`'s choice lives here too ([`resolve`]): uring when
//! [`probe`] says io_uring works, else epoll, saying why.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::warn;

use super::conn::{Handler, erase};
use super::control::ShardSpec;
use super::error::ServerError;
use super::shard;
use crate::backend::Runtime;
use crate::epoll::Epoll;
use crate::probe;
use crate::proto::Protocol;
use crate::uring::Uring;

/// Which I/O runtime the shards run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// io_uring when it works here, else epoll (logging the real reason).
    #[default]
    Auto,
    /// glommio shards, sockets and files on the shard's completion ring;
    /// refuses to start where io_uring is blocked.
    Uring,
    /// tokio shards on epoll, `sendfile` for files: the baseline.
    Epoll,
}

impl Backend {
    /// Every backend, in the order `--help` lists them: `Auto`, `Uring`, `Epoll`.
    pub const ALL: &'static [Backend] = &[Backend::Auto, Backend::Uring, Backend::Epoll];

    /// `uring` / `epoll` / `auto`: the name on the command line and in figures.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Uring => "uring",
            Backend::Epoll => "epoll",
        }
    }

    /// One line that says what this backend is, for `--help`.
    pub fn about(self) -> &'static str {
        match self {
            Backend::Auto => "io_uring if it works here, else epoll (logging why)",
            Backend::Uring => {
                "io_uring: glommio shards, sockets and files on each shard's completion ring"
            }
            Backend::Epoll => "epoll (tokio shards, sendfile for files), the baseline",
        }
    }

    /// Whether this backend's shards run a completion ring, so that ring
    /// figures ([`RingFigures`](crate::RingFigures)) mean something. `Auto`
    /// has none of its own: ask the backend a [`Server`](crate::Server)
    /// actually runs ([`Server::backend`](crate::Server::backend)).
    pub fn has_ring(self) -> bool {
        match self {
            Backend::Uring => true,
            Backend::Auto | Backend::Epoll => false,
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend name that is none of [`Backend::ALL`]'s; it displays the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {0:?}: expected one of {names}", names = backend_names())]
pub struct UnknownBackend(pub String);

/// `auto, uring, epoll`: every [`Backend::name`], for error messages.
fn backend_names() -> String {
    let names: Vec<&str> = Backend::ALL.iter().map(|b| b.name()).collect();
    names.join(", ")
}

impl std::str::FromStr for Backend {
    type Err = UnknownBackend;

    /// A backend by its [`Backend::name`] (exactly, as the command line spells it).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .iter()
            .copied()
            .find(|b| b.name() == s)
            .ok_or_else(|| UnknownBackend(s.to_string()))
    }
}

/// One protocol, erased once for each backend's connection type, so the
/// backend can be chosen after the services are.
#[derive(Clone)]
pub(super) struct Handlers {
    uring: Handler<<Uring as Runtime>::Conn>,
    epoll: Handler<<Epoll as Runtime>::Conn>,
}

impl Handlers {
    pub(super) fn new<P: Protocol>(protocol: Arc<P>) -> Handlers {
        Handlers {
            uring: erase(protocol.clone()),
            epoll: erase(protocol),
        }
    }
}

/// Turn `Auto` into what this machine can run; refuse `Uring` where it
/// cannot. Never returns `Auto`.
pub(super) fn resolve(asked: Backend) -> Result<Backend, ServerError> {
    if asked == Backend::Epoll {
        return Ok(Backend::Epoll);
    }
    match probe::Report::gather().why_not() {
        None => Ok(Backend::Uring),
        Some(why) if asked != Backend::Auto => Err(ServerError::IoUring(why)),
        Some(why) => {
            warn!("{}; falling back to the epoll backend", why.sentence());
            Ok(Backend::Epoll)
        }
    }
}

/// Start one shard per spec on `backend` (as [`resolve`]d: `Auto` runs
/// uring, which is what `resolve` makes of it where io_uring works).
pub(super) fn start(
    backend: Backend,
    specs: Vec<ShardSpec<Handlers>>,
) -> io::Result<Vec<JoinHandle<()>>> {
    match backend {
        Backend::Auto | Backend::Uring => start_shards::<Uring>(specs, |h| h.uring),
        Backend::Epoll => start_shards::<Epoll>(specs, |h| h.epoll),
    }
}

/// Start one shard of backend `R` per spec, each with its handlers erased
/// for `R`'s connections by `pick`.
fn start_shards<R: Runtime>(
    specs: Vec<ShardSpec<Handlers>>,
    pick: fn(Handlers) -> Handler<R::Conn>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let setup = R::prepare(specs.len());
    specs
        .into_iter()
        .map(|spec| shard::spawn::<R>(spec.map_handlers(pick), setup.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Backend, UnknownBackend};

    #[test]
    fn backend_names_round_trip() {
        for &b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>(), Ok(b));
            assert_eq!(b.to_string(), b.name());
            assert!(!b.about().is_empty());
        }
        assert_eq!(Backend::ALL[0], Backend::default());
        assert!(Backend::Uring.has_ring());
        assert!(!Backend::Epoll.has_ring());
        let err = "io_uring".parse::<Backend>().unwrap_err();
        assert_eq!(err, UnknownBackend("io_uring".into()));
        assert_eq!(
            err.to_string(),
            "unknown backend \"io_uring\": expected one of auto, uring, epoll"
        );
    }
}
