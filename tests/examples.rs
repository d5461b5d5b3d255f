//! The examples (`examples/*.rs`), served in-process on ephemeral loopback
//! ports: each file is included here for its protocol, so what is tested is
//! exactly what the example says. Python's `readline` behaviour for the
//! echo server, the file server's answers and refusals, and the factorial
//! worker's shared state: per-shard lists, the total across shards, and
//! tickets kept unique by a semaphore held across an `.await`.

mod common;

#[allow(dead_code)]
#[path = "../examples/echo.rs"]
mod echo;
#[allow(dead_code)]
#[path = "../examples/fileserver.rs"]
mod fileserver;
#[allow(dead_code)]
#[path = "../examples/shared.rs"]
mod shared;

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{End, connect, read_exact};
use ringlet::{Backend, Protocol, Root, Server};

/// Everything the server sends until it ends the connection, and how it
/// ended it. An interrupted read is read again: a thread that started an
/// io_uring server in this process can see `EINTR` on a blocking socket
/// read that has a timeout; any other error fails the test.
fn read_to_end_or_reset(s: &mut TcpStream) -> (Vec<u8>, End) {
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, End::Closed),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return (out, End::Reset),
            Err(e) => panic!("read failed after {} bytes: {e}", out.len()),
        }
    }
}

fn backend_of(name: &str) -> Backend {
    match name {
        "uring" => Backend::Uring,
        _ => Backend::Epoll,
    }
}

/// `protocol` served as `name` on an ephemeral port (`cores`: how many shards).
fn start(backend: &str, cores: Option<usize>, protocol: impl Protocol) -> (Server, SocketAddr) {
    let server = Server::builder()
        .backend(backend_of(backend))
        .cores(cores)
        .service("factorial", "127.0.0.1:0".parse().unwrap(), protocol)
        .start()
        .expect("start");
    let addr = server.local_addr("factorial").unwrap();
    (server, addr)
}

/// One line from the server, without its `\n`; a close or a reset fails.
fn line(r: &mut impl BufRead) -> String {
    let mut s = String::new();
    r.read_line(&mut s).expect("a line");
    assert!(s.ends_with('\n'), "the server closed mid-line: {s:?}");
    s.pop();
    s
}

// ---- echo -------------------------------------------------------------

/// The article's transcript: each line comes straight back, before the next.
fn echo_answers_each_line_as_it_comes(backend: &str) {
    let (_server, addr) = start(backend, Some(1), echo::LineEcho);
    let mut s = connect(addr);
    let mut lines = BufReader::new(s.try_clone().unwrap());
    for word in ["foo", "bar", "qux"] {
        s.write_all(format!("{word}\n").as_bytes()).unwrap();
        assert_eq!(line(&mut lines), word);
    }
}

/// Python's `readline` returns a last line without its newline: it is
/// echoed, then the server ends with a FIN.
fn echo_returns_a_last_line_without_newline_then_a_fin(backend: &str) {
    let (_server, addr) = start(backend, Some(1), echo::LineEcho);
    let mut s = connect(addr);
    s.write_all(b"foo\nabc").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        read_to_end_or_reset(&mut s),
        (b"foo\nabc".to_vec(), End::Closed)
    );
}

/// A line 25 times the reader's 4 KiB goes back whole (in pieces), and the
/// session goes on: no `InvalidInput`, no reset.
fn echo_returns_a_100_kib_line_whole(backend: &str) {
    let (_server, addr) = start(backend, Some(1), echo::LineEcho);
    let mut s = connect(addr);
    let mut long: Vec<u8> = common::pattern(100 * 1024, 7)
        .into_iter()
        .map(|b| if b == b'\n' { b'.' } else { b })
        .collect();
    long.push(b'\n');
    let mut w = s.try_clone().unwrap();
    let sent = long.clone();
    // Sent from a thread: the echo comes back while it is being sent.
    let writer = std::thread::spawn(move || {
        w.write_all(&sent).unwrap();
        w.write_all(b"after\n").unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let got = read_exact(&mut s, long.len());
    assert!(got == long, "the long line came back changed");
    writer.join().unwrap();
    assert_eq!(
        read_to_end_or_reset(&mut s),
        (b"after\n".to_vec(), End::Closed)
    );
}

// ---- file server --------------------------------------------------------

/// A path up to NUL gets the file, then a FIN; a missing file, an over-long
/// request (no NUL within 4 KiB) and a path cut by the close each end in a
/// reset with nothing sent; the server serves on.
fn fileserver_sends_the_file_and_refuses_the_rest(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("y"), "foo bar qux\n").unwrap();
    let root = Root::open(dir.path()).unwrap();
    let (_server, addr) = start(backend, Some(1), fileserver::FileServer(root));
    let ask = |request: &[u8]| {
        let mut s = connect(addr);
        s.write_all(request).unwrap();
        let _ = s.shutdown(Shutdown::Write);
        read_to_end_or_reset(&mut s)
    };
    assert_eq!(ask(b"/y\0"), (b"foo bar qux\n".to_vec(), End::Closed));
    assert_eq!(ask(b"/x\0"), (Vec::new(), End::Reset), "missing");
    assert_eq!(ask(&[b'a'; 5000]), (Vec::new(), End::Reset), "too long");
    assert_eq!(
        ask(b"/y"),
        (Vec::new(), End::Reset),
        "no NUL before the close"
    );
    assert_eq!(ask(b""), (Vec::new(), End::Closed), "asked for nothing");
    assert_eq!(ask(b"/y\0"), (b"foo bar qux\n".to_vec(), End::Closed));
}

// ---- the factorial worker ----------------------------------------------

fn factorial(n: u32) -> u128 {
    (1..=n as u128).product()
}

/// 50 clients at once, 20 factorials each: every answer right; the total
/// across shards (the monitor's) is the 1000 asked; and the shards' lists
/// together hold every result exactly once, each shard's as many as it
/// counted.
fn every_factorial_is_answered_counted_and_listed_once(backend: &str) {
    const CLIENTS: u32 = 50;
    const EACH: u32 = 20;
    let (server, addr) = start(backend, None, shared::Factorials { locked: true });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let mut r = BufReader::new(s.try_clone().unwrap());
                for i in 0..EACH {
                    let n = (c * EACH + i) % 35;
                    s.write_all(format!("{n}\n").as_bytes()).unwrap();
                    assert_eq!(line(&mut r), factorial(n).to_string(), "{n}!");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let asked = (CLIENTS * EACH) as u64;

    // The total across shards: each counted its own; the monitor adds up.
    let monitor = server.monitor();
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared::computed(&monitor) < asked && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(shared::computed(&monitor), asked);

    // Each shard's list, by connecting until every result was seen (a
    // connection lands on the shard the kernel picks).
    let mut lists: HashMap<String, Vec<(u32, u128)>> = HashMap::new();
    for _ in 0..500 {
        if lists.values().map(Vec::len).sum::<usize>() as u64 >= asked {
            break;
        }
        let mut s = connect(addr);
        let mut r = BufReader::new(s.try_clone().unwrap());
        s.write_all(b"list\n").unwrap();
        let head = line(&mut r);
        let (shard, count) = head.rsplit_once(": ").expect("shard ID: K results");
        let count: usize = count.strip_suffix(" results").unwrap().parse().unwrap();
        let entries = (0..count)
            .map(|_| {
                let l = line(&mut r);
                let (n, f) = l.split_once(' ').unwrap();
                (n.parse().unwrap(), f.parse().unwrap())
            })
            .collect();
        lists.insert(shard.to_string(), entries);
    }
    let mut got: Vec<(u32, u128)> = lists.values().flatten().copied().collect();
    got.sort();
    let mut want: Vec<(u32, u128)> = (0..CLIENTS * EACH)
        .map(|k| (k % 35, factorial(k % 35)))
        .collect();
    want.sort();
    assert!(
        got == want,
        "{} results listed, {} asked",
        got.len(),
        want.len()
    );

    // Each shard listed what it counted.
    let mut listed: Vec<u64> = lists.values().map(|l| l.len() as u64).collect();
    let mut counted: Vec<u64> = monitor
        .snapshot()
        .shards
        .iter()
        .map(|s| s.services[0].outcomes[ringlet::Outcome::Served.index()].1)
        .filter(|&n| n > 0)
        .collect();
    listed.sort();
    counted.sort();
    assert_eq!(listed, counted);
}

/// One client's ticket: `offer`, then `take`.
struct Client {
    s: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        let s = connect(addr);
        let r = BufReader::new(s.try_clone().unwrap());
        Client { s, r }
    }

    fn say(&mut self, what: &str) {
        self.s.write_all(format!("{what}\n").as_bytes()).unwrap();
    }

    fn hear(&mut self) -> String {
        line(&mut self.r)
    }
}

/// With the semaphore: B asks for a ticket while A holds an offer; B is
/// offered the next one only once A took its own.
fn a_ticket_is_offered_once_while_the_semaphore_is_held(backend: &str) {
    let (_server, addr) = start(backend, Some(1), shared::Factorials { locked: true });
    let (mut a, mut b) = (Client::new(addr), Client::new(addr));
    a.say("ticket");
    assert_eq!(a.hear(), "offer 0");
    b.say("ticket"); // waits on the semaphore that A holds across its `.await`
    a.say("take");
    assert_eq!(a.hear(), "took 0");
    assert_eq!(b.hear(), "offer 1", "B was offered A's ticket");
    b.say("take");
    assert_eq!(b.hear(), "took 1");
}

/// What goes wrong without it: B is offered A's ticket while A is between
/// its offer and its take, both take the same one, and an update is lost.
fn without_the_semaphore_two_clients_take_the_same_ticket(backend: &str) {
    let (_server, addr) = start(backend, Some(1), shared::Factorials { locked: false });
    let (mut a, mut b) = (Client::new(addr), Client::new(addr));
    a.say("ticket");
    assert_eq!(a.hear(), "offer 0");
    b.say("ticket");
    assert_eq!(b.hear(), "offer 0", "the race the semaphore is for");
    a.say("take");
    b.say("take");
    assert_eq!((a.hear(), b.hear()), ("took 0".into(), "took 0".into()));
    let mut c = Client::new(addr);
    c.say("ticket");
    assert_eq!(c.hear(), "offer 1", "two taken, one counted");
}

/// 20 clients at once on one shard, 5 tickets each: 100 tickets, each
/// number once.
fn concurrent_tickets_are_all_distinct(backend: &str) {
    let (_server, addr) = start(backend, Some(1), shared::Factorials { locked: true });
    let clients: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Client::new(addr);
                (0..5)
                    .map(|_| {
                        c.say("ticket");
                        let offer = c.hear();
                        c.say("take");
                        let took = c.hear();
                        assert_eq!(offer.replace("offer", "took"), took);
                        took["took ".len()..].parse::<u64>().unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    all.sort();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
}

on_both_backends!(
    echo_answers_each_line_as_it_comes,
    echo_returns_a_last_line_without_newline_then_a_fin,
    echo_returns_a_100_kib_line_whole,
    fileserver_sends_the_file_and_refuses_the_rest,
    every_factorial_is_answered_counted_and_listed_once,
    a_ticket_is_offered_once_while_the_semaphore_is_held,
    without_the_semaphore_two_clients_take_the_same_ticket,
    concurrent_tickets_are_all_distinct,
);
