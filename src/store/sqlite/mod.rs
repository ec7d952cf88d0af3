//! SQLite store: one writer connection owned by a group-commit task, a read pool, a
//! dedicated connection that watches `PRAGMA data_version` for other processes' commits,
//! and one that checkpoints the WAL beside the writer.

mod checkpoint;
mod migrate;
mod read;
mod rows;
mod writer;

use super::*;
use crate::model::{Millis, SubState, Subscription};
use anyhow::{Context, Result, bail};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, mpsc, oneshot};
use writer::Op;

#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub synchronous_full: bool,
    pub busy_timeout: Duration,
    pub read_connections: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            synchronous_full: false,
            busy_timeout: Duration::from_secs(10),
            read_connections: 4,
        }
    }
}

pub struct SqliteStore {
    path: PathBuf,
    ops: mpsc::Sender<Op>,
    read: SqlitePool,
    version: Mutex<SqliteConnection>,
    /// Signalled after every local commit, so an in-process engine reacts at once.
    committed: Arc<LocalCommits>,
}

fn base_options(path: &Path, o: &OpenOptions) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(o.busy_timeout)
        .foreign_keys(true)
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1))
}

impl SqliteStore {
    /// Opens (creating and migrating when needed) the database at `path`.
    pub async fn open(path: &Path, o: OpenOptions) -> Result<Arc<SqliteStore>> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            bail!("database directory {} does not exist", dir.display());
        }
        let writer_opts = base_options(path, &o)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .pragma(
                "wal_autocheckpoint",
                checkpoint::WRITER_AUTOCHECKPOINT_PAGES,
            )
            .synchronous(if o.synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            });
        let mut conn = {
            let _lock = migrate::lock(path).await?;
            let mut conn = writer_opts
                .connect()
                .await
                .with_context(|| format!("cannot open database {}", path.display()))?;
            migrate::run(&mut conn).await?;
            conn
        };
        // Cheap insurance that the connection is usable before handing it to the task.
        conn.ping().await.context("database is not responding")?;

        let read_opts = base_options(path, &o).read_only(true);
        let read = SqlitePoolOptions::new()
            .max_connections(o.read_connections)
            .min_connections(0)
            .connect_with(read_opts.clone())
            .await
            .with_context(|| format!("cannot open database {} for reading", path.display()))?;
        let version = read_opts.connect().await?;

        let committed = Arc::new(LocalCommits::default());
        // Without its checkpointer the store still works: the writer checkpoints itself
        // at its (larger) threshold.
        let checkpoints = match base_options(path, &o).connect().await {
            Ok(c) => {
                let (tx, rx) = mpsc::channel(1);
                tokio::spawn(checkpoint::run(c, rx));
                Some(tx)
            }
            Err(e) => {
                tracing::debug!("no background checkpoints: {e}");
                None
            }
        };
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(writer::run(conn, rx, committed.clone(), checkpoints));
        Ok(Arc::new(SqliteStore {
            path: path.to_path_buf(),
            ops: tx,
            read,
            version: Mutex::new(version),
            committed,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Notified after each commit made by this process.
    pub fn committed(&self) -> Arc<LocalCommits> {
        self.committed.clone()
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Op) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.ops
            .send(make(tx))
            .await
            .map_err(|_| anyhow::anyhow!("the store's writer has stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the store's writer has stopped"))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn publish(&self, events: Vec<NewEvent>) -> Result<Vec<Published>> {
        self.call(|reply| Op::Publish { events, reply }).await
    }

    async fn add_subscription(&self, sub: Subscription) -> Result<()> {
        self.call(|reply| Op::AddSubscription {
            sub: Box::new(sub),
            reply,
        })
        .await
    }

    async fn update_subscription(&self, sub: Subscription) -> Result<()> {
        self.call(|reply| Op::UpdateSubscription {
            sub: Box::new(sub),
            reply,
        })
        .await
    }

    async fn set_subscription_state(&self, id: &str, state: SubState) -> Result<bool> {
        let id = id.to_string();
        self.call(|reply| Op::SetState { id, state, reply }).await
    }

    async fn claim(
        &self,
        wants: Vec<(String, usize)>,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Vec<Job>> {
        let leased = self
            .call(|reply| Op::Claim {
                wants,
                now,
                lease_until,
                reply,
            })
            .await?;
        if leased.is_empty() {
            return Ok(Vec::new());
        }
        let mut seqs: Vec<i64> = leased.iter().map(|l| l.event_seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        // Only deliveries attempted before have a body to reuse.
        let again: Vec<i64> = leased
            .iter()
            .filter(|l| l.attempts > 0 || l.probes > 0)
            .map(|l| l.delivery_id)
            .collect();
        let read = async {
            let events: HashMap<i64, Arc<Event>> = read::events_by_seq(&self.read, &seqs)
                .await?
                .into_iter()
                .map(|(seq, e)| (seq, Arc::new(e)))
                .collect();
            let bodies = if again.is_empty() {
                HashMap::new()
            } else {
                read::bodies(&self.read, &again).await?
            };
            anyhow::Ok((events, bodies))
        };
        let (events, mut bodies) = match read.await {
            Ok(read) => read,
            Err(e) => {
                // Hand the leases back at once rather than leave them to expire.
                let ids = leased.iter().map(|l| l.delivery_id).collect();
                let _ = self.release(Release::Ids(ids)).await;
                return Err(e.context("reading the claimed deliveries' events"));
            }
        };
        let mut jobs = Vec::with_capacity(leased.len());
        let mut orphans = Vec::new();
        for l in leased {
            match events.get(&l.event_seq) {
                Some(event) => jobs.push(Job {
                    delivery_id: l.delivery_id,
                    subscription_id: l.subscription_id,
                    attempts: l.attempts,
                    probes: l.probes,
                    body: bodies.remove(&l.delivery_id),
                    event: Arc::clone(event),
                }),
                None => orphans.push(l.delivery_id),
            }
        }
        if !orphans.is_empty() {
            // Cannot happen while deliveries cascade with their events; say so if it does.
            tracing::error!(?orphans, "claimed deliveries whose events are missing");
            self.release(Release::Ids(orphans)).await?;
        }
        Ok(jobs)
    }

    async fn record(&self, outcomes: Vec<Outcome>, circuit_threshold: u32) -> Result<()> {
        self.call(|reply| Op::Record {
            outcomes,
            circuit_threshold,
            reply,
        })
        .await
    }

    async fn delete_subscription(&self, id: &str, force: bool) -> Result<DeleteOutcome> {
        let id = id.to_string();
        self.call(|reply| Op::DeleteSubscription { id, force, reply })
            .await
    }

    async fn rotate_secret(&self, id: &str, secret: String, grace_until: Millis) -> Result<()> {
        let id = id.to_string();
        self.call(|reply| Op::RotateSecret {
            id,
            secret,
            grace_until,
            reply,
        })
        .await
    }

    async fn purge(&self, filter: PurgeFilter, dry_run: bool) -> Result<PurgeCount> {
        self.call(|reply| Op::Purge {
            filter,
            dry_run,
            reply,
        })
        .await
    }

    async fn expire_held(
        &self,
        subscription_id: &str,
        before: Millis,
        reason: String,
    ) -> Result<u64> {
        let sub = subscription_id.to_string();
        self.call(|reply| Op::ExpireHeld {
            sub,
            before,
            reason,
            reply,
        })
        .await
    }

    async fn prune(&self, before: Millis) -> Result<PurgeCount> {
        self.call(|reply| Op::Prune { before, reply }).await
    }

    async fn retry_queue(&self, limit: u32) -> Result<Vec<RetryItem>> {
        read::retry_queue(&self.read, limit).await
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadItem>> {
        read::dead_letters(&self.read, limit).await
    }

    async fn attempt_samples(
        &self,
        since: Millis,
        limit: u32,
    ) -> Result<std::collections::HashMap<String, Vec<AttemptSample>>> {
        read::attempt_samples(&self.read, since, limit).await
    }

    async fn events_since(&self, since: Millis) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events WHERE received_at >= ?")
            .bind(since)
            .fetch_one(&self.read)
            .await?;
        Ok(n)
    }

    async fn queue_counts(&self) -> Result<QueueCounts> {
        read::queue_counts(&self.read).await
    }

    async fn subscription_log(&self, id: &str, limit: u32) -> Result<Vec<LogEntry>> {
        read::subscription_log(&self.read, id, limit).await
    }

    async fn release(&self, which: Release) -> Result<u64> {
        self.call(|reply| Op::Release { which, reply }).await
    }

    async fn redeliver(
        &self,
        target: RedeliverTarget,
        dry_run: bool,
        now: Millis,
    ) -> Result<Vec<Redelivered>> {
        self.call(|reply| Op::Redeliver {
            target,
            dry_run,
            now,
            reply,
        })
        .await
    }

    async fn set_value(&self, name: &str, location: Option<&str>, value: &str) -> Result<()> {
        let (name, location, value) = (
            name.to_string(),
            location.unwrap_or("").to_string(),
            value.to_string(),
        );
        self.call(|reply| Op::SetValue {
            name,
            location,
            value: Some(value),
            reply,
        })
        .await
        .map(|_| ())
    }

    async fn remove_value(&self, name: &str, location: Option<&str>) -> Result<bool> {
        let (name, location) = (name.to_string(), location.unwrap_or("").to_string());
        self.call(|reply| Op::SetValue {
            name,
            location,
            value: None,
            reply,
        })
        .await
    }

    async fn add_token(&self, token: ApiToken, hash: String) -> Result<()> {
        self.call(|reply| Op::AddToken {
            token: Box::new(token),
            hash,
            reply,
        })
        .await
    }

    async fn revoke_token(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.call(|reply| Op::RevokeToken { id, reply }).await
    }

    async fn add_inbound(&self, inbound: Inbound, hash: String) -> Result<()> {
        self.call(|reply| Op::AddInbound {
            inbound: Box::new(inbound),
            hash,
            reply,
        })
        .await
    }

    async fn remove_inbound(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.call(|reply| Op::RemoveInbound { id, reply }).await
    }

    async fn set_verify_token(&self, id: &str, token: Option<String>) -> Result<()> {
        let id = id.to_string();
        self.call(|reply| Op::SetVerifyToken { id, token, reply })
            .await
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>> {
        read::tokens(&self.read, None).await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>> {
        Ok(read::tokens(&self.read, Some(hash))
            .await?
            .into_iter()
            .next())
    }

    async fn inbounds(&self) -> Result<Vec<Inbound>> {
        read::inbounds(&self.read, None).await
    }

    async fn inbound_by_hash(&self, hash: &str) -> Result<Option<Inbound>> {
        Ok(read::inbounds(&self.read, Some(hash))
            .await?
            .into_iter()
            .next())
    }

    async fn verify_token(&self, id: &str) -> Result<Option<String>> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT verify_token FROM subscriptions WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        Ok(row.and_then(|r| r.0))
    }

    async fn counters(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT name, value FROM counters ORDER BY name")
                .fetch_all(&self.read)
                .await?,
        )
    }

    async fn values(&self) -> Result<Vec<CustomValue>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT name, location_id, value FROM custom_values ORDER BY name, location_id",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, loc, value)| CustomValue {
                name,
                location_id: (!loc.is_empty()).then_some(loc),
                value,
            })
            .collect())
    }

    async fn subscriptions(&self) -> Result<Vec<Subscription>> {
        read::subscriptions(&self.read).await
    }

    async fn find_subscription(&self, id_or_prefix: &str) -> Result<Option<Subscription>> {
        read::find_subscription(&self.read, id_or_prefix).await
    }

    async fn subscription_stats(&self) -> Result<Vec<SubscriptionStats>> {
        read::subscription_stats(&self.read).await
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRow>> {
        read::list_events(&self.read, filter).await
    }

    async fn event_detail(&self, id: &str) -> Result<Option<EventDetail>> {
        read::event_detail(&self.read, id).await
    }

    async fn next_due(&self) -> Result<Option<Millis>> {
        read::next_due(&self.read).await
    }

    async fn change_counter(&self) -> Result<i64> {
        let mut conn = self.version.lock().await;
        let (v,): (i64,) = sqlx::query_as("PRAGMA data_version")
            .fetch_one(&mut *conn)
            .await?;
        Ok(v)
    }
}
