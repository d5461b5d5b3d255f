//! Fault isolation through the public API: a panicking or failing connection
//! ends alone; a dead shard ends the server; admission and accept back-off.

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{End, Ringlet, connect, read_exact, read_to_close, read_to_end_or_reset};
use ringlet::{Backend, Buf, Connection, Protocol, Server};

/// Echoes lines, but panics on the line `boom`, and spins on `spin` until
/// told to stop (yielding as it goes, as a well-behaved CPU-bound handler
/// must), raising `spinning` meanwhile.
#[derive(Default)]
struct Touchy {
    spinning: Arc<AtomicBool>,
    stop_spinning: Arc<AtomicBool>,
}

impl Protocol for Touchy {
    async fn serve<C: Connection>(&self, conn: &mut C) -> io::Result<()> {
        let mut buf = Buf::with_capacity(1024);
        loop {
            let (n, b) = conn.read(buf).await;
            buf = b;
            if n? == 0 {
                return Ok(());
            }
            while let Some(i) = buf.filled().iter().position(|&c| c == b'\n') {
                match &buf.filled()[..i] {
                    b"boom" => panic!("boom requested"),
                    b"spin" => {
                        // Bounded, so a broken test cannot spin forever.
                        let until = Instant::now() + Duration::from_secs(60);
                        self.spinning.store(true, Ordering::SeqCst);
                        while !self.stop_spinning.load(Ordering::SeqCst) && Instant::now() < until {
                            conn.yield_if_needed().await;
                        }
                        self.spinning.store(false, Ordering::SeqCst);
                    }
                    _ => {}
                }
                let (done, b) = conn.write_prefix(buf, i + 1).await;
                buf = b;
                done?;
                buf.consume(i + 1);
            }
        }
    }
}

fn backend_of(name: &str) -> Backend {
    match name {
        "uring" => Backend::Uring,
        _ => Backend::Epoll,
    }
}

fn start_touchy(name: &str) -> (Server, SocketAddr) {
    start_touchy_with(name, Touchy::default())
}

fn start_touchy_with(name: &str, touchy: Touchy) -> (Server, SocketAddr) {
    let server = Server::builder()
        .backend(backend_of(name))
        .cores(Some(1))
        .service("touchy", "127.0.0.1:0".parse().unwrap(), touchy)
        .start()
        .expect("start");
    let addr = server.local_addr("touchy").unwrap();
    (server, addr)
}

fn ping(s: &mut TcpStream, msg: &str) {
    s.write_all(msg.as_bytes()).unwrap();
    assert_eq!(read_exact(s, msg.len()), msg.as_bytes());
}

fn a_panic_ends_only_its_own_connection(backend: &str) {
    let (server, addr) = start_touchy(backend);
    let mut a = connect(addr);
    ping(&mut a, "before\n");
    let mut b = connect(addr);
    b.write_all(b"boom\n").unwrap();
    assert_eq!(
        read_to_end_or_reset(&mut b),
        (Vec::new(), End::Reset),
        "the panicking connection was not reset"
    );
    // Same core, same executor: the neighbour and newcomers are unaffected.
    ping(&mut a, "after\n");
    for _ in 0..3 {
        let mut c = connect(addr);
        ping(&mut c, "new\n");
    }
    drop(a); // nothing left to drain
    server.stop().expect("clean stop after a handled panic");
}

fn a_busy_handler_that_yields_does_not_starve_its_neighbour(backend: &str) {
    let touchy = Touchy::default();
    let (spinning, stop) = (touchy.spinning.clone(), touchy.stop_spinning.clone());
    let (server, addr) = start_touchy_with(backend, touchy);
    let mut busy = connect(addr);
    busy.write_all(b"spin\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !spinning.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the handler never started spinning"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The one core is spinning (until told to stop): the neighbour is
    // served all the same, which it could not be if the spinner starved it.
    let mut other = connect(addr);
    ping(&mut other, "still here\n");
    assert!(
        spinning.load(Ordering::SeqCst),
        "the spinner stopped before its neighbour was served"
    );
    stop.store(true, Ordering::SeqCst);
    assert_eq!(read_exact(&mut busy, 5), b"spin\n");
    drop((busy, other)); // nothing left to drain
    server.stop().unwrap();
}

/// The fault injection is no user's API: it exists with the `internals`
/// feature only (`.ci/run` runs this file with it). Without it this says
/// it skipped.
fn a_dead_shard_stops_the_server(backend: &str) {
    #[cfg(not(feature = "internals"))]
    eprintln!("skipped on {backend}: needs --features internals (Server::inject_shard_panic)");
    #[cfg(feature = "internals")]
    {
        let server = Server::builder()
            .backend(backend_of(backend))
            .service("touchy", "127.0.0.1:0".parse().unwrap(), Touchy::default())
            .start()
            .expect("start");
        server.inject_shard_panic(0);
        // `wait` returns as soon as the shard's thread is gone (typically in
        // milliseconds); a watchdog thread bounds the test if it never does.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(server.wait()));
        let err = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("wait() did not return after a shard died")
            .expect_err("a dead shard must be an error");
        let text = err.to_string();
        assert!(text.contains("shard 0") && text.contains("died"), "{text}");
        assert!(text.contains("fault injection"), "{text}");
    }
}

fn connection_n_plus_one_waits_for_a_slot(backend: &str) {
    let server = Ringlet::serve(
        backend,
        &["--file", "off", "--cores", "1", "--max-conns", "1"],
    );
    let mut first = connect(server.echo());
    ping(&mut first, "first\n");
    let mut second = connect(server.echo());
    second.write_all(b"second\n").unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(
        second.read(&mut buf).is_err(),
        "connection 2 was served beside connection 1"
    );
    drop(first);
    second.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    assert_eq!(read_exact(&mut second, 7), b"second\n");
}

/// `--max-conns` is one cap per shard for every service together: with one
/// slot, a file request waits while an echo connection holds it.
fn max_conns_counts_every_service_of_a_shard(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), "served\n").unwrap();
    let root = dir.path().to_str().unwrap();
    let server = Ringlet::serve(
        backend,
        &["--cores", "1", "--max-conns", "1", "--root", root],
    );
    let mut echo = connect(server.echo());
    ping(&mut echo, "holding the slot\n");
    let mut file = connect(server.file());
    file.write_all(b"f\0").unwrap();
    file.shutdown(std::net::Shutdown::Write).unwrap();
    file.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 16];
    let early = file.read(&mut buf);
    assert!(
        matches!(&early, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
        "the file service was served beside a live echo connection: {early:?}"
    );
    drop(echo);
    file.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    assert_eq!(read_to_close(&mut file), b"served\n");
}

/// With file descriptors exhausted, accept backs off instead of spinning or
/// dying, existing connections go on, and service resumes when fds free up.
fn descriptor_exhaustion_backs_off_and_recovers(backend: &str) {
    use std::os::unix::process::CommandExt;
    let server = Ringlet::serve_with(backend, &["--file", "off", "--cores", "1"], |cmd| {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: 64,
                    rlim_max: 64,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let mut first = connect(server.echo());
    ping(&mut first, "first\n");
    // Far more connections than descriptors: the kernel completes the
    // handshakes (backlog) but the server cannot accept them all.
    let mut crowd: Vec<TcpStream> = (0..100).map(|_| connect(server.echo())).collect();
    server.wait_for_log(&["accept failed", "backing off"]);
    let cpu_before = cpu_ticks(server.pid());
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(server.pid()) - cpu_before;
    assert!(
        spent < 50,
        "server burned {spent} ticks in 1 s while backing off: a busy loop"
    );
    ping(&mut first, "still served\n");
    crowd.clear();
    let mut fresh = connect(server.echo());
    fresh
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut lines = BufReader::new(fresh.try_clone().unwrap());
    fresh.write_all(b"recovered\n").unwrap();
    let mut got = String::new();
    lines.read_line(&mut got).unwrap();
    assert_eq!(got, "recovered\n");
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

on_both_backends!(
    a_panic_ends_only_its_own_connection,
    a_busy_handler_that_yields_does_not_starve_its_neighbour,
    a_dead_shard_stops_the_server,
    connection_n_plus_one_waits_for_a_slot,
    max_conns_counts_every_service_of_a_shard,
    descriptor_exhaustion_backs_off_and_recovers,
);
