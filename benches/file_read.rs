//! Which glommio file reads should the file server use: DMA (O_DIRECT) or
//! buffered (page cache), on warm and on cold files?
//!
//! Reads one file end to end through io_uring the way `send_file` does (one
//! chunk in flight ahead of the consumer), for each mode, warm and cold
//! (evicted with `posix_fadvise(DONTNEED)` before each cold run), rounds
//! interleaved A B A B. Prints MB/s per run and the median per case.
//!
//! Run: `cargo bench --bench file_read [-- SIZE_MIB [ROUNDS]]` (default 256 MiB, 3 rounds).
//! The file lives in `$TMPDIR` (DMA needs a filesystem with O_DIRECT: not tmpfs).

use std::io::Write;
use std::os::fd::AsFd;
use std::time::Instant;

use futures_lite::future::zip;
use glommio::io::{BufferedFile, DmaFile, DmaStreamReaderBuilder};
use glommio::{LocalExecutorBuilder, Placement};

const CHUNK: usize = 128 * 1024;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let size_mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(256);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.bin");
    {
        let mut f = std::fs::File::create(&path).unwrap();
        let block: Vec<u8> = (0..1 << 20).map(|i| (i * 7 + 3) as u8).collect();
        for _ in 0..size_mib {
            f.write_all(&block).unwrap();
        }
        f.sync_all().unwrap();
    }
    let size = (size_mib as u64) << 20;
    println!(
        "file: {size_mib} MiB in {}, chunk {} KiB, {rounds} rounds",
        dir.path().display(),
        CHUNK >> 10
    );

    let ex = LocalExecutorBuilder::new(Placement::Unbound)
        .make()
        .unwrap();
    let results = ex.run(async move {
        let cases = ["buffered warm", "dma warm", "buffered cold", "dma cold"];
        let mut results: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
        for round in 0..rounds {
            for (i, case) in cases.iter().enumerate() {
                let cold = case.ends_with("cold");
                if cold {
                    evict(&path);
                } else {
                    // Warm the page cache for buffered reads.
                    let _ = std::fs::read(&path).map(|v| v.len());
                }
                let started = Instant::now();
                let read = if case.starts_with("dma") {
                    read_dma(&path).await
                } else {
                    read_buffered(&path).await
                };
                assert_eq!(read, size, "{case}: short read");
                let mbps = size as f64 / started.elapsed().as_secs_f64() / 1e6;
                println!("round {round} {case:14} {mbps:8.0} MB/s");
                results[i].push(mbps);
            }
        }
        cases
            .iter()
            .map(|c| c.to_string())
            .zip(results)
            .collect::<Vec<_>>()
    });
    println!("\n| case | median MB/s | min–max |\n|---|---|---|");
    for (case, mut v) in results {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "| {case} | {:.0} | {:.0}–{:.0} |",
            v[v.len() / 2],
            v[0],
            v[v.len() - 1]
        );
    }
}

fn evict(path: &std::path::Path) {
    let f = std::fs::File::open(path).unwrap();
    rustix::fs::fadvise(f.as_fd(), 0, None, rustix::fs::Advice::DontNeed).unwrap();
}

async fn read_buffered(path: &std::path::Path) -> u64 {
    let file = BufferedFile::open(path).await.unwrap();
    let mut pos = 0u64;
    let mut next = file.read_at(0, CHUNK).await.unwrap();
    while !next.is_empty() {
        pos += next.len() as u64;
        // Consume this chunk (touch it, as a socket copy would) while the next is read.
        let (sum, n) = zip(
            async { next.iter().step_by(4096).map(|&b| b as u64).sum::<u64>() },
            file.read_at(pos, CHUNK),
        )
        .await;
        std::hint::black_box(sum);
        next = n.unwrap();
    }
    pos
}

async fn read_dma(path: &std::path::Path) -> u64 {
    let file = DmaFile::open(path).await.unwrap();
    let mut reader = DmaStreamReaderBuilder::new(file)
        .with_buffer_size(CHUNK)
        .with_read_ahead(2)
        .build();
    let mut pos = 0u64;
    loop {
        let buf = reader.get_buffer_aligned(CHUNK as u64).await.unwrap();
        if buf.is_empty() {
            break;
        }
        std::hint::black_box(buf.iter().step_by(4096).map(|&b| b as u64).sum::<u64>());
        pos += buf.len() as u64;
    }
    reader.close().await.unwrap();
    pos
}
