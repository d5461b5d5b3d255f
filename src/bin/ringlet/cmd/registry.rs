//! The protocols `ringlet serve` runs, by name: one table for the command
//! line, socket activation (and an upgrade's hand-over) and the log lines. A new protocol is one entry
//! here (and its file in the library's `proto/`).

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::Context as _;
use ringlet::proto::echo::{Echo, EchoMode};
use ringlet::proto::file::FileServer;
use ringlet::proto::http::HttpServer;
use ringlet::{Protocol, Root, ServerBuilder};

use crate::cli::{EchoModeArg, Listen, Serve};

/// Where a service gets its connections.
pub enum On {
    /// Bind this address (one listener per shard).
    Addr(SocketAddr),
    /// Accept on sockets passed in (by systemd, or by the ringlet this one
    /// upgrades: then one per shard).
    Sockets(Vec<TcpListener>),
}

/// One protocol `ringlet serve` knows.
pub struct Entry {
    /// Its name: the service name in log lines, the `FileDescriptorName=`
    /// of its socket under socket activation.
    pub name: &'static str,
    /// Where it listens when ringlet binds itself (its `--NAME` option).
    pub listen: fn(&Serve) -> Listen,
    /// Build it from the options and add it to the server.
    pub add: fn(ServerBuilder, &Serve, On) -> anyhow::Result<ServerBuilder>,
    /// What its "listening" log line adds about it.
    pub describe: fn(&Serve) -> String,
}

/// Every protocol, in the order unnamed inherited sockets are given to them.
pub const PROTOCOLS: &[Entry] = &[
    Entry {
        name: "echo",
        listen: |a| a.echo,
        add: |b, a, on| Ok(add(b, "echo", on, echo(a))),
        describe: |a| format!("{} mode", mode_name(a.echo_mode)),
    },
    Entry {
        name: "file",
        listen: |a| a.file,
        add: |b, a, on| Ok(add(b, "file", on, file(a)?)),
        describe: |a| {
            let root = a.root.canonicalize().unwrap_or_else(|_| a.root.clone());
            let framing = if a.file_header { "framed" } else { "plain" };
            format!("root {}, {framing}", root.display())
        },
    },
    Entry {
        name: "http",
        listen: |a| a.http,
        add: |b, a, on| Ok(add(b, "http", on, http(a)?)),
        describe: |a| {
            let root = a.root.canonicalize().unwrap_or_else(|_| a.root.clone());
            format!("root {}, HTTP/1.1", root.display())
        },
    },
];

/// Every protocol's name, in order.
pub fn names() -> Vec<&'static str> {
    PROTOCOLS.iter().map(|e| e.name).collect()
}

/// The entry called `name`.
pub fn entry(name: &str) -> Option<&'static Entry> {
    PROTOCOLS.iter().find(|e| e.name == name)
}

fn add<P: Protocol>(b: ServerBuilder, name: &str, on: On, protocol: P) -> ServerBuilder {
    match on {
        On::Addr(addr) => b.service(name, addr, protocol),
        On::Sockets(listeners) => b.service_on_all(name, listeners, protocol),
    }
}

fn echo(a: &Serve) -> Echo {
    let mode = match a.echo_mode {
        EchoModeArg::Line => EchoMode::Line,
        EchoModeArg::Raw => EchoMode::Raw,
    };
    Echo::new(mode, a.echo_buffer as usize)
}

fn file(a: &Serve) -> anyhow::Result<FileServer> {
    let root = Root::open(&a.root).context("--root")?;
    Ok(FileServer::new(root)
        .framed(a.file_header)
        .request_timeout(Duration::from_secs_f64(a.request_timeout)))
}

fn http(a: &Serve) -> anyhow::Result<HttpServer> {
    let root = Root::open(&a.root).context("--root")?;
    Ok(HttpServer::new(root).request_timeout(Duration::from_secs_f64(a.request_timeout)))
}

fn mode_name(mode: EchoModeArg) -> &'static str {
    match mode {
        EchoModeArg::Line => "line",
        EchoModeArg::Raw => "raw",
    }
}
