//! Fuzz the HTTP request head parser (`proto::http::parse_head`) and what
//! the server then does with the path: whatever the bytes, parsing never
//! panics, never claims more head than it was given, refuses with a 4xx/5xx
//! status, and a path it accepts never opens anything outside the root.
//! Run with `scripts/fuzz.sh --target http_head`.
#![no_main]

use std::os::fd::{AsFd, AsRawFd};

use libfuzzer_sys::fuzz_target;
use ringlet::proto::http::{Head, MAX_HEAD, Range, parse_head};

#[path = "fixture.rs"]
mod fixture;

use fixture::fixture;

fuzz_target!(|data: &[u8]| {
    let fits = &data[..data.len().min(MAX_HEAD)];
    match parse_head(fits, fits.len() == MAX_HEAD) {
        None => assert!(fits.len() < MAX_HEAD, "a full buffer must be decided"),
        Some(Head::Refused(status, _)) => assert!((400..600).contains(&status.code())),
        Some(Head::Request(req, len)) => {
            assert!(len <= fits.len());
            assert!(req.path.first() == Some(&b'/') && !req.path.contains(&0));
            if let Some(r) = &req.range {
                if let Range::Satisfiable { start, len: n } = Range::parse(r, 1000) {
                    assert!(n > 0 && start + n <= 1000);
                }
            }
            let f = fixture();
            if let Ok(file) = f.root.open_file(&req.path) {
                let fd = file.as_fd().as_raw_fd();
                let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
                assert!(
                    target.starts_with(&f.real),
                    "opened {target:?} outside {:?}",
                    f.real
                );
            }
        }
    }
});
