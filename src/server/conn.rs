//! What the server does with every connection, whatever the backend and the
//! protocol: count its bytes (once, here), run the protocol isolated, and
//! end the connection the way its outcome calls for.
//!
//! | the protocol...                 | the client sees                              |
//! |---------------------------------|----------------------------------------------|
//! | returned `Ok`                   | the whole answer, then a FIN (lingering close) |
//! | timed out waiting for a request | a FIN                                        |
//! | returned any other error        | a reset                                      |
//! | panicked, or was cut by a drain | a reset                                      |
//!
//! The lingering close (nginx's `lingering_close`): half-close, then read
//! and discard what the client still sends until it closes, then close.
//! Closing with unread input, or before a late byte arrives, would make the
//! kernel reset the connection and drop the end of the answer still queued
//! for the client. So the linger's clock ([`Linger`]'s time) starts only
//! once the client has acknowledged the whole answer (the socket's send
//! queue is empty), however slowly it reads, for as long as it keeps taking
//! bytes within the write timeout; the bytes it may send meanwhile are
//! bounded too. Conversely a reset (`SO_LINGER` 0) is how an answer that
//! could not be completed ends, so that end of file always means "all of
//! it".
//!
//! During a drain, a connection waiting for its next request with nothing
//! buffered (an idle keep-alive, an echo session between lines) reads as
//! closed by the client unless a request arrives within a short grace (a
//! busy client's next one, already on its way, which is answered): its
//! protocol ends cleanly and the client gets a FIN, instead of holding the
//! drain. A connection that has not been answered yet waits for its first
//! request as usual.
//! This module never decides what a protocol says.

use std::future::{Future, poll_fn};
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd as _, BorrowedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::isolate::{self, Ended};
use super::monitor::ServiceStats;
use super::proxied::{self, ProxyPolicy};
use super::signal::{Raised, Signal};

/// How long a connection idle between requests when a drain begins may
/// still take to send one (which is then answered, and the connection
/// closed): what a busy client needs to turn an answer into its next
/// request, far less than any drain.
const DRAIN_GRACE: Duration = Duration::from_millis(250);
use crate::access::AccessLog;
use crate::backend::Socket;
use crate::fs::{OpenError, RegularFile, Root};
use crate::io::{Buf, Connection, Linger, Outcome, full_buffer_error, timeout_kind};
use crate::proto::Protocol;

/// One connection's work: the protocol, borrowing the connection.
pub(crate) type Work<'a> = Pin<Box<dyn Future<Output = io::Result<()>> + 'a>>;

/// A protocol, erased to what a shard calls per connection of type `C`.
pub(crate) type Handler<C> = Arc<dyn for<'a> Fn(&'a mut Metered<C>) -> Work<'a> + Send + Sync>;

/// Erase `protocol` for connections of type `C`.
pub(crate) fn erase<P: Protocol, C: Connection + Socket + 'static>(protocol: Arc<P>) -> Handler<C> {
    fn work<'a, P: Protocol, C: Connection + Socket + 'static>(
        protocol: &Arc<P>,
        conn: &'a mut Metered<C>,
    ) -> Work<'a> {
        let protocol = protocol.clone();
        Box::pin(async move { protocol.serve(conn).await })
    }
    Arc::new(move |conn| work(&protocol, conn))
}

/// What a connection's end needs to know about its service.
#[derive(Clone)]
pub(crate) struct Service {
    pub name: Arc<str>,
    pub stats: Arc<ServiceStats>,
    pub linger: Linger,
    /// How long a client may take no byte of its answer: also how long the
    /// lingering close waits, at most, for the whole answer to be taken.
    pub write_timeout: Duration,
    /// Connections open with a PROXY header (see `proxied`).
    pub proxy: Option<Arc<ProxyPolicy>>,
    /// Where requests are logged (`--access-log`).
    pub access: Option<AccessLog>,
}

/// Serve one accepted connection with `handler`, then end it.
/// `draining` is the shard's: raised when its drain begins.
pub(crate) async fn serve<C: Connection + Socket>(
    conn: C,
    handler: &Handler<C>,
    service: &Service,
    draining: Signal,
) {
    let mut peer = conn.peer();
    let mut conn = Metered::new(conn, service.stats.clone(), draining);
    conn.access = service.access.clone();
    service.stats.connection_opened();
    if let Some(policy) = &service.proxy {
        match proxied::read_header(&mut conn, peer, policy).await {
            Ok(admitted) => {
                if let Some(client) = admitted.client {
                    debug!("{}: {peer} is a balancer for {client}", service.name);
                    conn.client = Some(client);
                    peer = client;
                }
                conn.pending = admitted.rest;
            }
            Err(why) => {
                info!("{}: {peer}: {why}", service.name);
                conn.close();
                service.stats.connection_closed(true);
                return;
            }
        }
    }
    let ended = isolate::run(&service.name, peer, handler(&mut conn)).await;
    match ended {
        Ended::Clean => conn.linger(service, peer).await,
        Ended::Idle => conn.close(),
        Ended::Failed | Ended::Panicked => conn.reset(),
    }
    if ended == Ended::Panicked {
        service.stats.panics.add(1);
    }
    service
        .stats
        .connection_closed(matches!(ended, Ended::Failed | Ended::Panicked));
}

/// A backend's connection as the protocol sees it: every byte in and out
/// counted in its service's figures, and a reset for the client if it is
/// dropped before the server ended it properly (a drain cut it, or its
/// task unwound).
pub(crate) struct Metered<C: Socket> {
    conn: C,
    stats: Arc<ServiceStats>,
    /// The client closed its side (a read returned 0).
    eof: bool,
    /// Ended on purpose: drop closes normally.
    ended: bool,
    /// Something was sent: a read into an empty buffer now waits for a
    /// next request, which a drain need not wait for.
    answered: bool,
    /// The shard's drain began.
    draining: Raised,
    /// The client's address from a PROXY header, in place of the socket's.
    client: Option<SocketAddr>,
    /// Bytes read past a PROXY header: the protocol reads them first.
    pending: Vec<u8>,
    /// The access log, if on.
    access: Option<AccessLog>,
}

/// How a wait for the next request ended.
enum Waited {
    Read(io::Result<usize>, Buf),
    /// The drain began and nothing had arrived.
    Drained(Buf),
}

impl<C: Socket> Metered<C> {
    fn new(conn: C, stats: Arc<ServiceStats>, draining: Signal) -> Metered<C> {
        Metered {
            conn,
            stats,
            eof: false,
            ended: false,
            answered: false,
            draining: draining.raised(),
            client: None,
            pending: Vec::new(),
            access: None,
        }
    }

    /// Count a time limit an operation hit, by kind.
    fn note<T>(&self, res: &io::Result<T>) {
        if let Some(kind) = res.as_ref().err().and_then(timeout_kind) {
            self.stats.timed_out(kind);
        }
    }

    /// Close with a FIN (or, if unread input is waiting, the kernel's reset).
    fn close(&mut self) {
        self.ended = true;
    }

    /// Close with a reset: the answer was cut short.
    fn reset(&mut self) {
        // If the socket is already gone there is nothing to tell the client.
        let _ = socket2::SockRef::from(&self.conn.socket()).set_linger(Some(Duration::ZERO));
        self.ended = true;
    }
}

impl<C: Connection + Socket> Metered<C> {
    /// Wait for the next request with `buf` empty: as a read, unless the
    /// drain begins first (or has begun) and nothing has arrived.
    async fn wait_for_request(&mut self, buf: Buf) -> Waited {
        let capacity = buf.capacity();
        if !self.draining.is_raised() {
            let draining = &mut self.draining;
            let mut read = std::pin::pin!(self.conn.read(buf));
            let read = poll_fn(|cx| match read.as_mut().poll(cx) {
                Poll::Ready((res, buf)) => Poll::Ready(Some(Waited::Read(res, buf))),
                Poll::Pending => Pin::new(&mut *draining).poll(cx).map(|()| None),
            })
            .await;
            if let Some(read) = read {
                return read;
            }
            // The drain began while it waited; the read is dropped (and
            // cancelled), its buffer with it.
        }
        // Draining: a request already on its way (a busy keep-alive client
        // sends the next as soon as its answer is in) gets a moment to
        // arrive, and is answered; closing at once would leave it unanswered.
        self.conn
            .set_read_deadline(Some(Instant::now() + DRAIN_GRACE));
        let (res, buf) = self.conn.read(Buf::with_capacity(capacity)).await;
        self.conn.set_read_deadline(None);
        match res {
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Waited::Drained(buf),
            res => Waited::Read(res, buf),
        }
    }

    /// The lingering close (see the module header).
    async fn linger(&mut self, service: &Service, peer: SocketAddr) {
        /// How often the send queue is looked at while the client takes
        /// its answer.
        const ACK_POLL: Duration = Duration::from_millis(100);
        self.ended = true;
        let fd = self.conn.socket();
        let socket = socket2::SockRef::from(&fd);
        if let Err(e) = socket.shutdown(Shutdown::Write) {
            // The client is gone already: say how (a reset, usually).
            let e = socket.take_error().ok().flatten().unwrap_or(e);
            info!(
                "{}: {peer}: connection ended after its answer was sent: {e}",
                service.name
            );
            return;
        }
        if self.eof {
            return; // and it said all it will say
        }
        let limits = service.linger;
        // Until the client has acknowledged everything: the last time the
        // send queue shrank, and its length then.
        let mut taking = Some((Instant::now(), unacknowledged(self.conn.socket())));
        let mut linger_until = None;
        let mut discarded = 0u64;
        let mut buf = Buf::with_capacity(4096);
        loop {
            let now = Instant::now();
            if let Some((since, queued)) = taking {
                let left = unacknowledged(self.conn.socket());
                if left == 0 {
                    taking = None;
                    linger_until = Some(now + limits.time);
                } else if left < queued {
                    taking = Some((now, left));
                } else if now >= since + service.write_timeout {
                    // It stopped reading: the kernel still sends what is
                    // queued, then the FIN, after the close.
                    debug!(
                        "{}: {peer}: closing with {left} bytes unacknowledged: the client took none for {:?}",
                        service.name, service.write_timeout
                    );
                    return;
                }
            }
            let deadline = match (taking, linger_until) {
                (Some((since, _)), _) => (now + ACK_POLL).min(since + service.write_timeout),
                (None, Some(at)) => at,
                (None, None) => unreachable!("one of the two clocks runs"),
            };
            self.conn.set_read_deadline(Some(deadline));
            buf.clear();
            // Not through `self.read`: the linger's own deadline passing is
            // no timeout of the client's.
            let (res, b) = self.conn.read(buf).await;
            buf = b;
            match res {
                Ok(0) => return,
                Ok(n) => {
                    self.stats.bytes_in.add(n as u64);
                    discarded += n as u64;
                    if discarded > limits.bytes {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    if taking.is_none() {
                        return; // the linger's time is up
                    }
                }
                Err(e) => {
                    info!(
                        "{}: {peer}: connection ended after its answer was sent: {e}",
                        service.name
                    );
                    return;
                }
            }
        }
    }
}

/// Bytes sent on `socket` that its peer has not acknowledged yet (the FIN
/// counts as one); 0 if the kernel will not say.
fn unacknowledged(socket: BorrowedFd<'_>) -> u32 {
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int through the pointer, which
    // is valid for that; the descriptor is borrowed, so open.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    if rc == 0 { queued.max(0) as u32 } else { 0 }
}

impl<C: Socket> Drop for Metered<C> {
    fn drop(&mut self) {
        if !self.ended {
            self.reset();
        }
    }
}

impl<C: Connection + Socket> Connection for Metered<C> {
    fn peer(&self) -> SocketAddr {
        self.client.unwrap_or_else(|| self.conn.peer())
    }

    async fn read(&mut self, buf: Buf) -> (io::Result<usize>, Buf) {
        if buf.is_full() {
            return (Err(full_buffer_error()), buf);
        }
        if !self.pending.is_empty() {
            let mut buf = buf;
            let n = buf.extend_from_slice(&self.pending);
            self.pending.drain(..n);
            self.stats.bytes_in.add(n as u64);
            return (Ok(n), buf);
        }
        let (res, buf) = if buf.is_empty() && self.answered {
            match self.wait_for_request(buf).await {
                Waited::Read(res, buf) => (res, buf),
                Waited::Drained(buf) => {
                    debug!("{}: idle at the drain: closed", self.conn.peer());
                    return (Ok(0), buf);
                }
            }
        } else {
            self.conn.read(buf).await
        };
        match &res {
            Ok(0) => self.eof = true,
            Ok(n) => self.stats.bytes_in.add(*n as u64),
            Err(_) => self.note(&res),
        }
        (res, buf)
    }

    fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        self.conn.set_read_deadline(deadline);
    }

    async fn write_prefix(&mut self, buf: Buf, len: usize) -> (io::Result<()>, Buf) {
        let (res, buf) = self.conn.write_prefix(buf, len).await;
        match &res {
            Ok(()) => {
                self.answered = true;
                self.stats.bytes_out.add(len as u64);
            }
            Err(_) => self.note(&res),
        }
        (res, buf)
    }

    async fn open_file(&mut self, root: &Root, request: &[u8]) -> Result<RegularFile, OpenError> {
        self.conn.open_file(root, request).await
    }

    async fn send_file(&mut self, file: RegularFile) -> io::Result<u64> {
        let res = self.conn.send_file(file).await;
        match &res {
            Ok(n) => {
                self.answered = true;
                self.stats.bytes_out.add(*n);
            }
            Err(_) => self.note(&res),
        }
        res
    }

    async fn send_file_after(&mut self, head: Buf, file: RegularFile) -> (io::Result<u64>, Buf) {
        let head_len = head.len() as u64;
        let (res, head) = self.conn.send_file_after(head, file).await;
        match &res {
            Ok(n) => {
                self.answered = true;
                self.stats.bytes_out.add(head_len + n);
            }
            Err(_) => self.note(&res),
        }
        (res, head)
    }

    async fn yield_if_needed(&mut self) {
        self.conn.yield_if_needed().await;
    }

    fn record(&mut self, outcome: Outcome) {
        self.stats.outcomes[outcome.index()].add(1);
    }

    fn draining(&self) -> bool {
        self.draining.is_raised()
    }

    fn access_log(&self) -> Option<&AccessLog> {
        self.access.as_ref()
    }
}
