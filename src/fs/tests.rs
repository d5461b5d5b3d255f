//! Root confinement's tests: paths as URLs resolve, what is refused, and
//! the one retry policy of a raced open.

use super::*;

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
