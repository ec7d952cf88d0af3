//! `hookctl serve`: the headless engine and API.

use super::args::ServeArgs;
use super::{Ctx, Exit};
use crate::api;
use crate::engine::{Engine, EngineConfig};
use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};

pub async fn run(ctx: &Ctx, a: ServeArgs) -> Result<Exit> {
    let store = ctx.open_store().await?;
    let claim = store.claim_engine()?.map_err(|running| {
        anyhow::anyhow!("{running}; stop it first (a console can attach to it instead)")
    })?;
    let listen = a.listen.unwrap_or_else(|| ctx.cfg.listen.clone());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let engine = Engine::start(store.clone(), claim, EngineConfig::from_config(&ctx.cfg)).await?;
    let state = api::ApiState::new(store.clone(), &ctx.cfg);
    tokio::spawn(async move {
        if let Err(e) = api::serve(listener, state).await {
            tracing::error!("API server stopped: {e}");
        }
    });
    eprintln!(
        "hookctl serve: engine running on {}; API listening on http://{addr}",
        crate::store::shown(&ctx.cfg.db)
    );
    tracing::info!(db = %crate::store::shown(&ctx.cfg.db), %addr, "serving");

    // SIGTERM (systemd), SIGINT (a terminal), SIGHUP (the SSH session dropped): all drain.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = hup.recv() => "SIGHUP",
    };
    tracing::info!("{which}: draining (no new claims; attempts in flight may finish)");
    engine.drain(a.drain_timeout).await?;
    Ok(0)
}
