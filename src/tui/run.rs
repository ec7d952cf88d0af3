//! The console's loop: keys in, snapshots in, frames out only when something changed.

use super::snapshot::{self, EngineMode, Query, Snapshot};
use super::state::{Action, App};
use super::theme::Theme;
use super::{keys, terminal, view};
use crate::engine::{Engine, lock};
use crate::model::now_ms;
use crate::store::Store;
use anyhow::Result;
use crossterm::event::{Event, EventStream};
use futures_util::StreamExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// How the console was started.
pub struct Launch {
    pub store: Arc<dyn Store>,
    pub db: PathBuf,
    /// The engine, when this process runs it; `None` when attached.
    pub engine: Option<Engine>,
    /// What the header says about the API when the engine is embedded.
    pub api: Result<String, String>,
}

/// Data-driven frames are spaced at least this far apart (keys draw at once): a busy
/// stream costs bounded bytes over a slow link.
const DATA_FRAME: Duration = Duration::from_millis(250);
const POLL: Duration = Duration::from_millis(100);

fn engine_mode(
    launch_embedded: bool,
    api: &Result<String, String>,
    db: &std::path::Path,
) -> EngineMode {
    if launch_embedded {
        return EngineMode::Embedded { api: api.clone() };
    }
    match lock::holder(db) {
        Some(pid) => EngineMode::Attached { pid: Some(pid) },
        None => EngineMode::Stopped,
    }
}

async fn loader(
    store: Arc<dyn Store>,
    db: PathBuf,
    embedded: bool,
    api: Result<String, String>,
    mut queries: watch::Receiver<Query>,
    out: watch::Sender<Option<Snapshot>>,
) {
    let mut seen: Option<(Query, Option<i64>, i64, EngineMode)> = None;
    let db_text = db.display().to_string();
    loop {
        let query = queries.borrow_and_update().clone();
        let counter = store.change_counter().await.ok();
        let now = now_ms();
        let mode = engine_mode(embedded, &api, &db);
        let key = (query.clone(), counter, now / 60_000, mode.clone());
        if seen.as_ref() != Some(&key) {
            let started = std::time::Instant::now();
            let loaded = snapshot::load(store.as_ref(), &query, mode, &db_text, now).await;
            tracing::debug!(took = ?started.elapsed(), "snapshot loaded");
            match loaded {
                Ok(mut s) => {
                    // Shown at minute resolution, so that a quiet screen stays still.
                    s.now = now - now % 60_000;
                    seen = Some(key);
                    if out.send(Some(s)).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!("reading the store failed: {e:#}"),
            }
        }
        tokio::select! {
            r = queries.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

pub async fn run(launch: Launch) -> Result<()> {
    let theme = Theme::from_env();
    let (mut term, guard) = terminal::enter()?;
    let mut app = App::default();
    let size = term.size()?;
    app.apply(Action::Resize(size.height));
    let (query_tx, query_rx) = watch::channel(app.query());
    let (snap_tx, mut snap_rx) = watch::channel(None);
    let loader = tokio::spawn(loader(
        launch.store.clone(),
        launch.db.clone(),
        launch.engine.is_some(),
        launch.api.clone(),
        query_rx,
        snap_tx,
    ));
    let mut input = EventStream::new();
    let mut term_sig = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut dirty = true;
    let mut urgent = true;
    let mut last_draw = Instant::now() - DATA_FRAME;
    loop {
        if dirty && (urgent || last_draw.elapsed() >= DATA_FRAME) {
            term.draw(|f| view::draw(f, &app, theme))?;
            dirty = false;
            urgent = false;
            last_draw = Instant::now();
        }
        let wait = if dirty {
            DATA_FRAME.saturating_sub(last_draw.elapsed())
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            ev = input.next() => match ev {
                Some(Ok(Event::Key(k))) => {
                    if let Some(a) = keys::action(&app, k) {
                        app.apply(a);
                        dirty = true;
                        urgent = true;
                        query_tx.send_if_modified(|q| {
                            let next = app.query();
                            let changed = *q != next;
                            *q = next;
                            changed
                        });
                    }
                }
                Some(Ok(Event::Resize(_, h))) => {
                    app.apply(Action::Resize(h));
                    term.autoresize()?;
                    dirty = true;
                    urgent = true;
                }
                Some(Ok(_)) => {}
                // The terminal went away (SSH dropped): nothing left to draw on.
                Some(Err(_)) | None => break,
            },
            r = snap_rx.changed() => {
                if r.is_err() { break; }
                let snap = snap_rx.borrow_and_update().clone();
                if let Some(s) = snap && app.set_snapshot(s) {
                    dirty = true;
                }
            }
            _ = tokio::time::sleep(wait), if dirty => {}
            _ = term_sig.recv() => break,
            _ = hup.recv() => break,
        }
        if app.quit {
            break;
        }
    }
    loader.abort();
    drop(guard);
    // `q` quits at once: an embedded engine's unfinished attempts keep their leases and
    // the next engine on this database retries them (at-least-once).
    drop(launch.engine);
    Ok(())
}
