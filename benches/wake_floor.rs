//! The floor of a wake-up: what one thread pays, in CPU, to be woken N
//! times a second with nothing else to do, three ways.
//!
//! - `glommio + ring`: a glommio executor (as a uring shard runs it) whose
//!   one task waits on a ring `TIMEOUT` again and again, the ring driven by
//!   `ring::driver` (it sleeps in one `io_uring_enter`);
//! - `bare ring`: the same timeouts on a bare io_uring, one
//!   `submit_and_wait` each: the kernel's part alone;
//! - `epoll`: a `timerfd` firing at the same rate, `epoll_wait` + `read`
//!   each time (what an epoll server's loop pays to wake).
//!
//! Each runs on the first allowed CPU for the given seconds at the given
//! rate (the timeouts aim at fixed deadlines, as the timerfd fires),
//! rounds interleaved; printed: wakes, thread CPU µs per wake
//! (median of rounds). The difference between the first two is what
//! glommio and the driver add to every wake-up of a shard.
//!
//! Run: `cargo bench --bench wake_floor --features internals [-- RATE [SECONDS [ROUNDS]]]`
//! (default 20000 wakes/s, 2 s, 3 rounds).

use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};
use io_uring::{IoUring, opcode, types};
use ringlet::ring::op::Timeout;
use ringlet::ring::{Ring, driver};

mod common;
use common::thread_cpu;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let rate: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000.0);
    let secs: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2.0);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let cpu = ringlet::allowed_cpus().expect("CPU list")[0];
    let period = Duration::from_secs_f64(1.0 / rate);
    let wakes = (rate * secs) as u64;
    println!("{wakes} wake-ups at {rate} per second on CPU {cpu}, {rounds} rounds");
    println!("| loop | wakes/s achieved | thread CPU µs per wake (median) | min–max |");
    println!("|---|---|---|---|");
    let mut results: Vec<(&str, Vec<(f64, f64)>)> = vec![
        ("glommio + ring", vec![]),
        ("bare ring", vec![]),
        ("epoll + timerfd", vec![]),
    ];
    for _ in 0..rounds {
        results[0].1.push(glommio_ring(cpu, period, wakes));
        results[1]
            .1
            .push(on_cpu(cpu, move || bare_ring(period, wakes)));
        results[2]
            .1
            .push(on_cpu(cpu, move || epoll_timerfd(period, wakes)));
    }
    for (name, mut runs) in results {
        runs.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (rate, per) = runs[runs.len() / 2];
        println!(
            "| {name} | {rate:.0} | {per:.2} | {:.2}–{:.2} |",
            runs[0].1,
            runs[runs.len() - 1].1
        );
    }
}

/// (wakes per second achieved, CPU µs per wake) of `f`, run on `cpu`.
fn on_cpu(cpu: usize, f: impl FnOnce() -> u64 + Send + 'static) -> (f64, f64) {
    std::thread::spawn(move || {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        rustix::thread::sched_setaffinity(None, &set).unwrap();
        measure(f)
    })
    .join()
    .unwrap()
}

fn measure(f: impl FnOnce() -> u64) -> (f64, f64) {
    let (start, cpu0) = (Instant::now(), thread_cpu());
    let n = f();
    let (wall, cpu) = (start.elapsed().as_secs_f64(), thread_cpu() - cpu0);
    (n as f64 / wall, cpu / n as f64 * 1e6)
}

fn glommio_ring(cpu: usize, period: Duration, wakes: u64) -> (f64, f64) {
    LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .io_memory(512 << 10)
        .spawn(move || async move {
            let ring = Ring::new(64).expect("ring");
            let (start, cpu0) = (Instant::now(), thread_cpu());
            driver::run(&ring, async {
                let mut next = Instant::now();
                for _ in 0..wakes {
                    next += period;
                    let left = next.saturating_duration_since(Instant::now());
                    let _ = ring.submit(Timeout::new(left)).await;
                }
            })
            .await;
            let (wall, cpu) = (start.elapsed().as_secs_f64(), thread_cpu() - cpu0);
            (wakes as f64 / wall, cpu / wakes as f64 * 1e6)
        })
        .unwrap()
        .join()
        .unwrap()
}

fn bare_ring(period: Duration, wakes: u64) -> u64 {
    let mut ring = IoUring::new(8).expect("io_uring");
    let mut next = Instant::now();
    for _ in 0..wakes {
        next += period;
        let ts = types::Timespec::from(next.saturating_duration_since(Instant::now()));
        let sqe = opcode::Timeout::new(&ts).build().user_data(1);
        // SAFETY: `ts` outlives the operation: it completes before the
        // next iteration (submit_and_wait(1), then the completion is popped).
        unsafe { ring.submission().push(&sqe).expect("room") };
        ring.submit_and_wait(1).expect("enter");
        ring.completion().next().expect("a completion");
    }
    wakes
}

fn epoll_timerfd(period: Duration, wakes: u64) -> u64 {
    let ts = libc::timespec {
        tv_sec: period.as_secs() as libc::time_t,
        tv_nsec: period.subsec_nanos() as libc::c_long,
    };
    let spec = libc::itimerspec {
        it_interval: ts,
        it_value: ts,
    };
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: 1,
    };
    let mut out = [libc::epoll_event { events: 0, u64: 0 }; 4];
    let mut buf = [0u8; 8];
    let (mut fired, mut woken) = (0u64, 0u64);
    // SAFETY: plain system calls on descriptors made here, with buffers
    // that live on this stack for each call.
    unsafe {
        let tfd = libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC);
        let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        assert!(tfd >= 0 && ep >= 0, "timerfd/epoll");
        assert_eq!(
            libc::timerfd_settime(tfd, 0, &spec, std::ptr::null_mut()),
            0
        );
        assert_eq!(libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, tfd, &mut ev), 0);
        while fired < wakes {
            libc::epoll_wait(ep, out.as_mut_ptr(), out.len() as i32, -1);
            if libc::read(tfd, buf.as_mut_ptr().cast(), 8) == 8 {
                fired += u64::from_ne_bytes(buf);
            }
            woken += 1;
        }
        libc::close(tfd);
        libc::close(ep);
    }
    woken
}
