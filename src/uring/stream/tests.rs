//! The file streams' tests: one residency question for a head and its
//! file, the write-timeout cut of a splice (a reset, never a FIN), and the
//! pipe of a stream dropped mid-splice back in the pool's count.

use std::io::{self, Read as _};
use std::net::{TcpListener, TcpStream};

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::buf::Buf;
use crate::fs::Root;
use crate::io::{Connection, Timeouts};
use crate::pagecache;
use crate::ring::Ring;
use crate::ring::deadline::Deadlines;
use crate::ring::op::Timeout;
use crate::ring::pipes::PipePool;
use crate::ring::tests::run_returning;
use crate::uring::conn::RingConn;

/// Sweep `deadlines` every 100 ms, as the shard's heartbeat does; never
/// ends (race it against the work).
async fn heartbeat<T>(ring: &Ring, deadlines: &Deadlines) -> T {
    loop {
        let _ = ring.submit(Timeout::new(Duration::from_millis(100))).await;
        deadlines.sweep(ring, Instant::now());
    }
}

/// An answer's head in front of a file from the page cache: the file's
/// first chunk is asked about once (the head's `MSG_MORE` decision), not
/// again when the stream starts; every byte arrives, head first.
#[test]
fn a_cached_file_behind_a_head_asks_the_page_cache_once() {
    let dir = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("f"), &body).unwrap(); // in the cache now
    let root = Root::open(dir.path()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let mut got = Vec::new();
        TcpStream::connect(addr)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        got
    });
    let (sent, asked) = run_returning(move |ring| async move {
        let (sock, _) = listener.accept().unwrap();
        let mut conn = RingConn::accepted(
            sock.into(),
            ring,
            PipePool::for_shard(1),
            Deadlines::new().watch(),
            Timeouts::default(),
            true,
        )
        .unwrap();
        let file = root.open_file(b"f").unwrap();
        let mut head = Buf::with_capacity(64);
        head.extend_from_slice(b"HEAD\r\n");
        let before = pagecache::asked_here();
        let (sent, _) = conn.send_file_after(head, file).await;
        (sent.unwrap(), pagecache::asked_here() - before)
    });
    assert_eq!(sent, body.len() as u64);
    let got = client.join().unwrap();
    assert!(
        got.starts_with(b"HEAD\r\n") && got[6..] == body[..],
        "{} bytes",
        got.len()
    );
    if pagecache::resident(
        std::fs::File::open(dir.path().join("f")).unwrap().as_fd(),
        0,
        1,
    )
    .is_some()
    {
        assert_eq!(asked, 1, "cachestat calls for one answer");
    }
}

/// A splice cut by the write timeout resets the client at once: no FIN
/// is queued behind the unsent bytes. The connection stays open here
/// after the cut, as it does when its close waits for an abandoned
/// operation (a loaded machine, an io-wq worker slow to let the socket
/// go): a client that drains meanwhile must see a reset, never an end
/// of file.
#[test]
fn a_splice_cut_by_the_write_timeout_resets_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big"), vec![7u8; 16 << 20]).unwrap();
    let root = Root::open(dir.path()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (cut_tx, cut_rx) = std::sync::mpsc::channel::<()>();
    let client = std::thread::spawn(move || {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(64 << 10).unwrap();
        sock.connect(&addr.into()).unwrap();
        let mut s: TcpStream = sock.into();
        // Not a byte read until the server has cut the stream.
        cut_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server never cut the stream");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = vec![0u8; 64 << 10];
        let mut got = 0usize;
        loop {
            match s.read(&mut buf) {
                Ok(0) => return (got, "a FIN".to_string()),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return (got, "a reset".to_string());
                }
                Err(e) => return (got, format!("{e}")),
            }
        }
    });
    let (sent, (got, end)) = run_returning(move |ring| async move {
        let (sock, _) = listener.accept().unwrap();
        let timeouts = Timeouts {
            idle: Duration::from_secs(60),
            write: Duration::from_secs(1),
        };
        // `false`: no sendfile from the page cache, every chunk splices.
        let deadlines = Deadlines::new();
        let mut conn = RingConn::accepted(
            sock.into(),
            ring.clone(),
            PipePool::for_shard(1),
            deadlines.watch(),
            timeouts,
            false,
        )
        .unwrap();
        let file = root.open_file(b"big").unwrap();
        // The write timeout is the heartbeat's sweep, as on a shard.
        let sent = futures_lite::future::or(
            async { conn.send_file(file).await.map_err(|e| e.kind()) },
            heartbeat(&ring, &deadlines),
        )
        .await;
        cut_tx.send(()).unwrap();
        // The connection is still open while the client reads.
        let end = client.join().unwrap();
        drop(conn);
        // The abandoned splices end too (the socket's last references).
        let waited = Instant::now();
        while ring.in_flight() > 0 && waited.elapsed() < Duration::from_secs(20) {
            let _ = ring.submit(Timeout::new(Duration::from_millis(10))).await;
        }
        assert_eq!(ring.in_flight(), 0, "operations still in flight");
        (sent, end)
    });
    assert_eq!(sent, Err(io::ErrorKind::TimedOut));
    assert!(got < 16 << 20, "{got} bytes");
    assert_eq!(end, "a reset", "after {got} bytes");
}

/// A stream dropped mid-splice (its connection's task cut) gives its pipe
/// back to the pool, as one that may hold bytes: closed, and no longer
/// counted against the shard's pipe budget.
#[test]
fn a_stream_dropped_mid_splice_gives_its_pipe_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big"), vec![7u8; 4 << 20]).unwrap();
    let root = Root::open(dir.path()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || TcpStream::connect(addr).unwrap());
    let (during, after, in_flight) = run_returning(move |ring| async move {
        let (sock, _) = listener.accept().unwrap();
        let pipes = PipePool::for_shard(1);
        let mut conn = RingConn::accepted(
            sock.into(),
            ring.clone(),
            pipes.clone(),
            Deadlines::new().watch(),
            Timeouts::default(),
            false,
        )
        .unwrap();
        let file = root.open_file(b"big").unwrap();
        let during = {
            let mut sending = std::pin::pin!(conn.send_file(file));
            let first = futures_lite::future::poll_once(sending.as_mut()).await;
            assert!(first.is_none(), "a 4 MiB splice done in one poll");
            pipes.live()
        };
        drop(conn);
        let after = pipes.live();
        let waited = Instant::now();
        while ring.in_flight() > 0 && waited.elapsed() < Duration::from_secs(20) {
            let _ = ring.submit(Timeout::new(Duration::from_millis(10))).await;
        }
        (during, after, ring.in_flight())
    });
    drop(client.join().unwrap());
    assert_eq!((during, after), (1, 0), "pipes live (during, after)");
    assert_eq!(in_flight, 0, "operations still in flight");
}
