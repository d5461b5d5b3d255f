//! `ringlet serve --echo`: the article's echo server with its flags
//! (`--echo-mode`, `--echo-buffer`).

use clap::{Args, ValueEnum};
use ringlet::proto::echo::{DEFAULT_BUFFER, Echo, EchoMode};

use super::{Common, Service};

/// The echo server's table line.
pub struct EchoService;

/// The echo server's own flags.
#[derive(Debug, Args)]
#[group(skip)]
pub struct EchoOptions {
    /// `line`: write back each complete line when its newline arrives.
    /// `raw`: write back whatever arrives, as it arrives.
    #[arg(long, value_name = "MODE", default_value = "line")]
    pub echo_mode: EchoModeArg,

    /// Echo buffer per connection, in bytes. Memory per echo connection is
    /// bounded by it: a longer line is echoed in pieces, never held whole.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_BUFFER as u64,
          value_parser = clap::value_parser!(u64).range(1..=(64 << 20)))]
    pub echo_buffer: u64,
}

/// `--echo-mode` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EchoModeArg {
    /// Each complete line as soon as its newline arrives.
    Line,
    /// Whatever arrives, as it arrives.
    Raw,
}

impl Service for EchoService {
    const NAME: &'static str = "echo";
    const DEFAULT: &'static str = "127.0.0.1:6000";
    const HELP: &'static str = "Where the echo server listens, or `off`";
    type Options = EchoOptions;
    type Protocol = Echo;

    fn build(o: &EchoOptions, _: &Common) -> anyhow::Result<Echo> {
        let mode = match o.echo_mode {
            EchoModeArg::Line => EchoMode::Line,
            EchoModeArg::Raw => EchoMode::Raw,
        };
        Ok(Echo::new(mode, o.echo_buffer as usize))
    }

    fn describe(o: &EchoOptions, _: &Common) -> String {
        let mode = o
            .echo_mode
            .to_possible_value()
            .expect("no value is skipped");
        format!("{} mode", mode.get_name())
    }
}
