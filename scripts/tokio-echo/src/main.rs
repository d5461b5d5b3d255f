//! tokio-echo — a minimal tokio echo server, the yardstick the issue calls
//! "minimal tokio echo": one `current_thread` runtime per core, each thread
//! pinned to its CPU with its own `SO_REUSEPORT` listener (the kernel spreads
//! connections over them), and per connection a task that reads into 64 KiB
//! and `write_all`s it back. Raw echo: every byte comes back as it came, which
//! is what `ringlet bench echo` checks.
//!
//! Usage: tokio-echo PORT [CORES | CPU-LIST]
//!   CORES     the first CORES CPUs this process may run on (default 1)
//!   CPU-LIST  those CPUs, e.g. 0,2 or 0-3
//! Listens on 127.0.0.1:PORT. Used by scripts/bench-vs-epoll.sh --rust-echo.

use std::net::SocketAddr;

#[path = "../../yardstick-cpus.rs"]
mod cpus;

use cpus::{parse, pin};

use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BUF: usize = 64 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (port, cpus) = match parse(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}\nusage: tokio-echo PORT [CORES | CPU-LIST]");
            std::process::exit(2);
        }
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let threads: Vec<_> = cpus
        .iter()
        .map(|&cpu| {
            // Bound before the thread starts, so that a bad port fails at once
            // and every listener is in place before the first accept.
            let listener = listen(addr).unwrap_or_else(|e| {
                eprintln!("tokio-echo: listening on {addr}: {e}");
                std::process::exit(1);
            });
            std::thread::spawn(move || {
                pin(cpu);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                    .expect("runtime");
                rt.block_on(serve(listener));
            })
        })
        .collect();
    eprintln!(
        "tokio-echo: listening on {addr}, one current_thread runtime on each of CPUs {cpus:?}"
    );
    for t in threads {
        let _ = t.join();
    }
}

async fn serve(listener: std::net::TcpListener) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("register listener");
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(echo(stream));
            }
            // Out of descriptors and the like: keep serving the others.
            Err(e) => eprintln!("tokio-echo: accept: {e}"),
        }
    }
}

async fn echo(mut stream: TcpStream) {
    let mut buf = vec![0u8; BUF];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A non-blocking listener with SO_REUSEPORT; TCP_NODELAY is set on it and
/// inherited by every accepted connection (as ringlet and the C echoes do).
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::IPV4, Type::STREAM.nonblocking(), None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_tcp_nodelay(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}
