//! `ringlet bench`: run the load generator or the report, print the result.

use std::io::IsTerminal as _;
use std::time::Duration;

use crate::bench::{self, Threads};
use crate::cli::{Bench, BenchCommon};

/// `--threads`, by default every CPU this process may run on.
fn threads(count: Option<usize>, pin: bool) -> Threads {
    Threads {
        count: count.unwrap_or_else(|| ringlet::allowed_cpus().map_or(1, |c| c.len())),
        pin,
    }
}

/// `--duration`, in seconds: more than none, less than a day.
fn duration(seconds: f64) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        seconds > 0.0 && seconds < 86_400.0,
        "--duration must be between 0 and 86400 s"
    );
    Ok(Duration::from_secs_f64(seconds))
}

pub fn bench(b: Bench) -> anyhow::Result<()> {
    let progress = |c: &BenchCommon| !c.json && std::io::stderr().is_terminal();
    let outcome = match b {
        Bench::Echo(e) => bench::echo::run(&bench::echo::EchoConfig {
            addr: e.common.addr,
            conns: e.common.conns,
            size: e.size,
            duration: duration(e.common.duration)?,
            pipeline: e.pipeline.max(if e.rate.is_some() && e.pipeline == 1 {
                usize::MAX >> 4
            } else {
                1
            }),
            rate: e.rate,
            threads: threads(e.common.threads, e.common.pin),
            progress: progress(&e.common),
        })
        .map(|o| (o, e.common.json))?,
        Bench::File(f) => bench::file::run(&bench::file::FileConfig {
            mode: f.mode,
            addr: f.common.addr,
            path: f.path.clone(),
            conns: f.common.conns,
            duration: duration(f.common.duration)?,
            threads: threads(f.common.threads, f.common.pin),
            progress: progress(&f.common),
            expect: f.expect.clone(),
            evict: f.evict.clone(),
        })
        .map(|o| (o, f.common.json))?,
        Bench::Soak(o) => {
            let outcome = bench::soak::run(&bench::soak::SoakConfig {
                echo: o.echo,
                file: o.file,
                plain: o.plain_file,
                http: o.http,
                path: o.path.clone(),
                expect: o.expect.clone(),
                conns: o.conns,
                duration: duration(o.duration)?,
                threads: threads(o.threads, false),
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
