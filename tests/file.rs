//! The file server: big files streamed exactly, confinement to the root,
//! refusals that close at once, and the framed mode for programs.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    End, Ringlet, connect, fetch, pattern, read_rest_or_reset, read_to_close, status_kib,
};
use sha2::{Digest, Sha256};

/// A 256 MiB file arrives with the right SHA-256 while the server's RSS stays flat.
fn a_256_mib_file_streams_exactly_with_bounded_memory(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let size = 256usize << 20;
    let mut expected = Sha256::new();
    {
        let mut f = std::fs::File::create(dir.path().join("big")).unwrap();
        for i in 0..(size >> 20) {
            let block = pattern(1 << 20, i as u64 + 1);
            expected.update(&block);
            f.write_all(&block).unwrap();
        }
    }
    let expected = expected.finalize();
    let server = Ringlet::serve(
        backend,
        &["--echo", "off", "--root", dir.path().to_str().unwrap()],
    );
    let before = status_kib(server.pid(), "VmRSS");

    let mut s = connect(server.file());
    s.write_all(b"/big\0").unwrap();
    let mut got = Sha256::new();
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.update(&buf[..n]);
        total += n;
    }
    assert_eq!(total, size);
    assert_eq!(got.finalize(), expected);
    let peak = status_kib(server.pid(), "VmHWM");
    assert!(
        peak < before + 16 * 1024,
        "peak RSS {peak} KiB against {before} KiB idle: streaming is not bounded"
    );
}

/// Root layout for the confinement tests:
/// `outside/secret`, `root/pub/ok.txt`, and links and odd files in `root/`.
struct Tree {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    secret: std::path::PathBuf,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("pub/deeper")).unwrap();
    std::fs::create_dir(dir.path().join("outside")).unwrap();
    let secret = dir.path().join("outside/secret");
    std::fs::write(&secret, "secret\n").unwrap();
    std::fs::write(root.join("pub/ok.txt"), "ok\n").unwrap();
    // Links that stay inside work; links that leave do not.
    symlink("pub/ok.txt", root.join("inside-link")).unwrap();
    symlink("../ok.txt", root.join("pub/deeper/up-link")).unwrap();
    symlink(&secret, root.join("abs-link-out")).unwrap();
    symlink("../outside/secret", root.join("rel-link-out")).unwrap();
    symlink("rel-link-out", root.join("chain-out")).unwrap();
    symlink("/proc/self/root", root.join("proc-root")).unwrap();
    let fifo = std::ffi::CString::new(root.join("fifo").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    Tree {
        _dir: dir,
        root,
        secret,
    }
}

fn serve_root(backend: &str, root: &Path, extra: &[&str]) -> Ringlet {
    let mut args = vec!["--echo", "off", "--root", root.to_str().unwrap()];
    args.extend_from_slice(extra);
    Ringlet::serve(backend, &args)
}

/// A refused request: nothing sent, closed promptly, one log line of its
/// own (not one an earlier request left); then a good one succeeds.
fn assert_refused_then_ok(server: &Ringlet, request: &[u8], reason: &str) {
    // The log line names the path (when it is short enough to quote) and why.
    let quoted = format!("{:?}", String::from_utf8_lossy(request));
    let mut parts = vec!["refused", reason];
    if request.len() < 200 {
        parts.push(&quoted);
    }
    let before = server.count_log(&parts);
    let started = Instant::now();
    let got = fetch(server.file(), request);
    assert_eq!(
        got,
        b"",
        "{:?} was served",
        String::from_utf8_lossy(request)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refusal was slow"
    );
    server.wait_for_log_count(&parts, before + 1);
    assert_eq!(fetch(server.file(), b"/pub/ok.txt"), b"ok\n");
}

fn symlinks_that_stay_inside_the_root_are_followed(backend: &str) {
    let t = tree();
    let server = serve_root(backend, &t.root, &[]);
    assert_eq!(fetch(server.file(), b"inside-link"), b"ok\n");
    assert_eq!(fetch(server.file(), b"/pub/deeper/up-link"), b"ok\n");
    assert_eq!(fetch(server.file(), b"/pub/deeper/../ok.txt"), b"ok\n");
}

fn dot_dot_escapes_are_refused(backend: &str) {
    let t = tree();
    let server = serve_root(backend, &t.root, &[]);
    for req in [
        &b"../outside/secret"[..],
        b"/../outside/secret",
        b"pub/../../outside/secret",
        b"pub/deeper/../../../outside/secret",
    ] {
        assert_refused_then_ok(&server, req, "escapes the served root");
    }
}

fn an_absolute_path_outside_the_root_is_refused(backend: &str) {
    let t = tree();
    let server = serve_root(backend, &t.root, &[]);
    // Absolute paths are relative to the root, so climbing is the only way out.
    let up = format!("/../../../../../../..{}", t.secret.display());
    assert_refused_then_ok(&server, up.as_bytes(), "escapes the served root");
    // And the plain absolute path names ROOT/<that path>, which does not exist.
    assert_refused_then_ok(
        &server,
        t.secret.to_str().unwrap().as_bytes(),
        "no such file",
    );
}

fn symlinks_out_of_the_root_are_refused(backend: &str) {
    let t = tree();
    let server = serve_root(backend, &t.root, &[]);
    for req in [&b"abs-link-out"[..], b"rel-link-out", b"chain-out"] {
        assert_refused_then_ok(&server, req, "escapes the served root");
    }
}

fn proc_magic_links_are_refused(backend: &str) {
    let t = tree();
    let server = serve_root(backend, &t.root, &[]);
    // A link to /proc/self/root is absolute: it escapes.
    assert_refused_then_ok(
        &server,
        b"proc-root/etc/hostname",
        "escapes the served root",
    );

    // With the whole filesystem served, /proc/self/root and /proc/self/fd are
    // magic links: refused, though the same file by its real path is served.
    // The server's stdin is the secret, so /proc/self/fd/0 followed would
    // serve it (not /dev/null's nothing).
    let whole = Ringlet::serve_with(backend, &["--echo", "off", "--root", "/"], |cmd| {
        cmd.stdin(std::fs::File::open(&t.secret).unwrap());
    });
    assert_refused_at_root(&whole, b"/proc/self/fd/0", "magic link");
    let via_magic = format!("/proc/self/root{}", t.secret.display());
    assert_refused_at_root(&whole, via_magic.as_bytes(), "magic link");
    assert_eq!(
        fetch(whole.file(), t.secret.to_str().unwrap().as_bytes()),
        b"secret\n"
    );
}

/// As [`assert_refused_then_ok`], for a server whose root is `/` (it has no
/// `/pub/ok.txt`): nothing sent, and a log line of its own.
fn assert_refused_at_root(whole: &Ringlet, request: &[u8], reason: &str) {
    let quoted = format!("{:?}", String::from_utf8_lossy(request));
    let parts = ["refused", reason, &quoted];
    let before = whole.count_log(&parts);
    let got = fetch(whole.file(), request);
    assert_eq!(got, b"", "{quoted} was served");
    whole.wait_for_log_count(&parts, before + 1);
}

fn a_fifo_is_refused_without_blocking(backend: &str) {
    let t = tree();
    let server = serve_root(backend, &t.root, &[]);
    assert_refused_then_ok(&server, b"fifo", "not a regular file (FIFO)");
}

fn a_directory_is_refused(backend: &str) {
    let t = tree();
    let server = serve_root(backend, &t.root, &[]);
    assert_refused_then_ok(&server, b"pub", "not a regular file (directory)");
    assert_refused_then_ok(&server, b"/", "empty path");
}

fn a_5000_byte_path_is_refused(backend: &str) {
    let t = tree();
    let server = serve_root(backend, &t.root, &[]);
    let mut s = connect(server.file());
    // Send 4096 bytes without NUL: the server decides there, before the rest.
    s.write_all(&vec![b'a'; 4096]).unwrap();
    let got = read_to_close(&mut s);
    assert_eq!(got, b"");
    server.wait_for_log(&["refused", "no NUL within 4096 bytes"]);
    // The full 5000-byte request, NUL at the end, the same.
    let long = vec![b'a'; 5000];
    assert_refused_then_ok(&server, &long, "no NUL within 4096 bytes");
}

fn a_client_that_sends_no_nul_and_closes_is_dropped(backend: &str) {
    let t = tree();
    let server = serve_root(backend, &t.root, &[]);
    let mut s = connect(server.file());
    s.write_all(b"pub/ok.txt").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut s), b"");
    server.wait_for_log(&["refused", "closed before the NUL"]);
    assert_eq!(fetch(server.file(), b"/pub/ok.txt"), b"ok\n");
}

/// Framed mode: status lines, keep-alive, pipelined requests, errors in band.
fn file_header_mode_frames_each_answer_and_keeps_the_connection(backend: &str) {
    let t = tree();
    std::fs::write(t.root.join("pub/two.bin"), pattern(300_000, 3)).unwrap();
    let server = serve_root(backend, &t.root, &["--file-header"]);
    let mut s = connect(server.file());
    // Three requests in one write: good, missing, good.
    s.write_all(b"/pub/ok.txt\0/missing\0pub/two.bin\0")
        .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "OK 3\n");
    let mut body = vec![0u8; 3];
    r.read_exact(&mut body).unwrap();
    assert_eq!(body, b"ok\n");
    line.clear();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "ERR no such file\n");
    line.clear();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "OK 300000\n");
    let mut body = vec![0u8; 300_000];
    r.read_exact(&mut body).unwrap();
    assert_eq!(body, pattern(300_000, 3));
    // Still open: one more request on the same connection.
    s.write_all(b"inside-link\0").unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "OK 3\n");
    // An over-long request gets an error line, then the close: a FIN after
    // the whole answer, not a reset that may have dropped some of it.
    s.write_all(&vec![b'a'; 4096]).unwrap();
    let (rest, end) = read_rest_or_reset(&mut r);
    assert_eq!(rest, b"ok\nERR request too long\n");
    assert_eq!(end, End::Closed, "the answer ended in a reset");
}

/// Many clients fetching at once all get exact bytes.
fn concurrent_fetches_each_get_the_whole_file(backend: &str) {
    let t = tree();
    let data = pattern(1 << 20, 9);
    std::fs::write(t.root.join("pub/m.bin"), &data).unwrap();
    let server = serve_root(backend, &t.root, &[]);
    let addr: SocketAddr = server.file();
    let workers: Vec<_> = (0..32)
        .map(|_| std::thread::spawn(move || fetch(addr, b"pub/m.bin")))
        .collect();
    for w in workers {
        assert!(w.join().unwrap() == data);
    }
}

/// A client that vanishes mid-stream ends its own connection, with one log
/// line; the server goes on serving.
fn a_client_vanishing_mid_stream_ends_only_that_stream(backend: &str) {
    let t = tree();
    std::fs::write(t.root.join("pub/big.bin"), pattern(64 << 20, 5)).unwrap();
    let server = serve_root(backend, &t.root, &[]);
    for _ in 0..3 {
        let mut s = connect(server.file());
        s.write_all(b"pub/big.bin\0").unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(buf, pattern(64 * 1024, 5));
        // Close with unread data: the kernel resets the connection.
        drop(s);
    }
    server.wait_for_log(&["connection ended", "sending \"pub/big.bin\""]);
    assert_eq!(fetch(server.file(), b"/pub/ok.txt"), b"ok\n");
    let data = fetch(server.file(), b"pub/big.bin");
    assert!(data == pattern(64 << 20, 5));
}

on_both_backends!(
    a_256_mib_file_streams_exactly_with_bounded_memory,
    symlinks_that_stay_inside_the_root_are_followed,
    dot_dot_escapes_are_refused,
    an_absolute_path_outside_the_root_is_refused,
    symlinks_out_of_the_root_are_refused,
    proc_magic_links_are_refused,
    a_fifo_is_refused_without_blocking,
    a_directory_is_refused,
    a_5000_byte_path_is_refused,
    a_client_that_sends_no_nul_and_closes_is_dropped,
    file_header_mode_frames_each_answer_and_keeps_the_connection,
    concurrent_fetches_each_get_the_whole_file,
    a_client_vanishing_mid_stream_ends_only_that_stream,
);
