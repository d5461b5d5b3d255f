//! Provided receive buffers: the bytes, the recycling, a deadline on a
//! receive that holds none, running out (`ENOBUFS`, counted), and every
//! buffer back after dropped receives.

use std::io::Write;
use std::time::{Duration, Instant};

use futures_lite::future;

use super::{in_kernel, pair, run, run_on, settle, sleep};
use crate::ring::Ring;
use crate::ring::deadline::Deadlines;
use crate::ring::op::RecvProvided;

/// Nothing is in flight and every provided buffer is back with the kernel.
fn all_back(ring: &Ring) {
    assert_eq!(ring.in_flight(), 0, "slots leaked");
    assert_eq!(ring.buffers().unwrap().out(), 0, "buffers leaked");
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
        all_back(&ring);
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
        all_back(&ring);
        drop(watch);
        assert_eq!(deadlines.watched(), 0, "a dropped watch stays registered");
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
            all_back(&ring);
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
            let pending = in_kernel(pairs.iter().map(|(a, _)| recv(a))).await;
            // Data for half of them: the kernel hands out every buffer it has
            // (the rest fail with ENOBUFS), all before anyone reads a byte.
            for (_, b) in pairs.iter().step_by(2) {
                (&*b).write_all(b"x").unwrap();
            }
            sleep(&ring, Duration::from_millis(50)).await;
            drop(pending);
            settle(&ring).await;
            all_back(&ring);
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
