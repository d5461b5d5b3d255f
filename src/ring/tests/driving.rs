//! The driver: the shard sleeps in the ring and no wake-up is lost, from
//! user space, from another thread, or under glommio's preemption.

use std::io::Write;
use std::time::Duration;

use super::{pair, run, run_preempted_every};
use crate::buf::Buf;
use crate::ring::Ring;
use crate::ring::op::{Nop, Recv};

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
            crate::ring::driver::spawn(async move {
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
            crate::ring::driver::spawn(async move {
                for _ in 0..20_000 {
                    glommio::executor().yield_now().await;
                }
                signal.notify_one();
            });
            done.notified().await;
        },
    );
}
