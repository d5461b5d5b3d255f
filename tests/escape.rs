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

/// Refusal reasons, as the server words them (in `ERR` lines and logs).
const ESCAPES: &str = "path escapes the served root";
const NOT_FOUND: &str = "no such file";
const NOT_REGULAR: &str = "not a regular file (directory)";

/// The corpus, each with the reason it must be refused for: `..` in every
/// position, doubled and trailing separators, symlink chains, absolute
/// symlinks, links to directories outside; encoded dots and backslashes are
/// taken literally (no decoding), and absolute paths mean paths beneath the
/// root, so those are merely not found.
fn corpus() -> Vec<(Vec<u8>, &'static str)> {
    let mut c: Vec<(Vec<u8>, &'static str)> = Vec::new();
    let target = "outside/secret";
    for depth in 0..6 {
        let ups = "../".repeat(depth + 1);
        for path in [
            format!("{ups}{target}"),
            format!("/{ups}{target}"),
            format!("a/{ups}../{target}"),
            format!("a/b/c/{ups}../../../{target}"),
            format!("a//b/..//..//{ups}{target}"),
            format!("./{ups}./{target}"),
        ] {
            c.push((path.into_bytes(), ESCAPES));
        }
    }
    for (path, reason) in [
        ("..", ESCAPES),
        ("../", ESCAPES),
        ("/..", ESCAPES),
        ("a/../..", ESCAPES),
        ("a/b/c/../../../..", ESCAPES),
        ("..//..//outside/secret", ESCAPES),
        ("hop1", ESCAPES),
        ("hop2", ESCAPES),
        ("hop3", ESCAPES),
        ("a/abs", ESCAPES),
        ("a/b/dirlink/secret", ESCAPES),
        ("a/b/dirlink/../outside/secret", ESCAPES),
        ("...//outside/secret", NOT_FOUND),
        ("%2e%2e/outside/secret", NOT_FOUND),
        ("%2e%2e%2foutside%2fsecret", NOT_FOUND),
        ("..%2foutside%2fsecret", NOT_FOUND),
        ("..\\outside\\secret", NOT_FOUND),
        ("/proc/self/root/etc/passwd", NOT_FOUND),
        ("proc/self/cwd", NOT_FOUND),
        ("/dev/null", NOT_FOUND),
        ("/etc/passwd", NOT_FOUND),
        ("//etc//passwd", NOT_FOUND),
        ("a/b", NOT_REGULAR),
    ] {
        c.push((path.as_bytes().to_vec(), reason));
    }
    c
}

/// What a server without confinement would send for `req`: the file the
/// path names when simply joined to the root (leading slashes dropped).
fn unconfined(root: &std::path::Path, req: &[u8]) -> Option<Vec<u8>> {
    let rel = OsStr::from_bytes(req.strip_prefix(b"/").unwrap_or(req));
    std::fs::read(root.join(rel)).ok()
}

/// A file server on `root` (framed or plain). `cold`: with the test hook
/// that makes the uring backend skip its direct `RESOLVE_CACHED` open, so
/// that every path goes through the ring's own `OPENAT2` (the path a cold
/// dentry cache takes, which files fetched right after they were made never
/// reach), each such open logged at debug.
fn serve_files(backend: &str, root: &str, framed: bool, cold: bool) -> Ringlet {
    let mut args = vec!["--echo", "off", "--root", root];
    if framed {
        args.push("--file-header");
    }
    Ringlet::serve_with(backend, &args, |cmd| {
        if cold {
            cmd.env("RINGLET_TEST_COLD_OPEN", "1")
                .env("RINGLET_LOG", "info,ringlet=debug");
        }
    })
}

/// With `cold`: `server` opened `req` through the ring (its debug line).
fn assert_through_the_ring(server: &Ringlet, req: &[u8], cold: bool) {
    if cold {
        let shown = format!("{:?}", String::from_utf8_lossy(req));
        server.wait_for_log(&[&format!("OPENAT2 {shown} through the ring")]);
    }
}

fn the_corpus_is_refused_for_the_right_reason(backend: &str) {
    refuse_the_corpus(backend, false);
}

/// The ring's `OPENAT2` confines as the direct open does: the whole corpus
/// through it, each path seen to take it (uring only: the epoll backend has
/// no ring and always opens directly).
#[test]
fn the_corpus_is_refused_by_the_rings_own_openat2() {
    refuse_the_corpus("uring", true);
}

fn refuse_the_corpus(backend: &str, cold: bool) {
    let l = layout();
    let root = l.root.to_str().unwrap();
    let framed = serve_files(backend, root, true, cold);
    let plain = serve_files(backend, root, false, cold);
    // Renames anywhere make the kernel ask for a retry of a `..` lookup
    // beneath a root (EAGAIN): keep some going, so the server must retry.
    let stop = Arc::new(AtomicBool::new(false));
    let renamer = {
        let (stop, dir) = (stop.clone(), l.root.join("a"));
        std::fs::create_dir(dir.join("spin")).unwrap();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::fs::rename(dir.join("spin"), dir.join("spun")).unwrap();
                std::fs::rename(dir.join("spun"), dir.join("spin")).unwrap();
            }
        })
    };
    let mut would_leak = 0;
    for (req, reason) in corpus() {
        let shown = String::from_utf8_lossy(&req).into_owned();
        if unconfined(&l.root, &req).as_deref() == Some(SECRET) {
            would_leak += 1;
        }
        let mut request = req.clone();
        request.push(0);
        let got = fetch(framed.file(), &request[..request.len() - 1]);
        assert_eq!(
            String::from_utf8_lossy(&got),
            format!("ERR {reason}\n"),
            "{shown:?} was not refused for the right reason"
        );
        assert_eq!(fetch(plain.file(), &req), b"", "{shown:?} was answered");
        plain.wait_for_log(&[&format!("{:?}: refused: {reason}", shown)]);
        assert_through_the_ring(&framed, &req, cold);
        assert_through_the_ring(&plain, &req, cold);
    }
    stop.store(true, Ordering::Relaxed);
    renamer.join().unwrap();
    // The corpus has teeth: plainly joined to the root, this many of its
    // paths reach the secret outside.
    assert!(
        would_leak >= 12,
        "only {would_leak} cases would leak unconfined"
    );
    // The root's own files stay reachable, by odd spellings too.
    for ok in [
        &b"a/b/c/ok"[..],
        b"/a/b/c/ok",
        b"a//b/./c/ok",
        b"a/b/../b/c/ok",
        b"///a/b/c/ok",
    ] {
        let got = fetch(plain.file(), ok);
        assert_eq!(
            got,
            b"ok\n",
            "{:?}; server log:\n{}",
            String::from_utf8_lossy(ok),
            plain.log().join("\n")
        );
        assert_through_the_ring(&plain, ok, cold);
    }
    assert!(!plain.log().iter().any(|l| l.contains("panicked")));
}

fn magic_links_are_refused_even_at_the_filesystem_root(backend: &str) {
    refuse_magic_links(backend, false);
}

/// As the corpus: the ring's own `OPENAT2` refuses magic links too.
#[test]
fn magic_links_are_refused_by_the_rings_own_openat2() {
    refuse_magic_links("uring", true);
}

/// With the whole filesystem as root (the article's way), `/proc`'s magic
/// links still lead nowhere: they are refused, not followed.
fn refuse_magic_links(backend: &str, cold: bool) {
    let server = serve_files(backend, "/", true, cold);
    let passwd = std::fs::read("/etc/passwd").unwrap();
    // Followed, this link would serve /etc/passwd.
    assert_eq!(
        unconfined(std::path::Path::new("/"), b"/proc/self/root/etc/passwd").as_deref(),
        Some(&passwd[..])
    );
    for link in [
        &b"/proc/self/root/etc/passwd"[..],
        b"/proc/thread-self/root/etc/passwd",
        b"proc/self/cwd/../../etc/passwd",
    ] {
        let got = fetch(server.file(), link);
        assert_eq!(
            String::from_utf8_lossy(&got),
            "ERR magic link or symlink loop refused\n",
            "{:?}",
            String::from_utf8_lossy(link)
        );
        assert_through_the_ring(&server, link, cold);
    }
    let got = fetch(server.file(), b"/etc/passwd");
    assert_eq!(
        got,
        [format!("OK {}\n", passwd.len()).as_bytes(), &passwd].concat()
    );
    assert_through_the_ring(&server, b"/etc/passwd", cold);
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
    the_corpus_is_refused_for_the_right_reason,
    magic_links_are_refused_even_at_the_filesystem_root,
    device_files_long_names_and_non_utf8_names,
    a_symlink_swapped_during_requests_never_leads_out,
);
