//! `ringlet serve`: build the server from the options (or from the sockets
//! systemd passed), log where it listens, tell systemd, and turn signals into
//! a graceful drain.

use std::time::Duration;

use anyhow::Context as _;
use ringlet::io::Timeouts;
use ringlet::proto::echo::{Echo, EchoMode};
use ringlet::proto::file::FileServer;
use ringlet::server::placement;
use ringlet::systemd::{self, Notifier};
use ringlet::{Root, Server};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{info, warn};

use crate::cli::{EchoModeArg, Listen, Serve};

pub fn serve(args: Serve) -> anyhow::Result<()> {
    // Signals are caught before the shards start, so none is lost in between.
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing signal handlers")?;
    let mode = match args.echo_mode {
        EchoModeArg::Line => EchoMode::Line,
        EchoModeArg::Raw => EchoMode::Raw,
    };
    let root_path = args
        .root
        .canonicalize()
        .unwrap_or_else(|_| args.root.clone());
    let mut builder = Server::builder()
        .backend(args.backend.into())
        .cores(args.cores)
        .max_conns(args.max_conns.map(|n| n as usize))
        .shutdown_timeout(Duration::from_secs_f64(args.shutdown_timeout))
        .timeouts(Timeouts {
            idle: Duration::from_secs_f64(args.idle_timeout),
            write: Duration::from_secs_f64(args.write_timeout),
        });
    let echo = || Echo::new(mode, args.echo_buffer as usize);
    let files = || -> anyhow::Result<FileServer> {
        let root = Root::open(&args.root).context("--root")?;
        Ok(FileServer::new(root)
            .framed(args.file_header)
            .request_timeout(Duration::from_secs_f64(args.request_timeout)))
    };

    let inherited = systemd::inherited_sockets().map_err(anyhow::Error::msg)?;
    let activated = !inherited.is_empty();
    if activated {
        // Socket activation: systemd owns the addresses; serve what it passed.
        for (protocol, listener) in inherited {
            builder = match protocol {
                "echo" => builder.service_on("echo", listener, echo()),
                _ => builder.service_on("file", listener, files()?),
            };
        }
    } else {
        if let Listen::On(addr) = args.echo {
            builder = builder.service("echo", addr, echo());
        }
        if let Listen::On(addr) = args.file {
            builder = builder.service("file", addr, files()?);
        }
    }

    let server = builder.start()?;
    log_ready(&server, &args, mode, &root_path, activated);
    let notifier = Notifier::start(server.monitor());

    let stopper = server.stopper();
    std::thread::Builder::new()
        .name("ringlet-signals".into())
        .spawn(move || {
            let mut stopping = false;
            for sig in signals.forever() {
                let name = match sig {
                    SIGHUP => {
                        info!("SIGHUP: nothing to reload; ignored");
                        continue;
                    }
                    SIGINT => "SIGINT",
                    _ => "SIGTERM",
                };
                if stopping {
                    warn!("second {name}: stopping now, without waiting for connections");
                    std::process::exit(0);
                }
                stopping = true;
                info!("{name}: draining: no new connections; live ones may finish");
                notifier.stopping();
                stopper.stop();
            }
        })
        .context("starting the signal thread")?;

    server.wait()?;
    info!("stopped");
    Ok(())
}

fn log_ready(
    server: &Server,
    args: &Serve,
    mode: EchoMode,
    root: &std::path::Path,
    activated: bool,
) {
    let shards = match server.cpus().len() {
        1 => "1 shard".to_string(),
        n => format!("{n} shards"),
    };
    let common = format!(
        "{shards}, {} backend, CPUs {}{}",
        server.backend().name(),
        placement::list(server.cpus()),
        if activated {
            ", socket from systemd"
        } else {
            ""
        }
    );
    if let Some(addr) = server.local_addr("echo") {
        info!(
            "echo listening on {addr} ({common}, {} mode)",
            mode_name(mode)
        );
    }
    if let Some(addr) = server.local_addr("file") {
        let framing = if args.file_header { "framed" } else { "plain" };
        info!(
            "file listening on {addr} ({common}, root {}, {framing})",
            root.display()
        );
    }
}

fn mode_name(mode: EchoMode) -> &'static str {
    match mode {
        EchoMode::Line => "line",
        EchoMode::Raw => "raw",
    }
}
