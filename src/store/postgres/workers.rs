//! Several engines on one database: each registers as a worker with a heartbeat, renews
//! the leases it holds while it beats, and hears every other process's commits through
//! `LISTEN`, so that it wakes at once instead of at its next poll.

use crate::model::{Millis, now_ms};
use crate::store::LocalCommits;
use anyhow::Result;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// Commits that may make work (publishes, outcomes, resumed endpoints, released leases).
pub const WORK: &str = "hookctl_work";
/// Commits that change subscriptions or custom values, which engines read again at once.
pub const CONFIG: &str = "hookctl_config";

/// An engine on the database, as `status` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Worker {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub started_at: Millis,
    pub heartbeat_at: Millis,
    /// The most requests it may have on the wire to one endpoint, once it has claimed.
    pub lane_bound: Option<u32>,
}

/// This process's name for itself among the workers: host, pid and a random part (a pid
/// can come back after a restart).
pub fn worker_id() -> String {
    format!(
        "{}-{}-{:08x}",
        host(),
        std::process::id(),
        rand::random::<u32>()
    )
}

pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// What other processes' commits tell this one.
pub struct Heard {
    pub commits: Arc<LocalCommits>,
    pub changes: Arc<AtomicI64>,
    /// A live worker's pid (0: none), for `engine_pid`.
    pub live_pid: Arc<AtomicU32>,
    /// How many workers are live, for `live_engines`.
    pub live_count: Arc<AtomicU32>,
}

impl Heard {
    pub fn work(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.commits.generation.fetch_add(1, Ordering::Release);
        self.commits.any.notify_waiters();
    }

    pub fn config(&self) {
        self.commits.config.fetch_add(1, Ordering::Release);
        self.work();
    }
}

/// Workers whose heartbeat is younger than `stale_ms`, newest first.
pub async fn live(pool: &PgPool, stale_ms: i64) -> Result<Vec<Worker>> {
    let rows: Vec<(String, String, i64, i64, i64, Option<i32>)> = sqlx::query_as(
        "SELECT id, host, pid, started_at, heartbeat_at, lane_bound FROM workers \
         WHERE heartbeat_at >= $1 ORDER BY started_at, id",
    )
    .bind(now_ms() - stale_ms)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, host, pid, started_at, heartbeat_at, lane_bound)| Worker {
                id,
                host,
                pid: u32::try_from(pid).unwrap_or(0),
                started_at,
                heartbeat_at,
                lane_bound: lane_bound.and_then(|b| u32::try_from(b).ok()),
            },
        )
        .collect())
}

/// Listens until the store is dropped (`closed` then ends). A lost connection is
/// reconnected by the listener; what was said meanwhile is unknown, so it counts as news.
pub async fn listen(pool: PgPool, heard: Heard, stale_ms: i64, mut closed: watch::Receiver<()>) {
    let mut listener: Option<PgListener> = None;
    let mut refresh = tokio::time::interval(Duration::from_secs(1));
    loop {
        if pool.is_closed() {
            return;
        }
        if listener.is_none() {
            match PgListener::connect_with(&pool).await {
                Ok(mut l) => match l.listen_all([WORK, CONFIG]).await {
                    Ok(()) => {
                        listener = Some(l);
                        heard.config();
                    }
                    Err(e) => tracing::warn!("cannot listen for commits: {e}"),
                },
                Err(e) => tracing::warn!("cannot listen for commits: {e}"),
            }
        }
        tokio::select! {
            _ = closed.changed() => return,
            _ = refresh.tick() => {
                if let Ok(w) = live(&pool, stale_ms).await {
                    heard.live_pid.store(w.last().map_or(0, |w| w.pid), Ordering::Relaxed);
                    heard.live_count.store(u32::try_from(w.len()).unwrap_or(u32::MAX), Ordering::Relaxed);
                }
            }
            n = async {
                match listener.as_mut() {
                    Some(l) => l.try_recv().await,
                    None => std::future::pending().await,
                }
            } => match n {
                Ok(Some(n)) if n.channel() == CONFIG => heard.config(),
                Ok(Some(_)) => heard.work(),
                Ok(None) => heard.config(),
                Err(_) if pool.is_closed() => return,
                Err(e) => {
                    tracing::warn!("lost the commit listener: {e}");
                    listener = None;
                    heard.config();
                }
            },
        }
    }
}

/// Registers `id` as a worker and beats until `stop` is dropped: each beat renews the
/// worker's heartbeat and the leases it holds, so that only a stopped worker's leases
/// expire. An engine that stops removes its row (`Release::All`); the beat then stops
/// renewing rather than register it again.
pub async fn beat(pool: PgPool, id: String, lease_ms: i64, mut stop: watch::Receiver<()>) {
    let started = now_ms();
    let every = Duration::from_millis((lease_ms / 3).max(100) as u64);
    let mut tick = tokio::time::interval(every);
    let mut registered = false;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {
                match renew(&pool, &id, started, lease_ms, registered).await {
                    Ok(true) => registered = true,
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!("worker heartbeat failed (its leases expire unless the next one succeeds): {e}");
                    }
                }
            }
        }
    }
}

/// One beat; false once the worker's row is gone (it stopped).
async fn renew(
    pool: &PgPool,
    id: &str,
    started: Millis,
    lease_ms: i64,
    registered: bool,
) -> Result<bool> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    let beat = if registered {
        sqlx::query("UPDATE workers SET heartbeat_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
    } else {
        sqlx::query(
            "INSERT INTO workers (id, host, pid, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        )
        .bind(id)
        .bind(host())
        .bind(i64::from(std::process::id()))
        .bind(started)
        .bind(now)
        .execute(&mut *tx)
        .await?
    };
    if beat.rows_affected() == 0 {
        return Ok(false);
    }
    // Rows being recorded this moment are skipped, not waited for: their leases end there.
    sqlx::query(
        "UPDATE deliveries SET lease_until = $2 WHERE id IN (SELECT id FROM deliveries \
           WHERE lease_owner = $1 AND lease_until IS NOT NULL FOR UPDATE SKIP LOCKED)",
    )
    .bind(id)
    .bind(now + lease_ms)
    .execute(&mut *tx)
    .await?;
    // Rows of workers gone for long are nobody's; their leases expired long ago.
    sqlx::query("DELETE FROM workers WHERE heartbeat_at < $1")
        .bind(now - 100 * lease_ms)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}
