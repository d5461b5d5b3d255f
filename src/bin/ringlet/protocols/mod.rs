//! The protocols `ringlet serve` runs, by name: one table, [`PROTOCOLS`],
//! for the command line, socket activation (and an upgrade's hand-over) and
//! the log lines.
//!
//! Each protocol is one file here: a [`Service`] that names it, owns its
//! flags (a `clap::Args` struct, with its `--NAME ADDR|off` address made
//! from the name) and builds the library's protocol from them. Adding one is
//! that file and one line in the table; nothing else in the binary names a
//! protocol (`upper.rs`, a test, shows it). The command builder and the
//! serve path take the table as a parameter.

mod echo;
mod file;
mod http;
#[cfg(test)]
mod upper;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgMatches, FromArgMatches as _};
use ringlet::{Root, ServerBuilder};

use crate::listen::{self, Listen};

/// Every protocol, in the order `--help` lists them and unnamed inherited
/// sockets are given to them.
pub const PROTOCOLS: &[Entry] = &[
    entry::<echo::EchoService>(),
    entry::<file::FileService>(),
    entry::<http::HttpService>(),
];

/// One protocol as `ringlet serve` offers it.
pub trait Service: 'static {
    /// Its name: its `--NAME` flag, the service name in log lines, the
    /// `FileDescriptorName=` of its socket under socket activation.
    const NAME: &'static str;
    /// `--NAME`'s default: an address, or `off`.
    const DEFAULT: &'static str;
    /// `--NAME`'s help line.
    const HELP: &'static str;
    /// Whether it sends files (so the log says how they leave the shard).
    const SENDS_FILES: bool = false;
    /// Its own flags, `--help` lists them after every address and `--root`.
    /// Mark it `#[group(skip)]`: clap would name a group after the struct.
    type Options: clap::Args + 'static;
    /// What it serves connections with.
    type Protocol: ringlet::Protocol;

    /// Build it from its flags and what the protocols share.
    fn build(options: &Self::Options, common: &Common) -> anyhow::Result<Self::Protocol>;
    /// What its "listening" log line adds about it.
    fn describe(options: &Self::Options, common: &Common) -> String;
}

/// What every protocol is handed: the options they share.
#[derive(Debug, Clone)]
pub struct Common {
    /// `--root`: the directory files are served from.
    pub root: PathBuf,
    /// `--open-file-cache`: files kept open per shard.
    pub open_file_cache: usize,
    /// `--request-timeout`: how long a request may take to arrive whole.
    pub request_timeout: Duration,
}

impl Common {
    /// `--root`, opened for confinement.
    pub fn open_root(&self) -> anyhow::Result<Root> {
        Ok(Root::open(&self.root)
            .context("--root")?
            .with_open_file_cache(self.open_file_cache))
    }

    /// `--root` as the log shows it: absolute where it resolves.
    pub fn root_display(&self) -> String {
        let root = self
            .root
            .canonicalize()
            .unwrap_or_else(|_| self.root.clone());
        root.display().to_string()
    }
}

/// A [`Service`] as a table line: what the command line and the serve path
/// ask of it. Made by [`entry`].
#[derive(Clone, Copy)]
pub struct Entry {
    listen: fn() -> clap::Arg,
    options: fn(clap::Command) -> clap::Command,
    configure: fn(&ArgMatches) -> Result<Box<dyn Configured>, clap::Error>,
}

/// `S`'s table line.
pub const fn entry<S: Service>() -> Entry {
    Entry {
        listen: listen_arg::<S>,
        options: <S::Options as clap::Args>::augment_args,
        configure: configure::<S>,
    }
}

impl Entry {
    /// Its `--NAME ADDR|off` flag.
    pub fn listen_arg(&self) -> clap::Arg {
        (self.listen)()
    }

    /// `cmd` with its own flags added.
    pub fn add_options(&self, cmd: clap::Command) -> clap::Command {
        (self.options)(cmd)
    }
}

fn listen_arg<S: Service>() -> clap::Arg {
    clap::Arg::new(S::NAME)
        .long(S::NAME)
        .value_name("ADDR|off")
        .default_value(S::DEFAULT)
        .value_parser(listen::parse)
        .action(clap::ArgAction::Set)
        .help(S::HELP)
}

fn configure<S: Service>(m: &ArgMatches) -> Result<Box<dyn Configured>, clap::Error> {
    let listen = *m.get_one::<Listen>(S::NAME).expect("--NAME has a default");
    let options = S::Options::from_arg_matches(m)?;
    Ok(Box::new(Parsed::<S> { listen, options }))
}

/// Where a service gets its connections.
pub enum On {
    /// Bind this address (one listener per shard).
    Addr(SocketAddr),
    /// Accept on sockets passed in (by systemd, or by the ringlet this one
    /// upgrades: then one per shard).
    Sockets(Vec<TcpListener>),
}

/// One protocol with this run's flags.
pub trait Configured {
    fn name(&self) -> &'static str;
    /// `--NAME`: where it listens when ringlet binds itself.
    fn listen(&self) -> Listen;
    fn sends_files(&self) -> bool;
    /// Build it and add it to the server.
    fn add(&self, b: ServerBuilder, common: &Common, on: On) -> anyhow::Result<ServerBuilder>;
    fn describe(&self, common: &Common) -> String;
}

struct Parsed<S: Service> {
    listen: Listen,
    options: S::Options,
}

impl<S: Service> Configured for Parsed<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn listen(&self) -> Listen {
        self.listen
    }

    fn sends_files(&self) -> bool {
        S::SENDS_FILES
    }

    fn add(&self, b: ServerBuilder, common: &Common, on: On) -> anyhow::Result<ServerBuilder> {
        let protocol = S::build(&self.options, common)?;
        Ok(match on {
            On::Addr(addr) => b.service(S::NAME, addr, protocol),
            On::Sockets(listeners) => b.service_on_all(S::NAME, listeners, protocol),
        })
    }

    fn describe(&self, common: &Common) -> String {
        S::describe(&self.options, common)
    }
}

/// Every protocol of a table with this run's flags, and what they share.
pub struct Services {
    pub common: Common,
    list: Vec<Box<dyn Configured>>,
}

impl Services {
    /// Each of `table`'s protocols, its flags read from `serve`'s matches.
    pub fn configure(
        table: &[Entry],
        common: Common,
        m: &ArgMatches,
    ) -> Result<Services, clap::Error> {
        let list = table
            .iter()
            .map(|e| (e.configure)(m))
            .collect::<Result<_, _>>()?;
        Ok(Services { common, list })
    }

    /// Every protocol, in table order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Configured> {
        self.list.iter().map(|c| &**c)
    }

    /// Every protocol's name, in table order.
    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(|c| c.name()).collect()
    }

    /// Add every protocol whose `--NAME` is an address (ringlet binds it).
    pub fn add_bound(&self, mut b: ServerBuilder) -> anyhow::Result<ServerBuilder> {
        for c in self.iter() {
            if let Listen::On(addr) = c.listen() {
                b = c.add(b, &self.common, On::Addr(addr))?;
            }
        }
        Ok(b)
    }

    /// Add the protocol called `name` on sockets passed in.
    pub fn add_on(
        &self,
        b: ServerBuilder,
        name: &str,
        listeners: Vec<TcpListener>,
    ) -> anyhow::Result<ServerBuilder> {
        let c = self
            .iter()
            .find(|c| c.name() == name)
            .with_context(|| format!("no protocol called {name:?}"))?;
        c.add(b, &self.common, On::Sockets(listeners))
    }
}
