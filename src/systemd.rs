//! Living under systemd: readiness, status, watchdog, socket activation.
//!
//! - [`Notifier`] sends `READY=1` once every shard accepts, a `STATUS=` line
//!   with live figures every few seconds, `WATCHDOG=1` at half the
//!   `WATCHDOG_USEC` interval — only while every shard is alive and beating,
//!   so a stalled or dead shard gets the service restarted — and `STOPPING=1`
//!   when a drain starts. Without `NOTIFY_SOCKET` it does nothing.
//! - [`inherited_sockets`] takes the listening sockets passed with
//!   `LISTEN_FDS`, matched to protocols by their `FileDescriptorName=`.
//!
//! Datagrams go through the `sd-notify` crate; nothing here speaks the
//! protocol by hand. This module never decides anything about serving.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tracing::{debug, warn};

use crate::server::Monitor;
use crate::server::monitor::HEARTBEAT;

/// How often `STATUS=` is refreshed.
pub const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Talks to the service manager for the life of the process. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    monitor: Monitor,
    draining: AtomicBool,
}

impl Notifier {
    /// Say `READY=1` (call once every listener accepts), then keep `STATUS=`
    /// fresh and feed the watchdog from a thread of its own.
    pub fn start(monitor: Monitor) -> Notifier {
        let inner = Arc::new(Inner {
            monitor,
            draining: AtomicBool::new(false),
        });
        let notifier = Notifier { inner };
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return notifier;
        }
        let status = notifier.status();
        send(&[NotifyState::Ready, NotifyState::Status(&status)]);
        let watchdog = sd_notify::watchdog_enabled();
        let this = notifier.clone();
        let spawned = std::thread::Builder::new()
            .name("ringlet-notify".into())
            .spawn(move || this.run(watchdog));
        if let Err(e) = spawned {
            warn!(
                "cannot start the systemd notification thread: {e}; no STATUS= or WATCHDOG=1 will be sent"
            );
        }
        notifier
    }

    /// A drain has started: say `STOPPING=1`.
    pub fn stopping(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
        let status = self.status();
        send(&[NotifyState::Stopping, NotifyState::Status(&status)]);
    }

    fn status(&self) -> String {
        let what = if self.inner.draining.load(Ordering::Relaxed) {
            "draining"
        } else {
            "serving"
        };
        format!("{what}: {}", self.inner.monitor.summary())
    }

    fn run(self, watchdog: Option<Duration>) {
        let ping_every = watchdog.map(|w| w / 2);
        // A shard counts as stalled when it missed a few heartbeats.
        let max_age = ping_every.map_or(Duration::MAX, |p| p.max(HEARTBEAT * 5));
        let tick = ping_every.map_or(STATUS_EVERY, |p| p.min(STATUS_EVERY));
        let mut last_status = Instant::now();
        let mut withheld = false;
        loop {
            std::thread::sleep(tick);
            if ping_every.is_some() {
                match self.inner.monitor.stalled(max_age) {
                    None => {
                        if withheld {
                            warn!("every shard is turning again: watchdog pings resume");
                            withheld = false;
                        }
                        send(&[NotifyState::Watchdog]);
                    }
                    Some(shard) if !withheld => {
                        warn!(
                            "shard {shard} is stalled or dead: withholding watchdog pings so systemd restarts the service"
                        );
                        withheld = true;
                    }
                    Some(_) => {}
                }
            }
            if last_status.elapsed() >= STATUS_EVERY {
                let status = self.status();
                send(&[NotifyState::Status(&status)]);
                last_status = Instant::now();
            }
        }
    }
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!("sd_notify failed: {e}");
    }
}

/// The protocols ringlet serves, in the order unnamed sockets are given to them.
pub const PROTOCOLS: [&str; 2] = ["echo", "file"];

/// The listening sockets systemd passed (`LISTEN_FDS`), each with the
/// protocol it is for. A socket named `echo` or `file`
/// (`FileDescriptorName=`) serves that protocol; sockets with any other name
/// (a unit with several `ListenStream=` names them all alike) go, in order, to
/// the protocols not yet given one. Empty without socket activation.
pub fn inherited_sockets() -> Result<Vec<(&'static str, std::net::TcpListener)>, String> {
    let passed: Vec<(i32, String)> = sd_notify::listen_fds_with_names()
        .map_err(|e| format!("bad socket activation environment: {e}"))?
        .collect();
    if passed.len() > PROTOCOLS.len() {
        return Err(format!(
            "systemd passed {} sockets; ringlet serves at most {} (echo, file)",
            passed.len(),
            PROTOCOLS.len()
        ));
    }
    let mut named: Vec<Option<&'static str>> = passed
        .iter()
        .map(|(_, name)| PROTOCOLS.iter().copied().find(|p| p == name))
        .collect();
    for (i, slot) in named.clone().iter().enumerate() {
        if slot.is_none() {
            let free = PROTOCOLS
                .iter()
                .copied()
                .find(|p| !named.contains(&Some(*p)));
            named[i] = free;
        }
    }
    let mut out = Vec::new();
    for ((fd, name), protocol) in passed.into_iter().zip(named) {
        // SAFETY: systemd passes these descriptors to this process, open, for
        // it to own (sd_listen_fds(3)); nothing else in the process uses them.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let protocol =
            protocol.ok_or_else(|| format!("socket {name:?} has no protocol left to serve"))?;
        if out.iter().any(|(p, _)| *p == protocol) {
            return Err(format!("two sockets for {protocol}"));
        }
        out.push((protocol, std::net::TcpListener::from(owned)));
    }
    Ok(out)
}
