//! `hookctl` (the console) and `hookctl demo`.

use super::{Ctx, Exit};
use crate::api;
use crate::engine::{Engine, EngineConfig};
use crate::netguard::Policy;
use crate::store::Store;
use crate::tui::{self, Launch};
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;

/// Console logs go to a file: the terminal belongs to the console.
fn log_to_file(db: &Path) -> Result<()> {
    // Beside a database file; a database server's consoles log where the default file
    // would be.
    let mut path = if crate::store::is_url(db) {
        crate::config::default_db_path().into_os_string()
    } else {
        db.as_os_str().to_owned()
    };
    if let Some(dir) = Path::new(&path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    path.push(".console.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open log file {}", Path::new(&path).display()))?;
    let filter = std::env::var("HOOKCTL_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .try_init();
    Ok(())
}

/// The API beside an embedded engine; a taken port is reported, never fatal.
async fn start_api(
    store: Arc<dyn Store>,
    cfg: &crate::config::Config,
    listen: &str,
) -> Result<String, String> {
    match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => {
            let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
            let state = api::ApiState::new(store, cfg);
            tokio::spawn(async move {
                let _ = api::serve(l, state).await;
            });
            Ok(addr)
        }
        Err(e) => Err(format!("{listen}: {e}")),
    }
}

pub async fn console(ctx: &Ctx) -> Result<Exit> {
    let store = ctx.open_store().await?;
    log_to_file(&ctx.cfg.db)?;
    // Where several engines share the database, one already running does the work; a
    // console starts its own only when none does.
    let claim = if store.shares_engines() && store.engine_pid().is_some() {
        Err(crate::store::EngineRunning {
            db: crate::store::shown(&ctx.cfg.db),
            pid: store.engine_pid().map(|p| p.to_string()),
        })
    } else {
        store.claim_engine()?
    };
    let (engine, api) = match claim {
        Ok(claim) => {
            let engine =
                Engine::start(store.clone(), claim, EngineConfig::from_config(&ctx.cfg)).await?;
            let api = start_api(store.clone(), &ctx.cfg, &ctx.cfg.listen).await;
            (Some(engine), api)
        }
        Err(running) => {
            tracing::info!("{running}: attaching");
            (None, Err("attached".into()))
        }
    };
    tui::run(Launch {
        store,
        db: ctx.cfg.db.clone(),
        engine,
        api,
        policy: Arc::new(Policy::new(ctx.cfg.allow_networks.clone())),
        bind_address: ctx.cfg.outbound_bind_address,
    })
    .await?;
    Ok(0)
}

pub async fn demo(ctx: &Ctx) -> Result<Exit> {
    let dir = tempfile::Builder::new().prefix("hookctl-demo-").tempdir()?;
    let mut cfg = ctx.cfg.clone();
    cfg.db = dir.path().join("demo.db");
    // Every demo endpoint is on 127.0.0.1.
    cfg.allow_networks = vec!["127.0.0.0/8".parse()?];
    cfg.circuit_threshold = 25;
    cfg.circuit_probe_interval = std::time::Duration::from_secs(10);
    let demo_ctx = Ctx {
        cfg: cfg.clone(),
        json: ctx.json,
        default_db: false,
    };
    let store = demo_ctx.open_store().await?;
    log_to_file(&cfg.db)?;
    let claim = store.claim_engine()?.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut engine_cfg = EngineConfig::from_config(&cfg);
    engine_cfg.policy = Arc::new(Policy::new(cfg.allow_networks.clone()));
    let engine = Engine::start(store.clone(), claim, engine_cfg).await?;
    let demo = tui::demo::populate(store.clone()).await?;
    let api = start_api(store.clone(), &cfg, "127.0.0.1:0").await;
    tui::run(Launch {
        store,
        db: cfg.db.clone(),
        engine: Some(engine),
        api,
        policy: Arc::new(Policy::new(cfg.allow_networks.clone())),
        bind_address: cfg.outbound_bind_address,
    })
    .await?;
    drop(demo);
    drop(dir);
    Ok(0)
}
