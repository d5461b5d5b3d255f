//! Should the ring send with `SEND_ZC` (zero-copy) instead of `SEND`?
//!
//! One TCP connection over loopback: a glommio shard pinned to the first
//! allowed CPU sends the same message over and over through its ring, with
//! `SEND` or with `SEND_ZC` (rounds interleaved A B A B), while a reader
//! thread pinned to the second CPU drains and counts. For each message size
//! it prints MB/s and the sender's CPU seconds per GB, and the ZC ÷ SEND
//! ratio of the medians.
//!
//! Run: `cargo bench --bench send_zc --features internals [-- SECONDS [ROUNDS]]`
//! (default 1 s, 3 rounds).

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};
use ringlet::Buf;
use ringlet::ring::op::Send;
use ringlet::ring::{Ring, SharedFd, driver};

mod common;
use common::{pin, thread_cpu};

const SIZES: &[usize] = &[1024, 16 * 1024, 64 * 1024, 256 * 1024];

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let secs: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let cpus = ringlet::allowed_cpus().expect("CPU list");
    let (send_cpu, read_cpu) = (cpus[0], *cpus.get(1).unwrap_or(&cpus[0]));

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        pin(read_cpu);
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n as u64,
            }
        }
    });

    let sent = LocalExecutorBuilder::new(Placement::Fixed(send_cpu))
        .io_memory(512 << 10)
        .spawn(move || async move {
            let ring = Ring::new(256).expect("ring");
            // The ring is driven while the measurement runs.
            driver::run(&ring.clone(), async move {
            let stream = TcpStream::connect(addr).unwrap();
            stream.set_nodelay(true).unwrap();
            let fd = SharedFd::new(stream.into());
            println!(
                "SEND vs SEND_ZC over loopback, sender on CPU {send_cpu}, reader on CPU {read_cpu}, \
                 {secs} s runs, {rounds} rounds"
            );
            println!("| message | SEND MB/s | SEND_ZC MB/s | ZC / SEND | SEND CPU s/GB | SEND_ZC CPU s/GB |");
            println!("|---|---|---|---|---|---|");
            let mut total = 0u64;
            for &size in SIZES {
                let mut buf = Buf::with_capacity(size);
                let msg: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
                buf.extend_from_slice(&msg);
                let (mut plain, mut zc) = (Vec::new(), Vec::new());
                for _ in 0..rounds {
                    for zero_copy in [false, true] {
                        let (b, bytes, rate, cpu) = run(&ring, &fd, buf, zero_copy, secs).await;
                        buf = b;
                        total += bytes;
                        if zero_copy { &mut zc } else { &mut plain }.push((rate, cpu));
                    }
                }
                let (p, z) = (median(&plain), median(&zc));
                println!(
                    "| {} KiB | {:.0} | {:.0} | {:.2}x | {:.3} | {:.3} |",
                    size / 1024,
                    p.0 / 1e6,
                    z.0 / 1e6,
                    z.0 / p.0,
                    p.1,
                    z.1
                );
            }
            drop(fd);
            total
            })
            .await
        })
        .unwrap()
        .join()
        .unwrap();
    let read = reader.join().unwrap();
    assert_eq!(read, sent, "the reader must count every byte sent");
}

/// Send `buf` whole, again and again, for `secs`: (buf, bytes, bytes/s, CPU s per GB).
async fn run(
    ring: &Ring,
    fd: &SharedFd,
    mut buf: Buf,
    zero_copy: bool,
    secs: f64,
) -> (Buf, u64, f64, f64) {
    let len = buf.len();
    let start = Instant::now();
    let cpu0 = thread_cpu();
    let mut bytes = 0u64;
    while start.elapsed() < Duration::from_secs_f64(secs) {
        let mut done = 0;
        while done < len {
            let (res, b) = if zero_copy {
                ring.send_zc(fd, buf, done, len).await
            } else {
                ring.submit(Send::new(fd, buf, done, len)).await
            };
            buf = b;
            done += res.expect("send");
        }
        bytes += len as u64;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = thread_cpu() - cpu0;
    (
        buf,
        bytes,
        bytes as f64 / elapsed,
        cpu / (bytes as f64 / 1e9),
    )
}

fn median(v: &[(f64, f64)]) -> (f64, f64) {
    let mut r: Vec<f64> = v.iter().map(|x| x.0).collect();
    let mut c: Vec<f64> = v.iter().map(|x| x.1).collect();
    r.sort_by(f64::total_cmp);
    c.sort_by(f64::total_cmp);
    (r[r.len() / 2], c[c.len() / 2])
}
