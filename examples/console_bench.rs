//! Console speed on a large store: builds a database of N events (default 1,000,000)
//! through the store, then times what an engineer feels: opening the console (first full
//! read and first frame) and the redraw after a key.
//!
//!     cargo run --release --example console_bench [-- EVENTS [KEEP_AT_PATH]]

use hookctl::model::*;
use hookctl::store::NewEvent;
use hookctl::store::OpenSettings;
use hookctl::tui::snapshot::{self, EngineMode};
use hookctl::tui::state::{Action, App, Pane};
use hookctl::tui::{render, theme::Theme};
use std::time::{Duration, Instant};

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    // A second argument keeps the database at that path (to open the console on it).
    let dir = tempfile::tempdir()?;
    let path = match std::env::args().nth(2) {
        Some(keep) if std::path::Path::new(&keep).exists() => {
            anyhow::bail!("{keep} exists; give a path for a new database")
        }
        Some(keep) => keep.into(),
        None => dir.path().join("bench.db"),
    };
    let store = hookctl::store::open(&path, &OpenSettings::default()).await?;
    for (id, name, events) in [
        ("sub_all", "orders-api", None),
        (
            "sub_some",
            "crm-sync",
            Some(vec!["ContactCreate".to_string()]),
        ),
    ] {
        store
            .add_subscription(
                Subscription::new(
                    id.into(),
                    name.into(),
                    "https://example.com/hook".into(),
                    events,
                    "whsec_x".into(),
                ),
                None,
            )
            .await?;
    }
    let built = Instant::now();
    let types = [
        "ContactCreate",
        "InvoicePaid",
        "OpportunityStageUpdate",
        "TaskCreate",
        "NoteCreate",
        "FormSubmitted",
        "OrderCreate",
        "InboundMessage",
        "AppointmentCreate",
        "ContactUpdate",
    ];
    let now = now_ms();
    let mut i = 0;
    while i < n {
        let batch: Vec<NewEvent> = (i..(i + 5000).min(n))
            .map(|k| NewEvent {
                id: format!("evt_bench_{k:08}"),
                event_type: types[k % types.len()].into(),
                location_id: Some("loc1".into()),
                timestamp: now - (n - k) as i64 * 3,
                data: serde_json::json!({"id": format!("c{k}"), "email": "jane@example.com"}),
                received_at: Some(now - (n - k) as i64 * 3),
            })
            .collect();
        store.publish(batch).await?;
        i += 5000;
    }
    // Outcomes set in bulk (the benchmark is about reading): mostly delivered, 1 % dead,
    // 0.5 % retrying, each with one attempt.
    let conn = rusqlite::Connection::open(&path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute("UPDATE deliveries SET status = CASE WHEN id % 100 = 0 THEN 'dead' WHEN id % 200 = 1 THEN 'retrying' ELSE 'delivered' END, attempts = 1, next_at = CASE WHEN id % 200 = 1 THEN ?1 + 600000 ELSE NULL END", [now])?;
    conn.execute("INSERT INTO attempts (delivery_id, n, at, status_code, error_class, error, latency_ms) SELECT id, 1, ?1 - (id * 3) % 3600000, CASE WHEN status = 'delivered' THEN 200 ELSE 500 END, CASE WHEN status = 'delivered' THEN NULL ELSE 'status' END, CASE WHEN status = 'delivered' THEN NULL ELSE 'HTTP 500' END, id % 300 FROM deliveries", [now])?;
    drop(conn);
    let deliveries = store.queue_counts().await?;
    let build_time = built.elapsed();
    drop(store);

    // Opening: a new store handle (as a new console process would), the first full read,
    // the first frame at 80×24.
    let open = Instant::now();
    let store = hookctl::store::open(&path, &OpenSettings::default()).await?;
    let mut app = App::default();
    app.apply(Action::Resize(24));
    let mode = EngineMode::Attached { pid: None };
    let snap = snapshot::load(
        store.as_ref(),
        &app.query(),
        mode.clone(),
        "bench.db",
        now_ms(),
    )
    .await?;
    app.set_snapshot(snap);
    render::buffer(&app, 80, 24, Theme { color: true });
    let t_open = open.elapsed();

    // Keys that need no read: moving the cursor, switching panes.
    let keys = Instant::now();
    let rounds = 200;
    for k in 0..rounds {
        let a = match k % 4 {
            0 => Action::Goto(Pane::Stream),
            1 => Action::Down,
            2 => Action::Goto(Pane::Dead),
            _ => Action::Up,
        };
        app.apply(a);
        render::buffer(&app, 80, 24, Theme { color: true });
    }
    let t_key = keys.elapsed() / rounds;

    // Keys that page the stream past its window or open the inspector: the query's parts
    // are read again, then the frame is drawn.
    app.apply(Action::Goto(Pane::Stream));
    let mut worst = Duration::ZERO;
    let mut total = Duration::ZERO;
    let pages = 30;
    for k in 0..pages {
        let t = Instant::now();
        app.apply(if k % 5 == 4 {
            Action::Enter
        } else {
            Action::PageDown
        });
        let prev = app.snapshot.clone().expect("loaded");
        let s = snapshot::reload_query(store.as_ref(), &app.query(), &prev).await?;
        app.set_snapshot(s);
        render::buffer(&app, 80, 24, Theme { color: true });
        if k % 5 == 4 {
            app.apply(Action::Back);
        }
        let d = t.elapsed();
        worst = worst.max(d);
        total += d;
    }
    let t_page = total / pages;

    // A change in the data: every figure read again (in the background; the screen keeps
    // the last frame meanwhile).
    let full = Instant::now();
    snapshot::load(store.as_ref(), &app.query(), mode, "bench.db", now_ms()).await?;
    let t_full = full.elapsed();

    println!(
        "console on {n} events ({} deliveries; built in {:.1} s)",
        deliveries.pending + deliveries.retrying + deliveries.delivered + deliveries.dead,
        build_time.as_secs_f64()
    );
    println!("  open: first full read + first frame   {}", ms(t_open));
    println!("  key without a read (move, pane)      {}", ms(t_key));
    println!("  key that pages or inspects (mean)    {}", ms(t_page));
    println!("  key that pages or inspects (worst)   {}", ms(worst));
    println!("  background refresh after a change    {}", ms(t_full));
    // The loader waits FULL_READ_PACE times a full read's cost before the next one.
    let every = t_full * (hookctl::tui::FULL_READ_PACE + 1);
    println!(
        "  under traffic, full refreshes apart   {} at least ({:.0} % of a core)",
        ms(every),
        100.0 * t_full.as_secs_f64() / every.as_secs_f64()
    );
    println!("rerun: cargo run --release --example console_bench -- {n}");
    Ok(())
}
