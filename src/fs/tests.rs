//! Root confinement's tests: paths as URLs resolve, what is refused, and
//! the one retry policy of a raced open.

use super::*;
use std::rc::Rc;

#[test]
fn leading_slashes_are_dropped_like_a_url_path() {
    assert_eq!(strip_leading_slashes(b"//tmp/y"), b"tmp/y");
    assert_eq!(strip_leading_slashes(b"tmp/y"), b"tmp/y");
    assert_eq!(strip_leading_slashes(b"///"), b"");
}

#[test]
fn opens_a_regular_file_and_refuses_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/f"), b"hello").unwrap();
    let root = Root::open(dir.path()).unwrap();
    assert_eq!(root.open_file(b"/sub/f").unwrap().size(), 5);
    assert!(matches!(
        root.open_file(b"sub"),
        Err(OpenError::NotRegular("directory"))
    ));
    assert!(matches!(root.open_file(b"/"), Err(OpenError::Empty)));
    assert!(matches!(
        root.open_file(b"../etc/passwd"),
        Err(OpenError::Escapes)
    ));
    assert!(matches!(root.open_file(b"nope"), Err(OpenError::NotFound)));
}

/// The one retry policy: a raced lookup (`EAGAIN`) is tried again, at
/// most `RACE_RETRIES` times, then refused as `Raced`.
#[test]
fn a_raced_open_is_retried_a_bounded_number_of_times() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"x").unwrap();
    let root = Root::open(dir.path()).unwrap();
    let open_after = |races: usize| {
        let mut attempts = 0;
        let open = open_beneath(b"/f", |relative| {
            attempts += 1;
            std::future::ready(if attempts <= races {
                Err(io::Error::from_raw_os_error(libc::EAGAIN))
            } else {
                root.openat2(relative, RESOLVE).map_err(io::Error::from)
            })
        });
        let opened = futures_lite::future::block_on(open);
        (opened, attempts)
    };
    let (opened, attempts) = open_after(RACE_RETRIES);
    assert_eq!((opened.unwrap().size(), attempts), (1, RACE_RETRIES + 1));
    let (opened, attempts) = open_after(usize::MAX);
    assert!(matches!(opened, Err(OpenError::Raced)));
    assert_eq!(attempts, RACE_RETRIES + 1);
}

/// The entries this thread's cache of `root` holds.
fn cached(root: &Root) -> usize {
    root.cache(|c| c.len()).unwrap()
}

#[test]
fn the_open_file_cache_is_bounded_and_takes_only_plain_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    for name in ["a", "b", "c", "sub/d"] {
        std::fs::write(dir.path().join(name), name).unwrap();
    }
    std::os::unix::fs::symlink("a", dir.path().join("link")).unwrap();
    let root = Root::open(dir.path()).unwrap().with_open_file_cache(2);
    let a = root.open_file(b"/a").unwrap();
    assert_eq!(a.size(), 1);
    assert_eq!(cached(&root), 1);
    // Served from the cache: the very descriptor it holds.
    let same = |x: &RegularFile, y: &RegularFile| Rc::ptr_eq(&x.fd, &y.fd);
    assert!(same(&a, &root.open_file(b"a").unwrap()));
    assert!(same(&a, &root.open_file(b"//a").unwrap()));
    // Not plain: opened, never kept.
    for path in [&b"./a"[..], b"sub/../a", b"sub//d", b"link"] {
        let f = root.open_file(path).unwrap();
        assert!(!same(&a, &f), "{}", DisplayPath(path));
    }
    assert_eq!(cached(&root), 1);
    // Bounded: the least recently used goes.
    let b = root.open_file(b"b").unwrap();
    assert!(same(&root.open_file(b"a").unwrap(), &a));
    root.open_file(b"sub/d").unwrap();
    assert_eq!(cached(&root), 2);
    assert!(
        same(&root.open_file(b"a").unwrap(), &a),
        "a was used last: kept"
    );
    assert!(!same(&root.open_file(b"b").unwrap(), &b), "b was evicted");
}

#[test]
fn a_change_is_seen_once_the_events_are_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"old").unwrap();
    let root = Root::open(dir.path()).unwrap().with_open_file_cache(8);
    assert_eq!(root.open_file(b"f").unwrap().size(), 3);
    std::fs::write(dir.path().join("g"), b"newer").unwrap();
    std::fs::rename(dir.path().join("g"), dir.path().join("f")).unwrap();
    std::thread::sleep(cache::DRAIN_EVERY * 2);
    assert_eq!(root.open_file(b"f").unwrap().size(), 5);
    std::fs::remove_file(dir.path().join("f")).unwrap();
    std::thread::sleep(cache::DRAIN_EVERY * 2);
    assert!(matches!(root.open_file(b"f"), Err(OpenError::NotFound)));
    assert_eq!(cached(&root), 0);
}

#[test]
fn a_storm_of_events_empties_the_cache_and_it_fills_again() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"kept").unwrap();
    let root = Root::open(dir.path()).unwrap().with_open_file_cache(8);
    let f = root.open_file(b"f").unwrap();
    assert_eq!(cached(&root), 1);
    // More events than one read takes, none of them about `f`.
    for i in 0..(cache::MAX_EVENTS + 10) {
        std::fs::write(dir.path().join(format!("other{i}")), b"").unwrap();
    }
    std::thread::sleep(cache::DRAIN_EVERY * 2);
    let again = root.open_file(b"f").unwrap();
    assert!(
        !Rc::ptr_eq(&f.fd, &again.fd),
        "served from a cache that lost events"
    );
    assert_eq!(cached(&root), 1, "cached again on that miss");
    assert!(Rc::ptr_eq(&again.fd, &root.open_file(b"f").unwrap().fd));
}
