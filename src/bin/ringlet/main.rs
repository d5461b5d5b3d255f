//! The `ringlet` binary: parse the command line, run the library, map errors
//! to exit codes. Nothing here serves a byte.
//!
//! The library ends where this folder begins: everything under
//! `src/bin/ringlet/` is the binary (built with the `cli` feature), and it
//! reaches the library only through `ringlet::` paths, as any user would.
//! Its rooms: `cli.rs` (and `cli/bench.rs`) the command line; `protocols/`
//! the protocols `serve` offers, each with its own flags, in one table;
//! `listen.rs` an `ADDR|off` value; `cmd/` one file per command; `bench/`
//! the load generator behind `ringlet bench`.

use std::process::ExitCode;

use clap::FromArgMatches as _;
use tracing::error;

mod bench;
mod cli;
mod cmd;
mod listen;
mod protocols;

use cli::{Cli, Command};
use protocols::PROTOCOLS;

fn main() -> ExitCode {
    let matches = cli::command(PROTOCOLS).get_matches();
    if let Some(("docs", m)) = matches.subcommand() {
        let docs = cli::Docs::from_arg_matches(m).unwrap_or_else(|e| e.exit());
        cmd::logging::init(cli::LogFormat::Text);
        return exit(cmd::docs::docs(&docs.dir, PROTOCOLS));
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    cmd::logging::init(cli.log_format);
    let result = match cli.command {
        Command::Serve(_) => {
            let m = matches
                .subcommand_matches("serve")
                .expect("the serve command");
            let (args, services) = cli::serve_options(PROTOCOLS, m).unwrap_or_else(|e| e.exit());
            cmd::serve::serve(args, services)
        }
        Command::Probe => return cmd::probe(),
        Command::Bench(b) => cmd::bench::bench(*b),
    };
    exit(result)
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
