//! The Eventlet article's two transcripts, byte for byte, against the real binary.

mod common;

use std::io::{BufRead, BufReader, Write};

use common::{Ringlet, connect, fetch};

/// `nc 127.0.0.1 6000`, typing foo, bar, qux: each line comes straight back,
/// before the next is typed.
fn echo_transcript_foo_bar_qux(backend: &str) {
    let server = Ringlet::serve(backend, &["--file", "off"]);
    let mut s = connect(server.echo());
    let mut lines = BufReader::new(s.try_clone().unwrap());
    for word in ["foo", "bar", "qux"] {
        s.write_all(format!("{word}\n").as_bytes()).unwrap();
        let mut got = String::new();
        lines.read_line(&mut got).unwrap();
        assert_eq!(got, format!("{word}\n"));
    }
}

/// `echo -en '/tmp/x\0' | nc ...` (missing) then `/tmp/y` on the same server:
/// the first closes at once with nothing (the article's client hung), the
/// second gets the file.
fn file_transcript_missing_then_existing(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tmp")).unwrap();
    std::fs::write(dir.path().join("tmp/y"), "foo bar qux\n").unwrap();
    let server = Ringlet::serve(
        backend,
        &["--echo", "off", "--root", dir.path().to_str().unwrap()],
    );

    assert_eq!(fetch(server.file(), b"/tmp/x"), b"");
    let line = server.wait_for_log(&["/tmp/x", "refused", "no such file", "127.0.0.1:"]);
    // The client's doing, not the operator's: information, not a warning.
    assert!(line.contains("INFO"), "{line}");
    assert_eq!(fetch(server.file(), b"/tmp/y"), b"foo bar qux\n");
}

/// `--root /` reproduces the article exactly: absolute paths are real paths.
fn root_slash_serves_absolute_paths_like_the_article(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let y = dir.path().join("y");
    std::fs::write(&y, "foo bar qux\n").unwrap();
    let server = Ringlet::serve(backend, &["--echo", "off", "--root", "/"]);
    let missing = dir.path().join("x");
    assert_eq!(
        fetch(server.file(), missing.to_str().unwrap().as_bytes()),
        b""
    );
    assert_eq!(
        fetch(server.file(), y.to_str().unwrap().as_bytes()),
        b"foo bar qux\n"
    );
}

on_both_backends!(
    echo_transcript_foo_bar_qux,
    file_transcript_missing_then_existing,
    root_slash_serves_absolute_paths_like_the_article,
);
