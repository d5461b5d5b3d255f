//! The command line: what `ringlet` accepts, with the help a user reads.
//!
//! Definitions (clap derive), and `serve`'s command put together from a
//! protocol table ([`program`]): each protocol's flags are defined with it,
//! in `protocols/`. `main.rs` acts on them. Nothing here runs anything.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser as _;
use clap::{Args, FromArgMatches as _, Parser, Subcommand, ValueEnum};
use ringlet::Backend;

mod bench;

pub use bench::{Bench, BenchCommon};

use crate::listen::{self, Listen};
use crate::protocols::{Common, Entry, Services};

/// `ringlet --version`: the package's version and the commit it was built
/// from (build.rs asks git; `unknown` outside a checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("RINGLET_COMMIT"),
    ")"
);

/// ringlet: the Eventlet article's echo and file servers, thread-per-core on io_uring.
#[derive(Debug, Parser)]
#[command(name = "ringlet", version = VERSION, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log lines as `text` (for people; plain lines with a syslog priority
    /// under journald) or `json` (one object per line, for log shippers).
    /// RINGLET_LOG sets the level (error, warn, info, debug; default info).
    #[arg(long, value_name = "FORMAT", default_value = "text", global = true)]
    pub log_format: LogFormat,
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: timestamp, level, fields (message first).
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the echo and file servers (and, with --http, the HTTP/1.1 one)
    /// until SIGINT or SIGTERM.
    ///
    /// Under systemd (Type=notify) it reports READY=1, STATUS= and STOPPING=1,
    /// feeds the watchdog while every shard turns, and serves the sockets
    /// passed by socket activation (FileDescriptorName=echo / file / http) instead of
    /// binding.
    ///
    /// SIGHUP upgrades in place: the binary on disk now starts with the same
    /// arguments and this process's listening sockets; once every one of its
    /// shards accepts, this process stops accepting, drains and exits 0. No
    /// socket closes, so nobody is refused; if the new one fails, this one
    /// serves on. Under systemd, `systemctl reload` does it (ExecReload=,
    /// NotifyAccess=all: the new process says MAINPID=).
    ///
    /// One shard (a glommio executor pinned to one CPU, with its own
    /// SO_REUSEPORT listener per service) runs on each CPU the process may use.
    /// A failing or panicking connection ends alone; if a whole shard dies the
    /// process exits with status 1 so a supervisor restarts it.
    Serve(ServeHead),

    /// Say whether the io_uring backend can run here, and if not, why not.
    ///
    /// Prints the kernel version, the kernel.io_uring_disabled sysctl, the
    /// process's seccomp mode, whether io_uring_setup is allowed, the opcodes
    /// and setup flags ringlet would use, RLIMIT_MEMLOCK and the CPUs the
    /// process may use. Exit status 0 when the uring backend can start, 1 when not.
    Probe,

    /// Load generator: drive an echo or file server and verify every byte.
    #[command(subcommand)]
    Bench(Box<Bench>),
}

/// The whole command line: [`Cli`] and the hidden `ringlet docs DIR`, which
/// writes the man pages (DIR/man) and the bash, zsh and fish completions
/// (DIR/completions) generated from [`Cli`], for packagers
/// (scripts/package.sh). It is added here, outside [`Cli`], so that neither
/// the pages nor the completions it writes mention it.
pub fn command(protocols: &[Entry]) -> clap::Command {
    program(protocols).subcommand(Docs::augment_args(
        clap::Command::new("docs")
            .hide(true)
            .about("Write the man pages and shell completions (for packagers)"),
    ))
}

/// [`Cli`] with `serve`'s options: those of every protocol in `protocols`,
/// each defined with its entry, and the server's.
pub fn program(protocols: &[Entry]) -> clap::Command {
    use clap::CommandFactory as _;
    in_place(Cli::command(), "serve", |mut serve| {
        // An options struct's doc comment would become the command's about.
        let about = serve.get_about().cloned();
        let long_about = serve.get_long_about().cloned();
        for p in protocols {
            serve = serve.arg(p.listen_arg());
        }
        serve = Shared::augment_args(serve);
        for p in protocols {
            serve = p.add_options(serve);
        }
        serve = Serve::augment_args(serve);
        if let Some(about) = about {
            serve = serve.about(about);
        }
        if let Some(long_about) = long_about {
            serve = serve.long_about(long_about);
        }
        serve
    })
}

/// `cmd` with its subcommand `name` changed by `f`, kept in its place (the
/// completions list subcommands in order; `mut_subcommand` moves it last).
fn in_place(
    cmd: clap::Command,
    name: &str,
    f: impl FnOnce(clap::Command) -> clap::Command,
) -> clap::Command {
    let after: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .skip_while(|n| n != name)
        .skip(1)
        .collect();
    let cmd = cmd.mut_subcommand(name, f);
    after
        .iter()
        .fold(cmd, |cmd, n| cmd.mut_subcommand(n, |s| s))
}

/// `serve`'s matches read: the server's options, and every protocol in
/// `protocols` with its flags.
pub fn serve_options(
    protocols: &[Entry],
    m: &clap::ArgMatches,
) -> Result<(Serve, Services), clap::Error> {
    let serve = Serve::from_arg_matches(m)?;
    let shared = Shared::from_arg_matches(m)?;
    let common = Common {
        root: shared.root,
        open_file_cache: shared.open_file_cache,
        request_timeout: Duration::from_secs_f64(serve.request_timeout),
    };
    let services = Services::configure(protocols, common, m)?;
    Ok((serve, services))
}

/// `ringlet docs` options.
#[derive(Debug, Args)]
pub struct Docs {
    /// Where to write man/ and completions/.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// `ringlet serve`, as the derived [`Command`] sees it: no options of its
/// own. [`program`] adds them, in `--help`'s order: every protocol's
/// address, [`Shared`], every protocol's own flags, then [`Serve`]. A flag
/// given twice takes its last value.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub struct ServeHead {}

/// `ringlet serve`'s options the protocols share.
#[derive(Debug, Args)]
pub struct Shared {
    /// Directory the file and HTTP servers serve. Request paths resolve beneath it as
    /// URL paths do (`/tmp/y` means ROOT/tmp/y); nothing outside it is ever
    /// opened. `--root /` serves the whole filesystem, as the article did.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub root: PathBuf,

    /// Files each core keeps open after serving them (the open-file cache),
    /// so that a file served again costs no open; 0 turns it off. A change
    /// to a cached file, or to any directory on its path (a replace, a write,
    /// a truncate, a delete, a chmod, a directory swapped for a symlink), is
    /// seen by the first request 1 ms after it completes (inotify). Only
    /// files on local filesystems are cached (not NFS, SMB, FUSE: another
    /// host's changes raise no event there). All cores together hold at most
    /// a sixteenth of the descriptor limit (ulimit -n).
    #[arg(long, value_name = "FILES", default_value_t = 1000)]
    pub open_file_cache: usize,
}

/// `ringlet serve`'s options for the server as a whole.
#[derive(Debug, Args)]
pub struct Serve {
    /// On SIGTERM/SIGINT, stop accepting, close the connections idle between
    /// requests (a FIN; HTTP answers in progress say `Connection: close`),
    /// and give the others this many seconds to finish (a file stream in
    /// progress completes) before resetting the rest. A second signal resets
    /// every connection still open at once, and ringlet exits.
    #[arg(long, value_name = "SECS", default_value_t = 10.0,
          value_parser = parse_seconds)]
    pub shutdown_timeout: f64,

    /// Close a connection that sends nothing for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60.0, value_parser = parse_positive_seconds)]
    pub idle_timeout: f64,

    /// A file request (or an HTTP request head) must arrive whole within this many seconds of its first
    /// byte; a client dripping it slowly (slowloris) is cut off.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = parse_positive_seconds)]
    pub request_timeout: f64,

    /// Close a connection whose client accepts no byte for this many seconds
    /// (it stopped reading), instead of holding its buffers.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = parse_positive_seconds)]
    pub write_timeout: f64,

    /// After a connection's answer is complete, ringlet half-closes it and
    /// reads and discards what the client still sends, for this many seconds
    /// after the client has acknowledged the whole answer, before closing (a
    /// lingering close): closing with unread input would make the kernel
    /// reset the connection and drop the end of the answer still on its way.
    /// A client that reads slowly keeps the connection as long as it takes
    /// some of its answer within --write-timeout.
    #[arg(long, value_name = "SECS", default_value_t = 2.0, value_parser = parse_seconds)]
    pub linger: f64,

    /// The most bytes the lingering close reads and discards.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub linger_bytes: u64,

    /// I/O backend. `uring`: glommio shards whose sockets and files go through
    /// a completion ring per shard (refuses to start, with the reason, where
    /// io_uring is blocked). `epoll`: tokio shards on epoll,
    /// sendfile for files: the baseline. `auto`: uring when it works here,
    /// otherwise epoll, logging why.
    #[arg(long, value_name = "BACKEND", default_value = "auto", value_parser = backend())]
    pub backend: Backend,

    /// Number of shards, one per CPU [default: every CPU this process may run
    /// on, honouring taskset and cgroup cpusets].
    #[arg(long, value_name = "N")]
    pub cores: Option<usize>,

    /// Live connections per shard, all services together. Connection N+1 on
    /// a shard is not accepted until one of its N ends: it waits in the kernel's listen backlog (1024),
    /// and beyond that the kernel drops connection attempts, which clients
    /// retry. Nothing is refused or reset. [default: no limit]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_conns: Option<u64>,

    /// uring backend: send the parts of a file the page cache holds with
    /// sendfile(2) from the shard (checked first with cachestat, Linux 6.5+;
    /// no copy through user space, no hop to a kernel worker). `off`: every
    /// file byte goes through the ring (splice via io-wq, or read and send),
    /// so no file copy ever runs on a shard's core, at some throughput. The
    /// epoll backend always uses sendfile.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    pub cached_sendfile: bool,

    /// Log every HTTP and file request, and every echo session, one line
    /// each, to PATH (appended; reopened on SIGUSR1, for logrotate), to
    /// standard output (`-`), or not at all (`off`). Written by a thread of
    /// its own: a shard never waits on the disk; lines the disk cannot keep
    /// up with are dropped and counted (ringlet_access_log_dropped_total).
    #[arg(long, value_name = "PATH|-|off", default_value = "off")]
    pub access_log: String,

    /// The access log's lines: `combined` (nginx's, with `rt=` seconds) or
    /// `json` (one object per line).
    #[arg(long, value_name = "FORMAT", default_value = "combined")]
    pub access_log_format: ringlet::access::Format,

    /// Behind a load balancer: require a PROXY protocol header (v1 or v2, as
    /// HAProxy's send-proxy / send-proxy-v2 send it) at the start of every
    /// connection of these services (echo, file, http). The client address
    /// it carries replaces the balancer's in the logs and the access log; a
    /// connection without a valid header is closed with one log line and
    /// never served; a v2 LOCAL header (a health check) is served as it is.
    /// Off by default.
    #[arg(long, value_name = "SERVICE[,SERVICE...]", value_delimiter = ',')]
    pub proxy_protocol: Vec<String>,

    /// The sources whose PROXY headers are believed (the balancers), as
    /// address blocks; a connection from anywhere else on a
    /// --proxy-protocol service is refused. The header must arrive whole
    /// within 5 s of the connection.
    #[arg(
        long,
        value_name = "CIDR[,CIDR...]",
        value_delimiter = ',',
        default_value = "127.0.0.0/8,::1/128"
    )]
    pub proxy_from: Vec<ringlet::proxy::Cidr>,

    /// On SIGHUP (an upgrade in place), how long the new process may take to
    /// say every shard accepts before it is stopped and this one serves on.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = parse_positive_seconds)]
    pub upgrade_timeout: f64,

    /// Under systemd, put the listening sockets in its file descriptor store
    /// (FDSTORE=1; the unit needs FileDescriptorStoreMax=), so that a
    /// `systemctl restart` keeps them open and passes them to the next
    /// process: connections that arrive meanwhile wait instead of being
    /// refused.
    #[arg(long)]
    pub fd_store: bool,

    /// Serve the shards' figures (connections, bytes, requests by outcome,
    /// timeouts, ring activity) for Prometheus at http://ADDR/metrics, or
    /// `off`. Answered by a thread of its own, never by a shard. Keep it on
    /// an address only your monitoring can reach.
    #[arg(long, value_name = "ADDR|off", default_value = "off", value_parser = listen::parse)]
    pub metrics: Listen,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err("expected seconds between 0 and 86400".into()),
    }
}

fn parse_positive_seconds(s: &str) -> Result<f64, String> {
    match parse_seconds(s)? {
        v if v >= 0.001 => Ok(v),
        _ => Err("must be at least 0.001 seconds".into()),
    }
}

/// `--backend`: one of [`Backend::ALL`] by its name, each listed with its
/// [`Backend::about`].
fn backend() -> impl clap::builder::TypedValueParser<Value = Backend> {
    let values = Backend::ALL
        .iter()
        .map(|b| clap::builder::PossibleValue::new(b.name()).help(b.about()));
    clap::builder::PossibleValuesParser::new(values).map(|name| {
        name.parse::<Backend>()
            .expect("one of Backend::ALL's names")
    })
}

/// `on` or `off`.
fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{s:?}: expected on or off")),
    }
}
