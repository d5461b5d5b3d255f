//! What the probe finds, typed: the io_uring sysctl, the seccomp mode, what
//! a shard's ring gets, and why the uring backend cannot start
//! ([`Unavailable`], [`Refusal`]) in a sentence a user can act on.

use std::fmt;
use std::io;

/// The `kernel.io_uring_disabled` sysctl (Linux 6.6): who may set up a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoUringDisabled {
    /// `0`: every process may.
    Allowed,
    /// `1`: only processes in the group `kernel.io_uring_group` names (and
    /// those with `CAP_SYS_ADMIN`).
    GroupOnly,
    /// `2`: no process may.
    Disabled,
}

impl IoUringDisabled {
    /// The sysctl's value as `/proc/sys/kernel/io_uring_disabled` holds it;
    /// `None` for anything but `0`, `1` or `2`.
    pub fn parse(value: &str) -> Option<IoUringDisabled> {
        match value.trim() {
            "0" => Some(IoUringDisabled::Allowed),
            "1" => Some(IoUringDisabled::GroupOnly),
            "2" => Some(IoUringDisabled::Disabled),
            _ => None,
        }
    }

    /// The sysctl's number: 0, 1 or 2.
    pub fn value(self) -> u8 {
        match self {
            IoUringDisabled::Allowed => 0,
            IoUringDisabled::GroupOnly => 1,
            IoUringDisabled::Disabled => 2,
        }
    }
}

/// A process's seccomp mode, as `Seccomp:` in `/proc/<pid>/status` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seccomp {
    /// `0`: no seccomp.
    Disabled,
    /// `1`: strict mode (read, write, exit and sigreturn only).
    Strict,
    /// `2`: a filter decides each system call (what containers install).
    Filter,
}

impl Seccomp {
    /// The mode on the `Seccomp:` line of a `/proc/<pid>/status` text;
    /// `None` when there is no such line or its value is unknown.
    pub fn from_status(status: &str) -> Option<Seccomp> {
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp:"))?
            .trim();
        match value {
            "0" => Some(Seccomp::Disabled),
            "1" => Some(Seccomp::Strict),
            "2" => Some(Seccomp::Filter),
            _ => None,
        }
    }
}

impl fmt::Display for Seccomp {
    /// `0 (none)`, `1 (strict)` or `2 (filter)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Seccomp::Disabled => "0 (none)",
            Seccomp::Strict => "1 (strict)",
            Seccomp::Filter => "2 (filter)",
        })
    }
}

/// What a shard's completion ring gets on this kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingFeatures {
    /// `IORING_SETUP_SINGLE_ISSUER` (Linux 6.0): only the shard's thread submits.
    pub single_issuer: bool,
    /// `IORING_SETUP_COOP_TASKRUN` with `TASKRUN_FLAG` (Linux 5.19):
    /// completion work waits for the thread's next kernel entry.
    pub coop_taskrun: bool,
    /// A provided-buffer ring is registered (Linux 5.19): receives land in
    /// the shard's buffers while a connection's own is empty.
    pub provided_buffers: bool,
}

impl From<crate::ring::Features> for RingFeatures {
    fn from(f: crate::ring::Features) -> RingFeatures {
        RingFeatures {
            single_issuer: f.single_issuer,
            coop_taskrun: f.coop_taskrun,
            provided_buffers: f.provided_buffers,
        }
    }
}

/// Why the uring backend cannot start in this process: what to do about
/// it, and, when `io_uring_setup` refused, the OS error as the
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Unavailable {
    /// RLIMIT_MEMLOCK is below glommio's minimum and cannot be raised to it.
    #[error(
        "the uring backend cannot start here: RLIMIT_MEMLOCK is {} KiB (hard limit {} KiB) \
         and glommio needs at least {} KiB: raise it (ulimit -l, LimitMEMLOCK=), or use the \
         epoll backend",
        soft.unwrap_or(0) >> 10,
        hard.unwrap_or(0) >> 10,
        needed >> 10
    )]
    Memlock {
        /// The soft limit, in bytes (`None`: unlimited).
        soft: Option<u64>,
        /// The hard limit, in bytes (`None`: unlimited).
        hard: Option<u64>,
        /// What glommio needs, in bytes.
        needed: u64,
    },
    /// `io_uring_setup` failed.
    #[error("io_uring is unavailable here: {refusal}")]
    Setup {
        /// What the failure means here.
        refusal: Refusal,
        /// What `io_uring_setup` returned.
        #[source]
        source: io::Error,
    },
}

impl Unavailable {
    /// The whole sentence for a log line, the OS error in parentheses.
    pub(crate) fn sentence(&self) -> String {
        match self {
            Unavailable::Memlock { .. } => self.to_string(),
            Unavailable::Setup { source, .. } => format!("{self} ({source})"),
        }
    }
}

/// What an `io_uring_setup` failure means in this process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// `ENOSYS` under a seccomp filter: the filter blocks the call.
    #[error(
        "io_uring_setup is blocked by this process's seccomp filter (containers often do this; \
         allow io_uring_setup/io_uring_enter/io_uring_register, or use the epoll backend)"
    )]
    SeccompBlocked,
    /// `ENOSYS`: the kernel has no io_uring.
    #[error("the kernel ({kernel}) has no io_uring (Linux 5.1+ needed; ringlet wants 5.10+)")]
    NoIoUring {
        /// `uname -r`.
        kernel: String,
    },
    /// `EPERM` with `kernel.io_uring_disabled=2`.
    #[error("io_uring is disabled system-wide by the sysctl kernel.io_uring_disabled=2")]
    DisabledSystemWide,
    /// `EPERM` with `kernel.io_uring_disabled=1`.
    #[error(
        "kernel.io_uring_disabled=1 allows io_uring only to the group in kernel.io_uring_group"
    )]
    GroupOnly,
    /// `EPERM` under a seccomp filter.
    #[error(
        "io_uring_setup is refused by this process's seccomp filter (containers often do this; \
         allow it, or use the epoll backend)"
    )]
    SeccompRefused,
    /// `EPERM` otherwise.
    #[error("io_uring_setup was refused (EPERM): a security policy forbids it")]
    Forbidden,
    /// `ENOMEM`: no locked memory for a ring.
    #[error("not enough locked memory for a ring: raise RLIMIT_MEMLOCK (ulimit -l, LimitMEMLOCK=)")]
    LockedMemory,
    /// Any other error.
    #[error("io_uring_setup failed unexpectedly")]
    Unexpected,
}
