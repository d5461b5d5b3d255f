//! The ring's own tests: plumbing, batching, real socket and file
//! operations, and cancellation safety (dropped operations are cancelled,
//! their memory kept until the kernel is done, the bookkeeping back to empty).

use std::io::{Read as _, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;
use io_uring::squeue;

use super::completion::Completion;
use super::deadline::Deadlines;
use super::op::Timeout;
use super::op::{self, AcceptMulti, Nop, OpenAt2, Operation, Recv, RecvProvided, Single, Splice};
use super::{Ring, SharedFd};
use crate::buf::Buf;

/// The two ends of a Unix stream socket pair, the first one shared.
fn pair() -> (SharedFd, std::os::unix::net::UnixStream) {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    (SharedFd::new(OwnedFd::from(a)), b)
}

/// The inode descriptor `fd` stands for now, if it is open. Other tests in
/// this process open descriptors too, so a number alone proves nothing:
/// the same number on another inode means ours was closed.
fn inode(fd: RawFd) -> Option<u64> {
    // SAFETY: the descriptor is only inspected, never used or closed.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    rustix::fs::fstat(fd).ok().map(|st| st.st_ino)
}

fn run<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce(Ring) -> F + Send + 'static) {
    run_returning(f)
}

/// Sleep on the ring's own timer (the shard never waits on glommio's).
async fn sleep(ring: &Ring, d: Duration) {
    ring.submit(Timeout::new(d)).await.unwrap();
}

/// Let the ring deliver what is outstanding.
async fn settle(ring: &Ring) {
    for _ in 0..200 {
        if ring.in_flight() == 0 {
            return;
        }
        sleep(ring, Duration::from_millis(5)).await;
    }
}

/// As [`run`], handing a value back out of the executor.
pub(crate) fn run_returning<T: Send + 'static, F: std::future::Future<Output = T> + 'static>(
    f: impl FnOnce(Ring) -> F + Send + 'static,
) -> T {
    run_on(|| Ring::new(256), f)
}

/// As [`run_returning`], on the ring `make` builds, driven as a shard's
/// ring is. A test that hangs (a wake-up lost by the driver) fails after a
/// minute instead of hanging the suite.
fn run_on<T: Send + 'static, F: std::future::Future<Output = T> + 'static>(
    make: impl FnOnce() -> std::io::Result<Ring> + Send + 'static,
    f: impl FnOnce(Ring) -> F + Send + 'static,
) -> T {
    run_preempted_every(Duration::from_millis(5), make, f)
}

/// As [`run_on`], with glommio's preemption timer set to `preempt`.
fn run_preempted_every<T: Send + 'static, F: std::future::Future<Output = T> + 'static>(
    preempt: Duration,
    make: impl FnOnce() -> std::io::Result<Ring> + Send + 'static,
    f: impl FnOnce(Ring) -> F + Send + 'static,
) -> T {
    let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(512 << 10)
        .preempt_timer(preempt)
        .spawn(move || async move {
            let ring = make().expect("ring");
            super::driver::run(&ring, f(ring.clone())).await
        })
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(executor.join()));
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(result) => result.unwrap(),
        Err(_) => panic!("the executor hung: a wake-up was lost"),
    }
}

#[test]
fn a_thousand_operations_go_out_in_a_few_enters() {
    run(|ring| async move {
        let ops: Vec<_> = (0..1000).map(|_| ring.submit(Nop)).collect();
        for op in ops {
            assert_eq!(op.await.result, 0);
        }
        let s = ring.stats();
        assert_eq!((s.pushed, s.completions), (1000, 1000));
        assert!(s.enters <= 8, "{} enters for 1000 operations", s.enters);
        assert_eq!(ring.in_flight(), 0);
    });
}

#[test]
fn accept_recv_and_send_echo_through_the_ring() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"hello ring").unwrap();
        let mut back = [0u8; 10];
        s.read_exact(&mut back).unwrap();
        back
    });
    run(move |ring| async move {
        let listener = SharedFd::new(listener.into());
        let mut accepts = ring.submit_multi(AcceptMulti::new(&listener));
        let conn = SharedFd::new(op::accepted(accepts.next().await.unwrap()).unwrap());
        let (n, buf) = ring.submit(Recv::new(&conn, Buf::with_capacity(64))).await;
        assert_eq!(n.unwrap(), 10);
        let (sent, _) = ring.submit(op::Send::new(&conn, buf, 0, 10)).await;
        assert_eq!(sent.unwrap(), 10);
        drop(accepts);
        settle(&ring).await;
        assert_eq!(ring.in_flight(), 0);
    });
    assert_eq!(&client.join().unwrap(), b"hello ring");
}

#[test]
fn thousands_of_dropped_receives_are_cancelled_and_freed() {
    run(|ring| async move {
        let pairs: Vec<_> = (0..2000).map(|_| pair()).collect();
        let mut pending = Vec::new();
        for (a, _) in &pairs {
            let mut op = Box::pin(ring.submit(Recv::new(a, Buf::with_capacity(4096))));
            // Poll once: the receive is now in the kernel, waiting for data
            // that never comes.
            assert!(future::poll_once(&mut op).await.is_none());
            pending.push(op);
        }
        glommio::yield_if_needed().await;
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

#[test]
fn openat2_through_the_ring_stays_beneath_its_root() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), "inside").unwrap();
    let root = Arc::new(OwnedFd::from(std::fs::File::open(dir.path()).unwrap()));
    run(move |ring| async move {
        // The flags every open beneath a served root uses.
        let (flags, beneath) = crate::fs::open_how();
        let open = |path: &[u8]| OpenAt2::new(&root, path, flags, beneath).unwrap();
        let fd = ring.submit(open(b"f")).await.unwrap();
        let mut f = std::fs::File::from(fd);
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "inside");
        let escape = ring.submit(open(b"../../etc/passwd")).await;
        assert_eq!(escape.unwrap_err().raw_os_error(), Some(libc::EXDEV));
    });
}

#[test]
fn splice_moves_a_file_through_a_pipe_to_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
    std::fs::write(dir.path().join("f"), &data).unwrap();
    let file = std::fs::File::open(dir.path().join("f")).unwrap();
    let (mut rx, tx) = std::os::unix::net::UnixStream::pair().unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        rx.read_to_end(&mut got).unwrap();
        got
    });
    run(move |ring| async move {
        let (file, tx) = (SharedFd::new(file.into()), SharedFd::new(tx.into()));
        let (pr, pw) = rustix::pipe::pipe().unwrap();
        let (pr, pw) = (SharedFd::new(pr), SharedFd::new(pw));
        let mut off = 0u64;
        while off < 200_000 {
            let n = ring
                .submit(Splice::new(&file, Some(off), &pw, 65536))
                .await
                .unwrap();
            let mut left = n;
            while left > 0 {
                left -= ring
                    .submit(Splice::new(&pr, None, &tx, left as u32))
                    .await
                    .unwrap();
            }
            off += n as u64;
        }
        drop(tx);
    });
    assert!(reader.join().unwrap() == data);
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
fn a_provided_buffer_carries_the_bytes_and_goes_back_when_dropped() {
    run(|ring| async move {
        let bufs = ring.buffers().expect("buffer rings (Linux 5.19+)");
        assert_eq!(bufs.out(), 0);
        let (a, mut b) = pair();
        let recv = |max| ring.submit(RecvProvided::new(ring.buffers().unwrap(), &a, max));
        b.write_all(b"provided").unwrap();
        let got = recv(4096).await.unwrap();
        assert_eq!(got.bytes(), b"provided");
        assert_eq!(ring.buffers().unwrap().out(), 1, "held while in use");
        drop(got);
        assert_eq!(ring.buffers().unwrap().out(), 0, "recycled on drop");
        // At most `max` bytes, the rest stays in the socket.
        b.write_all(b"0123456789").unwrap();
        let got = recv(4).await.unwrap();
        assert_eq!(got.bytes(), b"0123");
        assert!(got.more_waiting(), "the kernel said the rest is waiting");
        drop(got);
        drop(b);
        let rest = recv(4096).await.unwrap();
        assert_eq!(rest.bytes(), b"456789");
        drop(rest);
        let eof = recv(4096).await.unwrap();
        assert_eq!(eof.bytes(), b"", "end of stream");
        drop(eof);
        assert_eq!(ring.buffers().unwrap().out(), 0);
        assert_eq!(ring.in_flight(), 0);
    });
}

#[test]
fn a_provided_receive_times_out_holding_nothing() {
    run(|ring| async move {
        let (a, _b) = pair();
        let deadlines = Deadlines::new();
        let watch = deadlines.watch();
        let sweeper = {
            let (ring, deadlines) = (ring.clone(), deadlines.clone());
            async move {
                loop {
                    sleep(&ring, Duration::from_millis(10)).await;
                    deadlines.sweep(&ring, Instant::now());
                }
            }
        };
        let recv = ring.submit(RecvProvided::new(ring.buffers().unwrap(), &a, 4096));
        let at = Instant::now() + Duration::from_millis(30);
        let err = future::or(async { watch.run(recv, at).await.err() }, async {
            sweeper.await;
            None
        })
        .await
        .expect("nothing was sent");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(Instant::now() >= at, "timed out early");
        settle(&ring).await;
        assert_eq!(ring.in_flight(), 0);
        assert_eq!(ring.buffers().unwrap().out(), 0);
        drop(watch);
        assert_eq!(deadlines.watched(), 0, "a dropped watch stays registered");
    });
}

#[test]
fn a_deadline_expires_only_its_own_operation() {
    run(|ring| async move {
        let (a, mut b) = pair();
        let deadlines = Deadlines::new();
        let watch = deadlines.watch();
        // An operation that completed in time: its slot is reused by the
        // next one, which the stale deadline must not touch.
        b.write_all(b"x").unwrap();
        let at = Instant::now() + Duration::from_millis(20);
        let (n, _) = watch
            .run(ring.submit(Recv::new(&a, Buf::with_capacity(8))), at)
            .await;
        assert_eq!(n.unwrap(), 1);
        let next = ring.submit(Recv::new(&a, Buf::with_capacity(8)));
        sleep(&ring, Duration::from_millis(40)).await;
        deadlines.sweep(&ring, Instant::now());
        b.write_all(b"y").unwrap();
        let (n, buf) = next.await;
        assert_eq!((n.unwrap(), buf.filled()), (1, &b"y"[..]));
    });
}

#[test]
fn out_of_provided_buffers_is_enobufs_and_nothing_leaks() {
    run_on(
        || Ring::with_buffers(64, 2, 64),
        |ring| async move {
            let pairs: Vec<_> = (0..3).map(|_| pair()).collect();
            for (_, mut b) in pairs.iter().map(|(a, b)| (a, b)) {
                b.write_all(b"data").unwrap();
            }
            let recv = |fd| ring.submit(RecvProvided::new(ring.buffers().unwrap(), fd, 4096));
            let mut held = Vec::new();
            for (a, _) in &pairs[..2] {
                held.push(recv(a).await.unwrap());
            }
            let third = recv(&pairs[2].0).await;
            assert_eq!(
                third.err().and_then(|e| e.raw_os_error()),
                Some(libc::ENOBUFS)
            );
            assert_eq!(ring.stats().no_buffers, 1);
            assert!(held.iter().all(|g| g.bytes() == b"data"));
            drop(held);
            // Both buffers are back: the third socket's data arrives now.
            let got = recv(&pairs[2].0).await.unwrap();
            assert_eq!(got.bytes(), b"data");
            drop(got);
            assert_eq!(ring.buffers().unwrap().out(), 0);
            assert_eq!(ring.in_flight(), 0);
        },
    );
}

#[test]
fn dropped_provided_receives_give_every_buffer_back() {
    // A small completion queue (128), so thousands of completions overflow
    // it: those must still be collected.
    run_on(
        || Ring::with_buffers(16, 256, 16 * 1024),
        |ring| async move {
            let count = ring.buffers().unwrap().count() as usize;
            let pairs: Vec<_> = (0..2000).map(|_| pair()).collect();
            let recv = |fd| ring.submit(RecvProvided::new(ring.buffers().unwrap(), fd, 4096));
            let mut pending = Vec::new();
            for (a, _) in &pairs {
                let mut op = Box::pin(recv(a));
                assert!(future::poll_once(&mut op).await.is_none());
                pending.push(op);
            }
            glommio::yield_if_needed().await;
            // Data for half of them: the kernel hands out every buffer it has
            // (the rest fail with ENOBUFS), all before anyone reads a byte.
            for (_, b) in pairs.iter().step_by(2) {
                (&*b).write_all(b"x").unwrap();
            }
            sleep(&ring, Duration::from_millis(50)).await;
            drop(pending);
            settle(&ring).await;
            assert_eq!(ring.in_flight(), 0, "slots leaked");
            assert_eq!(ring.buffers().unwrap().out(), 0, "buffers leaked");
            // And the kernel really has them all again.
            let fresh: Vec<_> = (0..count).map(|_| pair()).collect();
            let mut held = Vec::new();
            for (a, b) in &fresh {
                (&*b).write_all(b"y").unwrap();
                let got = recv(a).await.expect("a buffer for each");
                assert_eq!(got.bytes(), b"y");
                held.push(got);
            }
            drop(held);
            drop(pairs);
        },
    );
}

#[test]
fn completions_beyond_a_full_completion_queue_are_still_delivered() {
    // 16 entries: a completion queue of 128, and 600 receives completing at
    // once. The kernel keeps the overflow to itself until asked.
    run_on(
        || Ring::with_buffers(16, 2, 64),
        |ring| async move {
            let pairs: Vec<_> = (0..600).map(|_| pair()).collect();
            let mut pending = Vec::new();
            for (a, _) in &pairs {
                let mut op = Box::pin(ring.submit(Recv::new(a, Buf::with_capacity(16))));
                assert!(future::poll_once(&mut op).await.is_none());
                pending.push(op);
            }
            glommio::yield_if_needed().await;
            for (_, b) in &pairs {
                (&*b).write_all(b"z").unwrap();
            }
            let all = async {
                for op in pending {
                    let (n, buf) = op.await;
                    assert_eq!((n.unwrap(), buf.filled()), (1, &b"z"[..]));
                }
            };
            let finished = future::or(
                async {
                    all.await;
                    true
                },
                async {
                    sleep(&ring, Duration::from_secs(5)).await;
                    false
                },
            )
            .await;
            assert!(finished, "completions stuck in the kernel's overflow list");
            settle(&ring).await; // the cancelled timer
            assert_eq!(ring.in_flight(), 0);
        },
    );
}

/// A chain of tasks, each woken by the one before (from user space, not by
/// the ring), while an operation that never completes keeps the ring busy:
/// the driver must let every link run rather than block in the ring, where
/// nothing would ever wake it.
#[test]
fn a_chain_of_user_space_wakeups_runs_while_the_ring_waits() {
    run(|ring| async move {
        let (quiet, _peer) = pair();
        let _forever = ring.submit(Recv::new(&quiet, Buf::with_capacity(8)));
        let links: Vec<_> = (0..50)
            .map(|_| std::rc::Rc::new(tokio::sync::Notify::new()))
            .collect();
        let done = std::rc::Rc::new(tokio::sync::Notify::new());
        for i in 0..links.len() {
            let (me, next) = (links[i].clone(), links.get(i + 1).cloned());
            let done = done.clone();
            super::driver::spawn(async move {
                me.notified().await;
                // Let the driver take a turn between links.
                glommio::executor().yield_now().await;
                match next {
                    Some(next) => next.notify_one(),
                    None => done.notify_one(),
                }
            });
        }
        links[0].notify_one();
        done.notified().await;
    });
}

/// A byte written from another thread to a socket the ring reads wakes a
/// shard that sleeps in the ring.
#[test]
fn a_byte_from_another_thread_wakes_a_sleeping_shard() {
    run(|ring| async move {
        let (a, mut b) = pair();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            b.write_all(b"!").unwrap();
            b
        });
        let (n, buf) = ring.submit(Recv::new(&a, Buf::with_capacity(8))).await;
        assert_eq!((n.unwrap(), buf.filled()), (1, &b"!"[..]));
        drop(writer.join());
    });
}

/// With nothing in flight in the ring, the driver must not block in it:
/// a task waiting on something else (here glommio's own timer) still runs.
#[test]
fn with_nothing_in_flight_the_driver_lets_glommio_wait() {
    run(|ring| async move {
        assert_eq!(ring.in_flight(), 0);
        glommio::timer::sleep(Duration::from_millis(50)).await;
        // And the ring still works afterwards.
        assert_eq!(ring.submit(Nop).await.result, 0);
    });
}

/// glommio 0.9 parked when its preemption timer fired before any task queue
/// ran, with tasks still queued; on a shard whose I/O is all in its own
/// ring nothing then woke it (vendor/glommio/PATCHES.md). A 20 µs timer
/// (about the time from arming it to checking it) makes that case common:
/// thousands of yields must all be run.
#[test]
fn a_preempted_executor_never_parks_with_work_queued() {
    run_preempted_every(
        Duration::from_micros(20),
        || Ring::new(64),
        |ring| async move {
            let (quiet, _peer) = pair();
            let _forever = ring.submit(Recv::new(&quiet, Buf::with_capacity(8)));
            let done = std::rc::Rc::new(tokio::sync::Notify::new());
            let signal = done.clone();
            super::driver::spawn(async move {
                for _ in 0..20_000 {
                    glommio::executor().yield_now().await;
                }
                signal.notify_one();
            });
            done.notified().await;
        },
    );
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
