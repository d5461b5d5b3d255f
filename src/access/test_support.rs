//! What the access log's tests share: entries of each kind, a line
//! formatted at a given second, captured tracing output, and a log read
//! back with each line's time checked and masked.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

use super::clock::stamp;
use super::format::format_entry;
use super::{Entry, Format, MAX_LINE};

/// 2026-12-04T02:45:07Z.
pub(super) const T: u64 = 1_796_352_307;

pub(super) fn client() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

pub(super) fn line(format: Format, entry: &Entry<'_>, secs: u64) -> String {
    let mut out = Vec::new();
    format_entry(&mut out, format, entry, &stamp(secs));
    assert!(out.len() <= MAX_LINE, "a line of {} bytes", out.len());
    String::from_utf8(out).expect("lines are UTF-8")
}

pub(super) fn http<'a>(
    target: &'a [u8],
    referer: Option<&'a str>,
    ua: Option<&'a str>,
) -> Entry<'a> {
    Entry::Http {
        client: client(),
        method: "GET",
        target,
        version: "HTTP/1.1",
        status: 200,
        bytes: 5120,
        referer,
        user_agent: ua,
        duration: Duration::from_nanos(123_456),
    }
}

pub(super) fn file_entry(path: &[u8]) -> Entry<'_> {
    Entry::File {
        client: client(),
        path,
        outcome: "served",
        bytes: 5120,
        duration: Duration::from_millis(1),
    }
}

pub(super) fn session() -> Entry<'static> {
    Entry::Session {
        client: "[::ffff:10.1.2.3]:9".parse().unwrap(),
        service: "echo",
        bytes_in: 12,
        bytes_out: 34,
        duration: Duration::from_millis(1500),
    }
}

/// What tracing wrote, for counting WARNs.
#[derive(Clone, Default)]
pub(super) struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    pub(super) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
    pub(super) fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }
    /// Wait (up to 10 s) for `needle` to appear.
    pub(super) fn wait_for(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.count(needle) > 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

pub(super) fn capture() -> (Captured, tracing::Dispatch) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (captured, tracing::Dispatch::new(subscriber))
}

/// A line with its time checked for shape and replaced by `[T]`.
pub(super) fn untimed(line: &str) -> String {
    let open = line.find('[').expect("a time");
    let close = open + 27;
    assert_eq!(&line[close..close + 1], "]", "{line}");
    let t = &line.as_bytes()[open + 1..close];
    assert_eq!(&t[2..3], b"/");
    assert_eq!(&t[20..], b" +0000");
    format!("{}[T]{}", &line[..open], &line[close + 1..])
}

pub(super) fn read_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(untimed)
        .collect()
}

pub(super) fn numbered(prefix: &str, i: usize) -> String {
    format!("{prefix}/{i}")
}
