//! The `ringlet` binary: parse the command line, run the library, map errors
//! to exit codes. Nothing here serves a byte.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use ringlet::proto::echo::{Echo, EchoMode};
use ringlet::proto::file::FileServer;
use ringlet::server::placement;
use ringlet::{Root, Server};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{error, info, warn};

mod cli;

use cli::{Bench, BenchCommon, Cli, Command, EchoModeArg, Listen, Serve};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Probe => return probe(),
        Command::Bench(b) => bench(b),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RINGLET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn serve(args: Serve) -> anyhow::Result<()> {
    let mut builder = Server::builder()
        .backend(args.backend.into())
        .cores(args.cores)
        .max_conns(args.max_conns.map(|n| n as usize));
    let mode = match args.echo_mode {
        EchoModeArg::Line => EchoMode::Line,
        EchoModeArg::Raw => EchoMode::Raw,
    };
    if let Listen::On(addr) = args.echo {
        builder = builder.service("echo", addr, Echo::new(mode, args.echo_buffer as usize));
    }
    let root_path = args
        .root
        .canonicalize()
        .unwrap_or_else(|_| args.root.clone());
    if let Listen::On(addr) = args.file {
        let root = Root::open(&args.root).context("--root")?;
        builder = builder.service("file", addr, FileServer::new(root).framed(args.file_header));
    }

    // Signals are caught before the shards start, so none is lost in between.
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("installing signal handlers")?;
    let server = builder.start()?;
    let cpus = format!(
        "{} backend, CPUs {}",
        server.backend().name(),
        placement::list(server.cpus())
    );
    let shards = match server.cpus().len() {
        1 => "1 shard".to_string(),
        n => format!("{n} shards"),
    };
    if let Some(addr) = server.local_addr("echo") {
        info!(
            "echo listening on {addr} ({shards}, {cpus}, {} mode)",
            mode_name(mode)
        );
    }
    if let Some(addr) = server.local_addr("file") {
        let framing = if args.file_header { "framed" } else { "plain" };
        info!(
            "file listening on {addr} ({shards}, {cpus}, root {}, {framing})",
            root_path.display()
        );
    }

    let stopper = server.stopper();
    std::thread::Builder::new()
        .name("ringlet-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for sig in signals.forever() {
                seen += 1;
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                if seen > 1 {
                    warn!("second {name}: exiting now");
                    std::process::exit(0);
                }
                info!("{name}: stopping");
                stopper.stop();
            }
        })
        .context("starting the signal thread")?;

    server.wait()?;
    info!("stopped");
    Ok(())
}

fn bench(b: Bench) -> anyhow::Result<()> {
    use ringlet::bench::{self, Threads};
    let threads = |c: &BenchCommon| Threads {
        count: c
            .threads
            .unwrap_or_else(|| placement::allowed_cpus().map_or(1, |c| c.len())),
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
        Bench::Report(r) => {
            let records = bench::report::read_records(&r.input)?;
            let (table, ratios) = bench::report::table(&records, &r.subject, &r.baseline);
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

fn probe() -> ExitCode {
    let report = ringlet::probe::Report::gather();
    print!("{report}");
    if report.uring_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn mode_name(mode: EchoMode) -> &'static str {
    match mode {
        EchoMode::Line => "line",
        EchoMode::Raw => "raw",
    }
}
