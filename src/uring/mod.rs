//! The io_uring backend: glommio shards whose sockets and files all go
//! through the shard's own completion ring (`crate::ring`).
//!
//! glommio gives each shard its pinned executor, task scheduling and
//! preemption; the ring does every accept, receive, send, open, read,
//! splice and timer, completion-based (the one synchronous write is a file
//! chunk the page cache holds whole, by `sendfile`: `stream.rs`), and the
//! shard sleeps in the ring (`ring::driver`): nothing here may wait on
//! glommio's own timers or I/O. It never decides policy (admission,
//! timeouts, close): that is `server/`'s. The rooms:
//!
//! - this module, the shard's half: [`Uring`], the skeleton's [`Runtime`];
//! - `conn.rs`, a connection's half: [`RingConn`], the `Connection` impl
//!   (receives, opening files; the rest it hands on);
//! - `socket.rs`, writing to a connection's socket under its write timeout,
//!   and the reset that cuts a stream;
//! - `stream.rs`, a file window (and a head) on its way to the socket;
//! - `memlock.rs`, locked-memory sizing.

use std::io;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};
use tracing::info;

use crate::backend::{RingFigures, Runtime, ShardConfig, StartError};
use crate::buf::Buf;
use crate::io::Timeouts;
use crate::ring::deadline::Deadlines;
use crate::ring::lifecycle::{MultiOp, Op};
use crate::ring::op::{self, Accept, AcceptMulti, Recv, Timeout};
use crate::ring::pipes::PipePool;
use crate::ring::{Ring, SharedFd, driver};

mod conn;
pub(crate) mod memlock;
mod socket;
mod stream;

pub(crate) use conn::RingConn;

/// glommio's default is 100 ms; a busy connection yields after this long.
const PREEMPT: Duration = Duration::from_millis(5);
/// Submission queue slots of a shard's ring (it grows nothing; a full queue
/// is submitted early).
const RING_ENTRIES: u32 = 1024;

/// One uring shard's I/O: its ring, its pipes, its connections' deadlines.
pub(crate) struct Uring {
    ring: Ring,
    pipes: Rc<PipePool>,
    deadlines: Rc<Deadlines>,
    timeouts: Timeouts,
    cached_sendfile: bool,
}

/// A listening socket on the ring.
pub(crate) struct RingListener {
    fd: SharedFd,
    /// Keep one multishot accept armed (Linux 5.19+).
    multishot: bool,
    armed: Option<MultiOp<AcceptMulti>>,
    /// A single-shot accept in flight. Kept here, not in the accept's
    /// future, so that a connection it takes is never dropped with that
    /// future: the next accept, or the close, hands it over.
    pending: Option<Op<Accept>>,
}

impl Runtime for Uring {
    /// Registered-buffer bytes for each glommio executor.
    type Setup = usize;
    type Conn = RingConn;
    type Listener = RingListener;
    type Control = SharedFd;

    const NAME: &'static str = "uring";

    fn prepare(shards: usize) -> usize {
        memlock::io_memory_per_shard(shards)
    }

    fn run<F: Future<Output = ()> + 'static>(
        config: ShardConfig,
        io_memory: usize,
        main: impl FnOnce(Rc<Self>) -> F + 'static,
    ) -> Result<(), StartError> {
        let executor = LocalExecutorBuilder::new(Placement::Fixed(config.cpu))
            .name(&format!("ringlet-{}", config.id))
            .io_memory(io_memory)
            .preempt_timer(PREEMPT)
            .make()
            .map_err(|e| {
                let source = io::Error::from(e);
                StartError::Executor {
                    cpu: config.cpu,
                    locked_memory: memlock::shortfall(&source, config.shards),
                    source,
                }
            })?;
        executor.run(async move {
            let ring = Ring::new(RING_ENTRIES).map_err(|source| StartError::Ring {
                locked_memory: memlock::shortfall(&source, config.shards),
                source,
            })?;
            let rt = Rc::new(Uring {
                ring: ring.clone(),
                pipes: PipePool::for_shard(config.shards),
                deadlines: Deadlines::new(),
                timeouts: config.timeouts,
                cached_sendfile: config.cached_sendfile,
            });
            driver::run(&ring, main(rt)).await;
            Ok(())
        })
    }

    fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        driver::spawn(task);
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + 'static + use<> {
        let ring = self.ring.clone();
        async move {
            // A timeout in the ring cannot fail but by cancellation.
            let _ = ring.submit(Timeout::new(d)).await;
        }
    }

    fn listener(&self, fd: OwnedFd, exclusive: bool) -> io::Result<RingListener> {
        // The ring waits for connections itself: a blocking listener makes it
        // park the accept in the kernel instead of failing with EAGAIN.
        rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::empty())?;
        Ok(RingListener {
            fd: SharedFd::new(fd),
            multishot: exclusive,
            armed: None,
            pending: None,
        })
    }

    async fn accept(&self, l: &mut RingListener) -> io::Result<RingConn> {
        let fd = loop {
            if !l.multishot {
                let ring = &self.ring;
                let op = l
                    .pending
                    .get_or_insert_with(|| ring.submit(Accept::new(&l.fd)));
                let res = op.await;
                l.pending = None;
                break res?;
            }
            let armed = l
                .armed
                .get_or_insert_with(|| self.ring.submit_multi(AcceptMulti::new(&l.fd)));
            let Some(c) = armed.next().await else {
                l.armed = None; // ended (after an error): arm again
                continue;
            };
            match op::accepted(c) {
                Ok(fd) => break fd,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    note_single_shot_accept();
                    l.multishot = false;
                    l.armed = None;
                }
                Err(e) => return Err(e),
            }
        };
        self.connection(fd)
    }

    async fn close_listener(&self, mut l: RingListener) -> Vec<RingConn> {
        // What the kernel accepted before the cancels reached it is real
        // clients: serve them, do not close them.
        let mut fds = Vec::new();
        if let Some(mut op) = l.pending.take() {
            op.cancel();
            if let Ok(fd) = (&mut op).await {
                fds.push(fd);
            }
        }
        if let Some(mut armed) = l.armed.take() {
            armed.cancel();
            while let Some(c) = armed.next().await {
                if let Ok(fd) = op::accepted(c) {
                    fds.push(fd);
                }
            }
        }
        fds.into_iter()
            .filter_map(|fd| self.connection(fd).ok())
            .collect()
    }

    fn control(&self, fd: OwnedFd) -> io::Result<SharedFd> {
        Ok(SharedFd::new(fd))
    }

    async fn read_control(&self, c: &mut SharedFd) -> io::Result<Option<u8>> {
        let (n, buf) = self.ring.submit(Recv::new(c, Buf::with_capacity(1))).await;
        Ok((n? == 1).then(|| buf.filled()[0]))
    }

    /// Waits past their deadline end here: receives, sends and polls are
    /// cancelled, a splice chunk's span is given up (`ring::deadline`).
    fn tick(&self) {
        self.deadlines.sweep(&self.ring, std::time::Instant::now());
    }

    fn figures(&self) -> RingFigures {
        let s = self.ring.stats();
        RingFigures {
            enters: s.enters,
            completions: s.completions,
            no_buffers: s.no_buffers,
            cq_overflows: s.cq_overflows,
            in_flight: self.ring.in_flight() as u64,
            pipes: self.pipes.live() as u64,
        }
    }
}

impl Uring {
    /// A connection on this shard's ring for the accepted `fd`.
    fn connection(&self, fd: OwnedFd) -> io::Result<RingConn> {
        RingConn::accepted(
            fd,
            self.ring.clone(),
            self.pipes.clone(),
            self.deadlines.watch(),
            self.timeouts,
            self.cached_sendfile,
        )
    }
}

/// Multishot accept needs Linux 5.19; before that, every shard accepts one
/// at a time. Expected on older kernels: said once, at INFO.
fn note_single_shot_accept() {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        info!(
            "this kernel has no multishot accept (Linux 5.19+): accepting one connection at a time"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::OwnedFd;
    use std::time::Duration;

    use futures_lite::future;

    use super::*;
    use crate::ring::tests::run_returning;

    /// Connections the kernel accepted for a listener (multishot, or the
    /// single-shot accept in flight) while the shard stops are handed over
    /// by `close_listener` to be served, never closed unanswered; the rest
    /// stay queued on the socket for whoever accepts next (the process an
    /// upgrade started). Before Linux 5.19 (no multishot) the kernel
    /// accepts nothing ahead: all of them are still queued.
    #[test]
    fn closing_a_listener_hands_over_what_the_kernel_accepted() {
        for exclusive in [true, false] {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            // The socket's other holder: the next process, in an upgrade.
            let next = listener.try_clone().unwrap();
            let (handed, clients) = run_returning(move |ring| async move {
                let rt = Uring {
                    ring: ring.clone(),
                    pipes: PipePool::for_shard(1),
                    deadlines: Deadlines::new(),
                    timeouts: Timeouts::default(),
                    cached_sendfile: true,
                };
                let mut l = rt.listener(OwnedFd::from(listener), exclusive).unwrap();
                // The accept is armed, then its waiter goes away (a stop).
                assert!(future::poll_once(rt.accept(&mut l)).await.is_none());
                let clients: Vec<TcpStream> = (0..if exclusive { 5 } else { 1 })
                    .map(|_| TcpStream::connect(addr).unwrap())
                    .collect();
                // Let the kernel complete the accepts into the ring.
                let _ = ring.submit(Timeout::new(Duration::from_millis(100))).await;
                let conns = rt.close_listener(l).await;
                (conns.len(), clients)
            });
            next.set_nonblocking(true).unwrap();
            let queued = std::iter::from_fn(|| next.accept().ok()).count();
            assert_eq!(
                handed + queued,
                clients.len(),
                "exclusive (multishot): {exclusive}: {handed} handed over, {queued} still queued"
            );
        }
    }
}
