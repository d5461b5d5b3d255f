//! Fuzz the PROXY protocol header parser (`proxy::parse`): whatever the
//! bytes, it never panics; a header it finds is at most `MAX_HEADER` bytes,
//! within what it was given, found again from exactly those bytes, and every
//! shorter prefix of them is "read more"; it asks for more only while fewer
//! than `MAX_HEADER` bytes have arrived.
//! Run with `scripts/fuzz.sh --target proxy_header`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringlet::proxy::{MAX_HEADER, parse};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Err(_) => {}
        Ok(None) => assert!(data.len() < MAX_HEADER, "a full buffer must be decided"),
        Ok(Some((header, len))) => {
            assert!(0 < len && len <= data.len() && len <= MAX_HEADER);
            assert_eq!(parse(&data[..len]), Ok(Some((header, len))));
            // Every shorter prefix waits; all of them for a short header
            // (v1's, the usual v2), a few for a long one.
            let prefixes: Vec<usize> = if len <= 128 {
                (0..len).collect()
            } else {
                vec![0, 1, 12, 13, 15, 16, len / 2, len - 1]
            };
            for k in prefixes {
                assert_eq!(parse(&data[..k]), Ok(None), "prefix of {k} of {len}");
            }
        }
    }
});
