//! Cancellation safety: a dropped operation is cancelled, its memory and
//! the descriptors it names are kept until the kernel's final completion,
//! what nobody took is released, and the bookkeeping comes back to empty.

use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use futures_lite::future;
use io_uring::squeue;

use super::{in_kernel, inode, pair, run, run_returning, settle, sleep};
use crate::buf::Buf;
use crate::ring::SharedFd;
use crate::ring::completion::Completion;
use crate::ring::op::{self, AcceptMulti, Operation, Recv, Single, Splice, Timeout};

#[test]
fn thousands_of_dropped_receives_are_cancelled_and_freed() {
    run(|ring| async move {
        let pairs: Vec<_> = (0..2000).map(|_| pair()).collect();
        // Each receive is in the kernel, waiting for data that never comes.
        let receives = pairs
            .iter()
            .map(|(a, _)| ring.submit(Recv::new(a, Buf::with_capacity(4096))));
        let pending = in_kernel(receives).await;
        assert_eq!(ring.in_flight(), 2000);
        drop(pending); // abandoned with their buffers in the kernel's hands
        settle(&ring).await;
        assert_eq!(ring.in_flight(), 0, "slots leaked after cancellation");
        drop(pairs);
    });
}

#[test]
fn a_dropped_multishot_accept_closes_what_nobody_took() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let clients: Vec<_> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let listener = run_returning(move |ring| async move {
        let shared = SharedFd::new(listener.try_clone().unwrap().into());
        let mut accepts = ring.submit_multi(AcceptMulti::new(&shared));
        // Take one, leave the rest queued in the op or still arriving.
        drop(op::accepted(accepts.next().await.unwrap()).unwrap());
        sleep(&ring, Duration::from_millis(20)).await;
        drop(accepts);
        settle(&ring).await;
        assert_eq!(ring.in_flight(), 0);
        listener
    });
    // Whatever the ring never accepted is still in the backlog.
    listener.set_nonblocking(true).unwrap();
    let mut never_accepted = 0;
    while listener.accept().is_ok() {
        never_accepted += 1;
    }
    // Every connection the ring did accept was closed: its client sees EOF.
    let mut closed = 0;
    for mut c in clients {
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if let Ok(0) = c.read(&mut [0u8; 1]) {
            closed += 1;
        }
    }
    assert!(closed >= 1);
    assert_eq!(closed + never_accepted, 20, "an accepted descriptor leaked");
}

/// Counts drops, to see when an abandoned operation's data is released.
struct Witness(std::rc::Rc<std::cell::Cell<u32>>);

impl Drop for Witness {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// A receive that also holds a [`Witness`].
struct WitnessedRecv(Recv, #[allow(dead_code)] Witness);

// SAFETY: as for `Recv`; the witness points the kernel at nothing.
unsafe impl Operation for WitnessedRecv {
    fn sqe(&mut self) -> squeue::Entry {
        self.0.sqe()
    }
}

impl Single for WitnessedRecv {
    type Output = Completion;

    fn complete(self, c: Completion) -> Completion {
        c
    }
}

#[test]
fn an_abandoned_operation_keeps_its_buffer_until_the_kernel_lets_go() {
    run(|ring| async move {
        let (a, b) = pair();
        let dropped = std::rc::Rc::new(std::cell::Cell::new(0));
        let recv = Recv::new(&a, Buf::with_capacity(4096));
        let op = ring.submit(WitnessedRecv(recv, Witness(dropped.clone())));
        glommio::yield_if_needed().await;
        sleep(&ring, Duration::from_millis(10)).await;
        drop(op);
        // The receive is still in the kernel: the buffer must still be alive.
        assert_eq!(
            dropped.get(),
            0,
            "buffer freed while the kernel could write into it"
        );
        assert_eq!(ring.in_flight(), 1);
        settle(&ring).await;
        assert_eq!(
            dropped.get(),
            1,
            "buffer never released after the cancel completed"
        );
        assert_eq!(ring.in_flight(), 0);
        drop((a, b));
    });
}

#[test]
fn a_descriptor_stays_open_while_a_queued_operation_names_it() {
    run(|ring| async move {
        let (a, mut b) = pair();
        let (number, ours) = (a.raw(), inode(a.raw()));
        // Queued, not yet submitted, and dropped at once: cancelled, but
        // the kernel may still issue it first.
        let mut msg = Buf::with_capacity(5);
        msg.extend_from_slice(b"first");
        drop(ring.submit(op::Send::new(&a, msg, 0, 5)));
        drop(a); // the owner lets go
        assert_eq!(
            inode(number),
            ours,
            "descriptor {number} closed under a queued send: its number could be reused"
        );
        settle(&ring).await;
        assert_ne!(inode(number), ours, "descriptor {number} leaked");
        // Whatever the send did, it did on its own socket.
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert!(got.is_empty() || got == b"first", "{got:?}");
    });
}

#[test]
fn a_linked_operation_keeps_its_descriptor_until_it_is_issued() {
    run(|ring| async move {
        // A chain whose second half names a socket: file -> pipe, then
        // pipe -> socket. The caller drops both halves and the socket
        // before the kernel gets to the second.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), vec![7u8; 100_000]).unwrap();
        let file = SharedFd::new(std::fs::File::open(dir.path().join("f")).unwrap().into());
        let (pr, pw) = rustix::pipe::pipe().unwrap();
        let (pr, pw) = (SharedFd::new(pr), SharedFd::new(pw));
        let (sock, mut peer) = pair();
        let (number, ours) = (sock.raw(), inode(sock.raw()));
        let (first, second) = ring.submit_chain(
            Splice::new(&file, Some(0), &pw, 65536),
            Splice::new(&pr, None, &sock, 65536),
        );
        drop((first, second, sock, pr, pw, file));
        assert_eq!(inode(number), ours, "socket closed under a linked splice");
        settle(&ring).await;
        assert_ne!(inode(number), ours, "descriptor {number} leaked");
        peer.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        let _ = peer.read_to_end(&mut got);
        assert!(got.iter().all(|&b| b == 7), "only the file's bytes, if any");
    });
}

#[test]
fn stopping_does_not_wait_for_completions_their_owners_never_poll() {
    run(|ring| async move {
        // A sleep whose task is never polled again (a detached task at
        // shutdown): its completion comes in and waits in its slot.
        let mut parked = Box::pin(ring.submit(Timeout::new(Duration::from_millis(1))));
        assert!(future::poll_once(&mut parked).await.is_none());
        sleep(&ring, Duration::from_millis(50)).await;
        let started = Instant::now();
        ring.inner.cancel_all(Duration::from_secs(12));
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "cancel_all waited {:?} for a completion already in",
            started.elapsed()
        );
        drop(parked);
    });
}
