//! The console's loop: keys in, snapshots in, frames out only when something changed.

use super::snapshot::{self, EngineMode, Query, Snapshot};
use super::state::{Action, App};
use super::theme::Theme;
use super::{keys, terminal, view};
use crate::engine::Engine;
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
    /// Where subscriptions may point (checked when the console adds or edits one).
    pub policy: Arc<crate::netguard::Policy>,
    pub bind_address: Option<std::net::IpAddr>,
}

/// Hands text to the clipboard of the terminal the engineer sits at: OSC 52, which
/// terminals and SSH pass through; inside tmux, into tmux's buffer as well.
fn copy_to_clipboard(text: &str) -> std::io::Result<()> {
    use base64::Engine as _;
    use std::io::Write;
    let b64 = base64::engine::general_purpose::STANDARD.encode(text);
    let mut out = std::io::stdout().lock();
    write!(out, "\x1b]52;c;{b64}\x07")?;
    out.flush()?;
    if std::env::var_os("TMUX").is_some()
        && let Ok(mut child) = std::process::Command::new("tmux")
            .args(["load-buffer", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
    {
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(text.as_bytes());
        }
        let _ = child.wait();
    }
    Ok(())
}

/// Data-driven frames are spaced at least this far apart (keys draw at once): a busy
/// stream costs bounded bytes over a slow link.
const DATA_FRAME: Duration = Duration::from_millis(250);
const POLL: Duration = Duration::from_millis(100);

/// Until the wall clock's next whole second, when a countdown's text changes.
fn next_second() -> Duration {
    Duration::from_millis(1000 - now_ms().rem_euclid(1000) as u64)
}

fn engine_mode(
    launch_embedded: bool,
    api: &Result<String, String>,
    store: &dyn Store,
) -> EngineMode {
    if launch_embedded {
        return EngineMode::Embedded { api: api.clone() };
    }
    match (store.live_engines(), store.engine_pid()) {
        (n, _) if n > 1 => EngineMode::Deployment { workers: n },
        (_, Some(pid)) => EngineMode::Attached { pid: Some(pid) },
        (_, None) => EngineMode::Stopped,
    }
}

/// What the data on screen depends on: the store's change counter, the minute, the engine.
type DataKey = (Option<i64>, i64, EngineMode);

/// A full read costs in proportion to the store's size (half a second for a million
/// deliveries on the 2-core machine, `examples/console_bench.rs`), and under traffic the
/// data changes at every poll: back to back, full reads would take most of a core from the
/// engine the engineer is watching. So the next one waits this many times as long as the
/// last one took: the console's reading stays under a fifth of a core on any store, and on
/// a small one (a few milliseconds a read) nothing changes. The stream and the inspected
/// event, read through indexes in a millisecond or two, keep the poll's pace meanwhile.
pub const FULL_READ_PACE: u32 = 4;

/// The last full read: what it was read for, after how many finished actions, how long ago
/// it started and how long it took.
struct FullRead {
    key: DataKey,
    actions_done: u64,
    started: Instant,
    took: Duration,
}

/// Whether the data read for `key`, after `actions_done` finished actions, calls for a full
/// read now: an action finished since the last one does at once (see `Query::actions_done`);
/// anything else changed, once the pace allows.
fn full_read_due(last: Option<&FullRead>, key: &DataKey, actions_done: u64) -> bool {
    match last {
        None => true,
        Some(r) => {
            r.actions_done != actions_done
                || (r.key != *key && r.started.elapsed() >= r.took * FULL_READ_PACE)
        }
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
    let mut full: Option<FullRead> = None;
    // What the query's parts (stream, inspected event) were last read for.
    let mut parts: Option<(DataKey, Query)> = None;
    let mut last: Option<Snapshot> = None;
    let db_text = crate::store::shown(&db);
    loop {
        let query = queries.borrow_and_update().clone();
        let counter = store.change_counter().await.ok();
        let now = now_ms();
        let mode = engine_mode(embedded, &api, store.as_ref());
        let data_key = (counter, now / 60_000, mode.clone());
        let started = Instant::now();
        let wanted = (data_key.clone(), query.clone());
        let (loaded, was_full) = match &last {
            Some(prev) if !full_read_due(full.as_ref(), &data_key, query.actions_done) => {
                if parts.as_ref() == Some(&wanted) {
                    (None, false)
                } else {
                    (
                        Some(snapshot::reload_query(store.as_ref(), &query, prev).await),
                        false,
                    )
                }
            }
            _ => (
                Some(
                    snapshot::load(store.as_ref(), &query, mode, &db_text, now)
                        .await
                        .map(|mut s| {
                            // Shown at minute resolution, so that a quiet screen stays still.
                            s.now = now - now % 60_000;
                            s
                        }),
                ),
                true,
            ),
        };
        match loaded {
            None => {}
            Some(Ok(s)) => {
                let took = started.elapsed();
                tracing::debug!(?took, full = was_full, "snapshot read");
                if was_full {
                    full = Some(FullRead {
                        key: data_key,
                        actions_done: query.actions_done,
                        started,
                        took,
                    });
                }
                parts = Some(wanted);
                last = Some(s.clone());
                if out.send(Some(s)).is_err() {
                    return;
                }
            }
            Some(Err(e)) => tracing::warn!("reading the store failed: {e:#}"),
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
    let mut app = App {
        policy: (*launch.policy).clone(),
        ..App::default()
    };
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
    let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel();
    let executor = tokio::spawn(
        super::commands::Executor {
            store: launch.store.clone(),
            policy: launch.policy.clone(),
            bind_address: launch.bind_address,
            actor: crate::audit::Actor::console(launch.engine.is_none()),
        }
        .run(cmd_rx, out_tx),
    );
    let mut input = EventStream::new();
    let mut term_sig = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut dirty = true;
    let mut urgent = true;
    let mut last_draw = Instant::now() - DATA_FRAME;
    loop {
        if dirty && (urgent || last_draw.elapsed() >= DATA_FRAME) {
            app.apply(Action::Tick(now_ms()));
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
            Some(outcome) = out_rx.recv() => {
                app.apply(Action::Done(outcome));
                dirty = true;
                urgent = true;
            }
            _ = tokio::time::sleep(wait), if dirty => {}
            _ = tokio::time::sleep(next_second()), if app.counting_down() => {
                app.apply(Action::Tick(now_ms()));
                dirty = true;
            }
            _ = term_sig.recv() => break,
            _ = hup.recv() => break,
        }
        for cmd in app.commands.drain(..) {
            let _ = cmd_tx.send(cmd);
        }
        if let Some(text) = app.clipboard.take()
            && let Err(e) = copy_to_clipboard(&text)
        {
            app.status = Some(format!("copy failed: {e}"));
        }
        query_tx.send_if_modified(|q| {
            let next = app.query();
            let changed = *q != next;
            *q = next;
            changed
        });
        if app.quit {
            break;
        }
    }
    loader.abort();
    executor.abort();
    drop(guard);
    // `q` quits at once: an embedded engine's unfinished attempts keep their leases and
    // the next engine on this database retries them (at-least-once).
    drop(launch.engine);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(counter: i64) -> DataKey {
        (Some(counter), 0, EngineMode::Stopped)
    }

    #[test]
    fn full_reads_are_paced_by_their_own_cost() {
        assert!(full_read_due(None, &key(1), 0));
        let took = Duration::from_millis(400);
        let read = |ago: Duration| FullRead {
            key: key(1),
            actions_done: 0,
            started: Instant::now() - ago,
            took,
        };
        // Nothing changed: no read, however long ago the last one was.
        assert!(!full_read_due(
            Some(&read(Duration::from_secs(2))),
            &key(1),
            0
        ));
        // A change soon after a slow read waits; once four times its cost has passed, not.
        assert!(!full_read_due(
            Some(&read(Duration::from_millis(500))),
            &key(2),
            0
        ));
        assert!(full_read_due(
            Some(&read(took * FULL_READ_PACE)),
            &key(2),
            0
        ));
        // An action the engineer took has finished: read at once, pace or not.
        assert!(full_read_due(
            Some(&read(Duration::from_millis(10))),
            &key(2),
            1
        ));
        // A fast read (a small store) leaves the pace to the poll.
        let fast = FullRead {
            key: key(1),
            actions_done: 0,
            started: Instant::now() - POLL,
            took: Duration::from_millis(5),
        };
        assert!(full_read_due(Some(&fast), &key(2), 0));
    }
}
