//! Fault isolation: a connection's panic ends that connection, nothing more.
//!
//! glommio re-raises a task's panic into its executor, which would kill every
//! connection on the core and leave its listener open but never accepted on.
//! So every connection runs under `catch_unwind`, and a panic becomes one log
//! line (and a reset for its client, see `conn.rs`). The panic hook
//! installed here keeps shard panics off stderr (the log line replaces it)
//! and remembers the message and location for that line.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Once;

use futures_lite::FutureExt as _;
use tracing::{debug, error, info, warn};

use crate::io::{TimeoutKind, timeout_kind};

/// Name prefix of shard threads; the hook only handles panics on these.
pub(crate) const SHARD_THREAD_PREFIX: &str = "ringlet-shard-";

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Install the panic hook once per process. Other threads keep the old hook.
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let on_shard = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with(SHARD_THREAD_PREFIX));
            if !on_shard {
                return previous(info);
            }
            let text = match info.location() {
                Some(at) => format!(
                    "{} at {}:{}",
                    payload_text(info.payload()),
                    at.file(),
                    at.line()
                ),
                None => payload_text(info.payload()),
            };
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
        }));
    });
}

/// The last panic seen on this thread, with its location, if the hook saw it.
pub(crate) fn take_last_panic(payload: Option<&(dyn Any + Send)>) -> String {
    LAST_PANIC
        .with(|p| p.borrow_mut().take())
        .or_else(|| payload.map(payload_text))
        .unwrap_or_else(|| "unknown panic".into())
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

/// How a connection's protocol ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It returned `Ok`.
    Clean,
    /// The client sent nothing for the idle timeout.
    Idle,
    /// It returned any other error.
    Failed,
    /// It panicked.
    Panicked,
}

/// A failure the client brought on itself (it went away, stopped reading,
/// dripped its request): expected on any server, logged at INFO. Anything
/// else (the disk, a shrinking file, the server's own limits) is a WARN.
fn caused_by_client(e: &io::Error) -> bool {
    timeout_kind(e).is_some()
        || matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::NotConnected
                | io::ErrorKind::TimedOut
        )
}

/// Run one connection's protocol; whatever happens, log one line and say
/// how it ended.
pub(crate) async fn run<F>(service: &str, peer: SocketAddr, work: F) -> Ended
where
    F: Future<Output = io::Result<()>>,
{
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(Ok(())) => {
            debug!("{service}: {peer} disconnected");
            Ended::Clean
        }
        Ok(Err(e)) if matches!(timeout_kind(&e), Some(TimeoutKind::Idle(_))) => {
            info!("{service}: {peer}: connection ended: {e}");
            Ended::Idle
        }
        Ok(Err(e)) if caused_by_client(&e) => {
            info!("{service}: {peer}: connection ended: {e}");
            Ended::Failed
        }
        Ok(Err(e)) => {
            warn!("{service}: {peer}: connection ended: {e}");
            Ended::Failed
        }
        Err(payload) => {
            error!(
                "{service}: {peer}: handler panicked, connection reset: {}",
                take_last_panic(Some(payload.as_ref()))
            );
            Ended::Panicked
        }
    }
}
