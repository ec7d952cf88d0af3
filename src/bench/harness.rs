//! A fresh engine on a temporary database, its loads, and the two baselines (raw HTTP,
//! store only).

use super::*;
use crate::engine::http::Sender;
use crate::engine::{Engine, EngineConfig, request};
use crate::model::*;
use crate::netguard::Policy;
use crate::payload::Shape;
use crate::store::OpenSettings;
use crate::store::{Job, KeptHeaders, NewEvent, Outcome, SentBody, Store, header_text};
use anyhow::{Context, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(super) fn sub(id: &str, url: String) -> Subscription {
    let mut s = Subscription::new(
        id.into(),
        id.into(),
        url,
        None,
        "whsec_YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldA==".into(),
    );
    s.payload = PayloadStyle::Envelope;
    // A rare failed attempt on a loaded machine (a connection reset, a timeout) is retried
    // in a tenth of a second, not after the default five seconds that would stall the
    // measurement waiting for its last delivery.
    s.retry_schedule_ms = vec![100, 1_000, 5_000];
    s
}

pub(super) fn event(i: usize) -> NewEvent {
    NewEvent {
        id: format!("bench-{i}"),
        event_type: "ContactCreate".into(),
        location_id: Some("loc1".into()),
        timestamp: now_ms(),
        // ~1 KiB signed body, as in the field notes' HTTP figures.
        data: serde_json::json!({"id": format!("c{i}"), "email": "jane@example.com", "note": "x".repeat(900)}),
        received_at: None,
    }
}

pub(super) struct Bench {
    pub(super) dir: tempfile::TempDir,
    pub(super) store: Arc<dyn Store>,
    pub(super) engine: Engine,
    /// More engines on the same database server, each a worker of its own.
    pub(super) others: Vec<(Arc<dyn Store>, Engine)>,
    /// The scratch database on a server: (server URL, database name).
    pub(super) scratch: Option<(String, String)>,
}

impl Bench {
    /// Stops the engines and removes their database before the next workload, so neither
    /// competes for the cores with what is measured next.
    pub(super) async fn finish(self) -> Result<()> {
        let Bench {
            dir,
            store,
            engine,
            others,
            scratch,
        } = self;
        engine.drain(Duration::from_secs(5)).await?;
        for (s, e) in others {
            e.drain(Duration::from_secs(5)).await?;
            s.closed().await;
        }
        if let Some((server, name)) = scratch {
            let closed = store.closed();
            drop(store);
            closed.await;
            return drop_scratch(&server, &name).await;
        }
        retire(store, dir).await
    }

    /// The database's size on disk.
    pub(super) async fn bytes(&self) -> u64 {
        match &self.scratch {
            Some((server, name)) => scratch_bytes(server, name).await.unwrap_or(0),
            None => db_bytes(self.dir.path()),
        }
    }
}

/// A fresh database on the server `server` names (a `postgres://` URL): (its URL, name).
pub(super) async fn new_scratch(server: &str) -> Result<(String, String)> {
    crate::store::scratch::create(server).await
}

async fn drop_scratch(server: &str, name: &str) -> Result<()> {
    crate::store::scratch::drop(server, name).await
}

async fn scratch_bytes(server: &str, name: &str) -> Result<u64> {
    crate::store::scratch::bytes(server, name).await
}

/// Deletes a workload's database once its store has closed it. Left to `TempDir`'s drop,
/// the file was unlinked while the store's threads still had it open, so its blocks were
/// freed (and, on a file system mounted with `discard`, trimmed) at their last close,
/// inside the next raw HTTP round: on this VM freeing workload 4's 1.7 GB took about a
/// second and up to half a core as steal, and the round before workload 5 ran at 0.71–0.81
/// of the median in each of five runs (0.80–1.16 in the five since).
pub(super) async fn retire(store: Arc<dyn Store>, dir: tempfile::TempDir) -> Result<()> {
    // The last handle on the store may drop on another task (the engine's recorder, an API
    // connection finishing), shortly after this one.
    let closed = store.closed();
    drop(store);
    tokio::time::timeout(Duration::from_secs(60), closed)
        .await
        .context("a workload's database was still open 60 s after it ended")?;
    tokio::task::spawn_blocking(move || dir.close())
        .await
        .context("removing a workload's database stopped")?
        .context("cannot remove a workload's database")
}

/// A fresh database (a file, or a scratch database on the plan's server) with the plan's
/// engines on it.
pub(super) async fn fresh(p: &Plan) -> Result<Bench> {
    let dir = tempfile::tempdir()?;
    let (db, scratch) = match &p.server {
        Some(server) => {
            let (url, name) = new_scratch(server).await?;
            (std::path::PathBuf::from(url), Some((server.clone(), name)))
        }
        None => (dir.path().join("bench.db"), None),
    };
    let settings = OpenSettings {
        synchronous_full: p.synchronous_full,
        endpoint_in_flight: p.in_flight,
        ..OpenSettings::default()
    };
    let start = || async {
        let store = crate::store::open(&db, &settings).await?;
        let claim = store.claim_engine()?.map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut cfg = EngineConfig::from_config(&crate::config::Config::defaults());
        cfg.policy = Arc::new(Policy::new(vec!["127.0.0.0/8".parse()?]));
        cfg.endpoint_in_flight = p.in_flight;
        cfg.max_in_flight = 512;
        let engine = Engine::start(store.clone(), claim, cfg).await?;
        anyhow::Ok((store, engine))
    };
    let (store, engine) = start().await?;
    let mut others = Vec::new();
    for _ in 1..p.workers {
        others.push(start().await?);
    }
    Ok(Bench {
        dir,
        store,
        engine,
        others,
        scratch,
    })
}

/// Failed attempts so far, by class, when there were any: a workload that took longer than
/// its neighbours says why.
pub(super) async fn failures(b: &Bench) -> String {
    let Ok(counters) = b.store.counters().await else {
        return String::new();
    };
    let failed: Vec<String> = counters
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("attempts_failed_")
                .filter(|_| *v > 0)
                .map(|class| format!("{class} {v}"))
        })
        .collect();
    if failed.is_empty() {
        String::new()
    } else {
        format!(" — failed attempts (retried): {}", failed.join(", "))
    }
}

pub(super) fn db_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Publishes `n` events in durable batches and waits for `deliveries` receipts.
pub(super) async fn run_load(
    name: &str,
    b: &Bench,
    seen: &Receiver,
    n: usize,
    deliveries: u64,
    pace: Option<f64>,
) -> Result<Row> {
    let cpu0 = Cpu::now(seen);
    let threads0 = Threads::now();
    let start = Instant::now();
    let mut acked = 0usize;
    let batch = if pace.is_some() { 10 } else { 500 };
    let mut publish_time = Duration::ZERO;
    while acked < n {
        if let Some(rate) = pace {
            let due = Duration::from_secs_f64(acked as f64 / rate);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let t = Instant::now();
        let events: Vec<NewEvent> = (acked..(acked + batch).min(n)).map(event).collect();
        acked += events.len();
        b.store.publish(events).await?;
        publish_time += t.elapsed();
    }
    let got = seen
        .wait_for(deliveries, Duration::from_secs(600), &*b.store)
        .await?;
    let took = start.elapsed().as_secs_f64();
    let threads = threads0.per_1k_since(got);
    eprintln!(
        "  {name}: {got}/{deliveries} in {took:.1} s{} · cpu s/1k: {threads}",
        failures(b).await
    );
    measured(
        name,
        b,
        seen,
        n,
        got,
        took,
        n as f64 / publish_time.as_secs_f64().max(1e-9),
        cpu0,
    )
    .await
}

/// A workload's row from what it measured and what the receiver and this process saw:
/// `n` events published, `got` receipts in `took` seconds, CPU counted from `cpu0`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn measured(
    name: &str,
    b: &Bench,
    seen: &Receiver,
    n: usize,
    got: u64,
    took: f64,
    events_per_s: f64,
    cpu0: Cpu,
) -> Result<Row> {
    // Read before the latencies: fetching them from the receiver is not the workload's.
    let cpu_per_1k = cpu0.per_1k_since(seen, got);
    let mut lat = seen.latencies().await?;
    Ok(Row {
        name: name.into(),
        events_per_s,
        deliveries_per_s: got as f64 / took,
        p50: percentile(&mut lat, 0.50),
        p99: percentile(&mut lat, 0.99),
        p999: percentile(&mut lat, 0.999),
        cpu_per_1k,
        peak_rss_mb: rss_kb("VmHWM:") as f64 / 1024.0,
        db_bytes_per_event: b.bytes().await as f64 / n as f64,
    })
}

/// The raw HTTP rate: the engine's own client settings and per-endpoint concurrency,
/// signing included, nothing stored.
/// Returns requests/s and CPU seconds per 1,000 requests (client and receiver apart).
pub(super) async fn raw_http(recv: &Receiver, n: usize, concurrency: usize) -> Result<(f64, Cpu)> {
    let addr = recv.addr();
    let sender = Arc::new(Sender::new(
        Arc::new(Policy::new(vec!["127.0.0.0/8".parse()?])),
        64 * 1024,
        concurrency,
        None,
    )?);
    let s = sub("raw", format!("http://{addr}/raw"));
    let start = Instant::now();
    let cpu0 = Cpu::now(recv);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (sender, s, next) = (sender.clone(), s.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    break;
                }
                let req = request_for(&s, i);
                let _ = sender.send(&req, Duration::from_secs(10)).await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    Ok((rate, cpu0.per_1k_since(recv, n as u64)))
}

/// The request the engine would send for event `i` to `s`: its first attempt.
pub(super) fn request_for(s: &Subscription, i: usize) -> request::Request {
    let e = event(i);
    let ev = Event {
        id: e.id,
        event_type: e.event_type,
        location_id: e.location_id,
        timestamp: e.timestamp,
        data: e.data.into(),
    };
    let payload = request::render_payload(s, &ev, &Default::default()).unwrap_or_default();
    request::build(s, &ev, &payload, 1, now_ms())
}

/// The store-only rate: publish, claim and record the same deliveries, no HTTP. Returns
/// deliveries/s and CPU seconds per 1,000 deliveries.
pub(super) async fn store_only(n: usize, server: Option<&str>) -> Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let scratch = match server {
        Some(server) => Some(new_scratch(server).await?),
        None => None,
    };
    let db = match &scratch {
        Some((url, _)) => std::path::PathBuf::from(url),
        None => dir.path().join("s.db"),
    };
    let settings = OpenSettings {
        endpoint_in_flight: 500,
        ..OpenSettings::default()
    };
    let store = crate::store::open(&db, &settings).await?;
    let s = sub("s", "http://127.0.0.1:9/x".into());
    store.add_subscription(s.clone(), None).await?;
    // What the engine keeps of each attempt, byte for byte in size: the request's headers
    // (as sent, credentials masked) and the receiver's answer (its headers, no body), as
    // text made where the attempt ran, as the engine does.
    let kept = KeptHeaders {
        request: header_text::masked_text(&request_for(&s, 0).headers),
        response: Some(header_text::to_text(&[
            ("content-length", "0"),
            ("date", "Wed, 02 Dec 2026 15:10:00 GMT"),
        ])),
    };
    // What the engine keeps of a plain subscription's first body: its shape.
    let shape = Shape::of(&s);
    let start = Instant::now();
    let cpu0 = rusage_cpu();
    let mut i = 0;
    while i < n {
        let events: Vec<NewEvent> = (i..(i + 500).min(n)).map(event).collect();
        i += events.len();
        store.publish(events).await?;
    }
    let mut done = 0;
    while done < n {
        let jobs: Vec<Job> = store
            .claim(vec![("s".into(), 500)], i64::MAX / 4, i64::MAX / 4)
            .await?;
        if jobs.is_empty() {
            break;
        }
        done += jobs.len();
        let outcomes: Vec<Outcome> = jobs
            .into_iter()
            .map(|j| Outcome {
                delivery_id: j.delivery_id,
                subscription_id: j.subscription_id,
                probe: false,
                probes: 0,
                gone: false,
                attempt: Attempt {
                    n: 1,
                    at: now_ms(),
                    status_code: Some(200),
                    error_class: None,
                    error: None,
                    latency_ms: 1,
                    request_headers: Vec::new(),
                    response_headers: Vec::new(),
                    response_body: Some(Vec::new()),
                },
                status: DeliveryStatus::Delivered,
                next_at: None,
                body: Some(SentBody::Made(shape)),
                kept_headers: Some(kept.clone()),
            })
            .collect();
        store.record(outcomes.into(), 10).await?;
    }
    let cpu_per_1k = (rusage_cpu() - cpu0) / (done.max(1) as f64 / 1000.0);
    let rate = done as f64 / start.elapsed().as_secs_f64();
    match (scratch, server) {
        (Some((_, name)), Some(server)) => {
            let closed = store.closed();
            drop(store);
            closed.await;
            drop_scratch(server, &name).await?;
        }
        _ => retire(store, dir).await?,
    }
    Ok((rate, cpu_per_1k))
}
