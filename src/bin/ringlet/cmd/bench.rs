//! `ringlet bench`: run the load generator or the report, print the result.

use std::io::IsTerminal as _;

use crate::bench::{self, Threads};
use crate::cli::{Bench, BenchCommon, FileModeArg};

pub fn bench(b: Bench) -> anyhow::Result<()> {
    let threads = |c: &BenchCommon| Threads {
        count: c
            .threads
            .unwrap_or_else(|| ringlet::allowed_cpus().map_or(1, |c| c.len())),
        pin: c.pin,
    };
    let duration = |c: &BenchCommon| {
        anyhow::ensure!(
            c.duration > 0.0 && c.duration < 86_400.0,
            "--duration must be between 0 and 86400 s"
        );
        Ok(std::time::Duration::from_secs_f64(c.duration))
    };
    let progress = |c: &BenchCommon| !c.json && std::io::stderr().is_terminal();
    let outcome = match b {
        Bench::Echo(e) => bench::echo::run(&bench::echo::EchoConfig {
            addr: e.common.addr,
            conns: e.common.conns,
            size: e.size,
            duration: duration(&e.common)?,
            pipeline: e.pipeline.max(if e.rate.is_some() && e.pipeline == 1 {
                usize::MAX >> 4
            } else {
                1
            }),
            rate: e.rate,
            threads: threads(&e.common),
            progress: progress(&e.common),
        })
        .map(|o| (o, e.common.json))?,
        Bench::File(f) => bench::file::run(&bench::file::FileConfig {
            mode: match f.mode {
                FileModeArg::Auto => bench::file::Mode::Auto,
                FileModeArg::Plain => bench::file::Mode::Plain,
                FileModeArg::Framed => bench::file::Mode::Framed,
                FileModeArg::Http => bench::file::Mode::Http,
            },
            addr: f.common.addr,
            path: f.path.clone(),
            conns: f.common.conns,
            duration: duration(&f.common)?,
            threads: threads(&f.common),
            progress: progress(&f.common),
            expect: f.expect.clone(),
            evict: f.evict.clone(),
        })
        .map(|o| (o, f.common.json))?,
        Bench::Soak(o) => {
            anyhow::ensure!(
                o.duration > 0.0 && o.duration < 86_400.0,
                "--duration must be between 0 and 86400 s"
            );
            let outcome = bench::soak::run(&bench::soak::SoakConfig {
                echo: o.echo,
                file: o.file,
                plain: o.plain_file,
                http: o.http,
                path: o.path.clone(),
                expect: o.expect.clone(),
                conns: o.conns,
                duration: std::time::Duration::from_secs_f64(o.duration),
                threads: Threads {
                    count: o
                        .threads
                        .unwrap_or_else(|| ringlet::allowed_cpus().map_or(1, |c| c.len())),
                    pin: false,
                },
                reset_every: o.reset_every,
                slow_every: o.slow_every,
            })?;
            println!("{}", serde_json::to_string(&outcome)?);
            anyhow::ensure!(
                outcome.unexpected_errors == 0,
                "{} errors that were not injected: {:?}",
                outcome.unexpected_errors,
                outcome.error_samples
            );
            return Ok(());
        }
        Bench::Report(r) => {
            let records = bench::report::read_records(&r.input)?;
            let (table, ratios) = bench::report::table(&records, &r.subject, &r.baseline)?;
            print!("{table}");
            if let Some(path) = &r.chart {
                bench::report::chart(&ratios, &r.subject, &r.baseline, path)?;
                eprintln!("chart written to {}", path.display());
            }
            return Ok(());
        }
    };
    let (outcome, json) = outcome;
    if json {
        println!("{}", serde_json::to_string(&outcome)?);
    } else {
        println!("{outcome}");
    }
    anyhow::ensure!(
        outcome.errors == 0,
        "{} errors: bytes did not check out",
        outcome.errors
    );
    Ok(())
}
