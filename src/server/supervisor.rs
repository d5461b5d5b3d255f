//! A running server and the means to stop it: [`Server`] waits on its
//! shards' events (ready, died, exited) and [`Stopper`] writes the control
//! bytes (stop, cut) from any thread and holds the listening sockets an
//! upgrade hands over.
//!
//! Start-up is called failed if a shard is not accepting within
//! [`START_TIMEOUT`]; a shard that dies unasked stops the whole server, so a
//! process never runs on with a dead listener swallowing connections.

use std::io;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, error};

use super::backends::Backend;
use super::control::{self, Event};
use super::error::{ServerError, ShardDeath};
use super::monitor::Monitor;
use crate::backend::StartError;

/// How long start-up may take before it is called failed.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shards get to exit after their drain, before `wait` gives up on them.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running server: its addresses, and the means to stop or wait for it.
pub struct Server {
    pub(super) addrs: Vec<(String, SocketAddr)>,
    pub(super) cpus: Vec<usize>,
    pub(super) backend: Backend,
    pub(super) events: Receiver<Event>,
    pub(super) stopper: Stopper,
    pub(super) threads: Vec<std::thread::JoinHandle<()>>,
    pub(super) monitor: Monitor,
    pub(super) shutdown_timeout: Duration,
}

/// Asks a running server to stop, from any thread. Cheap to clone.
#[derive(Clone)]
pub struct Stopper {
    pub(super) controls: Arc<Mutex<Vec<UnixStream>>>,
    pub(super) events: Sender<Event>,
    /// Every listening socket, until a stop: what an upgrade hands over.
    pub(super) handover: Arc<Mutex<Vec<(String, OwnedFd)>>>,
}

impl Server {
    /// Live figures of every shard, readable from any thread.
    pub fn monitor(&self) -> Monitor {
        self.monitor.clone()
    }

    /// The backend actually running (`Uring` or `Epoll`, never `Auto`).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The address service `name` listens on (port 0 resolved).
    pub fn local_addr(&self, name: &str) -> Option<SocketAddr> {
        self.addrs.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// The CPUs the shards are pinned to, one shard each.
    pub fn cpus(&self) -> &[usize] {
        &self.cpus
    }

    /// A handle that stops this server from another thread (a signal handler).
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Ask to stop, then wait for every shard to end.
    pub fn stop(self) -> Result<(), ServerError> {
        self.stopper.stop();
        self.wait()
    }

    /// Block until the server stops. `Ok` after a [`Stopper::stop`]; an error
    /// as soon as a shard dies without being asked to (the others are then
    /// stopped too).
    pub fn wait(self) -> Result<(), ServerError> {
        let mut stopping = false;
        let mut deadline: Option<Instant> = None;
        let mut running = self.threads.len();
        while running > 0 {
            let event = match deadline {
                None => self
                    .events
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => self
                    .events
                    .recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match event {
                Ok(Event::StopRequested) => {
                    stopping = true;
                    deadline.get_or_insert(Instant::now() + self.shutdown_timeout + STOP_GRACE);
                }
                Ok(Event::CutRequested) => {
                    stopping = true;
                    let soon = Instant::now() + STOP_GRACE;
                    deadline = Some(deadline.map_or(soon, |d| d.min(soon)));
                }
                Ok(Event::Exited { shard, panic }) if !stopping => {
                    let cause = match panic {
                        Some(message) => ShardDeath::Panicked { message },
                        None => ShardDeath::Returned,
                    };
                    error!("shard {shard} died: {cause}");
                    self.stopper.stop();
                    return Err(ServerError::ShardDied {
                        shard,
                        cpu: self.cpus[shard],
                        cause,
                    });
                }
                Ok(Event::Exited { shard, .. }) => {
                    debug!(shard, "stopped");
                    running -= 1;
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    error!("{running} shard(s) did not stop in time; leaving them");
                    return Ok(());
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        for t in self.threads {
            let _ = t.join();
        }
        Ok(())
    }

    /// Fault injection for tests: make shard `shard` panic outside any
    /// connection, as a bug in the runtime would. Only with the unstable
    /// `internals` feature (the supervision tests in `tests/` use it): no
    /// user's API.
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn inject_shard_panic(&self, shard: usize) {
        self.stopper.send(Some(shard), control::PANIC);
    }

    /// Wait until every shard accepts; on a failure, stop the others and say
    /// which shard failed and why.
    pub(super) fn await_ready(&self) -> Result<(), ServerError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut ready = 0;
        while ready < self.threads.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let failure = match self.events.recv_timeout(left) {
                Ok(Event::Ready { shard }) => {
                    debug!(shard, "accepting");
                    ready += 1;
                    continue;
                }
                Ok(Event::StartFailed { shard, reason }) => ServerError::Start {
                    shard,
                    source: reason,
                },
                Ok(Event::Exited { shard, panic }) => ServerError::Start {
                    shard,
                    source: match panic {
                        Some(message) => StartError::Panicked { message },
                        None => StartError::Ended,
                    },
                },
                Ok(Event::StopRequested | Event::CutRequested) => continue,
                Err(_) => ServerError::Start {
                    shard: ready,
                    source: StartError::NotReady(START_TIMEOUT),
                },
            };
            self.stopper.stop();
            return Err(failure);
        }
        Ok(())
    }
}

impl Stopper {
    /// Ask every shard to stop accepting, end the connections idle between
    /// requests (with a FIN, after their lingering close), let the others
    /// finish (up to the shutdown timeout), and end. Returns at once.
    pub fn stop(&self) {
        // Once the shards close theirs, nothing holds the sockets open (and
        // newcomers are refused), unless a new process was handed them.
        self.handover
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let _ = self.events.send(Event::StopRequested);
        self.send(None, control::STOP);
    }

    /// A new descriptor of every listening socket, with its service's
    /// name: each shard's own `SO_REUSEPORT` socket, or the sockets the
    /// server was given. For a new process taking over (an upgrade): the
    /// same sockets, so that nothing queued on them is lost when this
    /// server stops accepting. Empty once a stop was asked for.
    pub fn listening_sockets(&self) -> io::Result<Vec<(String, OwnedFd)>> {
        let handover = self.handover.lock().unwrap_or_else(|p| p.into_inner());
        handover
            .iter()
            .map(|(name, fd)| Ok((name.clone(), fd.as_fd().try_clone_to_owned()?)))
            .collect()
    }

    /// Stop at once: as [`Stopper::stop`], but every connection still open
    /// is reset now rather than at the end of the drain (a second signal).
    /// Their clients see `ECONNRESET`, never an end of file that could pass
    /// for a whole answer. Returns at once.
    pub fn cut(&self) {
        self.stop();
        let _ = self.events.send(Event::CutRequested);
        self.send(None, control::CUT);
    }

    fn send(&self, only: Option<usize>, byte: u8) {
        let mut controls = self.controls.lock().unwrap_or_else(|p| p.into_inner());
        for (i, c) in controls.iter_mut().enumerate() {
            if only.is_none_or(|s| s == i) {
                // A shard that is gone cannot be told; its exit is already known.
                let _ = c.write_all(&[byte]);
            }
        }
    }
}
