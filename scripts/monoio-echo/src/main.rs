//! monoio-echo — monoio's echo example (examples/echo.rs in monoio's
//! repository) on its `IoUringDriver`, in the shape the issue measures: one
//! thread per core, pinned, each with its own monoio runtime and its own
//! `SO_REUSEPORT` listener (`ListenerOpts`), and per connection a task that
//! reads into a 64 KiB buffer and `write_all`s it back. Raw echo: every byte
//! comes back as it came, which is what `ringlet bench echo` checks.
//!
//! Usage: monoio-echo PORT [CORES | CPU-LIST]
//!   CORES     the first CORES CPUs this process may run on (default 1)
//!   CPU-LIST  those CPUs, e.g. 0,2 or 0-3
//! Listens on 127.0.0.1:PORT. Used by scripts/bench-vs-epoll.sh --rust-echo.

use std::net::SocketAddr;

#[path = "../../yardstick-cpus.rs"]
mod cpus;

use cpus::{parse, pin};

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{ListenerOpts, TcpListener, TcpStream};
use monoio::{IoUringDriver, RuntimeBuilder};

const BUF: usize = 64 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (port, cpus) = match parse(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}\nusage: monoio-echo PORT [CORES | CPU-LIST]");
            std::process::exit(2);
        }
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let (ready, bound) = std::sync::mpsc::channel();
    let threads: Vec<_> = cpus
        .iter()
        .map(|&cpu| {
            let ready = ready.clone();
            std::thread::spawn(move || {
                pin(cpu);
                let mut rt = RuntimeBuilder::<IoUringDriver>::new()
                    .build()
                    .expect("io_uring runtime");
                rt.block_on(async move {
                    let opts = ListenerOpts::new().reuse_port(true).backlog(4096);
                    match TcpListener::bind_with_config(addr, &opts) {
                        Ok(listener) => {
                            let _ = ready.send(Ok(()));
                            serve(listener).await;
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                        }
                    }
                });
            })
        })
        .collect();
    // Every listener in place before saying so.
    for _ in &cpus {
        if let Err(e) = bound.recv().expect("a thread ended before binding") {
            eprintln!("monoio-echo: listening on {addr}: {e}");
            std::process::exit(1);
        }
    }
    eprintln!(
        "monoio-echo: listening on {addr}, one IoUringDriver runtime on each of CPUs {cpus:?}"
    );
    for t in threads {
        let _ = t.join();
    }
}

async fn serve(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                monoio::spawn(echo(stream));
            }
            // Out of descriptors and the like: keep serving the others.
            Err(e) => eprintln!("monoio-echo: accept: {e}"),
        }
    }
}

async fn echo(mut stream: TcpStream) {
    // As ringlet and the C echoes do.
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(BUF);
    loop {
        let (res, b) = stream.read(buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (res, b) = stream.write_all(buf).await;
        buf = b;
        if res.is_err() {
            return;
        }
        buf.clear();
    }
}
