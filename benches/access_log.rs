//! The access log's cost on the shard: `AccessLog::log` of one HTTP request
//! (format into the thread's buffer, hand it over every 32 KiB), combined
//! and JSON. The writer writes to /dev/null, so it keeps up and what is
//! measured is the shard's side, not the disk. The written and dropped
//! counts are printed at the end: a dropped line skips the formatting, so
//! if the writer got too little CPU to keep up (a busy machine) the time is
//! an underestimate. Seen on a 2-core machine at load 4-6 (Dec 2026): about
//! 350 ns a line combined and 500 ns JSON, with some lines dropped.
//!
//! Run: `cargo bench --bench access_log`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringlet::access::{AccessLog, Entry, Format, Target};

fn log(c: &mut Criterion) {
    let mut group = c.benchmark_group("access log");
    group.throughput(Throughput::Elements(1));
    for (name, format) in [("combined", Format::Combined), ("json", Format::Json)] {
        let log = AccessLog::open(Target::File("/dev/null".into()), format).unwrap();
        let entry = Entry::Http {
            client: "192.0.2.7:51234".parse().unwrap(),
            method: "GET",
            target: b"/static/css/site.4f2a9c.css?v=3",
            version: "HTTP/1.1",
            status: 200,
            bytes: 4096,
            referer: Some("https://example.com/index.html"),
            user_agent: Some(
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            ),
            duration: Duration::from_micros(87),
        };
        group.bench_function(name, |b| b.iter(|| log.log(black_box(&entry))));
        assert!(log.sync(Duration::from_secs(10)));
        eprintln!(
            "access log {name}: {} written, {} dropped",
            log.written(),
            log.dropped()
        );
    }
    group.finish();
}

criterion_group!(benches, log);
criterion_main!(benches);
