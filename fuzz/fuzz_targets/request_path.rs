//! Fuzz the file request path: framing (`request::parse`) and root
//! confinement (`Root::open_file`) on a root with links pointing out.
//! Whatever the bytes, nothing outside the root may ever be opened, and only
//! regular files. Run with `scripts/fuzz.sh`.
#![no_main]

use std::os::fd::{AsFd, AsRawFd};

use libfuzzer_sys::fuzz_target;
use ringlet::proto::request::{MAX_REQUEST, Request, parse};

#[path = "fixture.rs"]
mod fixture;

use fixture::fixture;

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
        assert!(
            target.starts_with(&f.real),
            "opened {target:?} outside {:?}",
            f.real
        );
        assert!(target.is_file());
    }
});
