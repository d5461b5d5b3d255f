//! The ring's own tests: plumbing, batching, real socket and file
//! operations, and cancellation safety (dropped operations are cancelled,
//! their memory kept until the kernel is done, the bookkeeping back to empty).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use futures_lite::future;

use super::Ring;
use crate::io::Buf;

fn run<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce(Ring) -> F + Send + 'static) {
    run_returning(f)
}

/// Let the ring deliver what is outstanding.
async fn settle(ring: &Ring) {
    for _ in 0..200 {
        if ring.in_flight() == 0 {
            return;
        }
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}

/// As [`run`], handing a value back out of the executor.
fn run_returning<T: Send + 'static, F: std::future::Future<Output = T> + 'static>(
    f: impl FnOnce(Ring) -> F + Send + 'static,
) -> T {
    run_on(|| Ring::new(256), f)
}

/// As [`run_returning`], on the ring `make` builds.
fn run_on<T: Send + 'static, F: std::future::Future<Output = T> + 'static>(
    make: impl FnOnce() -> std::io::Result<Ring> + Send + 'static,
    f: impl FnOnce(Ring) -> F + Send + 'static,
) -> T {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(512 << 10)
        .spawn(move || async move {
            let ring = make().expect("ring");
            ring.start().unwrap();
            f(ring).await
        })
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn a_thousand_operations_go_out_in_a_few_enters() {
    run(|ring| async move {
        let ops: Vec<_> = (0..1000).map(|_| ring.nop()).collect();
        for op in ops {
            let (c, ()) = op.await;
            assert_eq!(c.result, 0);
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
        let mut accepts = ring.accept_multi(listener.as_raw_fd());
        let fd = super::ops::fd_of(accepts.next().await.unwrap()).unwrap();
        // SAFETY: the accepted descriptor is ours alone.
        let conn = unsafe { OwnedFd::from_raw_fd(fd) };
        let (n, buf) = ring.recv(conn.as_raw_fd(), Buf::with_capacity(64)).await;
        assert_eq!(n.unwrap(), 10);
        let (sent, _) = ring.send(conn.as_raw_fd(), buf, 0, 10).await;
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
        let pairs: Vec<_> = (0..2000)
            .map(|_| std::os::unix::net::UnixStream::pair().unwrap())
            .collect();
        let mut pending = Vec::new();
        for (a, _) in &pairs {
            let mut op = Box::pin(ring.recv(a.as_raw_fd(), Buf::with_capacity(4096)));
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
        let mut accepts = ring.accept_multi(listener.as_raw_fd());
        // Take one, leave the rest queued in the op or still arriving.
        let first = super::ops::fd_of(accepts.next().await.unwrap()).unwrap();
        // SAFETY: the accepted descriptor is ours alone.
        drop(unsafe { OwnedFd::from_raw_fd(first) });
        glommio::timer::sleep(Duration::from_millis(20)).await;
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
    let root = std::fs::File::open(dir.path()).unwrap();
    run(move |ring| async move {
        let beneath = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
        let flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
        let fd = ring
            .openat2(root.as_raw_fd(), b"f", flags, beneath)
            .await
            .unwrap();
        // SAFETY: the descriptor the ring opened is ours alone.
        let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "inside");
        let escape = ring
            .openat2(root.as_raw_fd(), b"../../etc/passwd", flags, beneath)
            .await;
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
        let (pr, pw) = rustix::pipe::pipe().unwrap();
        let mut off = 0u64;
        while off < 200_000 {
            let n = ring
                .splice(file.as_raw_fd(), Some(off), pw.as_raw_fd(), 65536)
                .await
                .unwrap();
            let mut left = n;
            while left > 0 {
                left -= ring
                    .splice(pr.as_raw_fd(), None, tx.as_raw_fd(), left as u32)
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

#[test]
fn an_abandoned_operation_keeps_its_buffer_until_the_kernel_lets_go() {
    run(|ring| async move {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let dropped = std::rc::Rc::new(std::cell::Cell::new(0));
        let mut buf = Buf::with_capacity(4096);
        let spare = buf.spare_mut();
        let sqe = io_uring::opcode::Recv::new(
            io_uring::types::Fd(a.as_raw_fd()),
            spare.as_mut_ptr(),
            spare.len() as u32,
        )
        .build();
        // SAFETY: the SQE points into `buf`'s heap bytes, owned by the op.
        let op = unsafe { super::op::Op::push(&ring, sqe, (buf, Witness(dropped.clone()))) };
        glommio::yield_if_needed().await;
        glommio::timer::sleep(Duration::from_millis(10)).await;
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

const LONG: Duration = Duration::from_secs(30);

#[test]
fn a_provided_buffer_carries_the_bytes_and_goes_back_when_dropped() {
    run(|ring| async move {
        let bufs = ring.buffers().expect("buffer rings (Linux 5.19+)");
        assert_eq!(bufs.out(), 0);
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        b.write_all(b"provided").unwrap();
        let got = ring
            .recv_provided_within(a.as_raw_fd(), 4096, LONG)
            .await
            .unwrap();
        assert_eq!(got.bytes(), b"provided");
        assert_eq!(ring.buffers().unwrap().out(), 1, "held while in use");
        drop(got);
        assert_eq!(ring.buffers().unwrap().out(), 0, "recycled on drop");
        // At most `max` bytes, the rest stays in the socket.
        b.write_all(b"0123456789").unwrap();
        let got = ring
            .recv_provided_within(a.as_raw_fd(), 4, LONG)
            .await
            .unwrap();
        assert_eq!(got.bytes(), b"0123");
        assert!(got.more_waiting(), "the kernel said the rest is waiting");
        drop(got);
        drop(b);
        let rest = ring
            .recv_provided_within(a.as_raw_fd(), 4096, LONG)
            .await
            .unwrap();
        assert_eq!(rest.bytes(), b"456789");
        drop(rest);
        let eof = ring
            .recv_provided_within(a.as_raw_fd(), 4096, LONG)
            .await
            .unwrap();
        assert_eq!(eof.bytes(), b"", "end of stream");
        drop(eof);
        assert_eq!(ring.buffers().unwrap().out(), 0);
        assert_eq!(ring.in_flight(), 0);
    });
}

#[test]
fn a_provided_receive_times_out_holding_nothing() {
    run(|ring| async move {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let err = ring
            .recv_provided_within(a.as_raw_fd(), 4096, Duration::from_millis(30))
            .await
            .err()
            .expect("nothing was sent");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        settle(&ring).await;
        assert_eq!(ring.in_flight(), 0);
        assert_eq!(ring.buffers().unwrap().out(), 0);
    });
}

#[test]
fn out_of_provided_buffers_is_enobufs_and_nothing_leaks() {
    run_on(
        || Ring::with_buffers(64, 2, 64),
        |ring| async move {
            let pairs: Vec<_> = (0..3)
                .map(|_| std::os::unix::net::UnixStream::pair().unwrap())
                .collect();
            for (_, mut b) in pairs.iter().map(|(a, b)| (a, b)) {
                b.write_all(b"data").unwrap();
            }
            let mut held = Vec::new();
            for (a, _) in &pairs[..2] {
                held.push(
                    ring.recv_provided_within(a.as_raw_fd(), 4096, LONG)
                        .await
                        .unwrap(),
                );
            }
            let third = ring
                .recv_provided_within(pairs[2].0.as_raw_fd(), 4096, LONG)
                .await;
            assert_eq!(
                third.err().and_then(|e| e.raw_os_error()),
                Some(libc::ENOBUFS)
            );
            assert_eq!(ring.stats().no_buffers, 1);
            assert!(held.iter().all(|g| g.bytes() == b"data"));
            drop(held);
            // Both buffers are back: the third socket's data arrives now.
            let got = ring
                .recv_provided_within(pairs[2].0.as_raw_fd(), 4096, LONG)
                .await
                .unwrap();
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
            let pairs: Vec<_> = (0..2000)
                .map(|_| std::os::unix::net::UnixStream::pair().unwrap())
                .collect();
            let mut pending = Vec::new();
            for (a, _) in &pairs {
                let mut op = Box::pin(ring.recv_provided_within(a.as_raw_fd(), 4096, LONG));
                assert!(future::poll_once(&mut op).await.is_none());
                pending.push(op);
            }
            glommio::yield_if_needed().await;
            // Data for half of them: the kernel hands out every buffer it has
            // (the rest fail with ENOBUFS), all before anyone reads a byte.
            for (_, b) in pairs.iter().step_by(2) {
                (&*b).write_all(b"x").unwrap();
            }
            glommio::timer::sleep(Duration::from_millis(50)).await;
            drop(pending);
            settle(&ring).await;
            assert_eq!(ring.in_flight(), 0, "slots leaked");
            assert_eq!(ring.buffers().unwrap().out(), 0, "buffers leaked");
            // And the kernel really has them all again.
            let fresh: Vec<_> = (0..count)
                .map(|_| std::os::unix::net::UnixStream::pair().unwrap())
                .collect();
            let mut held = Vec::new();
            for (a, b) in &fresh {
                (&*b).write_all(b"y").unwrap();
                let got = ring
                    .recv_provided_within(a.as_raw_fd(), 4096, LONG)
                    .await
                    .expect("a buffer for each");
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
            let pairs: Vec<_> = (0..600)
                .map(|_| std::os::unix::net::UnixStream::pair().unwrap())
                .collect();
            let mut pending = Vec::new();
            for (a, _) in &pairs {
                let mut op = Box::pin(ring.recv(a.as_raw_fd(), Buf::with_capacity(16)));
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
                    glommio::timer::sleep(Duration::from_secs(5)).await;
                    false
                },
            )
            .await;
            assert!(finished, "completions stuck in the kernel's overflow list");
            assert_eq!(ring.in_flight(), 0);
        },
    );
}
