//! The path-escape corpus: every way out of the root we could think of, each
//! refused, while the root's own files stay reachable. Nothing outside the
//! root is ever sent, even while symlinks are swapped under the server.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Ringlet, fetch};

const SECRET: &[u8] = b"outside the root\n";

struct Layout {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn layout() -> Layout {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), SECRET).unwrap();
    std::fs::write(root.join("a/b/c/ok"), "ok\n").unwrap();
    // Symlink chains: hop, hop, out.
    symlink("hop2", root.join("hop1")).unwrap();
    symlink("a/../hop3", root.join("hop2")).unwrap();
    symlink("../outside/secret", root.join("hop3")).unwrap();
    symlink(outside.join("secret"), root.join("a/abs")).unwrap();
    symlink("../../../outside", root.join("a/b/dirlink")).unwrap();
    Layout {
        _dir: dir,
        root,
        outside,
    }
}

/// The corpus: `..` in every position, doubled and trailing separators,
/// encoded dots (taken literally: no decoding), absolute paths, chains.
fn corpus() -> Vec<Vec<u8>> {
    let mut c: Vec<Vec<u8>> = Vec::new();
    let target = "outside/secret";
    for depth in 0..6 {
        let ups = "../".repeat(depth + 1);
        c.push(format!("{ups}{target}").into_bytes());
        c.push(format!("/{ups}{target}").into_bytes());
        c.push(format!("a/{ups}{target}").into_bytes());
        c.push(format!("a/b/c/{ups}{target}").into_bytes());
        c.push(format!("a//b/..//..//{ups}{target}").into_bytes());
        c.push(format!("./{ups}./{target}").into_bytes());
    }
    for s in [
        "..",
        "../",
        "/..",
        "a/../..",
        "a/b/c/../../../..",
        "..//..//outside/secret",
        "...//outside/secret",
        "%2e%2e/outside/secret",
        "%2e%2e%2foutside%2fsecret",
        "..%2foutside%2fsecret",
        "..\\outside\\secret",
        "hop1",
        "hop2",
        "hop3",
        "a/abs",
        "a/b/dirlink/secret",
        "a/b/dirlink/../outside/secret",
        "/proc/self/root/etc/passwd",
        "proc/self/cwd",
        "/dev/null",
        "/etc/passwd",
        "//etc//passwd",
    ] {
        c.push(s.as_bytes().to_vec());
    }
    c
}

fn the_corpus_is_refused(backend: &str) {
    let l = layout();
    let server = Ringlet::serve(
        backend,
        &["--echo", "off", "--root", l.root.to_str().unwrap()],
    );
    for req in corpus() {
        let got = fetch(server.file(), &req);
        assert_eq!(got, b"", "{:?} was answered", String::from_utf8_lossy(&req));
    }
    // The root's own files stay reachable, by odd spellings too.
    for ok in [
        &b"a/b/c/ok"[..],
        b"/a/b/c/ok",
        b"a//b/./c/ok",
        b"a/b/../b/c/ok",
        b"///a/b/c/ok",
    ] {
        let got = fetch(server.file(), ok);
        assert_eq!(
            got,
            b"ok\n",
            "{:?}; server log:\n{}",
            String::from_utf8_lossy(ok),
            server.log().join("\n")
        );
    }
    assert!(!server.log().iter().any(|l| l.contains("panicked")));
    let _ = &l.outside;
}

fn device_files_long_names_and_non_utf8_names(backend: &str) {
    let l = layout();
    // A character device inside the root (like /dev/null), made by mknod.
    let dev = std::ffi::CString::new(l.root.join("null").to_str().unwrap()).unwrap();
    let made =
        unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) } == 0;
    // Non-UTF-8 names are names like any other.
    let odd = OsStr::from_bytes(b"caf\xe9-\xff");
    std::fs::write(l.root.join(odd), "odd\n").unwrap();
    let server = Ringlet::serve(
        backend,
        &["--echo", "off", "--root", l.root.to_str().unwrap()],
    );
    if made {
        assert_eq!(fetch(server.file(), b"null"), b"");
        server.wait_for_log(&["refused: not a regular file (character device)"]);
    }
    assert_eq!(fetch(server.file(), b"caf\xe9-\xff"), b"odd\n");
    // A component longer than NAME_MAX, and a path of many components.
    assert_eq!(fetch(server.file(), &vec![b'n'; 300]), b"");
    server.wait_for_log(&["refused: invalid path"]);
    let deep = "a/".repeat(2000);
    assert_eq!(fetch(server.file(), deep.as_bytes()), b"");
    assert_eq!(fetch(server.file(), b"a/b/c/ok"), b"ok\n");
}

/// While a thread swaps `swing` between a file inside and the secret
/// outside, requests for it get the inside file or nothing: never the secret.
fn a_symlink_swapped_during_requests_never_leads_out(backend: &str) {
    let l = layout();
    let server = Ringlet::serve(
        backend,
        &["--echo", "off", "--root", l.root.to_str().unwrap()],
    );
    let root = l.root.clone();
    let secret = l.outside.join("secret");
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (link, tmp) = (root.join("swing"), root.join("swing.tmp"));
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::remove_file(&tmp);
                if i.is_multiple_of(2) {
                    symlink("a/b/c/ok", &tmp).unwrap();
                } else {
                    symlink(&secret, &tmp).unwrap();
                }
                std::fs::rename(&tmp, &link).unwrap(); // atomic swap
                i += 1;
            }
            i
        })
    };
    let mut served = 0;
    for _ in 0..400 {
        let got = fetch(server.file(), b"swing");
        assert!(
            got.is_empty() || got == b"ok\n",
            "got {:?}",
            String::from_utf8_lossy(&got)
        );
        served += usize::from(!got.is_empty());
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(
        swaps > 100 && served > 0,
        "{swaps} swaps, {served} served: the race did not happen"
    );
}

on_both_backends!(
    the_corpus_is_refused,
    device_files_long_names_and_non_utf8_names,
    a_symlink_swapped_during_requests_never_leads_out,
);
