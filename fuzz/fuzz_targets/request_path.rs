//! Fuzz the file request path: framing (`request::parse`) and root
//! confinement (`Root::open_file`) on a root with links pointing out.
//! Whatever the bytes, nothing outside the root may ever be opened, and only
//! regular files. Run with `scripts/fuzz.sh`.
#![no_main]

use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ringlet::Root;
use ringlet::proto::request::{MAX_REQUEST, Request, parse};

struct Fixture {
    root: Root,
    real: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("ringlet-fuzz-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        std::fs::write(base.join("outside/secret"), "secret").unwrap();
        std::fs::write(root.join("a/b/f"), "f").unwrap();
        let _ = std::os::unix::fs::symlink("../outside/secret", root.join("out"));
        let _ = std::os::unix::fs::symlink("a/b/f", root.join("in"));
        let _ = std::os::unix::fs::symlink("/proc/self/root", root.join("proc"));
        let _ = std::os::unix::fs::symlink("a/../../outside", root.join("a/up"));
        Fixture {
            real: root.canonicalize().unwrap(),
            root: Root::open(&root).unwrap(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let fits = &data[..data.len().min(MAX_REQUEST)];
    let Some(Request::Path(n)) = parse(fits, fits.len() == MAX_REQUEST) else {
        return;
    };
    assert!(n < MAX_REQUEST && fits[n] == 0 && !fits[..n].contains(&0));
    let f = fixture();
    if let Ok(file) = f.root.open_file(&fits[..n]) {
        let fd = file.as_fd().as_raw_fd();
        let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        assert!(target.starts_with(&f.real), "opened {target:?} outside {:?}", f.real);
        assert!(target.is_file());
    }
});
