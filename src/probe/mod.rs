//! `ringlet probe`: will io_uring work here, and if not, why not.
//!
//! Gathers the facts that decide it — kernel version, the
//! `kernel.io_uring_disabled` sysctl, whether `io_uring_setup` is allowed
//! (seccomp in containers blocks it), the opcodes and setup flags ringlet
//! would use, RLIMIT_MEMLOCK, the CPUs the process may use — and turns a
//! failure into a sentence a user can act on. It only looks; it changes nothing.

use std::fmt;
use std::io;

use io_uring::{IoUring, Probe, opcode};

mod facts;

pub use facts::{IoUringDisabled, Refusal, RingFeatures, Seccomp, Unavailable};

/// The least RLIMIT_MEMLOCK glommio 0.9 builds an executor under.
const GLOMMIO_MEMLOCK_MIN: u64 = 512 << 10;

/// Opcodes ringlet uses or will use, by name.
const OPCODES: &[(&str, u8)] = &[
    ("ACCEPT", opcode::Accept::CODE),
    ("RECV", opcode::Recv::CODE),
    ("SEND", opcode::Send::CODE),
    ("SEND_ZC", opcode::SendZc::CODE),
    ("READ", opcode::Read::CODE),
    ("SPLICE", opcode::Splice::CODE),
    ("OPENAT2", opcode::OpenAt2::CODE),
    ("POLL_ADD", opcode::PollAdd::CODE),
    ("CLOSE", opcode::Close::CODE),
    ("ASYNC_CANCEL", opcode::AsyncCancel::CODE),
    ("PROVIDE_BUFFERS", opcode::ProvideBuffers::CODE),
];
/// Everything the probe found.
#[derive(Debug)]
pub struct Report {
    /// `uname -r`.
    pub kernel: String,
    /// The kernel version as (major, minor), when it parses.
    pub version: Option<(u32, u32)>,
    /// The `kernel.io_uring_disabled` sysctl; `None` where it cannot be
    /// read (kernels before 6.6 have none, and `/proc/sys` may be hidden).
    pub io_uring_disabled: Option<IoUringDisabled>,
    /// This process's seccomp mode (`Seccomp:` in `/proc/self/status`);
    /// `None` where it cannot be read.
    pub seccomp: Option<Seccomp>,
    /// The result of a real `io_uring_setup`.
    pub setup: Result<(), io::Error>,
    /// Each opcode and whether the kernel supports it (empty when setup failed).
    pub opcodes: Vec<(&'static str, bool)>,
    /// Each setup flag and whether a ring could be built with it.
    pub setup_flags: Vec<(&'static str, bool)>,
    /// Whether a provided-buffer ring could be registered (Linux 5.19).
    pub buffer_ring: bool,
    /// What a shard's ring gets here (`None`: no ring could be built).
    pub ring: Option<RingFeatures>,
    /// RLIMIT_MEMLOCK soft and hard, in bytes (`None`: unlimited).
    pub memlock: (Option<u64>, Option<u64>),
    /// The CPUs this process may run on.
    pub cpus: Vec<usize>,
}

/// Whether the uring backend can tell which parts of a file the page
/// cache holds (`cachestat`, Linux 6.5), and so send them by `sendfile`.
pub fn page_cache_visible() -> bool {
    crate::pagecache::available()
}

impl Report {
    /// Look at this process and this kernel now.
    pub fn gather() -> Report {
        let kernel = rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned();
        let version = parse_version(&kernel);
        let io_uring_disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
            .ok()
            .and_then(|s| IoUringDisabled::parse(&s));
        let seccomp = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| Seccomp::from_status(&s));
        let ring = crate::ring::Ring::with_buffers(8, 1, 4096)
            .ok()
            .map(|r| RingFeatures::from(r.features()));
        let buffer_ring = ring.is_some_and(|f| f.provided_buffers);
        let (setup, opcodes) = match IoUring::new(4) {
            Ok(ring) => {
                let mut probe = Probe::new();
                let opcodes = match ring.submitter().register_probe(&mut probe) {
                    Ok(()) => OPCODES
                        .iter()
                        .map(|&(name, code)| (name, probe.is_supported(code)))
                        .collect(),
                    Err(_) => Vec::new(),
                };
                (Ok(()), opcodes)
            }
            Err(e) => (Err(e), Vec::new()),
        };
        let setup_flags = if setup.is_ok() {
            probe_setup_flags()
        } else {
            Vec::new()
        };
        let limit = rustix::process::getrlimit(rustix::process::Resource::Memlock);
        Report {
            kernel,
            version,
            io_uring_disabled,
            seccomp,
            setup,
            opcodes,
            setup_flags,
            buffer_ring,
            ring,
            memlock: (limit.current, limit.maximum),
            cpus: crate::placement::allowed_cpus().unwrap_or_default(),
        }
    }

    /// Can the uring backend start in this process?
    pub fn uring_ok(&self) -> bool {
        self.setup.is_ok() && self.memlock_too_low().is_none()
    }

    /// glommio refuses to build an executor when RLIMIT_MEMLOCK is below
    /// its minimum; the start raises the soft limit up to the hard one
    /// (root may raise both). Says why when neither can reach it.
    fn memlock_too_low(&self) -> Option<Unavailable> {
        let (soft, hard) = self.memlock;
        let needed = GLOMMIO_MEMLOCK_MIN;
        let reachable = soft.is_none_or(|s| s >= needed)
            || hard.is_none_or(|h| h >= needed)
            || rustix::process::geteuid().is_root();
        (!reachable).then_some(Unavailable::Memlock { soft, hard, needed })
    }

    /// Why the uring backend cannot start; `None` if it can.
    pub fn why_not(&self) -> Option<Unavailable> {
        if let Some(why) = self.memlock_too_low() {
            return Some(why);
        }
        let e = self.setup.as_ref().err()?;
        let filtered = self.seccomp == Some(Seccomp::Filter);
        let refusal = match e.raw_os_error() {
            Some(libc::ENOSYS) if filtered => Refusal::SeccompBlocked,
            Some(libc::ENOSYS) => Refusal::NoIoUring {
                kernel: self.kernel.clone(),
            },
            Some(libc::EPERM) => match self.io_uring_disabled {
                Some(IoUringDisabled::Disabled) => Refusal::DisabledSystemWide,
                Some(IoUringDisabled::GroupOnly) => Refusal::GroupOnly,
                _ if filtered => Refusal::SeccompRefused,
                _ => Refusal::Forbidden,
            },
            Some(libc::ENOMEM) => Refusal::LockedMemory,
            _ => Refusal::Unexpected,
        };
        // The report keeps its own error; the verdict gets an equal one.
        let source = match e.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(e.kind(), e.to_string()),
        };
        Some(Unavailable::Setup { refusal, source })
    }
}

fn parse_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn probe_setup_flags() -> Vec<(&'static str, bool)> {
    let try_build = |f: &dyn Fn(&mut io_uring::Builder)| {
        let mut b = IoUring::builder();
        f(&mut b);
        b.build(4).is_ok()
    };
    vec![
        (
            "SINGLE_ISSUER",
            try_build(&|b| {
                b.setup_single_issuer();
            }),
        ),
        (
            "COOP_TASKRUN",
            try_build(&|b| {
                b.setup_coop_taskrun();
            }),
        ),
        (
            "DEFER_TASKRUN",
            try_build(&|b| {
                b.setup_single_issuer().setup_defer_taskrun();
            }),
        ),
        (
            "SUBMIT_ALL",
            try_build(&|b| {
                b.setup_submit_all();
            }),
        ),
    ]
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn kib(v: Option<u64>) -> String {
    v.map_or("unlimited".into(), |b| format!("{} KiB", b >> 10))
}

impl Report {
    /// Which path each of ringlet's features takes on this kernel, one line
    /// each: what the uring backend does here, and what it falls back to.
    fn paths(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ring = self.ring.unwrap_or_default();
        let at_least = |v: (u32, u32)| self.version.is_some_and(|k| k >= v);
        let mut flags = Vec::new();
        if ring.single_issuer {
            flags.push("SINGLE_ISSUER");
        }
        if ring.coop_taskrun {
            flags.push("COOP_TASKRUN+TASKRUN_FLAG");
        }
        let lines = [
            (
                "ring setup",
                if flags.is_empty() {
                    "no setup flags (SINGLE_ISSUER needs 6.0, COOP_TASKRUN 5.19)".to_string()
                } else {
                    flags.join(" + ")
                },
            ),
            (
                "accept",
                if at_least((5, 19)) {
                    "multishot ACCEPT, one armed per listener".to_string()
                } else {
                    "single-shot ACCEPT (multishot needs 5.19)".to_string()
                },
            ),
            (
                "receive",
                if self.buffer_ring {
                    format!(
                        "RECV into a provided-buffer ring ({} x {} KiB per shard) while a connection's buffer is empty",
                        crate::ring::RECV_BUFFERS,
                        crate::ring::RECV_BUFFER_SIZE / 1024
                    )
                } else {
                    "RECV into each connection's own buffer (buffer rings need 5.19)".to_string()
                },
            ),
            (
                "timeouts",
                "deadlines swept by the shard's heartbeat (100 ms); sleeps are ring TIMEOUTs"
                    .to_string(),
            ),
            (
                "file open",
                if crate::fs::Root::resolve_cached_supported() {
                    "OPENAT2 beneath the root, a direct RESOLVE_CACHED open first".to_string()
                } else {
                    "OPENAT2 beneath the root on the ring (RESOLVE_CACHED needs 5.12)".to_string()
                },
            ),
            (
                "file send",
                if page_cache_visible() {
                    "READ+SEND up to 16 KiB; larger: sendfile for each 2 MiB the page cache \
                     holds (cachestat), SPLICE file->pipe->socket on the ring for the rest"
                        .to_string()
                } else {
                    "READ+SEND up to 16 KiB; larger: SPLICE file->pipe->socket on the ring \
                     (cachestat needs 6.5: no sendfile from the page cache)"
                        .to_string()
                },
            ),
            (
                "idle shard",
                "sleeps in one io_uring_enter on its own ring (no eventfd, no glommio reactor)"
                    .to_string(),
            ),
        ];
        writeln!(f, "paths taken here:")?;
        for (what, how) in lines {
            writeln!(f, "  {:<18} {how}", format!("{what}:"))?;
        }
        Ok(())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "kernel:              {}", self.kernel)?;
        writeln!(
            f,
            "io_uring_disabled:   {}",
            self.io_uring_disabled.map_or(
                "(not readable: no such sysctl before Linux 6.6, or /proc/sys hidden)".to_string(),
                |d| d.value().to_string()
            )
        )?;
        match self.seccomp {
            Some(mode) => writeln!(f, "seccomp mode:        {mode}")?,
            None => writeln!(f, "seccomp mode:        unknown")?,
        }
        match &self.setup {
            Ok(()) => writeln!(f, "io_uring_setup:      allowed")?,
            Err(e) => writeln!(f, "io_uring_setup:      refused: {e}")?,
        }
        if !self.opcodes.is_empty() {
            let list: Vec<String> = self
                .opcodes
                .iter()
                .map(|(n, ok)| format!("{n}={}", yes(*ok)))
                .collect();
            writeln!(f, "opcodes:             {}", list.join(" "))?;
        }
        if !self.setup_flags.is_empty() {
            let list: Vec<String> = self
                .setup_flags
                .iter()
                .map(|(n, ok)| format!("{n}={}", yes(*ok)))
                .collect();
            writeln!(f, "setup flags:         {}", list.join(" "))?;
        }
        if let Some((major, minor)) = self.version {
            let at_least = |a, b| (major, minor) >= (a, b);
            writeln!(
                f,
                "by kernel version:   multishot accept={} multishot recv={}",
                yes(at_least(5, 19)),
                yes(at_least(6, 0))
            )?;
        }
        if self.uring_ok() {
            writeln!(f, "buffer rings:        {}", yes(self.buffer_ring))?;
        }
        if self.uring_ok() {
            self.paths(f)?;
        }
        let (soft, hard) = self.memlock;
        writeln!(
            f,
            "RLIMIT_MEMLOCK:      soft {} hard {} (kernels before 5.12 charge io_uring rings to it: \
             about 1024 KiB per shard, raised at start where the hard limit allows)",
            kib(soft),
            kib(hard)
        )?;
        writeln!(
            f,
            "CPUs allowed:        {} ({} shards by default)",
            crate::placement::list(&self.cpus),
            self.cpus.len()
        )?;
        match self.why_not() {
            None => writeln!(f, "verdict:             the uring backend can start"),
            Some(why) => writeln!(f, "verdict:             {}", why.sentence()),
        }
    }
}

#[cfg(test)]
mod tests;
