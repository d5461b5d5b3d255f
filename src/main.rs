//! The `ringlet` binary: parse the command line, run the library, map errors
//! to exit codes. Nothing here serves a byte.

use std::process::ExitCode;

use clap::Parser as _;
use tracing::error;

mod bench;
mod cli;
mod cmd;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    cmd::logging::init(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::serve(args),
        Command::Probe => return cmd::probe(),
        Command::Bench(b) => cmd::bench::bench(b),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
