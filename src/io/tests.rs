//! The reader's tests and `write_bytes`', over a scripted connection in
//! memory (every split, every end, the timeouts).

use std::collections::VecDeque;

use futures_lite::future::block_on;

use super::*;

/// A connection that hands out `reads` in order (each as far as the
/// buffer has room), then end of file; and keeps what is written.
#[derive(Default)]
struct Script {
    reads: VecDeque<io::Result<Vec<u8>>>,
    written: Vec<u8>,
    deadlines: Vec<Option<Instant>>,
    /// Reads into a full buffer (the error a real one gives).
    full_reads: usize,
}

impl Script {
    fn new(chunks: &[&[u8]]) -> Script {
        Script {
            reads: chunks.iter().map(|c| Ok(c.to_vec())).collect(),
            ..Script::default()
        }
    }
}

impl Connection for Script {
    fn peer(&self) -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    async fn read(&mut self, mut buf: Buf) -> (io::Result<usize>, Buf) {
        if buf.is_full() {
            self.full_reads += 1;
            return (Err(full_buffer_error()), buf);
        }
        match self.reads.pop_front() {
            None => (Ok(0), buf),
            Some(Err(e)) => (Err(e), buf),
            Some(Ok(mut chunk)) => {
                let n = buf.extend_from_slice(&chunk);
                if n < chunk.len() {
                    self.reads.push_front(Ok(chunk.split_off(n)));
                }
                (Ok(n), buf)
            }
        }
    }

    fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        self.deadlines.push(deadline);
    }

    async fn write_prefix(&mut self, buf: Buf, len: usize) -> (io::Result<()>, Buf) {
        self.written.extend_from_slice(&buf.filled()[..len]);
        (Ok(()), buf)
    }

    async fn send_file(&mut self, _: RegularFile) -> io::Result<u64> {
        unreachable!("no files here")
    }

    async fn yield_if_needed(&mut self) {}
}

/// Every line `read_line` returns until it says the client closed.
fn lines(reader: &mut Reader, conn: &mut Script) -> Vec<Vec<u8>> {
    block_on(async {
        let mut out = Vec::new();
        while let Some(line) = reader.read_line(conn).await.unwrap() {
            out.push(line.to_vec());
        }
        out
    })
}

#[test]
fn lines_come_whole_however_they_are_cut() {
    let mut conn = Script::new(&[b"foo\nba", b"r\n", b"\nqux\nlast"]);
    let got = lines(&mut Reader::with_capacity(64), &mut conn);
    let want: Vec<&[u8]> = vec![b"foo\n", b"bar\n", b"\n", b"qux\n", b"last"];
    assert_eq!(got, want, "the last line, without its newline, comes too");
    assert_eq!(conn.full_reads, 0);
}

#[test]
fn a_line_longer_than_the_capacity_comes_in_pieces_of_the_capacity() {
    let long = vec![b'x'; 10];
    let mut conn = Script::new(&[&long, b"\nnext\n"]);
    let got = lines(&mut Reader::with_capacity(4), &mut conn);
    let want: Vec<&[u8]> = vec![b"xxxx", b"xxxx", b"xx\n", b"next", b"\n"];
    assert_eq!(got, want);
    assert_eq!(conn.full_reads, 0, "never a read into a full buffer");
}

#[test]
fn leftover_bytes_stay_for_the_next_call() {
    let mut conn = Script::new(&[b"a\nbb\0rest"]);
    let mut reader = Reader::with_capacity(16);
    block_on(async {
        assert_eq!(
            reader.read_line(&mut conn).await.unwrap(),
            Some(&b"a\n"[..])
        );
        assert_eq!(reader.buffered(), b"bb\0rest");
        let rec = reader.read_record(&mut conn, 0).await.unwrap();
        assert_eq!(rec, Some(&b"bb"[..]));
        assert_eq!(reader.read_exact(&mut conn, 4).await.unwrap(), b"rest");
        assert_eq!(reader.read_line(&mut conn).await.unwrap(), None);
        assert_eq!(
            reader.read_line(&mut conn).await.unwrap(),
            None,
            "and stays closed"
        );
    });
}

#[test]
fn a_strict_record_longer_than_the_capacity_is_too_long() {
    let mut conn = Script::new(&[b"/a/very/long/path"]);
    let mut reader = Reader::with_capacity(8);
    let err = block_on(reader.read_record(&mut conn, 0)).unwrap_err();
    assert!(
        matches!(err, ReadError::TooLong { delim: 0, limit: 8 }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "no '\\x00' within 8 bytes");
    assert_eq!(reader.buffered(), b"/a/very/");
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidData);
    assert_eq!(conn.full_reads, 0);
}

#[test]
fn a_strict_record_cut_by_the_close_is_truncated_and_none_before_it_begins() {
    let mut reader = Reader::with_capacity(8);
    let mut conn = Script::new(&[b"/tm"]);
    let err = block_on(reader.read_record(&mut conn, 0)).unwrap_err();
    assert!(matches!(err, ReadError::Truncated(3)), "{err:?}");
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::UnexpectedEof);
    let mut reader = Reader::with_capacity(8);
    let mut quiet = Script::new(&[]);
    assert!(matches!(
        block_on(reader.read_record(&mut quiet, 0)),
        Ok(None)
    ));
}

#[test]
fn read_exact_fails_with_unexpected_eof_when_short_and_refuses_more_than_fits() {
    let mut reader = Reader::with_capacity(8);
    let mut conn = Script::new(&[b"ab", b"c"]);
    let err = block_on(reader.read_exact(&mut conn, 4)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    assert_eq!(reader.buffered(), b"abc");
    let err = block_on(reader.read_exact(&mut conn, 9)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    let mut conn = Script::new(&[b"ab", b"cd", b"ef"]);
    let mut reader = Reader::with_capacity(4);
    assert_eq!(block_on(reader.read_exact(&mut conn, 3)).unwrap(), b"abc");
    assert_eq!(block_on(reader.read_exact(&mut conn, 3)).unwrap(), b"def");
    assert_eq!(block_on(reader.read_exact(&mut conn, 0)).unwrap(), b"");
}

#[test]
fn a_request_timeout_bounds_an_item_once_begun_and_keeps_its_kind() {
    let mut conn = Script::new(&[b"/slow"]);
    conn.reads.push_back(Err(TimeoutKind::Deadline.into()));
    let mut reader = Reader::with_capacity(64).request_timeout(Duration::from_secs(5));
    let err = block_on(reader.read_record(&mut conn, 0)).unwrap_err();
    assert!(
        matches!(err, ReadError::TooSlow(TimeoutKind::Deadline)),
        "{err:?}"
    );
    assert!(
        matches!(conn.deadlines[..], [Some(_), None]),
        "set once the first byte was in, cleared after: {:?}",
        conn.deadlines
    );
    let e = io::Error::from(err);
    assert_eq!(timeout_kind(&e), Some(TimeoutKind::Deadline));

    // Idle before a line begins: the read's own error, kind kept (the
    // server ends such a connection with a FIN).
    let idle = TimeoutKind::Idle(Duration::from_secs(60));
    let mut conn = Script::default();
    conn.reads.push_back(Err(idle.into()));
    let mut reader = Reader::with_capacity(64);
    let e = block_on(reader.read_line(&mut conn)).unwrap_err();
    assert_eq!(timeout_kind(&e), Some(idle));
    assert!(conn.deadlines.is_empty(), "no request timeout: no deadline");
}

#[test]
fn write_bytes_sends_everything_in_bounded_pieces() {
    let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let mut conn = Script::default();
    block_on(conn.write_bytes(&data)).unwrap();
    assert_eq!(conn.written, data);
}
