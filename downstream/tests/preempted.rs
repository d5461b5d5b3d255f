//! glommio 0.9.0 as published parks a preempted executor with tasks still
//! queued; a shard whose I/O is all in ringlet's own ring then never wakes
//! (vendor/glommio/PATCHES.md). ringlet depends on a glommio with the fix;
//! this test, in a crate that depends on ringlet by path with no `[patch]`,
//! shows that such a crate gets it. Same setting as ringlet's own
//! `ring::tests::a_preempted_executor_never_parks_with_work_queued`: a
//! 20 µs preemption timer, a receive outstanding on the ring, 20,000 yields
//! that must all run. A hang fails the test after a minute.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ringlet::Buf;
use ringlet::glommio;
use ringlet::ring::op::Recv;
use ringlet::ring::{Ring, SharedFd, driver};

/// Far beyond what the yields take (well under a second with the fix).
const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn a_preempted_executor_never_parks_with_work_queued() {
    if let Err(e) = Ring::new(8) {
        eprintln!("skipped: io_uring is unavailable here ({e})");
        return;
    }
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    // The executor on a thread of its own, so that a hang is seen, not
    // waited out: its thread is left behind when the test fails.
    std::thread::spawn(move || {
        let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(512 << 10)
            .preempt_timer(Duration::from_micros(20))
            .spawn(|| async {
                let ring = Ring::new(64).expect("ring");
                driver::run(&ring, yields(ring.clone())).await
            })
            .expect("executor");
        let _ = tx.send(executor.join());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(Ok(ran)) => assert_eq!(ran, 20_000),
        Ok(Err(e)) => panic!("the executor failed: {e}"),
        Err(_) => panic!(
            "the executor hung for {:?}: preempted, it parked with tasks queued \
             (the glommio bug of vendor/glommio/PATCHES.md: is this crate built \
             against registry glommio?)",
            started.elapsed()
        ),
    }
    eprintln!(
        "20,000 yields under a 20 µs preemption timer in {:?}",
        started.elapsed()
    );
}

/// With a receive that never completes outstanding (so the driver would
/// block in the ring, not let glommio park), 20,000 yields of a task the
/// main one waits on; returns how many ran.
async fn yields(ring: Ring) -> u32 {
    let (quiet, _peer) = UnixStream::pair().unwrap();
    let quiet = SharedFd::new(OwnedFd::from(quiet));
    let _forever = ring.submit(Recv::new(&quiet, Buf::with_capacity(8)));
    let done = Rc::new(tokio::sync::Notify::new());
    let ran = Rc::new(std::cell::Cell::new(0u32));
    let (signal, count) = (done.clone(), ran.clone());
    driver::spawn(async move {
        for _ in 0..20_000 {
            glommio::executor().yield_now().await;
            count.set(count.get() + 1);
        }
        signal.notify_one();
    });
    done.notified().await;
    ran.get()
}
