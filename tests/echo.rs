//! The echo server: byte-exact under concurrency, bounded memory, fairness.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Ringlet, connect, pattern, raise_nofile, read_exact, read_to_close, status_kib};

/// 200 clients at once, each sending its own lines and checking every byte back.
fn two_hundred_concurrent_clients_get_their_own_bytes_back(backend: &str) {
    let server = Ringlet::serve(backend, &["--file", "off"]);
    let addr = server.echo();
    let clients: Vec<_> = (0..200u64)
        .map(|id| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                for round in 0..20u64 {
                    // Lines of varied length, newline-terminated, no inner newlines.
                    let mut line: Vec<u8> = pattern(
                        1 + ((id * 31 + round * 7) % 900) as usize,
                        id * 1000 + round,
                    )
                    .into_iter()
                    .map(|b| if b == b'\n' { b'.' } else { b })
                    .collect();
                    line.push(b'\n');
                    s.write_all(&line).unwrap();
                    assert_eq!(
                        read_exact(&mut s, line.len()),
                        line,
                        "client {id} round {round}"
                    );
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a client saw wrong bytes");
    }
}

/// A last line without a newline is echoed when the client shuts its side.
fn a_final_line_without_newline_is_echoed_at_eof(backend: &str) {
    let server = Ringlet::serve(backend, &["--file", "off"]);
    let mut s = connect(server.echo());
    s.write_all(b"one\ntwo\nthree").unwrap();
    assert_eq!(read_exact(&mut s, 8), b"one\ntwo\n");
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut s), b"three");
}

/// Line mode holds back a partial line until its newline arrives.
fn line_mode_waits_for_the_newline(backend: &str) {
    let server = Ringlet::serve(backend, &["--file", "off"]);
    let mut s = connect(server.echo());
    s.write_all(b"hel").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    let early = s.read(&mut buf);
    assert!(early.is_err(), "got {early:?} before the newline");
    s.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    s.write_all(b"lo\n").unwrap();
    assert_eq!(read_exact(&mut s, 6), b"hello\n");
}

/// Raw mode writes back whatever arrives, newline or not.
fn raw_mode_echoes_partial_lines_at_once(backend: &str) {
    let server = Ringlet::serve(backend, &["--file", "off", "--echo-mode", "raw"]);
    let mut s = connect(server.echo());
    s.write_all(b"no newline here").unwrap();
    assert_eq!(read_exact(&mut s, 15), b"no newline here");
}

/// Send `data` on one thread while reading the echo on another; returns what came back.
fn echo_through(stream: TcpStream, data: Arc<Vec<u8>>) -> Vec<u8> {
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        for chunk in data.chunks(256 * 1024) {
            writer.write_all(chunk).unwrap();
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut reader = stream;
    let got = read_to_close(&mut reader);
    sender.join().unwrap();
    got
}

/// A 10 MB "line" with no newline is echoed in full, through a 64 KiB buffer,
/// without the server's memory growing by anything like 10 MB.
fn a_ten_megabyte_line_is_echoed_whole_with_bounded_memory(backend: &str) {
    for mode in ["line", "raw"] {
        let server = Ringlet::serve(backend, &["--file", "off", "--echo-mode", mode]);
        let before = status_kib(server.pid(), "VmRSS");
        let data: Arc<Vec<u8>> = Arc::new(
            pattern(10_000_000, 7)
                .into_iter()
                .map(|b| if b == b'\n' { b'x' } else { b })
                .collect(),
        );
        let got = echo_through(connect(server.echo()), data.clone());
        assert_eq!(got.len(), data.len(), "{mode} mode");
        assert!(got == *data, "{mode} mode: bytes differ");
        let peak = status_kib(server.pid(), "VmHWM");
        assert!(
            peak < before + 8 * 1024,
            "{mode} mode: peak RSS {peak} KiB vs {before} KiB before: the line was held"
        );
    }
}

/// A client that never stops sending must not starve another on the same core.
fn a_flooding_client_does_not_starve_its_neighbour(backend: &str) {
    let server = Ringlet::serve(
        backend,
        &["--file", "off", "--cores", "1", "--echo-mode", "raw"],
    );
    let addr = server.echo();
    let stop = Arc::new(AtomicBool::new(false));

    let flood = connect(addr);
    let mut flood_reader = flood.try_clone().unwrap();
    let stop_r = stop.clone();
    let drain = std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        while !stop_r.load(Ordering::Relaxed) {
            match flood_reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n as u64,
            }
        }
        total
    });
    let stop_w = stop.clone();
    let mut flood_writer = flood;
    let pump = std::thread::spawn(move || {
        let block = vec![b'z'; 64 * 1024];
        let deadline = Instant::now() + Duration::from_secs(20);
        while !stop_w.load(Ordering::Relaxed) && Instant::now() < deadline {
            if flood_writer.write_all(&block).is_err() {
                break;
            }
        }
        let _ = flood_writer.shutdown(Shutdown::Both);
    });
    // Let the flood get going, then ping-pong beside it.
    std::thread::sleep(Duration::from_millis(300));
    let mut s = connect(addr);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for i in 0..20 {
        let msg = format!("ping {i}\n");
        s.write_all(msg.as_bytes()).unwrap();
        assert_eq!(
            read_exact(&mut s, msg.len()),
            msg.as_bytes(),
            "ping {i} starved"
        );
    }
    stop.store(true, Ordering::Relaxed);
    pump.join().unwrap();
    let flooded = drain.join().unwrap();
    assert!(
        flooded > 1 << 20,
        "the flood only moved {flooded} bytes: it was not flooding"
    );
}

on_both_backends!(
    two_hundred_concurrent_clients_get_their_own_bytes_back,
    a_final_line_without_newline_is_echoed_at_eof,
    line_mode_waits_for_the_newline,
    raw_mode_echoes_partial_lines_at_once,
    a_ten_megabyte_line_is_echoed_whole_with_bounded_memory,
    a_flooding_client_does_not_starve_its_neighbour,
);

/// On the ring, an idle connection holds no receive buffer: the read that
/// waits has parked it, and the kernel picks a shard buffer only when bytes
/// arrive. 2,000 connections that each echoed a line and went quiet must
/// cost far less than the touched pages a held 64 KiB buffer pins (here,
/// 5.3 KiB per connection with parking disabled; 1.3-1.7 KiB with it).
///
/// Parking needs provided-buffer rings (Linux 5.19). Before that (the
/// kernel matrix runs 5.10) each connection keeps the pages its buffer
/// touched, about 6 KiB: still bounded, and the test says which case it saw.
#[test]
fn idle_connections_hold_no_buffer_on_the_ring() {
    let probe = std::process::Command::new(env!("CARGO_BIN_EXE_ringlet"))
        .arg("probe")
        .output()
        .unwrap();
    let parks = String::from_utf8_lossy(&probe.stdout).contains("buffer rings:        yes");
    let per_conn = idle_rss_per_connection("uring", 3072);
    let bound = if parks { 3072 } else { 12 * 1024 };
    eprintln!("buffer rings: {parks}; {per_conn} bytes of RSS per idle connection");
    assert!(
        per_conn < bound,
        "{per_conn} bytes of RSS per idle connection on the ring (bound {bound}, buffer rings: {parks})"
    );
}

/// The epoll backend holds its 64 KiB buffer while idle, but a short line
/// must touch only a page or two of it (about 15 KiB per connection in
/// all): a buffer zeroed by hand instead of by calloc costs 67 KiB.
#[test]
fn an_idle_buffer_costs_only_the_pages_it_touched_on_epoll() {
    let per_conn = idle_rss_per_connection("epoll", 32 * 1024);
    assert!(
        per_conn < 32 * 1024,
        "{per_conn} bytes of RSS per idle connection on epoll"
    );
}

/// Server RSS per connection after 2,000 connections each echoed a line
/// and went quiet. Memory freed after the burst goes back to the kernel on
/// a quiet heartbeat: it waits (up to 10 s) for the figure to fall to
/// `goal`, and returns the lowest it saw.
fn idle_rss_per_connection(backend: &str, goal: u64) -> u64 {
    let hard = raise_nofile();
    let n = 2000.min((hard.saturating_sub(200) / 2) as usize);
    assert!(n >= 500, "RLIMIT_NOFILE {hard} is too low for this test");
    let server = Ringlet::serve(
        backend,
        &["--file", "off", "--cores", "1", "--idle-timeout", "600"],
    );
    let mut warm = connect(server.echo());
    warm.write_all(b"warm\n").unwrap();
    assert_eq!(read_exact(&mut warm, 5), b"warm\n");
    let before = settled_rss(server.pid());
    let mut conns: Vec<TcpStream> = (0..n)
        .map(|i| {
            let mut s = connect(server.echo());
            s.write_all(format!("{i:05}\n").as_bytes()).unwrap();
            s
        })
        .collect();
    for (i, s) in conns.iter_mut().enumerate() {
        assert_eq!(read_exact(s, 6), format!("{i:05}\n").as_bytes());
    }
    let per_conn = |rss: u64| rss.saturating_sub(before) * 1024 / n as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut with = status_kib(server.pid(), "VmRSS");
    while per_conn(with) >= goal && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        with = with.min(status_kib(server.pid(), "VmRSS"));
    }
    eprintln!("{backend}: {before} KiB before, {with} KiB with {n} idle connections");
    per_conn(with)
}

/// The server's RSS once two readings 300 ms apart agree (at most 5 s).
fn settled_rss(pid: u32) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = status_kib(pid, "VmRSS");
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = status_kib(pid, "VmRSS");
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}
