//! `ringlet docs DIR` (hidden): the man pages and shell completions, generated
//! from the clap definitions in `cli.rs` ([`program`], which leaves `docs`
//! out) and the protocol table, so they say what `--help` says.
//!
//! Writes DIR/man/ringlet.1 and one page per subcommand (ringlet-serve.1,
//! ringlet-bench-echo.1, ...), and DIR/completions/ringlet.bash, _ringlet
//! (zsh) and ringlet.fish. scripts/package.sh puts them in the .deb. Files
//! only: nothing here serves, reads or probes anything else.

use std::path::Path;

use anyhow::Context as _;
use clap_complete::Shell;

use crate::cli::program;
use crate::protocols::Entry;

pub fn docs(dir: &Path, protocols: &[Entry]) -> anyhow::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    clap_mangen::generate_to(program(protocols), &man)
        .with_context(|| format!("writing man pages into {}", man.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut program(protocols), "ringlet", &completions)
            .with_context(|| {
                format!("writing {shell} completions into {}", completions.display())
            })?;
    }
    Ok(())
}
