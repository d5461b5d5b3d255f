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
//! and discard what the client still sends until it closes, within
//! [`Linger`]'s time and byte bounds, then close. Closing with unread input
//! would make the kernel reset the connection and drop the end of the answer
//! still queued for the client. Conversely a reset (`SO_LINGER` 0) is how an
//! answer that could not be completed ends, so that end of file always means
//! "all of it". This module never decides what a protocol says.

use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::isolate::{self, Ended};
use super::monitor::ServiceStats;
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
}

/// Serve one accepted connection with `handler`, then end it.
pub(crate) async fn serve<C: Connection + Socket>(
    conn: C,
    handler: &Handler<C>,
    service: &Service,
) {
    let peer = conn.peer();
    let mut conn = Metered::new(conn, service.stats.clone());
    service.stats.connection_opened();
    let ended = isolate::run(&service.name, peer, handler(&mut conn)).await;
    match ended {
        Ended::Clean => conn.linger(service.linger).await,
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
}

impl<C: Socket> Metered<C> {
    fn new(conn: C, stats: Arc<ServiceStats>) -> Metered<C> {
        Metered {
            conn,
            stats,
            eof: false,
            ended: false,
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
    /// The lingering close (see the module header).
    async fn linger(&mut self, limits: Linger) {
        self.ended = true;
        if socket2::SockRef::from(&self.conn.socket())
            .shutdown(Shutdown::Write)
            .is_err()
        {
            return; // the client is gone already
        }
        if self.eof {
            return; // and it said all it will say
        }
        self.conn
            .set_read_deadline(Some(Instant::now() + limits.time));
        let mut discarded = 0u64;
        let mut buf = Buf::with_capacity(4096);
        while discarded <= limits.bytes {
            buf.clear();
            // Not through `self.read`: the linger's own deadline passing is
            // no timeout of the client's.
            let (res, b) = self.conn.read(buf).await;
            buf = b;
            match res {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    self.stats.bytes_in.add(n as u64);
                    discarded += n as u64;
                }
            }
        }
    }
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
        self.conn.peer()
    }

    async fn read(&mut self, buf: Buf) -> (io::Result<usize>, Buf) {
        if buf.is_full() {
            return (Err(full_buffer_error()), buf);
        }
        let (res, buf) = self.conn.read(buf).await;
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
            Ok(()) => self.stats.bytes_out.add(len as u64),
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
            Ok(n) => self.stats.bytes_out.add(*n),
            Err(_) => self.note(&res),
        }
        res
    }

    async fn send_file_after(&mut self, head: Buf, file: RegularFile) -> (io::Result<u64>, Buf) {
        let head_len = head.len() as u64;
        let (res, head) = self.conn.send_file_after(head, file).await;
        match &res {
            Ok(n) => self.stats.bytes_out.add(head_len + n),
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
}
