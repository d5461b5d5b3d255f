//! Micro-benchmarks of the protocol hot paths: the echo line framer (where
//! to cut a buffer) and the file-request parser (find the NUL).
//!
//! Run: `cargo bench --bench framing`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringlet::proto::echo::line_cut;
use ringlet::proto::request::parse;

fn lines(c: &mut Criterion) {
    let mut group = c.benchmark_group("echo line_cut");
    for (name, size, newline_every) in [
        ("64 B message", 64usize, 64usize),
        ("1 KiB message", 1024, 1024),
        ("64 KiB, no newline", 65536, usize::MAX),
        ("64 KiB of 80 B lines", 65536, 80),
    ] {
        let buf: Vec<u8> = (0..size)
            .map(|i| {
                if (i + 1) % newline_every == 0 {
                    b'\n'
                } else {
                    b'a' + (i % 26) as u8
                }
            })
            .collect();
        group.bench_function(name, |b| {
            b.iter(|| line_cut(black_box(&buf), 0, buf.len() == 65536))
        });
    }
    group.finish();
}

fn requests(c: &mut Criterion) {
    let mut group = c.benchmark_group("file request parse");
    for (name, len) in [("short path", 12usize), ("4095-byte path", 4095)] {
        let mut req = vec![b'p'; len];
        req.push(0);
        group.throughput(Throughput::Bytes(req.len() as u64));
        group.bench_function(name, |b| b.iter(|| parse(black_box(&req), false)));
    }
    let no_nul = vec![b'x'; 4096];
    group.bench_function("4096 bytes, no NUL", |b| {
        b.iter(|| parse(black_box(&no_nul), true))
    });
    group.finish();
}

criterion_group!(benches, lines, requests);
criterion_main!(benches);
