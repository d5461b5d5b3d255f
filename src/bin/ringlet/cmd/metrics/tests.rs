//! `ringlet_panics_total` counts: the binary has no way to make a
//! connection panic (its protocols do not, and the only fault injection,
//! `Server::inject_shard_panic`, kills a shard outside any connection), so
//! this runs the real endpoint on a library server whose protocol panics on
//! request, and scrapes it over a real socket.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringlet::{Backend, Buf, Connection, Protocol, Server};

/// Reads one message: `boom` panics, `fail` is an error, else a clean end.
struct Touchy;

impl Protocol for Touchy {
    async fn serve<C: Connection>(&self, conn: &mut C) -> io::Result<()> {
        let (n, buf) = conn.read(Buf::with_capacity(64)).await;
        n?;
        match buf.filled() {
            b"boom" => panic!("boom requested"),
            b"fail" => Err(io::Error::other("fail requested")),
            _ => Ok(()),
        }
    }
}

/// Send `msg` and wait (bounded) for the server to end the connection.
fn send(addr: SocketAddr, msg: &[u8]) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(msg).unwrap();
    let mut sink = Vec::new();
    match s.read_to_end(&mut sink) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{msg:?}: {e}"),
    }
}

/// `ringlet_{name}_total` of the `touchy` service, from a whole scrape.
fn figure(metrics: SocketAddr, name: &str) -> u64 {
    let mut s = TcpStream::connect(metrics).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page)
        .expect("a whole scrape, no reset");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n") && page.ends_with("# EOF\n"));
    let series = format!("ringlet_{name}_total{{shard=\"0\",service=\"touchy\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series:?} in {page}"))
        .parse()
        .unwrap()
}

/// Wait (bounded) until `name` reads `want`.
fn wait_for(metrics: SocketAddr, name: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = figure(metrics, name);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{name}: {got}, never {want}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn panics_are_counted(backend: Backend) {
    let server = Server::builder()
        .backend(backend)
        .cores(Some(1))
        .service("touchy", "127.0.0.1:0".parse().unwrap(), Touchy)
        .start()
        .expect("start");
    let addr = server.local_addr("touchy").unwrap();
    let metrics = super::start_on(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        server.monitor(),
        server.backend(),
        std::sync::Arc::new(|| Ok(())),
        None,
    )
    .unwrap();
    send(addr, b"hello");
    wait_for(metrics, "connections_accepted", 1);
    assert_eq!(figure(metrics, "panics"), 0);
    send(addr, b"boom");
    wait_for(metrics, "panics", 1);
    // An error is a failure but not a panic; every panic is a failure.
    send(addr, b"fail");
    send(addr, b"boom");
    wait_for(metrics, "connections_accepted", 4);
    wait_for(metrics, "panics", 2);
    wait_for(metrics, "connections_failed", 3);
    server.stop().expect("a clean stop after handled panics");
}

#[test]
fn panics_are_counted_on_uring() {
    panics_are_counted(Backend::Uring);
}

#[test]
fn panics_are_counted_on_epoll() {
    panics_are_counted(Backend::Epoll);
}
