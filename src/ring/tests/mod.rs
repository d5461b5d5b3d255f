//! The ring's own tests, by subject: submission (plumbing, batching, real
//! socket and file operations, the completion queue's overflow),
//! cancellation safety (dropped operations are cancelled, their memory and
//! descriptors kept until the kernel is done, the bookkeeping back to
//! empty), provided buffers, and the driver (the shard sleeps in the ring
//! and loses no wake-up). Here: the helpers they share, and
//! [`run_returning`], which the backend's tests use too.

use std::os::fd::{OwnedFd, RawFd};
use std::time::Duration;

use futures_lite::future;

use super::lifecycle::Op;
use super::op::{Single, Timeout};
use super::{Ring, SharedFd};

mod cancellation;
mod driving;
mod provided;
mod submission;

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

/// Poll each of `ops` once, as it is pushed: each is then in the kernel,
/// waiting (for data that is not there yet).
async fn in_kernel<T: Single>(ops: impl IntoIterator<Item = Op<T>>) -> Vec<Op<T>> {
    let mut pending = Vec::new();
    for mut op in ops {
        assert!(future::poll_once(&mut op).await.is_none());
        pending.push(op);
    }
    glommio::yield_if_needed().await;
    pending
}
