//! Living under systemd: readiness, status, watchdog, socket activation.
//!
//! - [`Notifier`] sends `READY=1` once every shard accepts, a `STATUS=` line
//!   with live figures every few seconds, `WATCHDOG=1` at half the
//!   `WATCHDOG_USEC` interval — only while every shard is alive and beating,
//!   so a stalled or dead shard gets the service restarted — and `STOPPING=1`
//!   when a drain starts. Through an upgrade in place: `RELOADING=1` in the
//!   old process, `MAINPID=` and `READY=1` from the new one, after which the
//!   old one falls silent. It can put the listening sockets in systemd's
//!   file descriptor store (`FDSTORE=1`), which keeps them across a restart.
//!   Without `NOTIFY_SOCKET` it does nothing.
//! - [`inherited_sockets`] takes the listening sockets passed with
//!   `LISTEN_FDS`, matched to protocols by their `FileDescriptorName=`.
//!
//! Datagrams go through the `sd-notify` crate; nothing here speaks the
//! protocol by hand. This module never decides anything about serving.

use std::os::fd::{AsFd as _, FromRawFd, OwnedFd};
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
    /// A new process took over: say nothing more.
    handed_over: AtomicBool,
}

impl Notifier {
    /// Say `READY=1` (call once every listener accepts), then keep `STATUS=`
    /// fresh and feed the watchdog from a thread of its own.
    pub fn start(monitor: Monitor) -> Notifier {
        Notifier::start_with(monitor, false)
    }

    /// As [`Notifier::start`], for a process that takes over from an older
    /// one (an upgrade): `MAINPID=` this process with `READY=1`, so systemd
    /// follows it (the unit needs `NotifyAccess=all`).
    pub fn start_taking_over(monitor: Monitor) -> Notifier {
        Notifier::start_with(monitor, true)
    }

    fn start_with(monitor: Monitor, main_pid: bool) -> Notifier {
        let inner = Arc::new(Inner {
            monitor,
            draining: AtomicBool::new(false),
            handed_over: AtomicBool::new(false),
        });
        let notifier = Notifier { inner };
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return notifier;
        }
        let status = notifier.status();
        if main_pid {
            send(&[
                NotifyState::MainPid(std::process::id()),
                NotifyState::Ready,
                NotifyState::Status(&status),
            ]);
        } else {
            send(&[NotifyState::Ready, NotifyState::Status(&status)]);
        }
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

    /// An upgrade has started: `RELOADING=1` (with the monotonic time
    /// systemd 253+ asks for) and what is going on.
    pub fn reloading(&self, what: &str) {
        let mut states = vec![NotifyState::Reloading, NotifyState::Status(what)];
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        send(&states);
    }

    /// An upgrade failed and this process serves on: `READY=1` again.
    pub fn reload_failed(&self, why: &str) {
        let status = format!(
            "serving (upgrade failed: {why}): {}",
            self.inner.monitor.summary()
        );
        send(&[NotifyState::Ready, NotifyState::Status(&status)]);
    }

    /// A new process has taken over (it said `MAINPID=`): no `STOPPING=1`,
    /// no more pings or status from this one.
    pub fn handed_over(&self) {
        self.inner.handed_over.store(true, Ordering::Relaxed);
    }

    /// Put `sockets` in systemd's file descriptor store, named by their
    /// service (`FDSTORE=1`, `FDNAME=`): systemd keeps them open across a
    /// restart and passes them back, so connections queued meanwhile wait
    /// for the next process instead of being refused. The unit needs
    /// `FileDescriptorStoreMax=`. systemd keeps one copy of a socket stored
    /// twice.
    pub fn store_sockets(&self, sockets: &[(String, OwnedFd)]) {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return;
        }
        let mut names: Vec<&str> = sockets.iter().map(|(n, _)| n.as_str()).collect();
        names.dedup();
        for name in names {
            let fds: Vec<_> = sockets
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, fd)| fd.as_fd())
                .collect();
            let states = [NotifyState::FdStore, NotifyState::FdName(name)];
            if let Err(e) = sd_notify::notify_with_fds(&states, &fds) {
                warn!("cannot store the {name} sockets with systemd (FDSTORE=1): {e}");
            }
        }
    }

    /// A drain has started: say `STOPPING=1`.
    pub fn stopping(&self) {
        if self.inner.handed_over.load(Ordering::Relaxed) {
            return;
        }
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
            if self.inner.handed_over.load(Ordering::Relaxed) {
                return;
            }
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

/// The listening sockets passed with `LISTEN_FDS` (by systemd: socket
/// activation, its file descriptor store; or by the previous ringlet in an
/// upgrade), grouped by the protocol (one of `protocols`) they are for, in
/// the order of `protocols`. Empty when none were passed.
///
/// A socket whose `FileDescriptorName=` is one of `protocols` serves that
/// protocol; several may share a name (an upgrade passes each shard's
/// own). Unnamed sockets (no name, `unknown`, or the socket unit's own name
/// `*.socket`, which one unit gives all its sockets alike) go, in order, to
/// the protocols no socket names. Any other name is refused: a socket is
/// never served with a protocol it was not meant for.
pub fn inherited_sockets(
    protocols: &[&str],
) -> Result<Vec<(String, Vec<std::net::TcpListener>)>, String> {
    let passed: Vec<(i32, String)> = sd_notify::listen_fds_with_names()
        .map_err(|e| format!("bad socket activation environment: {e}"))?
        .collect();
    let mut sockets: Vec<(String, std::net::TcpListener)> = Vec::new();
    let mut seen: Vec<u64> = Vec::new();
    for (fd, name) in passed {
        // SAFETY: systemd passes these descriptors to this process, open, for
        // it to own (sd_listen_fds(3)); nothing else in the process uses them.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // One socket passed twice (a socket unit's, and the same socket
        // from the file descriptor store) is served once, by its name.
        let inode = rustix::fs::fstat(&owned).map_or(0, |st| st.st_ino);
        if let Some(i) = seen.iter().position(|&s| s == inode && inode != 0) {
            if protocols.contains(&name.as_str()) {
                sockets[i].0 = name;
            }
            continue;
        }
        seen.push(inode);
        sockets.push((name, std::net::TcpListener::from(owned)));
    }
    let names: Vec<&str> = sockets.iter().map(|(n, _)| n.as_str()).collect();
    let assigned = assign(&names, protocols)?;
    let mut groups: Vec<(String, Vec<std::net::TcpListener>)> = protocols
        .iter()
        .map(|p| (p.to_string(), Vec::new()))
        .collect();
    for (protocol, (_, listener)) in assigned.into_iter().zip(sockets) {
        let group = groups.iter_mut().find(|(p, _)| p == protocol);
        group.expect("assigned one of protocols").1.push(listener);
    }
    groups.retain(|(_, listeners)| !listeners.is_empty());
    Ok(groups)
}

/// Which protocol each passed socket (by name) serves; see
/// [`inherited_sockets`].
fn assign<'p>(names: &[&str], protocols: &[&'p str]) -> Result<Vec<&'p str>, String> {
    let list = protocols.join(", ");
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
        chosen.push(Some(*p));
    }
    let free: Vec<&'p str> = protocols
        .iter()
        .filter(|p| !chosen.contains(&Some(**p)))
        .copied()
        .collect();
    let mut free = free.into_iter();
    chosen
        .into_iter()
        .map(|c| {
            c.or_else(|| free.next()).ok_or_else(|| {
                format!(
                    "systemd passed more unnamed sockets than ringlet has protocols for them \
                     ({list}): name each with FileDescriptorName="
                )
            })
        })
        .collect()
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
            assign(&["a.socket"; 3], P)
                .unwrap_err()
                .contains("more unnamed sockets")
        );
        assert!(assign(&["echo", "unknown", "unknown"], P).is_err());
    }

    #[test]
    fn several_sockets_may_share_a_name() {
        // An upgrade hands over each shard's own socket.
        assert_eq!(
            assign(&["echo", "file", "echo", "file"], P).unwrap(),
            ["echo", "file", "echo", "file"]
        );
        assert_eq!(
            assign(&["file", "file", "unknown"], P).unwrap(),
            ["file", "file", "echo"]
        );
    }
}
