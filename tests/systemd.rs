//! ringlet under systemd, without systemd as PID 1: notifications on a
//! NOTIFY_SOCKET of our own, socket activation through
//! `systemd-socket-activate`, graceful drain, journal log lines.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{End, Ringlet, connect, fetch, pattern, read_exact, read_to_end_or_reset};

/// Collect notification datagrams until `until` says stop or time runs out.
fn collect(sock: &UnixDatagram, limit: Duration, until: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !until(&got) {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

fn position(msgs: &[String], what: &str) -> usize {
    msgs.iter()
        .position(|m| m.lines().any(|l| l.starts_with(what)))
        .unwrap_or_else(|| panic!("no {what} in {msgs:?}"))
}

fn notifications_in_order(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut server = Ringlet::serve_with(backend, &["--file", "off"], |cmd| {
        cmd.env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "400000");
    });
    // Some traffic, so STATUS has something to say.
    let mut s = connect(server.echo());
    s.write_all(b"hello\n").unwrap();
    assert_eq!(read_exact(&mut s, 6), b"hello\n");
    let mut msgs = collect(&sock, Duration::from_secs(10), |m| {
        m.iter().filter(|x| x.contains("WATCHDOG=1")).count() >= 2
    });
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    drop(s);
    msgs.extend(collect(&sock, Duration::from_secs(10), |m| {
        m.iter().any(|x| x.contains("STOPPING=1"))
    }));
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));

    let ready = position(&msgs, "READY=1");
    let status = position(&msgs, "STATUS=serving: ");
    let watchdog = position(&msgs, "WATCHDOG=1");
    let stopping = position(&msgs, "STOPPING=1");
    assert!(
        ready <= status && status < watchdog && watchdog < stopping,
        "{msgs:?}"
    );
    assert!(msgs[stopping].contains("STATUS=draining: "), "{msgs:?}");
}

/// Two free loopback ports (bound then released).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

/// `systemd-socket-activate` listening on two ports, running ringlet on the
/// passed sockets; killed when dropped.
struct Activated {
    child: std::process::Child,
    echo: SocketAddr,
    file: SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Activated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn activate(backend: &str, fdnames: Option<&str>, root: &std::path::Path) -> Activated {
    // Ports are picked free, then released: another test may take one first,
    // so retry until systemd-socket-activate itself reports both listening.
    for _ in 0..5 {
        if let Some(a) = try_activate(backend, fdnames, root) {
            return a;
        }
    }
    panic!("systemd-socket-activate could not listen on free ports five times");
}

fn try_activate(backend: &str, fdnames: Option<&str>, root: &std::path::Path) -> Option<Activated> {
    let (pe, pf) = free_ports();
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args([
        "-l",
        &format!("127.0.0.1:{pe}"),
        "-l",
        &format!("127.0.0.1:{pf}"),
    ]);
    if let Some(names) = fdnames {
        cmd.arg(format!("--fdname={names}"));
    }
    cmd.args([
        "-E",
        "RINGLET_LOG=debug",
        "--",
        env!("CARGO_BIN_EXE_ringlet"),
        "serve",
    ])
    .args([
        "--backend",
        backend,
        "--cores",
        "2",
        "--root",
        root.to_str().unwrap(),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("systemd-socket-activate (systemd tools) must be installed");
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });
    let echo: SocketAddr = format!("127.0.0.1:{pe}").parse().unwrap();
    let file: SocketAddr = format!("127.0.0.1:{pf}").parse().unwrap();
    let mut a = Activated {
        child,
        echo,
        file,
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = a.log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let listening = |p: u16| {
            lines
                .iter()
                .any(|l| l.contains(&format!("Listening on 127.0.0.1:{p} ")))
        };
        if listening(pe) && listening(pf) {
            return Some(a);
        }
        if a.child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            return None; // a port was taken meanwhile; Drop reaps the child
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_log(log: &std::sync::Mutex<Vec<String>>, parts: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = || log.lock().unwrap_or_else(|p| p.into_inner()).clone();
    while !lines().iter().any(|l| parts.iter().all(|p| l.contains(p))) {
        assert!(
            Instant::now() < deadline,
            "no log line with {parts:?}:\n{}",
            lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn socket_activation_serves_both_protocols_on_every_shard(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.txt"), "from an activated server\n").unwrap();
    for names in [Some("echo:file"), Some("file:echo"), None] {
        let a = activate(backend, names, dir.path());
        // With names, the names decide; file:echo swaps which port is which.
        let (echo, file) = if names == Some("file:echo") {
            (a.file, a.echo)
        } else {
            (a.echo, a.file)
        };
        // Connections arriving one at a time (a burst is drained by whichever
        // shard is awake: the kernel hands each to one waiting shard).
        let mut conns = Vec::new();
        for i in 0..40 {
            let mut c = connect(echo);
            let msg = format!("conn {i}\n");
            c.write_all(msg.as_bytes()).unwrap();
            assert_eq!(read_exact(&mut c, msg.len()), msg.as_bytes());
            conns.push(c);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(fetch(file, b"/f.txt"), b"from an activated server\n");
        wait_log(&a.log, &["echo listening", "socket from systemd"]);
        // Every shard accepts on the one inherited socket.
        wait_log(&a.log, &["echo: shard 0 accepted"]);
        wait_log(&a.log, &["echo: shard 1 accepted"]);
    }
}

/// The HTTP service takes the socket named `http` (`FileDescriptorName=`),
/// whichever place it has; every shard accepts on it, and a GET through it
/// gets the file. A name no protocol has stops the start, naming them all.
fn socket_activation_serves_http_by_its_name(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.txt"), "over activated http\n").unwrap();
    for names in ["http:echo", "echo:http"] {
        let a = activate(backend, Some(names), dir.path());
        // `activate` listens on two ports, in order: the names decide.
        let (http, echo) = if names == "http:echo" {
            (a.echo, a.file)
        } else {
            (a.file, a.echo)
        };
        // One at a time, so that each shard gets its turn (see above).
        for i in 0..40 {
            let mut c = connect(http);
            c.write_all(b"GET /f.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .unwrap();
            let page = String::from_utf8(common::read_to_close(&mut c)).unwrap();
            assert!(
                page.starts_with("HTTP/1.1 200 ")
                    && page.contains("\r\nContent-Length: 20\r\n")
                    && page.ends_with("\r\n\r\nover activated http\n"),
                "{names}, GET {i}: {page:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut c = connect(echo);
        c.write_all(b"echo too\n").unwrap();
        assert_eq!(read_exact(&mut c, 9), b"echo too\n");
        wait_log(
            &a.log,
            &[&format!("http listening on {http} "), "socket from systemd"],
        );
        wait_log(&a.log, &["http: shard 0 accepted"]);
        wait_log(&a.log, &["http: shard 1 accepted"]);
    }
    let mut a = activate(backend, Some("http:nope"), dir.path());
    // systemd-socket-activate starts the service at the first connection.
    let _first = TcpStream::connect(a.echo).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = a.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "started with a socket named nope"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(1));
    wait_log(&a.log, &["\"nope\"", "echo, file, http"]);
}

fn sigterm_lets_a_stream_in_progress_finish_and_refuses_newcomers(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(32 << 20, 11);
    std::fs::write(dir.path().join("big"), &data).unwrap();
    let mut server = Ringlet::serve(
        backend,
        &["--echo", "off", "--root", dir.path().to_str().unwrap()],
    );
    let addr = server.file();
    let mut s = connect(addr);
    s.write_all(b"big\0").unwrap();
    let mut got = vec![0u8; 1 << 20];
    s.read_exact(&mut got).unwrap();
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    server.wait_for_log(&["stopped accepting", "waiting up to"]);
    // New connections are refused once the drain began.
    let refused = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        TcpStream::connect(addr).is_err()
    });
    assert!(refused, "a new connection was accepted during the drain");
    // The stream in progress completes, read slowly, byte for byte.
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("stream cut during the drain after {} bytes: {e}", got.len()),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(got.len(), data.len());
    assert!(got == data);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
}

fn a_client_that_never_finishes_is_cut_at_the_timeout(backend: &str) {
    let mut server = Ringlet::serve(backend, &["--file", "off", "--shutdown-timeout", "1"]);
    let mut idle = connect(server.echo());
    idle.write_all(b"still here\n").unwrap();
    assert_eq!(read_exact(&mut idle, 11), b"still here\n");
    // Half a line: in the middle of a request, not idle between two (an
    // idle one the drain closes at once), so the drain waits for it.
    idle.write_all(b"and half a li").unwrap();
    let started = Instant::now();
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "exited after {took:?}, before the timeout"
    );
    server.wait_for_log(&["connection(s) still open: the drain's 1s are up"]);
    // Cut by the drain: a reset, not an end of file.
    assert_eq!(read_to_end_or_reset(&mut idle), (Vec::new(), End::Reset));
}

fn a_second_signal_stops_at_once(backend: &str) {
    let mut server = Ringlet::serve(backend, &["--file", "off", "--shutdown-timeout", "30"]);
    let mut idle = connect(server.echo());
    idle.write_all(b"here\n").unwrap();
    assert_eq!(read_exact(&mut idle, 5), b"here\n");
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    server.wait_for_log(&["waiting up to 30s"]);
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    // Long before the 30 s drain would have ended.
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
}

on_both_backends!(
    notifications_in_order,
    socket_activation_serves_both_protocols_on_every_shard,
    socket_activation_serves_http_by_its_name,
    sigterm_lets_a_stream_in_progress_finish_and_refuses_newcomers,
    a_client_that_never_finishes_is_cut_at_the_timeout,
    a_second_signal_stops_at_once,
);

#[test]
fn journal_lines_are_plain_with_syslog_priorities() {
    let mut server = Ringlet::serve_with(
        "uring",
        &["--file", "off", "--shutdown-timeout", "0.2"],
        |cmd| {
            cmd.env("JOURNAL_STREAM", "8:12345");
        },
    );
    let line = server.wait_for_log(&["echo listening on"]);
    assert!(
        line.starts_with("<6>echo listening on 127.0.0.1:"),
        "{line}"
    );
    // A client that resets is its own business: information, `<6>`, no
    // timestamp, no colour.
    let mut s = connect(server.echo());
    s.write_all(b"ping\n").unwrap();
    assert_eq!(read_exact(&mut s, 5), b"ping\n");
    s.write_all(b"half a line").unwrap();
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
    let line = server.wait_for_log(&["connection ended"]);
    assert!(line.starts_with("<6>echo: 127.0.0.1:"), "{line}");
    assert!(!line.contains('\x1b'), "{line}");
    // A drain that must cut a connection is a warning: `<4>`.
    let _open = connect(server.echo());
    let mut s = connect(server.echo());
    s.write_all(b"ping\n").unwrap();
    assert_eq!(read_exact(&mut s, 5), b"ping\n");
    assert_eq!(server.signal_and_wait(libc::SIGTERM), Some(0));
    let line = server.wait_for_log(&["connection(s) still open: the drain's"]);
    assert!(line.starts_with("<4>shard "), "{line}");
}
