//! How files leave: every size around the backends' switch points, files
//! only partly in the page cache (sendfile, then splices), and more
//! streams than the pipe budget holds pipes. Bytes checked, always.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Ringlet, fetch, pattern, raise_nofile, read_to_close};

fn serve_root(backend: &str, root: &Path, extra: &[&str]) -> Ringlet {
    let mut args = vec!["--echo", "off", "--root", root.to_str().unwrap()];
    args.extend_from_slice(extra);
    Ringlet::serve(backend, &args)
}

/// Files of every size around the backends' switch points (the ring reads
/// and sends files up to 16 KiB; larger ones leave by `sendfile` 2 MiB at
/// a time while the page cache holds them, else by splices through 256 KiB
/// or 1 MiB pipes) arrive whole and exact, empty ones included; on the
/// ring both with and without `sendfile` from the cache.
fn files_of_every_size_around_the_switch_points_arrive_exact(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [
        0usize,
        1,
        4095,
        4096,
        16_383,
        16_384,
        16_385,
        65_536,
        131_072,
        262_143,
        262_144,
        262_145,
        (1 << 20) + 1,
        (2 << 20) - 1,
        2 << 20,
        (2 << 20) + 1,
    ];
    for (i, &n) in sizes.iter().enumerate() {
        std::fs::write(dir.path().join(format!("s{n}")), pattern(n, 40 + i as u64)).unwrap();
    }
    for cached in ["on", "off"] {
        let server = serve_root(backend, dir.path(), &["--cached-sendfile", cached]);
        for (i, &n) in sizes.iter().enumerate() {
            let got = fetch(server.file(), format!("s{n}").as_bytes());
            assert_eq!(got.len(), n, "size {n}, cached-sendfile {cached}");
            assert!(
                got == pattern(n, 40 + i as u64),
                "size {n}, cached-sendfile {cached}: bytes differ"
            );
        }
    }
}

/// A file only partly in the page cache: the ring sends the chunks before
/// the first evicted one by `sendfile` and splices the rest (a stream that
/// met the disk stays on the ring), in order, byte for byte. The file lives
/// on a disk filesystem (tmpfs pages are the file: nothing can evict them),
/// and each round checks that the pages really left the cache.
fn a_file_partly_in_the_page_cache_arrives_exact(backend: &str) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = pattern(9 << 20, 41);
    let path = dir.path().join("part.bin");
    std::fs::write(&path, &data).unwrap();
    let f = std::fs::File::open(&path).unwrap();
    f.sync_all().unwrap(); // clean pages: evictable
    let server = serve_root(backend, dir.path(), &[]);
    // Evict a different stretch each round (each fetch reads it back). In
    // whole 2 MiB-aligned stretches, the last one to the end of the file
    // (length 0): the page cache may hold the file in folios that large,
    // even past its end, and a folio goes only as a whole.
    const M: u64 = 1 << 20;
    let rounds: [&[(u64, u64)]; 3] = [
        &[(2 * M, 2 * M)],
        &[(4 * M, 2 * M), (8 * M, 0)],
        &[(0, 2 * M), (6 * M, 2 * M)],
    ];
    for (round, stretches) in rounds.iter().enumerate() {
        if let Err(left) = evict(&f, stretches) {
            eprintln!(
                "skipped from round {round}: {} cannot evict pages ({left} stayed after \
                 POSIX_FADV_DONTNEED; tmpfs?)",
                dir.path().display()
            );
            return;
        }
        let got = fetch(server.file(), b"part.bin");
        assert_eq!(got.len(), data.len(), "round {round}");
        assert!(got == data, "round {round}: bytes differ");
    }
}

/// Drop `stretches` (offset, length; 0: to the end) of `f` from the page
/// cache, and check by `mincore` that they left; `Err(pages still there)`
/// if they did not within a while (a page a socket or pipe still
/// references stays until it is let go).
fn evict(f: &std::fs::File, stretches: &[(u64, u64)]) -> Result<(), usize> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        for &(off, len) in stretches {
            rustix::fs::fadvise(
                f,
                off,
                std::num::NonZeroU64::new(len),
                rustix::fs::Advice::DontNeed,
            )
            .unwrap();
        }
        let left: usize = stretches
            .iter()
            .map(|&(off, len)| resident_pages(f, off, len))
            .sum();
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(left);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How many pages of `f` from `off` (page-aligned) for `len` bytes (0: to
/// the end) the page cache holds, by `mincore` on a mapping that faults
/// none of them in.
fn resident_pages(f: &std::fs::File, off: u64, len: u64) -> usize {
    use std::os::fd::AsRawFd;
    let page = 4096u64;
    assert_eq!(off % page, 0);
    let len = if len == 0 {
        f.metadata().unwrap().len() - off
    } else {
        len
    };
    // SAFETY: a fresh read-only shared mapping of an open file, never read
    // through, unmapped below; mincore writes one byte per page into `vec`.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            off as libc::off_t,
        );
        assert_ne!(addr, libc::MAP_FAILED, "mmap");
        let mut vec = vec![0u8; len.div_ceil(page) as usize];
        let rc = libc::mincore(addr, len as usize, vec.as_mut_ptr());
        libc::munmap(addr, len as usize);
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        vec.iter().filter(|&&b| b & 1 == 1).count()
    }
}

/// More concurrent streams than the pipe budget holds pipes: each one
/// arrives exact (those without a pipe are read and sent), and the server
/// never holds more pipes than its share of `pipe-user-pages-soft` allows
/// (three quarters, one shard; every pipe is at least 64 pages).
#[test]
fn more_streams_than_pipes_all_arrive_exact_within_the_pipe_budget() {
    let hard = raise_nofile();
    let n = 250.min((hard.saturating_sub(200) / 4) as usize);
    let soft: usize = std::fs::read_to_string("/proc/sys/fs/pipe-user-pages-soft")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let most_pipes = if soft == 0 {
        usize::MAX
    } else {
        soft * 3 / 4 / 64
    };
    let dir = tempfile::tempdir().unwrap();
    // Larger than a socket send buffer grows (4 MiB), so streams stall.
    let data = pattern(6 << 20, 77);
    std::fs::write(dir.path().join("big"), &data).unwrap();
    // Streams wait their turn to be read, one after another: on a slow
    // machine (the kernel matrix's emulated VM) longer than the default
    // write timeout, which is not what this test is about.
    // Every stream through the ring (no sendfile from the page cache),
    // so that each needs a pipe.
    let server = serve_root(
        "uring",
        dir.path(),
        &[
            "--cores",
            "1",
            "--write-timeout",
            "600",
            "--cached-sendfile",
            "off",
        ],
    );
    // Small receive windows, so that every stream stalls on its client and
    // holds whatever the server gave it.
    let mut conns: Vec<std::net::TcpStream> = (0..n)
        .map(|_| {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.set_recv_buffer_size(16 * 1024).unwrap();
            s.connect(&server.file().into()).unwrap();
            let mut s: std::net::TcpStream = s.into();
            s.write_all(b"big\0").unwrap();
            s
        })
        .collect();
    // Wait until every stream has started (each client has bytes waiting,
    // so each stream has taken a pipe or gone without one), checking the
    // budget all along.
    let pipes_held = || {
        std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("pipe:"))
            .count()
            / 2
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut most_seen = 0;
    loop {
        let pipes = pipes_held();
        most_seen = most_seen.max(pipes);
        assert!(
            pipes <= most_pipes,
            "{pipes} pipes held, the budget allows {most_pipes}"
        );
        let started = conns.iter().filter(|s| has_bytes_waiting(s)).count();
        if started == n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {started} of {n} streams started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every stream is stalled on its client now: what they hold, they keep.
    let pipes = pipes_held();
    assert!(
        pipes <= most_pipes,
        "{pipes} pipes held, the budget allows {most_pipes}"
    );
    assert!(pipes > 0 && most_seen > 0, "no stream was spliced");
    for (i, s) in conns.iter_mut().enumerate() {
        let got = read_to_close(s);
        assert_eq!(got.len(), data.len(), "stream {i} of {n}");
        assert!(got == data, "stream {i}: bytes differ");
    }
}

/// Whether the server's bytes wait unread on `s` (a peek, without blocking).
fn has_bytes_waiting(s: &std::net::TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let waiting = matches!(s.peek(&mut [0u8; 1]), Ok(n) if n > 0);
    s.set_nonblocking(false).unwrap();
    waiting
}

on_both_backends!(
    files_of_every_size_around_the_switch_points_arrive_exact,
    a_file_partly_in_the_page_cache_arrives_exact,
);
