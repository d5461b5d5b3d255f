//! `SIGHUP` upgrades in place, against the real binary (a copy in a temp
//! dir, so a test can replace the file on disk as an upgrade does) on both
//! backends: under load nobody is refused or reset and every answer is
//! whole, three times in a row; the listening sockets stay the same ones
//! and change owner; a new binary that fails or never becomes ready leaves
//! the old one serving; and the systemd side (`RELOADING=1`, `MAINPID=`,
//! `READY=1`, the file descriptor store across a restart).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{End, Ringlet, connect, pattern, read_exact};

const BIG: usize = 64 << 20;

/// A copy of the binary under test in `dir`, which the test may replace.
fn copy_binary(dir: &Path) -> PathBuf {
    let path = dir.join("ringlet");
    std::fs::copy(common::bin(), &path).unwrap();
    path
}

/// Put `contents` at `path` as an upgrade would: a new file renamed over.
fn replace_binary(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Kills every process it holds when dropped (later generations are not
/// this test's children).
struct Pids(Vec<u32>);

impl Drop for Pids {
    fn drop(&mut self) {
        for &pid in &self.0 {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

fn alive(pid: u32) -> bool {
    // A zombie is gone for our purposes.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

fn wait_gone(pid: u32, limit: Duration) {
    let deadline = Instant::now() + limit;
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "pid {pid} still running after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Send SIGHUP to `pid` and wait for the new generation's PID in the log.
fn upgrade(server: &Ringlet, pid: u32, generation: u64) -> u32 {
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    let line = server.wait_for_log(&[&format!("upgrade: generation {generation} (pid ")]);
    let rest = &line[line.find("(pid ").unwrap() + 5..];
    rest[..rest.find(')').unwrap()].parse().unwrap()
}

/// The inodes of the sockets listening on `port` (/proc/net/tcp).
fn listening_inodes(port: u16) -> Vec<u64> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let mut inodes: Vec<u64> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
            (local_port == port && f[3] == "0A").then(|| f[9].parse().ok())?
        })
        .collect();
    inodes.sort();
    inodes
}

/// The socket inodes `pid` holds open.
fn socket_inodes(pid: u32) -> Vec<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| {
                let link = std::fs::read_link(e.ok()?.path()).ok()?;
                let link = link.to_str()?;
                link.strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse()
                    .ok()
            })
            .collect()
        })
        .unwrap_or_default()
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    attempted: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    slowest_connect_us: AtomicU64,
    http_requests: AtomicU64,
}

/// A new connection every 2 ms, each one echo round trip, until `stop`.
fn connector(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            tally.attempted.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("connect {n}: {e}");
                    tally.refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            let took = started.elapsed().as_micros() as u64;
            tally.slowest_connect_us.fetch_max(took, Ordering::Relaxed);
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let line = format!("ping {n}\n");
            let ok = s.write_all(line.as_bytes()).is_ok() && {
                let mut back = vec![0u8; line.len()];
                s.read_exact(&mut back).is_ok() && back == line.as_bytes()
            };
            if !ok {
                eprintln!("echo {n} failed");
                tally.failed.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

/// An HTTP client on keep-alive connections, a request every 5 ms, each
/// answer checked whole; a connection the server closes between requests
/// is replaced (as every HTTP client does); any reset or cut answer fails.
fn http_client(
    addr: SocketAddr,
    body: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut conn: Option<BufReader<TcpStream>> = None;
        while !stop.load(Ordering::Relaxed) {
            let r = conn.get_or_insert_with(|| {
                let s = connect(addr);
                BufReader::new(s)
            });
            if r.get_mut()
                .write_all(b"GET /small HTTP/1.1\r\nHost: t\r\n\r\n")
                .is_err()
            {
                conn = None;
                continue;
            }
            let mut status = String::new();
            match r.read_line(&mut status) {
                Ok(0) => {
                    // Closed between requests (a drain): a new connection.
                    conn = None;
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("http: {e}");
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    conn = None;
                    continue;
                }
            }
            let mut length = None;
            let mut closing = false;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 {
                    break;
                }
                if h == "\r\n" {
                    break;
                }
                if let Some(v) = h.strip_prefix("Content-Length: ") {
                    length = v.trim().parse::<usize>().ok();
                }
                closing |= h.eq_ignore_ascii_case("connection: close\r\n");
            }
            let mut got = vec![0u8; length.unwrap_or(0)];
            let whole = status.starts_with("HTTP/1.1 200")
                && length == Some(body.len())
                && r.read_exact(&mut got).is_ok()
                && got == *body;
            if whole {
                tally.http_requests.fetch_add(1, Ordering::Relaxed);
            } else {
                eprintln!("http: a cut or wrong answer: {status:?}");
                tally.failed.fetch_add(1, Ordering::Relaxed);
            }
            if closing || !whole {
                conn = None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

/// A 64 MiB download read at about 20 MB/s, on a thread: what arrived, how it ended.
fn stream(addr: SocketAddr) -> std::thread::JoinHandle<(Vec<u8>, End)> {
    let mut s = connect(addr);
    s.write_all(b"/big\0").unwrap();
    std::thread::spawn(move || {
        let mut out = Vec::with_capacity(BIG + 64);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return (out, End::Closed),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return (out, End::Reset);
                }
                Err(e) => panic!("read failed after {} bytes: {e}", out.len()),
            }
            std::thread::sleep(Duration::from_millis(3));
        }
    })
}

fn servers_args<'a>(dir: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--root",
        dir.to_str().unwrap(),
        "--http",
        "127.0.0.1:0",
        "--cores",
        "2",
        "--shutdown-timeout",
        "60",
    ];
    args.extend_from_slice(extra);
    args
}

/// Three upgrades in a row under load: connections every 2 ms, 64 MiB
/// plain and framed streams in flight across each, HTTP keep-alive
/// clients. Nothing refused, reset or cut; every file whole; the
/// listening sockets stay the same and pass to each new process.
fn under_load_three_upgrades_lose_nothing(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let big = pattern(BIG, 81);
    std::fs::write(dir.path().join("big"), &big).unwrap();
    let small = Arc::new(pattern(2000, 82));
    std::fs::write(dir.path().join("small"), small.as_slice()).unwrap();
    let exe = copy_binary(dir.path());
    // Two servers: plain files, and framed files with the same binary.
    let plain_args = servers_args(dir.path(), &[]);
    let mut plain = Ringlet::serve_program(&exe, backend, &plain_args, |_| {});
    let framed_args = servers_args(dir.path(), &["--file-header", "--http", "off"]);
    let framed = Ringlet::serve_program(&exe, backend, &framed_args, |_| {});
    let mut pids = Pids(vec![plain.pid(), framed.pid()]);
    let echo = plain.echo();
    let before = listening_inodes(echo.port());
    assert_eq!(before.len(), 2, "one SO_REUSEPORT socket per shard");

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let load = [
        connector(echo, stop.clone(), tally.clone()),
        http_client(plain.http(), small.clone(), stop.clone(), tally.clone()),
        http_client(plain.http(), small.clone(), stop.clone(), tally.clone()),
    ];
    let mut streams = Vec::new();
    let (mut plain_pid, mut framed_pid) = (plain.pid(), framed.pid());
    for generation in 2..=4 {
        streams.push(("plain", stream(plain.file())));
        streams.push(("framed", stream(framed.file())));
        std::thread::sleep(Duration::from_millis(300));
        let old = plain_pid;
        plain_pid = upgrade(&plain, plain_pid, generation);
        framed_pid = upgrade(&framed, framed_pid, generation);
        pids.0.extend([plain_pid, framed_pid]);
        // The same sockets, now the new process's.
        assert_eq!(listening_inodes(echo.port()), before);
        let held = socket_inodes(plain_pid);
        assert!(
            before.iter().all(|i| held.contains(i)),
            "generation {generation} lacks a listener"
        );
        if generation == 2 {
            assert_eq!(plain.wait_exit(Duration::from_secs(90)), Some(0));
        } else {
            wait_gone(old, Duration::from_secs(90));
        }
        assert_eq!(listening_inodes(echo.port()), before);
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    for (name, s) in streams {
        let (got, end) = s.join().unwrap();
        assert_eq!(end, End::Closed, "{name}: reset after {} bytes", got.len());
        let body = if name == "framed" {
            let head = format!("OK {BIG}\n");
            assert!(got.starts_with(head.as_bytes()), "{name}: no OK line");
            &got[head.len()..]
        } else {
            &got[..]
        };
        assert!(
            body == big,
            "{name}: {} of {BIG} bytes, or different",
            body.len()
        );
    }
    let t = &tally;
    eprintln!(
        "upgrade under load ({backend}): {} connections attempted, {} refused, {} failed; {} HTTP requests whole; slowest connect {} us",
        t.attempted.load(Ordering::Relaxed),
        t.refused.load(Ordering::Relaxed),
        t.failed.load(Ordering::Relaxed),
        t.http_requests.load(Ordering::Relaxed),
        t.slowest_connect_us.load(Ordering::Relaxed),
    );
    assert_eq!(t.refused.load(Ordering::Relaxed), 0, "refused connections");
    assert_eq!(
        t.failed.load(Ordering::Relaxed),
        0,
        "resets or wrong answers"
    );
    assert!(t.attempted.load(Ordering::Relaxed) > 100);
    assert!(t.http_requests.load(Ordering::Relaxed) > 50);
    // The last generation still serves, then stops on SIGTERM.
    let mut s = connect(echo);
    s.write_all(b"last\n").unwrap();
    assert_eq!(read_exact(&mut s, 5), b"last\n");
    drop(s);
    unsafe { libc::kill(plain_pid as i32, libc::SIGTERM) };
    wait_gone(plain_pid, Duration::from_secs(30));
    drop(framed);
}

/// A new binary that exits at once, then one that never becomes ready:
/// each upgrade fails with a log line saying why, a second SIGHUP meanwhile
/// is refused, and the old process serves on throughout; with the real
/// binary back, the upgrade goes through.
fn a_failing_new_binary_leaves_the_old_one_serving(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let exe = copy_binary(dir.path());
    let real = std::fs::read(&exe).unwrap();
    let args = servers_args(
        dir.path(),
        &["--upgrade-timeout", "3", "--metrics", "127.0.0.1:0"],
    );
    let mut server = Ringlet::serve_program(&exe, backend, &args, |_| {});
    let pid = server.pid();
    let metrics = server.metrics();
    assert_eq!(generation(metrics), 1);
    let mut pids = Pids(vec![pid]);
    let echo = server.echo();
    let ping = |what: &str| {
        let mut s = connect(echo);
        s.write_all(format!("{what}\n").as_bytes()).unwrap();
        assert_eq!(
            read_exact(&mut s, what.len() + 1),
            format!("{what}\n").as_bytes()
        );
    };

    replace_binary(&exe, b"#!/bin/sh\nexit 3\n");
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    let line = server.wait_for_log(&["upgrade failed"]);
    assert!(
        line.contains("exited") && line.contains("serves on"),
        "{line}"
    );
    ping("after a binary that exits");
    assert!(server.alive());

    replace_binary(&exe, b"#!/bin/sh\nexec sleep 60\n");
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    // The second attempt has begun (signals sent before would coalesce).
    server.wait_for_log_count(&["SIGHUP: upgrading"], 2);
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    server.wait_for_log(&["already under way; ignored"]);
    ping("during an upgrade");
    // A balancer's health check sends no new work meanwhile.
    assert_eq!(page(metrics, "/ready"), "not ready: upgrading in place\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.count_log(&["upgrade failed"]) < 2 {
        assert!(
            Instant::now() < deadline,
            "log:\n{}",
            server.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        server
            .wait_for_log(&["not ready within 3s"])
            .contains("serves on")
    );
    ping("after a binary that never becomes ready");
    assert_eq!(page(metrics, "/ready"), "ready\n");

    replace_binary(&exe, &real);
    let new = upgrade(&server, pid, 2);
    pids.0.push(new);
    assert_eq!(server.wait_exit(Duration::from_secs(30)), Some(0));
    ping("after the upgrade");
    // The metrics socket was handed over too: the new process answers.
    assert_eq!(generation(metrics), 2);
}

/// The body the metrics endpoint at `addr` answers for `path`.
fn page(addr: SocketAddr, path: &str) -> String {
    let mut s = connect(addr);
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    page.split_once("\r\n\r\n")
        .map_or(page.clone(), |(_, body)| body.to_string())
}

/// `ringlet_generation` as the metrics endpoint at `addr` says it.
fn generation(addr: SocketAddr) -> u64 {
    let page = page(addr, "/metrics");
    page.lines()
        .find_map(|l| l.strip_prefix("ringlet_generation "))
        .unwrap_or_else(|| panic!("no ringlet_generation in {page}"))
        .trim()
        .parse()
        .unwrap()
}

/// A notification: its text, the descriptors that came with it, and its
/// sender's PID (SO_PASSCRED).
type Note = (String, Vec<std::os::fd::OwnedFd>, u32);

/// One notification datagram.
fn receive(sock: &std::os::unix::net::UnixDatagram) -> Option<Note> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut buf = [0u8; 4096];
    let mut space =
        [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(32), ScmCredentials(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let got = rustix::net::recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC).ok()?;
    let (mut fds, mut pid) = (Vec::new(), 0);
    for msg in control.drain() {
        match msg {
            RecvAncillaryMessage::ScmRights(passed) => fds.extend(passed),
            RecvAncillaryMessage::ScmCredentials(cred) => {
                pid = cred.pid.as_raw_nonzero().get() as u32;
            }
            _ => {}
        }
    }
    Some((
        String::from_utf8_lossy(&buf[..got.bytes]).into_owned(),
        fds,
        pid,
    ))
}

/// Notifications (with their descriptors) until `until` is met, within `limit`.
fn notifications(
    sock: &std::os::unix::net::UnixDatagram,
    limit: Duration,
    got: &mut Vec<Note>,
    until: impl Fn(&str) -> bool,
) {
    let deadline = Instant::now() + limit;
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while Instant::now() < deadline {
        if let Some(m) = receive(sock) {
            let done = until(&m.0);
            got.push(m);
            if done {
                return;
            }
        }
    }
    panic!(
        "no such notification within {limit:?}: {:?}",
        got.iter().map(|m| &m.0).collect::<Vec<_>>()
    );
}

/// Under systemd (a NOTIFY_SOCKET of the test's own, as systemd's): the
/// sockets go to the file descriptor store; SIGHUP (what `systemctl
/// reload` sends) says RELOADING=1, the new process MAINPID= with READY=1,
/// the old one exits 0 without STOPPING=1, and the watchdog pings come
/// from the new one. Then a restart: the last process stops, a
/// client connects while none runs (the store holds the sockets: it
/// waits in the backlog, not refused), and a process started with the
/// stored sockets, as systemd passes them back, answers it.
fn under_systemd_reload_upgrades_and_the_store_keeps_the_sockets(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let exe = copy_binary(dir.path());
    let path = dir.path().join("notify");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    rustix::net::sockopt::set_socket_passcred(&sock, true).unwrap();
    let args = ["--file", "off", "--cores", "2", "--fd-store"];
    let mut server = Ringlet::serve_program(&exe, backend, &args, |cmd| {
        cmd.env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "400000");
    });
    let old = server.pid();
    let mut pids = Pids(vec![server.pid()]);
    let echo = server.echo();
    let mut msgs = Vec::new();
    notifications(&sock, Duration::from_secs(10), &mut msgs, |m| {
        m.contains("FDSTORE=1")
    });
    assert!(msgs.iter().any(|m| m.0.contains("READY=1")));
    let (stored_msg, stored, _) = msgs.pop().unwrap();
    assert!(stored_msg.contains("FDNAME=echo"), "{stored_msg}");
    assert_eq!(stored.len(), 2, "one socket per shard");

    unsafe { libc::kill(server.pid() as i32, libc::SIGHUP) };
    notifications(&sock, Duration::from_secs(20), &mut msgs, |m| {
        m.contains("MAINPID=")
    });
    let (reloaded, _, sender) = &msgs[msgs.len() - 1];
    let new: u32 = reloaded
        .lines()
        .find_map(|l| l.strip_prefix("MAINPID="))
        .unwrap()
        .parse()
        .unwrap();
    pids.0.push(new);
    assert_eq!(*sender, new, "MAINPID= comes from the new process");
    assert!(reloaded.contains("READY=1"), "{reloaded}");
    let reloading = msgs.iter().position(|m| m.0.contains("RELOADING=1"));
    assert!(
        reloading.is_some_and(|i| msgs[i].2 == old),
        "no RELOADING=1 from the old process"
    );
    let handed = msgs.len();
    assert_eq!(server.wait_exit(Duration::from_secs(30)), Some(0));
    // The watchdog follows the new process; the old one fell silent (at
    // most a ping already on its way) and never said STOPPING=1, which
    // systemd would take for the service's.
    notifications(&sock, Duration::from_secs(10), &mut msgs, |m| {
        m.contains("WATCHDOG=1")
    });
    let after = &msgs[handed..];
    assert!(
        after
            .iter()
            .any(|m| m.0.contains("WATCHDOG=1") && m.2 == new)
    );
    assert!(
        after.iter().filter(|m| m.2 == old).count() <= 1,
        "{:?}",
        after.iter().map(|m| (&m.0, m.2)).collect::<Vec<_>>()
    );
    assert!(
        !msgs.iter().any(|m| m.0.contains("STOPPING=1")),
        "STOPPING=1 sent"
    );

    // A restart: the service stops...
    unsafe { libc::kill(new as i32, libc::SIGTERM) };
    wait_gone(new, Duration::from_secs(30));
    // ... and a client comes while nothing runs.
    let mut waiting = TcpStream::connect_timeout(&echo, Duration::from_secs(5))
        .expect("refused while the store holds the socket");
    waiting
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    waiting.write_all(b"queued\n").unwrap();
    // The next process gets the stored sockets as systemd passes them.
    let fds: Vec<i32> = stored.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", "LISTEN_PID=$$ exec \"$0\" \"$@\""])
        .arg(&exe)
        .args(["serve", "--backend", backend, "--cores", "2"])
        .env("LISTEN_FDS", "2")
        .env("LISTEN_FDNAMES", "echo:echo")
        .env_remove("NOTIFY_SOCKET")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: only dup2, which is async-signal-safe, between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            for (i, &fd) in fds.iter().enumerate() {
                if libc::dup2(fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut next = cmd.spawn().unwrap();
    pids.0.push(next.id());
    let mut back = [0u8; 7];
    let answered = waiting.read_exact(&mut back);
    let _ = next.kill();
    let _ = next.wait();
    answered.expect("the queued client was never answered");
    assert_eq!(&back, b"queued\n");
}

on_both_backends!(
    under_load_three_upgrades_lose_nothing,
    a_failing_new_binary_leaves_the_old_one_serving,
    under_systemd_reload_upgrades_and_the_store_keeps_the_sockets,
);
