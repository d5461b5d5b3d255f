//! The article's third program, the factorial worker, written with the
//! ringlet library: shared state without locks, a total across cores, and
//! the one case that needs a lock (a semaphore held across an `.await`).
//! Run: `cargo run --example shared`, then `nc 127.0.0.1 6000` and type:
//!
//! - a number `N` (0 to 34): the answer is `N!`, and `(N, N!)` is appended
//!   to this shard's list;
//! - `list`: this shard's list, a line `shard ID: K results` and then K
//!   lines `N N!`;
//! - `ticket`: the shard offers its next ticket number (`offer T`); answer
//!   `take` (any line) and it is yours (`took T`). Tickets are unique:
//!   between the offer and the take, other clients wait (`--no-lock`
//!   drops the lock, and two clients can take the same ticket).
//!
//! Every few seconds the main thread prints how many factorials were
//! computed on all shards together.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use ringlet::{Connection, Monitor, Outcome, Protocol, Reader, Server};
use tokio::sync::Semaphore;

thread_local! {
    /// This shard's results. A shard is one thread, and a task gives way
    /// to the other connections on it only at an `.await`: an update with
    /// no `.await` inside runs whole, as the article's greenthreads do.
    /// So a `RefCell` does, no mutex; no other core ever sees this list.
    static RESULTS: RefCell<Vec<(u32, u128)>> = const { RefCell::new(Vec::new()) };

    /// This shard's next ticket, and the semaphore that makes an update
    /// of it with an `.await` in the middle whole again.
    static TICKETS: Rc<Tickets> = Rc::new(Tickets {
        next: Cell::new(0),
        lock: Semaphore::new(1),
    });
}

struct Tickets {
    next: Cell<u64>,
    /// tokio's semaphore only needs a waker, so it works on both backends.
    lock: Semaphore,
}

/// The factorial worker. `locked: false` drops the tickets' lock.
pub struct Factorials {
    pub locked: bool,
}

impl Protocol for Factorials {
    async fn serve<C: Connection>(&self, conn: &mut C) -> io::Result<()> {
        let mut reader = Reader::with_capacity(256);
        while let Some(line) = reader.read_line(conn).await? {
            let answer = match line.trim_ascii() {
                b"list" => list(),
                b"ticket" => match self.ticket(conn, &mut reader).await? {
                    Some(answer) => answer,
                    None => return Ok(()), // gone before taking it
                },
                number => match parse(number).and_then(factorial) {
                    Some((n, f)) => {
                        // No `.await` between the borrow and its end.
                        RESULTS.with(|r| r.borrow_mut().push((n, f)));
                        conn.record(Outcome::Served); // the total, below
                        format!("{f}\n")
                    }
                    None => "a number from 0 to 34, list or ticket\n".to_string(),
                },
            };
            conn.write_bytes(answer.as_bytes()).await?;
        }
        Ok(())
    }
}

impl Factorials {
    /// Offer the shard's next ticket, wait for the client to take it, then
    /// count it taken: a read-modify-write with I/O in the middle. Other
    /// connections on this shard run during each `.await`; without the
    /// semaphore, one of them could be offered the same ticket meanwhile.
    async fn ticket<C: Connection>(
        &self,
        conn: &mut C,
        reader: &mut Reader,
    ) -> io::Result<Option<String>> {
        let tickets = TICKETS.with(Rc::clone);
        // Held until this function returns, across the `.await`s below.
        let _permit = match self.locked {
            true => Some(tickets.lock.acquire().await.expect("never closed")),
            false => None,
        };
        let offered = tickets.next.get();
        conn.write_bytes(format!("offer {offered}\n").as_bytes())
            .await?;
        if reader.read_line(conn).await?.is_none() {
            return Ok(None);
        }
        tickets.next.set(offered + 1);
        Ok(Some(format!("took {offered}\n")))
    }
}

/// This shard's list, with the shard's name.
fn list() -> String {
    RESULTS.with(|r| {
        let r = r.borrow();
        let shard = std::thread::current().id();
        let mut out = format!("shard {shard:?}: {} results\n", r.len());
        for (n, f) in r.iter() {
            out.push_str(&format!("{n} {f}\n"));
        }
        out
    })
}

fn parse(number: &[u8]) -> Option<u32> {
    std::str::from_utf8(number).ok()?.parse().ok()
}

/// `(n, n!)`, for the `n` whose factorial fits a `u128` (up to 34).
fn factorial(n: u32) -> Option<(u32, u128)> {
    let f = (1..=n as u128).try_fold(1u128, |f, k| f.checked_mul(k))?;
    Some((n, f))
}

/// Factorials computed on all shards so far. Each shard counts its own
/// (`Connection::record`: a single-writer counter, nothing shared on the
/// hot path), and the monitor adds them up for a reader on any thread.
pub fn computed(monitor: &Monitor) -> u64 {
    let snapshot = monitor.snapshot();
    let services = snapshot.shards.iter().flat_map(|s| &s.services);
    services
        .filter(|s| s.service == "factorial")
        .map(|s| s.outcomes[Outcome::Served.index()].1)
        .sum()
}

fn main() -> Result<(), ringlet::ServerError> {
    tracing_subscriber::fmt().init(); // failed connections are logged
    let locked = !std::env::args().any(|a| a == "--no-lock");
    let addr = "127.0.0.1:6000".parse().unwrap();
    let server = Server::builder()
        .service("factorial", addr, Factorials { locked })
        .start()?;
    let monitor = server.monitor();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(5));
            println!("factorials computed on all shards: {}", computed(&monitor));
        }
    });
    println!("server socket listening on port 6000");
    server.wait()
}
