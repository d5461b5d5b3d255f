//! The root both fuzz targets open paths beneath: a file inside, links that
//! stay inside, and links that lead out (a relative one, `/proc`'s magic
//! root, one through `..`), with a secret outside. Made once per process.

use std::path::PathBuf;
use std::sync::OnceLock;

use ringlet::Root;

pub struct Fixture {
    pub root: Root,
    /// The root's real path: every file opened must lie beneath it.
    pub real: PathBuf,
}

pub fn fixture() -> &'static Fixture {
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
