//! Property tests of the two protocols' framing, run through the real code:
//! the echo protocol itself and the request reader, over a connection in
//! memory whose input arrives split at arbitrary points. What they produce
//! is checked against the input itself and an independent statement of
//! the rule, not against a copy of the code.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use ringlet::proto::echo::{Echo, EchoMode};
use ringlet::proto::request::{self, MAX_REQUEST, Request};
use ringlet::{Buf, Connection, Protocol, RegularFile};

/// A connection in memory: reads hand out the input's chunks in turn (a
/// chunk bigger than the buffer's room arrives in pieces), then end of
/// stream; every write is recorded.
struct Memory {
    input: VecDeque<Vec<u8>>,
    writes: Vec<Vec<u8>>,
}

impl Memory {
    fn new(chunks: Vec<Vec<u8>>) -> Memory {
        Memory {
            input: chunks.into_iter().filter(|c| !c.is_empty()).collect(),
            writes: Vec::new(),
        }
    }
}

impl Connection for Memory {
    fn peer(&self) -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    async fn read(&mut self, mut buf: Buf) -> (io::Result<usize>, Buf) {
        assert!(!buf.is_full(), "the protocol read into a full buffer");
        let Some(mut chunk) = self.input.pop_front() else {
            return (Ok(0), buf);
        };
        let n = buf.extend_from_slice(&chunk);
        if n < chunk.len() {
            self.input.push_front(chunk.split_off(n));
        }
        (Ok(n), buf)
    }

    fn set_read_deadline(&mut self, _deadline: Option<Instant>) {}

    async fn write_prefix(&mut self, buf: Buf, len: usize) -> (io::Result<()>, Buf) {
        self.writes.push(buf.filled()[..len].to_vec());
        (Ok(()), buf)
    }

    async fn send_file(&mut self, _file: RegularFile) -> io::Result<u64> {
        Err(io::ErrorKind::Unsupported.into())
    }

    async fn yield_if_needed(&mut self) {}
}

/// Split `data` at the given points (taken modulo its length).
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

/// What the echo protocol writes, in order, for `chunks` arriving in turn.
fn echo_writes(chunks: Vec<Vec<u8>>, cap: usize, mode: EchoMode) -> Vec<Vec<u8>> {
    let mut conn = Memory::new(chunks);
    futures_lite::future::block_on(Echo::new(mode, cap).serve(&mut conn)).expect("echo failed");
    conn.writes
}

fn bytes_with_newlines() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![4 => any::<u8>(), 1 => Just(b'\n')], 0..2000)
}

/// The request rule, stated independently: the path is everything before
/// the first NUL, if that NUL is among the first `MAX_REQUEST` bytes;
/// without one there, a request of `MAX_REQUEST` bytes or more is too
/// long, a shorter one was cut off by the client's close (or never began).
fn request_rule(data: &[u8]) -> Request {
    let head = &data[..data.len().min(MAX_REQUEST)];
    match head.iter().position(|&b| b == 0) {
        Some(i) => Request::Path(i),
        None if data.len() >= MAX_REQUEST => Request::TooLong,
        None if data.is_empty() => Request::Closed,
        None => Request::Truncated,
    }
}

proptest! {
    #[test]
    fn echo_is_byte_exact_however_the_input_is_split(
        data in bytes_with_newlines(),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        cap in 1usize..300,
        raw in any::<bool>(),
    ) {
        let mode = if raw { EchoMode::Raw } else { EchoMode::Line };
        let echoed = echo_writes(split(&data, &cuts), cap, mode).concat();
        prop_assert_eq!(&echoed, &data);
    }

    #[test]
    fn line_mode_writes_whole_lines_unless_the_buffer_filled(
        data in bytes_with_newlines(),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        cap in 1usize..300,
    ) {
        let writes = echo_writes(split(&data, &cuts), cap, EchoMode::Line);
        let last = writes.len().saturating_sub(1);
        for (i, w) in writes.iter().enumerate() {
            // Every write but the one at end of stream ends a line, or is a
            // full buffer (an over-long line going out in pieces).
            prop_assert!(i == last || w.ends_with(b"\n") || w.len() == cap,
                "write {} of {}: {:?}", i, writes.len(), w);
            prop_assert!(!w.is_empty());
        }
        // No write ever exceeds the buffer.
        prop_assert!(writes.iter().all(|w| w.len() <= cap));
    }

    #[test]
    fn a_request_reads_by_the_rule_however_it_is_split(
        data in prop::collection::vec(prop_oneof![8 => any::<u8>(), 1 => Just(0u8)], 0..6000),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut conn = Memory::new(split(&data, &cuts));
        let (got, buf) = futures_lite::future::block_on(request::read(
            &mut conn,
            Buf::with_capacity(MAX_REQUEST),
            Duration::from_secs(10),
        ));
        let got = got.unwrap();
        prop_assert_eq!(&got, &request_rule(&data));
        if let Request::Path(n) = got {
            // The path, and after its NUL the start of the next request.
            prop_assert_eq!(&buf.filled()[..n], &data[..n]);
            prop_assert_eq!(buf.filled()[n], 0);
            prop_assert_eq!(&buf.filled()[n + 1..], &data[n + 1..buf.len()]);
        }
    }
}
