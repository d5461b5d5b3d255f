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

/// The listening sockets systemd passed (`LISTEN_FDS`), each with the
/// protocol (one of `protocols`) it is for. Empty without socket activation.
///
/// A socket whose `FileDescriptorName=` is one of `protocols` serves that
/// protocol. Unnamed sockets (no name, `unknown`, or the socket unit's own
/// name `*.socket`, which one unit gives all its sockets alike) go, in
/// order, to the protocols not yet given one. Any other name is refused: a
/// socket is never served with a protocol it was not meant for.
pub fn inherited_sockets(
    protocols: &[&str],
) -> Result<Vec<(String, std::net::TcpListener)>, String> {
    let passed: Vec<(i32, String)> = sd_notify::listen_fds_with_names()
        .map_err(|e| format!("bad socket activation environment: {e}"))?
        .collect();
    let mut sockets = Vec::new();
    for (fd, name) in passed {
        // SAFETY: systemd passes these descriptors to this process, open, for
        // it to own (sd_listen_fds(3)); nothing else in the process uses them.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        sockets.push((name, std::net::TcpListener::from(owned)));
    }
    let names: Vec<&str> = sockets.iter().map(|(n, _)| n.as_str()).collect();
    let assigned = assign(&names, protocols)?;
    Ok(assigned
        .into_iter()
        .zip(sockets)
        .map(|(protocol, (_, listener))| (protocol.to_string(), listener))
        .collect())
}

/// Which protocol each passed socket (by name) serves; see
/// [`inherited_sockets`].
fn assign<'p>(names: &[&str], protocols: &[&'p str]) -> Result<Vec<&'p str>, String> {
    let list = protocols.join(", ");
    if names.len() > protocols.len() {
        return Err(format!(
            "systemd passed {} sockets; ringlet serves at most {} ({list})",
            names.len(),
            protocols.len()
        ));
    }
    let unnamed = |n: &str| n.is_empty() || n == "unknown" || n.ends_with(".socket");
    let mut chosen: Vec<Option<&'p str>> = Vec::new();
    for name in names {
        if unnamed(name) {
            chosen.push(None);
            continue;
        }
        let Some(p) = protocols.iter().find(|p| *p == name) else {
            return Err(format!(
                "systemd passed a socket named {name:?} (FileDescriptorName=), which is no protocol \
                 ringlet serves: name it one of {list}, or leave it unnamed"
            ));
        };
        if chosen.contains(&Some(*p)) {
            return Err(format!("systemd passed two sockets named {p:?}"));
        }
        chosen.push(Some(*p));
    }
    let free: Vec<&'p str> = protocols
        .iter()
        .filter(|p| !chosen.contains(&Some(**p)))
        .copied()
        .collect();
    let mut free = free.into_iter();
    Ok(chosen
        .into_iter()
        .map(|c| {
            c.or_else(|| free.next())
                .expect("no more sockets than protocols")
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::assign;

    const P: &[&str] = &["echo", "file"];

    #[test]
    fn names_decide_and_unnamed_sockets_go_in_order() {
        assert_eq!(assign(&["file", "echo"], P).unwrap(), ["file", "echo"]);
        assert_eq!(
            assign(&["unknown", "unknown"], P).unwrap(),
            ["echo", "file"]
        );
        assert_eq!(
            assign(&["ringlet.socket", "ringlet.socket"], P).unwrap(),
            ["echo", "file"]
        );
        assert_eq!(assign(&["unknown", "echo"], P).unwrap(), ["file", "echo"]);
        assert_eq!(assign(&["file"], P).unwrap(), ["file"]);
    }

    #[test]
    fn an_unknown_name_or_too_many_sockets_are_refused() {
        let e = assign(&["echo", "http"], P).unwrap_err();
        assert!(e.contains("\"http\"") && e.contains("echo, file"), "{e}");
        assert!(
            assign(&["echo", "echo"], P)
                .unwrap_err()
                .contains("two sockets")
        );
        assert!(
            assign(&["a.socket"; 3], P)
                .unwrap_err()
                .contains("at most 2")
        );
    }
}
