//! The open-file cache against the real binary on both backends: a file is
//! served from the cache (the hit counter says so), then changed on disk —
//! replaced by a rename, written in place, truncated, deleted, made
//! unreadable, a directory on its path swapped for a symlink out of the
//! root — and every request sent 10 ms or more after the change completed
//! gets the new state, while every answer before it is one whole version
//! with a `Content-Length` (or `OK <size>`) that its body matches. Nothing
//! outside the root is ever sent.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Ringlet, connect};

const SECRET: &[u8] = b"the secret outside the root\n";
/// Requests sent this long after a change must see it.
const SEEN_WITHIN: Duration = Duration::from_millis(10);
/// How long a test keeps asking for the new state.
const DEADLINE: Duration = Duration::from_secs(20);

/// One answer: the status and the body, whose length the head announced.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// `GET path` with `Connection: close`, read to the server's FIN (a reset
/// fails the test); the body must be exactly as long as `Content-Length`.
fn get(addr: SocketAddr, path: &str) -> Answer {
    let mut s = connect(addr);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("GET {path}: {e} after {} bytes", raw.len()));
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head end: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap_or_else(|| panic!("no Content-Length in {head:?}"))
        .parse()
        .unwrap();
    let body = raw[end + 4..].to_vec();
    assert_eq!(
        body.len(),
        length,
        "the body against its Content-Length: {head}"
    );
    assert!(
        !body.windows(SECRET.len()).any(|w| w == SECRET),
        "a file outside the root was sent"
    );
    Answer { status, body }
}

/// A file-protocol request in framed mode: `OK <size>\n` and exactly that
/// many bytes (status 200), or `ERR …` (status 404 here), to the FIN.
fn fetch_framed(addr: SocketAddr, path: &str) -> Answer {
    let mut s = connect(addr);
    s.write_all(path.as_bytes()).unwrap();
    s.write_all(b"\0").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{path}: {e} after {} bytes", raw.len()));
    let nl = raw.iter().position(|&b| b == b'\n').expect("a status line");
    let line = String::from_utf8_lossy(&raw[..nl]).into_owned();
    let body = raw[nl + 1..].to_vec();
    match line.strip_prefix("OK ") {
        Some(size) => {
            assert_eq!(body.len(), size.parse::<usize>().unwrap(), "OK {size}");
            Answer { status: 200, body }
        }
        None => {
            assert!(line.starts_with("ERR "), "{line:?}");
            Answer { status: 404, body }
        }
    }
}

/// A site: `www/` served, `outside/` beside it holding the secret.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(dir.path().join("www/d")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("f.txt"), SECRET).unwrap();
    std::fs::write(dir.path().join("www/d/f.txt"), b"old contents\n").unwrap();
    std::fs::write(dir.path().join("www/f.txt"), b"old contents\n").unwrap();
    dir
}

fn serve(backend: &str, dir: &Path, as_nobody: bool) -> (Ringlet, SocketAddr, SocketAddr) {
    let www = dir.join("www");
    let args = [
        "--cores",
        "1",
        "--http",
        "127.0.0.1:0",
        "--file-header",
        "--metrics",
        "127.0.0.1:0",
        "--root",
        www.to_str().unwrap(),
    ];
    let server = Ringlet::serve_with(backend, &args, |cmd| {
        if as_nobody {
            cmd.uid(65534).gid(65534);
        }
    });
    let (http, metrics) = (server.http(), server.metrics());
    (server, http, metrics)
}

/// A counter of the metrics page.
fn counter(metrics: SocketAddr, name: &str) -> u64 {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "20"])
        .arg(format!("http://{metrics}/metrics"))
        .output()
        .expect("run curl (the tests need it installed)");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

/// Serve `path` until it is cached, make `change`, then ask until three
/// requests sent `SEEN_WITHIN` after it got `new`; every answer before is
/// `old` or `new`, whole.
fn sees(
    ask: impl Fn(&str) -> Answer,
    metrics: SocketAddr,
    path: &str,
    old: Answer,
    change: impl FnOnce(),
    new: impl Fn(&Answer) -> bool,
) {
    let hits = counter(metrics, "ringlet_open_file_cache_hits_total");
    for _ in 0..3 {
        assert_eq!(ask(path), old, "{path} before the change");
    }
    assert!(
        counter(metrics, "ringlet_open_file_cache_hits_total") >= hits + 2,
        "{path} was not served from the cache"
    );
    change();
    let changed = Instant::now();
    let mut seen = 0;
    while seen < 3 {
        assert!(changed.elapsed() < DEADLINE, "{path}: never the new state");
        let sent = Instant::now();
        let got = ask(path);
        if sent.duration_since(changed) >= SEEN_WITHIN {
            assert!(
                new(&got),
                "{path}, asked {:?} after the change: {got:?}",
                sent - changed
            );
            seen += 1;
        } else {
            assert!(got == old || new(&got), "{path}: neither version: {got:?}");
        }
    }
}

fn ok(body: &[u8]) -> Answer {
    Answer {
        status: 200,
        body: body.to_vec(),
    }
}

fn is(want: Answer) -> impl Fn(&Answer) -> bool {
    move |got| *got == want
}

fn status(want: u16) -> impl Fn(&Answer) -> bool {
    move |got| got.status == want
}

fn a_replace_by_rename_is_seen(backend: &str) {
    let dir = site();
    let www = dir.path().join("www");
    let (server, http, metrics) = serve(backend, dir.path(), false);
    sees(
        |p| get(http, p),
        metrics,
        "/f.txt",
        ok(b"old contents\n"),
        || {
            std::fs::write(www.join("new"), b"the new, longer contents\n").unwrap();
            std::fs::rename(www.join("new"), www.join("f.txt")).unwrap();
        },
        is(ok(b"the new, longer contents\n")),
    );
    // The file protocol, the same way, in a directory.
    let file = server.file();
    let framed = |p: &str| fetch_framed(file, p);
    sees(
        framed,
        metrics,
        "/d/f.txt",
        ok(b"old contents\n"),
        || {
            std::fs::write(www.join("d/new"), b"renamed in\n").unwrap();
            std::fs::rename(www.join("d/new"), www.join("d/f.txt")).unwrap();
        },
        is(ok(b"renamed in\n")),
    );
    assert!(counter(metrics, "ringlet_open_file_cache_invalidations_total") >= 2);
}

fn a_write_in_place_is_seen(backend: &str) {
    let dir = site();
    let www = dir.path().join("www");
    let (_server, http, metrics) = serve(backend, dir.path(), false);
    sees(
        |p| get(http, p),
        metrics,
        "/d/f.txt",
        ok(b"old contents\n"),
        || {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(www.join("d/f.txt"))
                .unwrap();
            f.write_all(b"NEW contents, and more of them\n").unwrap();
        },
        is(ok(b"NEW contents, and more of them\n")),
    );
}

fn a_truncate_is_seen(backend: &str) {
    let dir = site();
    let www = dir.path().join("www");
    let (server, http, metrics) = serve(backend, dir.path(), false);
    sees(
        |p| get(http, p),
        metrics,
        "/f.txt",
        ok(b"old contents\n"),
        || {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(www.join("f.txt"))
                .unwrap();
            f.set_len(3).unwrap();
        },
        is(ok(b"old")),
    );
    let file = server.file();
    sees(
        |p| fetch_framed(file, p),
        metrics,
        "/d/f.txt",
        ok(b"old contents\n"),
        || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(www.join("d/f.txt"))
                .unwrap()
                .set_len(0)
                .unwrap();
        },
        is(ok(b"")),
    );
}

fn a_delete_is_seen(backend: &str) {
    let dir = site();
    let www = dir.path().join("www");
    let (server, http, metrics) = serve(backend, dir.path(), false);
    sees(
        |p| get(http, p),
        metrics,
        "/d/f.txt",
        ok(b"old contents\n"),
        || {
            std::fs::remove_file(www.join("d/f.txt")).unwrap();
        },
        status(404),
    );
    let file = server.file();
    sees(
        |p| fetch_framed(file, p),
        metrics,
        "/f.txt",
        ok(b"old contents\n"),
        || {
            std::fs::remove_file(www.join("f.txt")).unwrap();
        },
        status(404),
    );
}

fn a_chmod_that_forbids_reading_is_seen(backend: &str) {
    let dir = site();
    let www = dir.path().join("www");
    for d in [&www, &www.join("d")] {
        std::fs::set_permissions(d, PermissionsExt::from_mode(0o755)).unwrap();
    }
    // As nobody: root reads whatever the mode says.
    let (_server, http, metrics) = serve(backend, dir.path(), true);
    sees(
        |p| get(http, p),
        metrics,
        "/f.txt",
        ok(b"old contents\n"),
        || {
            std::fs::set_permissions(www.join("f.txt"), PermissionsExt::from_mode(0o600)).unwrap();
        },
        status(403),
    );
    // A directory on the path made untraversable.
    sees(
        |p| get(http, p),
        metrics,
        "/d/f.txt",
        ok(b"old contents\n"),
        || {
            std::fs::set_permissions(www.join("d"), PermissionsExt::from_mode(0o700)).unwrap();
        },
        status(403),
    );
}

fn a_directory_swapped_for_a_symlink_out_of_the_root_is_seen(backend: &str) {
    let dir = site();
    let www = dir.path().join("www");
    let (_server, http, metrics) = serve(backend, dir.path(), false);
    sees(
        |p| get(http, p),
        metrics,
        "/d/f.txt",
        ok(b"old contents\n"),
        || {
            std::fs::rename(www.join("d"), www.join("d.old")).unwrap();
            std::os::unix::fs::symlink("../outside", www.join("d")).unwrap();
        },
        status(403),
    );
    // And a cached file never makes a path through the symlink cacheable.
    for _ in 0..3 {
        assert_eq!(get(http, "/d/f.txt").status, 403);
    }
}

fn the_cache_can_be_turned_off(backend: &str) {
    let dir = site();
    let www = dir.path().join("www");
    let server = Ringlet::serve(
        backend,
        &[
            "--http",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--open-file-cache",
            "0",
            "--root",
            www.to_str().unwrap(),
        ],
    );
    let metrics = server.metrics();
    let http = server.http();
    for _ in 0..3 {
        assert_eq!(get(http, "/f.txt"), ok(b"old contents\n"));
    }
    assert_eq!(counter(metrics, "ringlet_open_file_cache_hits_total"), 0);
    assert_eq!(counter(metrics, "ringlet_open_file_cache_entries"), 0);
}

/// The cache holds what it is allowed, however many files are asked for:
/// `--open-file-cache` per shard, and a sixteenth of `ulimit -n` for the
/// process (here 256: 16 descriptors); every answer stays whole.
fn descriptors_stay_bounded(backend: &str) {
    let dir = site();
    let www = dir.path().join("www");
    for i in 0..60 {
        std::fs::write(www.join(format!("n{i}")), format!("file {i}\n")).unwrap();
    }
    for (entries, limit, bound) in [("5", None, 5), ("1000", Some(256), 16)] {
        let server = Ringlet::serve_with(
            backend,
            &[
                "--cores",
                "1",
                "--http",
                "127.0.0.1:0",
                "--metrics",
                "127.0.0.1:0",
                "--open-file-cache",
                entries,
                "--root",
                www.to_str().unwrap(),
            ],
            |cmd| {
                if let Some(n) = limit {
                    // SAFETY: setrlimit only, between fork and exec.
                    unsafe {
                        cmd.pre_exec(move || {
                            let lim = libc::rlimit {
                                rlim_cur: n,
                                rlim_max: n,
                            };
                            match libc::setrlimit(libc::RLIMIT_NOFILE, &lim) {
                                0 => Ok(()),
                                _ => Err(std::io::Error::last_os_error()),
                            }
                        });
                    }
                }
            },
        );
        let (http, metrics) = (server.http(), server.metrics());
        for round in 0..2 {
            for i in 0..60 {
                let want = format!("file {i}\n");
                assert_eq!(
                    get(http, &format!("/n{i}")),
                    ok(want.as_bytes()),
                    "round {round}"
                );
            }
        }
        let held = counter(metrics, "ringlet_open_file_cache_entries");
        assert!(
            (1..=bound).contains(&held),
            "--open-file-cache {entries}, ulimit -n {limit:?}: {held} files held"
        );
        let open = std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
            .unwrap()
            .count() as u64;
        if let Some(n) = limit {
            assert!(open < n / 2, "{open} descriptors open of {n}");
        }
    }
}

on_both_backends!(
    a_replace_by_rename_is_seen,
    a_write_in_place_is_seen,
    a_truncate_is_seen,
    a_delete_is_seen,
    a_chmod_that_forbids_reading_is_seen,
    a_directory_swapped_for_a_symlink_out_of_the_root_is_seen,
    the_cache_can_be_turned_off,
    descriptors_stay_bounded,
);
