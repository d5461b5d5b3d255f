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
    eprintln!("monoio-echo: listening on {addr}, one IoUringDriver runtime on each of CPUs {cpus:?}");
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

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("monoio-echo: pinning to CPU {cpu}: {}", std::io::Error::last_os_error());
            std::process::exit(1);
        }
    }
}

/// The CPUs this process may run on, in order.
fn allowed() -> Vec<usize> {
    // SAFETY: as in pin; sched_getaffinity fills the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

fn parse(args: &[String]) -> Result<(u16, Vec<usize>), String> {
    let port = args
        .get(1)
        .and_then(|p| p.parse().ok())
        .ok_or("the first argument must be a port")?;
    if args.len() > 3 {
        return Err("too many arguments".into());
    }
    let spec = args.get(2).map_or("1", String::as_str);
    let cpus = if spec.contains([',', '-']) {
        let mut cpus = Vec::new();
        for part in spec.split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b): (usize, usize) = a
                .parse()
                .ok()
                .zip(b.parse().ok())
                .ok_or(format!("not a CPU list: {spec}"))?;
            cpus.extend(a..=b);
        }
        cpus
    } else {
        let n: usize = spec.parse().map_err(|_| format!("not a number of cores: {spec}"))?;
        let allowed = allowed();
        if n == 0 || n > allowed.len() {
            return Err(format!("{n} cores asked, {} CPUs allowed here", allowed.len()));
        }
        allowed[..n].to_vec()
    };
    if cpus.is_empty() {
        return Err("no CPUs".into());
    }
    Ok((port, cpus))
}
