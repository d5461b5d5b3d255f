//! A connection's socket on the ring, for writing: what the connection and
//! its file streams send through.
//!
//! Sends go through the ring under the connection's [`Watch`] (the write
//! timeout, swept by the shard's heartbeat, no timer per send). Besides
//! them: one `send` that never waits (a head held back in front of a file
//! from the page cache), a wait for room by a ring poll, the socket made
//! non-blocking while a file leaves by `sendfile` from the shard
//! ([`NonBlocking`]), and the reset that ends a stream cut by the write
//! timeout ([`RingSocket::cut_for_write_timeout`]).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::buf::Buf;
use crate::io::{Timeouts, write_timed_out};
use crate::ring::deadline::Watch;
use crate::ring::op::{self, PollWritable, Timeout};
use crate::ring::{Ring, SharedFd};

/// How long a write-timeout cut waits for the kernel to let it reset a
/// socket a splice is blocked on before it shuts the socket down to wake
/// the worker (see [`RingSocket::cut_for_write_timeout`]).
const CUT_PATIENCE: Duration = Duration::from_millis(500);
/// How long it goes on trying after that. Generous: an io-wq worker on a
/// loaded machine (a TCG guest) can take seconds to let go, and the client
/// cannot see the queued FIN meanwhile (its window is closed, and it has
/// not been told anything yet).
const CUT_GIVE_UP: Duration = Duration::from_secs(5);
/// How often the cut tries the disconnect again (a sleep in the ring).
const CUT_RETRY: Duration = Duration::from_millis(1);

/// An accepted socket on the shard's ring, with the connection's deadline.
pub(super) struct RingSocket {
    pub(super) fd: SharedFd,
    pub(super) ring: Ring,
    /// The deadline of the wait in progress (receive, send, poll, splice).
    pub(super) watch: Watch,
    pub(super) timeouts: Timeouts,
}

impl RingSocket {
    /// Send `buf.filled()[done..len]` through the ring, under the write
    /// timeout.
    pub(super) async fn send(
        &self,
        mut buf: Buf,
        mut done: usize,
        len: usize,
    ) -> (io::Result<()>, Buf) {
        while done < len {
            let send = self.ring.submit(op::Send::new(&self.fd, buf, done, len));
            let (res, b) = self.watch.run(send, self.write_deadline()).await;
            buf = b;
            match res {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return (Err(write_timed_out(self.timeouts.write)), buf);
                }
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// One `send` that never waits (`MSG_DONTWAIT`, and `flags`); returns
    /// the bytes sent, `Ok(0)` when the socket has no room.
    pub(super) fn send_now(&self, bytes: &[u8], flags: i32) -> io::Result<usize> {
        let flags = rustix::net::SendFlags::from_bits_retain(
            (flags | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as u32,
        );
        match rustix::net::send(&self.fd, bytes, flags) {
            Ok(n) => Ok(n),
            Err(rustix::io::Errno::AGAIN) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Wait, through the ring, until the socket has room, under the write
    /// timeout.
    pub(super) async fn writable(&self) -> io::Result<()> {
        let writable = self.ring.submit(PollWritable::new(&self.fd));
        match self.watch.run(writable, self.write_deadline()).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                Err(write_timed_out(self.timeouts.write))
            }
            Err(e) => Err(e),
        }
    }

    /// `work` (a splice chain, a drain), or `None` once the write timeout
    /// passes first: the watch's span, ended by the heartbeat's sweep, not
    /// a timer of its own.
    pub(super) async fn within_write_timeout<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        self.watch.within(work, self.write_deadline()).await
    }

    /// A splice into a full socket blocks in an io-wq worker, where a
    /// cancel may not reach it: on timeout, reset the connection now
    /// (`connect(AF_UNSPEC)`: the kernel's disconnect sends the RST, drops
    /// the unsent bytes and wakes the blocked splice with an error). Not a
    /// `shutdown`: that queues a FIN behind the unsent bytes, and a client
    /// that drained them before the socket's last reference went (the
    /// abandoned splice's, on a loaded machine) read a clean end of file.
    /// Linux 5.10 LTS refuses the disconnect (`EBUSY`) while a thread waits
    /// on the socket: it is retried while the cancellation of the dropped
    /// splice (sent with the ring's next enter) interrupts the worker. Only
    /// if that fails too is the socket shut down (which wakes any waiter),
    /// and the disconnect tried again: the FIN is still queued behind bytes
    /// the client has not taken, and the disconnect drops it with them.
    pub(super) async fn cut_for_write_timeout(&self) -> io::Error {
        let sock = socket2::SockRef::from(&self.fd);
        // Whatever happens below, the last close resets.
        let _ = sock.set_linger(Some(Duration::ZERO));
        let started = Instant::now();
        let mut shut = false;
        loop {
            match rustix::net::connect_unspec(&self.fd) {
                Ok(()) => break,
                Err(rustix::io::Errno::BUSY) if started.elapsed() < CUT_GIVE_UP => {
                    if !shut && started.elapsed() >= CUT_PATIENCE {
                        let _ = sock.shutdown(std::net::Shutdown::Both);
                        shut = true;
                    }
                    // A sleep, not a deadline: the ring's timer.
                    let _ = self.ring.submit(Timeout::new(CUT_RETRY)).await;
                }
                Err(_) => {
                    // No disconnect: end the splice all the same.
                    let _ = sock.shutdown(std::net::Shutdown::Both);
                    break;
                }
            }
        }
        write_timed_out(self.timeouts.write)
    }

    /// When a write starting now must be done by.
    fn write_deadline(&self) -> Instant {
        Instant::now() + self.timeouts.write
    }
}

impl AsFd for RingSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The socket made non-blocking while a connection sends from the page
/// cache, blocking again when dropped (also when the sending future is):
/// the ring's own sends, receives and splices on it expect a blocking
/// socket, and none runs while its connection sends a file; a poll does
/// not care.
pub(super) struct NonBlocking<'a>(&'a SharedFd);

impl<'a> NonBlocking<'a> {
    pub(super) fn set(sock: &'a RingSocket) -> io::Result<NonBlocking<'a>> {
        rustix::fs::fcntl_setfl(&sock.fd, rustix::fs::OFlags::NONBLOCK)?;
        Ok(NonBlocking(&sock.fd))
    }
}

impl Drop for NonBlocking<'_> {
    fn drop(&mut self) {
        let _ = rustix::fs::fcntl_setfl(self.0, rustix::fs::OFlags::empty());
    }
}
