//! `SIGHUP`: upgrade in place. Start the binary on disk now, with the same
//! arguments, handing it every listening socket the way socket activation
//! does (`LISTEN_FDS`, `LISTEN_FDNAMES`, `LISTEN_PID`), and wait until it
//! says every shard accepts (a line on an inherited pipe). Only then may
//! the old process stop accepting and drain: the sockets are the same ones,
//! held by both processes meanwhile, so nothing queued on them is lost and
//! nobody is refused. If the new process fails, or is not ready in time,
//! it is stopped and the old one serves on.
//!
//! This module only starts and waits for the new process; `serve.rs`
//! decides when, and what the old one does after.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The inherited pipe the new process writes `ready` to (its number).
pub const READY_FD: &str = "RINGLET_UPGRADE_READY_FD";
/// Which process this is in a line of upgrades: 1 for the first.
pub const GENERATION: &str = "RINGLET_GENERATION";
/// The first descriptor passed (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// What an upgrade starts: this binary's path and arguments, as they were
/// when this process started.
#[derive(Debug, Clone)]
pub struct Plan {
    pub exe: PathBuf,
    pub args: Vec<OsString>,
    /// The generation the new process will be.
    pub generation: u64,
    /// How long the new process may take to say every shard accepts.
    pub timeout: Duration,
}

/// This process's generation (1 unless started by an upgrade).
pub fn generation() -> u64 {
    std::env::var(GENERATION)
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(1)
}

/// In a process started by an upgrade: tell the old one that every shard
/// accepts. Does nothing in any other process.
pub fn say_ready() {
    let Some(fd) = std::env::var(READY_FD)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    // SAFETY: the old process passed this descriptor, open, for this
    // process alone to write one line to; nothing else here uses it.
    let pipe = unsafe { OwnedFd::from_raw_fd(fd) };
    let _ = rustix::io::write(&pipe, b"ready\n");
}

/// Start the new process with `sockets` and wait until it is ready; its
/// PID, or why not (it has been stopped then).
pub fn hand_over(plan: &Plan, sockets: &[(String, OwnedFd)]) -> Result<u32, String> {
    let (ready_read, mut child) =
        spawn(plan, sockets).map_err(|e| format!("cannot start {}: {e}", plan.exe.display()))?;
    let pid = child.id();
    match wait_ready(&ready_read, &mut child, plan.timeout) {
        Ok(()) => Ok(pid),
        Err(why) => {
            stop(&mut child);
            Err(why)
        }
    }
}

/// Fork and exec the new binary with the sockets at 3.., the ready pipe's
/// write end after them, and the environment saying so.
fn spawn(plan: &Plan, sockets: &[(String, OwnedFd)]) -> io::Result<(OwnedFd, Child)> {
    let n = sockets.len() as i32;
    // Above every target number, so that no dup2 in the child overwrites
    // a descriptor still to be moved.
    let above = LISTEN_FDS_START + n + 1;
    let high =
        |fd: &dyn AsFd| -> io::Result<OwnedFd> { Ok(rustix::io::fcntl_dupfd_cloexec(fd, above)?) };
    let moved: Vec<OwnedFd> = sockets
        .iter()
        .map(|(_, fd)| high(fd))
        .collect::<io::Result<_>>()?;
    let (ready_read, ready_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let ready_write = high(&ready_write)?;

    let names: Vec<&str> = sockets.iter().map(|(name, _)| name.as_str()).collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| {
            !matches!(
                k.to_str(),
                Some("LISTEN_PID" | "LISTEN_FDS" | "LISTEN_FDNAMES" | READY_FD | GENERATION)
            )
        })
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    for (k, v) in [
        ("LISTEN_FDS", n.to_string()),
        ("LISTEN_FDNAMES", names.join(":")),
        (READY_FD, (LISTEN_FDS_START + n).to_string()),
        (GENERATION, plan.generation.to_string()),
    ] {
        env.push(CString::new(format!("{k}={v}")).expect("no NUL"));
    }
    // LISTEN_PID is the new process's own PID, known only in the child:
    // room for its digits, written there without allocating.
    let mut listen_pid = b"LISTEN_PID=".to_vec();
    let digits_at = listen_pid.len();
    listen_pid.extend_from_slice(&[0u8; 21]);
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
    envp.push(listen_pid.as_ptr().cast());
    envp.push(std::ptr::null());

    let exe = CString::new(plan.exe.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the binary's path"))?;
    let args: Vec<CString> = std::iter::once(exe.clone())
        .chain(
            plan.args
                .iter()
                .filter_map(|a| CString::new(a.as_bytes()).ok()),
        )
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());

    let sources: Vec<i32> = moved.iter().map(|fd| fd.as_raw_fd()).collect();
    let ready = ready_write.as_raw_fd();
    let exec = Exec {
        exe: exe.as_ptr(),
        argv,
        envp,
        pid_buf: listen_pid.as_mut_ptr(),
    };
    let mut command = Command::new(&plan.exe);
    // SAFETY: the closure runs in the forked child before exec and calls
    // only async-signal-safe functions (dup2, getpid, execve) and writes
    // into memory allocated before the fork; every pointer it uses
    // (`argv`, `envp` and what they point to, `pid_buf`) outlives the
    // spawn, which returns only once the child has exec'd or failed.
    unsafe {
        command.pre_exec(move || {
            let exec = exec.get();
            for (i, &fd) in sources.iter().enumerate() {
                if libc::dup2(fd, LISTEN_FDS_START + i as i32) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if libc::dup2(ready, LISTEN_FDS_START + sources.len() as i32) < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut pid = libc::getpid() as u32;
            let mut digits = [0u8; 10];
            let mut len = 0;
            loop {
                digits[len] = b'0' + (pid % 10) as u8;
                len += 1;
                pid /= 10;
                if pid == 0 {
                    break;
                }
            }
            for i in 0..len {
                *exec.pid_buf.add(digits_at + i) = digits[len - 1 - i];
            }
            libc::execve(exec.exe, exec.argv.as_ptr(), exec.envp.as_ptr());
            Err(io::Error::last_os_error())
        });
    }
    let child = command.spawn()?;
    drop(command);
    drop((moved, ready_write, listen_pid, env, args, exe));
    Ok((ready_read, child))
}

/// What the child's `execve` needs, built before the fork: pointers into
/// memory that `spawn` keeps alive until the child has exec'd.
struct Exec {
    exe: *const libc::c_char,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    pid_buf: *mut u8,
}

// SAFETY: `Exec` is only read in the forked child (a copy of this memory,
// one thread); the parent never touches it while a child may.
unsafe impl Send for Exec {}
// SAFETY: as above.
unsafe impl Sync for Exec {}

impl Exec {
    /// The whole value (so a closure captures it, not its fields).
    fn get(&self) -> &Exec {
        self
    }
}

/// Wait for `ready` on the pipe, for at most `limit`.
fn wait_ready(pipe: &OwnedFd, child: &mut Child, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    loop {
        if got.ends_with(b"\n") {
            return if got == b"ready\n" {
                Ok(())
            } else {
                Err(format!("it said {:?}", String::from_utf8_lossy(&got)))
            };
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("it was not ready within {limit:?}"));
        }
        let mut fds = [rustix::event::PollFd::new(
            pipe,
            rustix::event::PollFlags::IN,
        )];
        let wait = rustix::event::Timespec::try_from(left).ok();
        match rustix::event::poll(&mut fds, wait.as_ref()) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
        let mut buf = [0u8; 64];
        match rustix::io::read(pipe, &mut buf) {
            Ok(0) => {
                // Its end closed without a word: it exited, or failed to start.
                let status = wait_briefly(child);
                return Err(match status {
                    Some(s) => format!("it exited ({s}) before it was ready"),
                    None => "it closed its ready pipe without a word".to_string(),
                });
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
            Err(e) => return Err(format!("reading its ready pipe: {e}")),
        }
    }
}

/// Its exit status, if it ends within a second.
fn wait_briefly(child: &mut Child) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Stop a new process that will not take over: `SIGTERM` (it drains what
/// it may have accepted), then `SIGKILL` after a few seconds.
fn stop(child: &mut Child) {
    let pid = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
