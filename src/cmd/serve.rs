//! `ringlet serve`: build the server from the options (or from the sockets
//! systemd passed), log where it listens, tell systemd, and turn signals into
//! a graceful drain (the first `SIGTERM`/`SIGINT`) or a cut (the second:
//! every connection still open is reset, never closed as if whole).

use std::time::Duration;

use anyhow::Context as _;
use ringlet::systemd::{self, Notifier};
use ringlet::{Linger, Server, Timeouts};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{info, warn};

use super::registry::{self, On};
use crate::cli::{Listen, Serve};

pub fn serve(args: Serve) -> anyhow::Result<()> {
    // Signals are caught before the shards start, so none is lost in between.
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing signal handlers")?;
    let mut builder = Server::builder()
        .backend(args.backend.into())
        .cores(args.cores)
        .max_conns(args.max_conns.map(|n| n as usize))
        .cached_sendfile(args.cached_sendfile)
        .shutdown_timeout(Duration::from_secs_f64(args.shutdown_timeout))
        .timeouts(Timeouts {
            idle: Duration::from_secs_f64(args.idle_timeout),
            write: Duration::from_secs_f64(args.write_timeout),
        })
        .linger(Linger {
            time: Duration::from_secs_f64(args.linger),
            bytes: args.linger_bytes,
        });

    let inherited = systemd::inherited_sockets(&registry::names()).map_err(anyhow::Error::msg)?;
    let activated = !inherited.is_empty();
    if activated {
        // Socket activation: systemd owns the addresses; serve what it passed.
        for (name, listener) in inherited {
            let entry = registry::entry(&name).expect("assigned from the registry's names");
            builder = (entry.add)(builder, &args, On::Socket(listener))?;
        }
    } else {
        for entry in registry::PROTOCOLS {
            if let Listen::On(addr) = (entry.listen)(&args) {
                builder = (entry.add)(builder, &args, On::Addr(addr))?;
            }
        }
    }

    let server = builder.start()?;
    log_ready(&server, &args, activated);
    if let Listen::On(addr) = args.metrics {
        let at = super::metrics::start(addr, server.monitor(), server.backend().name())?;
        info!("metrics on http://{at}/metrics");
    }
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
                    warn!("second {name}: stopping now: every connection still open is reset");
                    stopper.cut();
                    continue;
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

fn log_ready(server: &Server, args: &Serve, activated: bool) {
    let shards = match server.cpus().len() {
        1 => "1 shard".to_string(),
        n => format!("{n} shards"),
    };
    let cpus: Vec<String> = server.cpus().iter().map(|c| c.to_string()).collect();
    let common = format!(
        "{shards}, {} backend, CPUs {}{}",
        server.backend().name(),
        cpus.join(","),
        if activated {
            ", socket from systemd"
        } else {
            ""
        }
    );
    for entry in registry::PROTOCOLS {
        if let Some(addr) = server.local_addr(entry.name) {
            info!(
                "{} listening on {addr} ({common}, {})",
                entry.name,
                (entry.describe)(args)
            );
        }
    }
    let serves_files = ["file", "http"]
        .iter()
        .any(|name| server.local_addr(name).is_some());
    if server.backend() == ringlet::Backend::Uring
        && args.cached_sendfile
        && serves_files
        && !ringlet::probe::page_cache_visible()
    {
        info!(
            "files leave through the ring only (splice or read and send): this kernel does not answer cachestat (Linux 6.5+; a seccomp filter may refuse it)"
        );
    }
}
