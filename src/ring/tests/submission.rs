//! Submission: batching, real socket and file operations through the ring,
//! a deadline's sweep, and completions beyond a full completion queue.

use std::io::{Read as _, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;

use super::{in_kernel, pair, run, run_on, settle, sleep};
use crate::buf::Buf;
use crate::ring::deadline::Deadlines;
use crate::ring::op::{self, AcceptMulti, Nop, OpenAt2, Recv, Splice};
use crate::ring::{Ring, SharedFd};

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

#[test]
fn completions_beyond_a_full_completion_queue_are_still_delivered() {
    // 16 entries: a completion queue of 128, and 600 receives completing at
    // once. The kernel keeps the overflow to itself until asked.
    run_on(
        || Ring::with_buffers(16, 2, 64),
        |ring| async move {
            let pairs: Vec<_> = (0..600).map(|_| pair()).collect();
            let receives = pairs
                .iter()
                .map(|(a, _)| ring.submit(Recv::new(a, Buf::with_capacity(16))));
            let pending = in_kernel(receives).await;
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
