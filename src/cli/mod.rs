//! Command implementations: each reads its arguments, calls the library, prints text or
//! one JSON document.

mod access;
pub mod args;
mod audit;
mod console;
mod emit;
mod events;
pub mod output;
mod replay;
mod serve;
mod status;
mod subs;
mod tools;
mod values;

use crate::config::Config;
use anyhow::{Context, Result};
pub use args::Cli;
use args::Command;
use std::sync::Arc;
use std::time::Duration;

/// What every command gets: settings and the output mode.
pub struct Ctx {
    pub cfg: Config,
    pub json: bool,
    /// The database path was left to its default (its directory may be created).
    pub default_db: bool,
}

impl Ctx {
    pub async fn open_store(&self) -> Result<Arc<dyn crate::store::Store>> {
        if self.default_db
            && !crate::store::is_url(&self.cfg.db)
            && let Some(dir) = self.cfg.db.parent()
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        crate::store::open(
            &self.cfg.db,
            &crate::store::OpenSettings {
                synchronous_full: self.cfg.synchronous_full,
                busy_timeout: Duration::from_millis(self.cfg.busy_timeout_ms),
                worker_lease: self.cfg.worker_lease,
                endpoint_in_flight: self.cfg.endpoint_in_flight,
                max_connections: 16,
                probe_interval: self.cfg.circuit_probe_interval,
            },
        )
        .await
    }
}

/// Exit status of a command that ran: 0, or 1 for a negative answer (verify: invalid).
pub type Exit = i32;

pub async fn run(cli: Cli) -> Result<Exit> {
    // Made from the definitions alone: no settings or database needed.
    match cli.command {
        Some(Command::Completions { shell }) => return tools::completions(shell),
        Some(Command::Man) => return tools::man(),
        _ => {}
    }
    let mut cfg = Config::load(cli.config.as_deref())?;
    let default_db = cli.db.is_none();
    if let Some(db) = cli.db {
        cfg.db = db;
    }
    let ctx = Ctx {
        cfg,
        json: cli.json,
        default_db,
    };
    let Some(command) = cli.command else {
        return console::console(&ctx).await;
    };
    match command {
        Command::Demo => console::demo(&ctx).await,
        Command::Serve(a) => serve::run(&ctx, a).await,
        Command::Sub(c) => subs::run(&ctx, c).await,
        Command::Emit(a) => emit::run(&ctx, a).await,
        Command::Event(c) => events::run(&ctx, c).await,
        Command::Redeliver(a) => events::redeliver(&ctx, a).await,
        Command::Sink(a) => tools::sink(&ctx, a).await,
        Command::Verify(a) => tools::verify(&ctx, a).await,
        Command::Catalog(a) => tools::catalog(&ctx, a).await,
        Command::Status => status::run(&ctx).await,
        Command::Audit(a) => audit::run(&ctx, a).await,
        Command::Incident(a) => audit::incident(&ctx, a).await,
        Command::Values(c) => values::run(&ctx, c).await,
        Command::Token(c) => access::token(&ctx, c).await,
        Command::Inbound(c) => access::inbound(&ctx, c).await,
        #[cfg(feature = "bench")]
        Command::Bench {
            quick,
            only,
            sink_in_process,
            workers,
        } => {
            // A database server: each workload on a scratch database of its own there.
            let target = crate::bench::Target {
                server: crate::store::is_url(&ctx.cfg.db)
                    .then(|| ctx.cfg.db.to_string_lossy().into_owned()),
                workers,
            };
            crate::bench::run(
                quick,
                &only,
                ctx.cfg.synchronous_full,
                sink_in_process,
                target,
            )
            .await
            .map(|_| 0)
        }
        Command::Completions { .. } | Command::Man => Ok(0),
        #[cfg(feature = "bench")]
        Command::BenchSink { slow_ms } => {
            crate::bench::serve_sink(slow_ms.map(Duration::from_millis))
                .await
                .map(|_| 0)
        }
    }
}
