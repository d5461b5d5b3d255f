//! Property tests of the two parsers: any bytes, split at any points, give
//! the same result as the same bytes sent whole.

use proptest::prelude::*;
use ringlet::Buf;
use ringlet::proto::echo::line_cut;
use ringlet::proto::request::{MAX_REQUEST, Request, parse};

/// What the echo protocol writes for `chunks` arriving in turn through a
/// `cap`-byte buffer (mirrors `Echo::serve`): the writes, in order.
fn echo_writes(chunks: &[Vec<u8>], cap: usize, line_mode: bool) -> Vec<Vec<u8>> {
    let mut buf = Buf::with_capacity(cap);
    let mut writes = Vec::new();
    for chunk in chunks {
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let before = buf.len();
            let n = buf.extend_from_slice(rest);
            rest = &rest[n..];
            let cut = if line_mode {
                line_cut(buf.filled(), before, buf.is_full())
            } else {
                buf.len()
            };
            if cut > 0 {
                writes.push(buf.filled()[..cut].to_vec());
                buf.consume(cut);
            }
        }
    }
    if !buf.is_empty() {
        writes.push(buf.filled().to_vec()); // EOF: the last partial line
    }
    writes
}

/// Split `data` at the given fractions.
fn split(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points
        .windows(2)
        .map(|w| data[w[0]..w[1]].to_vec())
        .collect()
}

fn bytes_with_newlines() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![4 => any::<u8>(), 1 => Just(b'\n')], 0..2000)
}

proptest! {
    #[test]
    fn echo_is_byte_exact_however_the_input_is_split(
        data in bytes_with_newlines(),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        cap in 1usize..300,
        line_mode in any::<bool>(),
    ) {
        let whole = echo_writes(std::slice::from_ref(&data), cap, line_mode).concat();
        let pieces = echo_writes(&split(&data, &cuts), cap, line_mode).concat();
        prop_assert_eq!(&whole, &data);
        prop_assert_eq!(&pieces, &data);
    }

    #[test]
    fn line_mode_writes_whole_lines_unless_the_buffer_filled(
        data in bytes_with_newlines(),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        cap in 1usize..300,
    ) {
        let writes = echo_writes(&split(&data, &cuts), cap, true);
        let last = writes.len().saturating_sub(1);
        for (i, w) in writes.iter().enumerate() {
            // Every write but the EOF one ends a line, or is a full buffer
            // (an over-long line going out in pieces).
            prop_assert!(i == last || w.ends_with(b"\n") || w.len() == cap,
                "write {} of {}: {:?}", i, writes.len(), w);
            prop_assert!(!w.is_empty());
        }
        // No write ever exceeds the buffer.
        prop_assert!(writes.iter().all(|w| w.len() <= cap));
    }

    #[test]
    fn a_request_parses_the_same_however_it_is_split(
        data in prop::collection::vec(prop_oneof![8 => any::<u8>(), 1 => Just(0u8)], 0..6000),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        // Sent whole: what fits in the request buffer decides.
        let fits = &data[..data.len().min(MAX_REQUEST)];
        let whole = parse(fits, fits.len() == MAX_REQUEST);
        // Sent in pieces: parse after every arrival, as the server does.
        let mut buf = Buf::with_capacity(MAX_REQUEST);
        let mut pieces = None;
        'outer: for chunk in split(&data, &cuts) {
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let n = buf.extend_from_slice(rest);
                rest = &rest[n..];
                if let Some(r) = parse(buf.filled(), buf.is_full()) {
                    pieces = Some(r);
                    break 'outer;
                }
            }
        }
        prop_assert_eq!(&pieces, &whole);
        if let Some(Request::Path(n)) = whole {
            prop_assert_eq!(data[n], 0);
            prop_assert!(!data[..n].contains(&0));
        }
    }
}
