//! Fault isolation: a connection's panic ends that connection, nothing more.
//!
//! glommio re-raises a task's panic into its executor, which would kill every
//! connection on the core and leave its listener open but never accepted on.
//! So every connection runs under `catch_unwind`, and a panic becomes one log
//! line. The panic hook installed here keeps shard panics off stderr (the
//! log line replaces it) and remembers the message and location for that line.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Once;

use futures_lite::FutureExt as _;
use tracing::{debug, error, warn};

use super::monitor::ShardStats;

/// Name prefix of shard threads; the hook only handles panics on these.
pub const SHARD_THREAD_PREFIX: &str = "ringlet-shard-";

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Install the panic hook once per process. Other threads keep the old hook.
pub fn install_panic_hook() {
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
pub fn take_last_panic(payload: Option<&(dyn Any + Send)>) -> String {
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

/// Run one connection's handler; whatever happens, log one line, count it
/// in `stats`, and return.
pub async fn run<F>(service: &str, peer: SocketAddr, stats: &ShardStats, handler: F)
where
    F: Future<Output = io::Result<()>>,
{
    stats.connection_opened();
    let failed = match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(Ok(())) => {
            debug!("{service}: {peer} disconnected");
            false
        }
        Ok(Err(e)) => {
            warn!("{service}: {peer}: connection ended: {e}");
            true
        }
        Err(payload) => {
            error!(
                "{service}: {peer}: handler panicked, connection closed: {}",
                take_last_panic(Some(payload.as_ref()))
            );
            true
        }
    };
    stats.connection_closed(failed);
}
