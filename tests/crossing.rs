//! No client ever receives another client's bytes, even while connections
//! are torn down with a send still queued on their socket and new
//! connections arrive and files open meanwhile. The kernel hands out the
//! lowest free descriptor number, so a socket closed under a queued
//! operation would have its number, and that operation, taken over by the
//! next connection.

mod common;

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::End;
use ringlet::proto::file::FileServer;
use ringlet::{Backend, Buf, Connection, Protocol, Root, Server};

/// Bytes an abandoned send carries: no client may ever see them, but the
/// one whose connection queued them.
const POISON: u8 = b'X';
/// How many times a good answer repeats the client's id (in digits, which
/// the poison byte is not).
const REPEAT: usize = 256;

/// A good answer for client `id`.
fn answer(id: u64) -> Vec<u8> {
    format!("{id:015}\n").repeat(REPEAT).into_bytes()
}

/// Reads an 8-byte id. Odd ids: queue a send of poison, abandon it before
/// the ring could submit it, and fail (the connection is reset and its
/// socket released). Even ids: answer the id, `REPEAT` times.
struct Abandoner;

impl Protocol for Abandoner {
    async fn serve<C: Connection>(&self, conn: &mut C) -> io::Result<()> {
        let mut buf = Buf::with_capacity(8);
        while buf.len() < 8 {
            let (n, b) = conn.read(buf).await;
            buf = b;
            if n? == 0 {
                return Ok(());
            }
        }
        let id = u64::from_le_bytes(buf.filled().try_into().unwrap());
        if id % 2 == 1 {
            let mut poison = Buf::with_capacity(4096);
            poison.extend_from_slice(&[POISON; 4096]);
            let mut write = std::pin::pin!(conn.write_all(poison));
            let _ = futures_lite::future::poll_once(&mut write).await;
            return Err(io::Error::other("abandoned a queued send"));
        }
        let text = answer(id);
        let mut buf = Buf::with_capacity(text.len());
        buf.extend_from_slice(&text);
        conn.write_all(buf).await.0
    }
}

fn one_client(addr: SocketAddr, id: u64) -> Result<(), String> {
    let mut s = common::connect(addr);
    s.write_all(&id.to_le_bytes()).map_err(|e| e.to_string())?;
    let (got, end) = common::read_to_end_or_reset(&mut s);
    if id % 2 == 1 {
        // Its own poison at most, and a reset: the handler failed.
        if let Some(b) = got.iter().find(|&&b| b != POISON) {
            return Err(format!("client {id} got a stranger's byte {b:#x}"));
        }
        if end != End::Reset {
            return Err(format!("client {id}: a failed connection ended in a FIN"));
        }
        return Ok(());
    }
    // A whole answer ends in a FIN: a reset may have dropped some of it.
    if end != End::Closed {
        return Err(format!(
            "client {id}: its whole answer ended in a reset after {} bytes",
            got.len()
        ));
    }
    if got.contains(&POISON) {
        return Err(format!("client {id} got another connection's queued bytes"));
    }
    let expect = answer(id);
    if got != expect {
        return Err(format!(
            "client {id} got {} bytes, not its own {} (first: {:?})",
            got.len(),
            expect.len(),
            String::from_utf8_lossy(&got[..got.len().min(16)])
        ));
    }
    Ok(())
}

fn no_client_receives_another_clients_bytes(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let content = common::pattern(100_000, 41);
    std::fs::write(dir.path().join("f"), &content).unwrap();
    let server = Server::builder()
        .backend(backend)
        .cores(Some(1))
        .service("abandoner", "127.0.0.1:0".parse().unwrap(), Abandoner)
        .service(
            "file",
            "127.0.0.1:0".parse().unwrap(),
            FileServer::new(Root::open(dir.path()).unwrap()),
        )
        .start()
        .expect("start");
    let (addr, files) = (
        server.local_addr("abandoner").unwrap(),
        server.local_addr("file").unwrap(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    // Bounded by count; the deadline is generous for slow machines (an
    // emulated VM in the kernel matrix does ~100 connections a second).
    const ENOUGH: u64 = 3000;
    let deadline = Instant::now() + Duration::from_secs(60);
    let clients: Vec<_> = (0..6)
        .map(|t| {
            let (next, total, content) = (next.clone(), total.clone(), content.clone());
            std::thread::spawn(move || -> Result<u64, String> {
                let mut done = 0;
                while Instant::now() < deadline && total.fetch_add(1, Ordering::Relaxed) < ENOUGH {
                    if t == 0 {
                        // Files open (a descriptor each) between the others.
                        let mut s = common::connect(files);
                        s.write_all(b"/f\0").unwrap();
                        s.shutdown(Shutdown::Write).unwrap();
                        if common::read_to_close(&mut s) != content {
                            return Err("a file arrived wrong".into());
                        }
                    } else {
                        one_client(addr, next.fetch_add(1, Ordering::Relaxed))?;
                    }
                    done += 1;
                }
                Ok(done)
            })
        })
        .collect();
    let mut served = 0;
    for c in clients {
        served += c
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("{backend:?}: {e}"));
    }
    assert!(served > 1000, "only {served} connections in the time given");
    server.stop().unwrap();
}

#[test]
fn uring() {
    no_client_receives_another_clients_bytes(Backend::Uring);
}

#[test]
fn epoll() {
    no_client_receives_another_clients_bytes(Backend::Epoll);
}
