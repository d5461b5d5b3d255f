//! An echo server built from ringlet's public API alone, on the uring
//! backend, under load: 50 clients at once, 200 lines each, every byte
//! that comes back checked; then a clean stop.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringlet::proto::echo::{Echo, EchoMode};
use ringlet::{Backend, Server};

const CLIENTS: usize = 50;
const LINES: usize = 200;
/// Lines a client sends before reading their echoes back.
const BATCH: usize = 20;
/// Longest any socket operation may wait: a hang fails the test.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Line `i` of client `c`: its own bytes, of lengths from 1 to about 3 KiB.
fn line(c: usize, i: usize) -> String {
    let fill = (c * 31 + i * 17) % 3000;
    let pad: String = (0..fill)
        .map(|k| (b'a' + ((c + i + k) % 26) as u8) as char)
        .collect();
    format!("{c}:{i}:{pad}\n")
}

fn client(addr: SocketAddr, c: usize) -> Result<usize, String> {
    let s = TcpStream::connect(addr).map_err(|e| format!("client {c}: connect: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    let mut writer = s.try_clone().unwrap();
    let mut reader = BufReader::new(s);
    let mut bytes = 0;
    let mut got = String::new();
    for first in (0..LINES).step_by(BATCH) {
        let batch = first..(first + BATCH).min(LINES);
        let out: String = batch.clone().map(|i| line(c, i)).collect();
        writer
            .write_all(out.as_bytes())
            .map_err(|e| format!("client {c}: write of lines {batch:?}: {e}"))?;
        for i in batch {
            got.clear();
            reader
                .read_line(&mut got)
                .map_err(|e| format!("client {c}: read of line {i}: {e}"))?;
            let want = line(c, i);
            if got != want {
                return Err(format!(
                    "client {c}, line {i}: {} bytes back, want {} ({:?}... for {:?}...)",
                    got.len(),
                    want.len(),
                    &got[..got.len().min(24)],
                    &want[..want.len().min(24)]
                ));
            }
            bytes += got.len();
        }
    }
    // Our end closes; the server's must follow with a FIN, nothing more.
    writer.shutdown(std::net::Shutdown::Write).unwrap();
    got.clear();
    match reader.read_line(&mut got) {
        Ok(0) => Ok(bytes),
        Ok(_) => Err(format!("client {c}: {got:?} after its last line")),
        Err(e) => Err(format!("client {c}: the end: {e}")),
    }
}

#[test]
fn an_echo_server_serves_fifty_clients_every_byte_back() {
    if let Some(e) = ringlet_downstream::io_uring_unavailable() {
        eprintln!("skipped: io_uring is unavailable here ({e})");
        return;
    }
    let started = Instant::now();
    let server = Server::builder()
        .backend(Backend::Uring)
        .shutdown_timeout(Duration::from_secs(10))
        .service(
            "echo",
            "127.0.0.1:0".parse().unwrap(),
            Echo::new(EchoMode::Line, 4096),
        )
        .start()
        .expect("start the server");
    assert_eq!(server.backend(), Backend::Uring);
    let addr = server
        .local_addr("echo")
        .expect("the echo service's address");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| std::thread::spawn(move || client(addr, c)))
        .collect();
    let mut bytes = 0;
    let mut failed = Vec::new();
    for c in clients {
        match c.join().expect("a client thread panicked") {
            Ok(n) => bytes += n,
            Err(e) => failed.push(e),
        }
    }
    let want: usize = (0..CLIENTS)
        .flat_map(|c| (0..LINES).map(move |i| line(c, i).len()))
        .sum();
    assert!(
        failed.is_empty(),
        "{} of {CLIENTS} clients failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert_eq!(bytes, want);
    let stopping = Instant::now();
    server.stop().expect("a clean stop");
    eprintln!(
        "{CLIENTS} clients x {LINES} lines, {bytes} bytes echoed in {:?}; stopped in {:?}",
        stopping - started,
        stopping.elapsed()
    );
}
