//! `ringlet bench`'s command line: its subcommands and their options, with
//! the help a user reads. Definitions only (clap derive); `cmd/bench.rs`
//! acts on them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `ringlet bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum Bench {
    /// N connections send messages and check every echoed byte.
    ///
    /// Ping-pong by default (one message in flight per connection). Each
    /// message ends in a newline and has no other, so line-mode servers
    /// answer it at once. Reports messages/s, MB/s and latency percentiles.
    Echo(BenchEcho),
    /// Fetch one file again and again: the article's protocol (plain or
    /// framed) or HTTP/1.1.
    ///
    /// Plain (the article's, the server's default): a connection per
    /// request, read to the end; a reset is an error. Framed (--file-header):
    /// keep-alive connections and `OK <size>` lines. --mode auto asks once and
    /// picks. Every answer's length and CRC-32 are checked against --expect,
    /// or else against the first answer.
    File(BenchFile),
    /// Turn the JSON lines of scripts/bench-vs-epoll.sh into a table and chart.
    Report(BenchReport),
    /// A long mixed workload with injected faults; every byte still checked.
    ///
    /// Echo sessions and framed file sessions (the file server must run with
    /// --file-header) on N connection slots, with connection resets mid-echo
    /// and mid-file and slow readers thrown in; with --plain-file, plain
    /// sessions too, with late stray bytes and pipelined requests; with
    /// --http, keep-alive HTTP sessions too. Injected faults are counted
    /// apart; any other error, and any whole-file answer cut short, fails
    /// the run (exit 1).
    Soak(BenchSoak),
}

/// `ringlet bench soak` options.
#[derive(Debug, Args)]
pub struct BenchSoak {
    /// The echo server.
    #[arg(long, value_name = "ADDR")]
    pub echo: SocketAddr,
    /// The file server (framed: --file-header).
    #[arg(long, value_name = "ADDR")]
    pub file: SocketAddr,
    /// A file server in the article's plain mode, serving the same file:
    /// adds plain sessions with a stray byte sent late and pipelined
    /// requests, whose answers must still arrive whole, then a FIN.
    #[arg(long, value_name = "ADDR")]
    pub plain_file: Option<SocketAddr>,
    /// An HTTP server (`serve --http`) serving the same file: adds
    /// keep-alive sessions of GETs whose bodies are checked whole.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Request path of the file to fetch.
    #[arg(long, value_name = "P")]
    pub path: String,
    /// Local copy of that file, to check every answer against.
    #[arg(long, value_name = "FILE")]
    pub expect: PathBuf,
    /// Concurrent connection slots.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub conns: usize,
    /// How long to run, in seconds.
    #[arg(long, value_name = "S", default_value_t = 60.0)]
    pub duration: f64,
    /// Client threads [default: every CPU this process may run on].
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
    /// One session in K resets its connection on purpose.
    #[arg(long, value_name = "K", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub reset_every: u64,
    /// One session in K reads slowly on purpose.
    #[arg(long, value_name = "K", default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..))]
    pub slow_every: u64,
}

/// Options every load generator shares.
#[derive(Debug, Args)]
pub struct BenchCommon {
    /// Server address.
    #[arg(long, value_name = "ADDR")]
    pub addr: SocketAddr,
    /// Concurrent connections.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub conns: usize,
    /// How long to run, in seconds.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub duration: f64,
    /// Client threads [default: every CPU this process may run on].
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
    /// Pin client thread i to the i-th CPU this process may run on (use with
    /// taskset to keep the client off the server's CPUs).
    #[arg(long)]
    pub pin: bool,
    /// Print the result as one JSON object (and no progress line).
    #[arg(long)]
    pub json: bool,
}

/// `ringlet bench echo` options.
#[derive(Debug, Args)]
pub struct BenchEcho {
    #[command(flatten)]
    pub common: BenchCommon,
    /// Bytes per message, final newline included.
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    pub size: usize,
    /// Messages in flight per connection (1 = ping-pong).
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub pipeline: usize,
    /// Cap the total rate at R messages/s, paced per connection; latency is
    /// then measured from each message's scheduled time (no coordinated
    /// omission). With --rate and no --pipeline, sends never wait for answers.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
}

/// `ringlet bench file` options.
#[derive(Debug, Args)]
pub struct BenchFile {
    #[command(flatten)]
    pub common: BenchCommon,
    /// Request path, as the server resolves it beneath its root.
    #[arg(long, value_name = "P")]
    pub path: String,
    /// Local copy of the file to check answers against.
    #[arg(long, value_name = "FILE")]
    pub expect: Option<PathBuf>,
    /// Evict this local file from the page cache before every request, so
    /// the server reads it cold (the same file the server serves).
    #[arg(long, value_name = "FILE")]
    pub evict: Option<PathBuf>,
    /// The server's file protocol: `plain` (no --file-header), `framed`
    /// (--file-header), `http` (`serve --http`, nginx, any HTTP/1.1 static
    /// file server; --path is the URL path), or `auto`: ask once and pick
    /// by the answer (a file that itself begins with an `OK <number>` line
    /// needs --mode plain).
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub mode: crate::bench::file::Mode,
}

/// `ringlet bench report` options.
#[derive(Debug, Args)]
pub struct BenchReport {
    /// JSON-lines results written by scripts/bench-vs-epoll.sh.
    #[arg(value_name = "RESULTS.jsonl")]
    pub input: PathBuf,
    /// The server whose ratios are reported.
    #[arg(long, default_value = "uring")]
    pub subject: String,
    /// The server it is compared against.
    #[arg(long, default_value = "epoll")]
    pub baseline: String,
    /// Write the chart here (SVG).
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,
}
