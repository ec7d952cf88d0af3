//! SQLite store: one writer connection owned by a group-commit thread, a pool of read-only
//! connections used from blocking tasks, a dedicated connection for reads that take
//! microseconds (`PRAGMA data_version` polls, the API's token lookups), and one that
//! checkpoints the WAL beside the writer.

mod checkpoint;
pub mod lock;
mod migrate;
mod read;
mod rows;
pub use rows::SUBSCRIPTION_COLUMNS;
mod sql;
mod steps;
mod writer;

use super::*;
use crate::model::{Millis, SubState, Subscription};
use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags, config::DbConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use steps::Detached;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
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
    read: Arc<ReadPool>,
    /// Point reads run inline here: a trip through the read pool (a permit, a blocking
    /// thread) cost an API request 1.6–1.9 ms under load, the query a few microseconds.
    /// In WAL mode a reader never waits for a writer.
    point: std::sync::Mutex<Connection>,
    /// Declared after the read connections, so that they are closed (fields drop in
    /// order) before the writer hears it is done: it is then the database's last
    /// connection, and its close is the last thing [`SqliteStore::on_closed`] waits for.
    ops: mpsc::Sender<Op>,
    /// Signalled after every local commit, so an in-process engine reacts at once.
    committed: Arc<LocalCommits>,
    /// Nothing is ever sent: the writer thread drops the sender once its connection and
    /// the checkpointer's are closed.
    closed: watch::Receiver<()>,
}

/// The store's thread names, as `hookctl bench` finds them in /proc to split its CPU.
pub const WRITER_THREAD: &str = "hookctl-writer";
pub const CHECKPOINT_THREAD: &str = "hookctl-checkpoint";

/// Prepared statements kept per connection: every statement the store runs, with room.
const STATEMENT_CACHE: usize = 64;

fn connect(path: &Path, o: &OpenOptions, flags: OpenFlags) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    c.busy_timeout(o.busy_timeout)?;
    c.pragma_update(None, "foreign_keys", true)?;
    // One plan per statement whatever its values: otherwise SQLite treats a bound `LIMIT ?`
    // as a constant and compiles the statement again whenever the value changes, as the
    // engine's claim does with each batch (7 % of the writer's time in workload 6).
    c.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(c)
}

fn connect_read_only(path: &Path, o: &OpenOptions) -> Result<Connection> {
    connect(path, o, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open database {} for reading", path.display()))
}

/// The writer's connection, on a database created and migrated if needed.
fn open_writer(path: &Path, o: &OpenOptions) -> Result<Connection> {
    let _lock = migrate::lock(path)?;
    let conn = connect(
        path,
        o,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )
    .with_context(|| format!("cannot open database {}", path.display()))?;
    let setup = || -> rusqlite::Result<()> {
        let _: String = conn.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
        conn.pragma_update(
            None,
            "synchronous",
            if o.synchronous_full { "FULL" } else { "NORMAL" },
        )?;
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            checkpoint::WRITER_AUTOCHECKPOINT_PAGES,
        )?;
        // Every operation in a batch runs in its own savepoint, whose journal holds the
        // original of each page it touches; past 64 KiB SQLite spills that journal to a
        // temporary file — a write system call per page on the writer's path.
        conn.pragma_update(None, "temp_store", "MEMORY")
    };
    setup().with_context(|| format!("cannot open database {}", path.display()))?;
    migrate::run(&conn)?;
    Ok(conn)
}

/// Read-only connections, opened on first use and kept; each query runs on a blocking
/// thread so a long read never holds up the runtime.
struct ReadPool {
    path: PathBuf,
    options: OpenOptions,
    idle: std::sync::Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl ReadPool {
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .context("the store is closed")?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let idle = pool.idle.lock().ok().and_then(|mut v| v.pop());
            let conn = match idle {
                Some(c) => c,
                None => connect_read_only(&pool.path, &pool.options)?,
            };
            let out = f(&conn);
            if let Ok(mut v) = pool.idle.lock() {
                v.push(conn);
            }
            out
        })
        .await
        .context("a database read stopped")?
    }
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
        let (p, opts) = (path.to_path_buf(), o.clone());
        let (conn, point) = tokio::task::spawn_blocking(move || {
            let conn = open_writer(&p, &opts)?;
            anyhow::Ok((conn, connect_read_only(&p, &opts)?))
        })
        .await
        .context("opening the database stopped")??;

        let committed = Arc::new(LocalCommits::default());
        // Without its checkpointer the store still works: the writer checkpoints itself
        // at its (larger) threshold.
        let (checkpoints, checkpointer) = match connect(path, &o, OpenFlags::SQLITE_OPEN_READ_WRITE)
        {
            Ok(c) => {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                std::thread::Builder::new()
                    .name(CHECKPOINT_THREAD.into())
                    .spawn(move || checkpoint::run(c, rx))
                    .ok()
                    .map(|t| (tx, t))
                    .unzip()
            }
            Err(e) => {
                tracing::debug!("no background checkpoints: {e}");
                (None, None)
            }
        };
        // The writer is the engine's serial path: a thread of its own runs each batch's
        // statements back to back, never queued behind HTTP work on the runtime.
        let (tx, rx) = mpsc::channel(4096);
        let (closed_tx, closed) = watch::channel(());
        let c = committed.clone();
        std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || {
                // Returns when the store's last handle is gone, its connection closed and
                // its end of `checkpoints` dropped, which stops the checkpointer.
                writer::run(conn, rx, c, checkpoints);
                if let Some(t) = checkpointer {
                    let _ = t.join();
                }
                drop(closed_tx);
            })
            .context("cannot start the store's writer")?;
        let read = Arc::new(ReadPool {
            path: path.to_path_buf(),
            permits: Semaphore::new(o.read_connections.max(1) as usize),
            options: o,
            idle: std::sync::Mutex::new(Vec::new()),
        });
        Ok(Arc::new(SqliteStore {
            path: path.to_path_buf(),
            ops: tx,
            read,
            point: std::sync::Mutex::new(point),
            committed,
            closed,
        }))
    }

    /// Resolves once the database file is closed by this store: take it before dropping
    /// the store's last handle (a read still in flight then may keep its own connection
    /// open a moment longer). Deleting the file before that would leave its space to be
    /// freed at the last close, whenever that comes.
    pub fn on_closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut closed = self.closed.clone();
        async move {
            // Nothing is ever sent: this returns (an error) when the sender is dropped.
            let _ = closed.changed().await;
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn point(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.point
            .lock()
            .map_err(|_| anyhow::anyhow!("the store's point-read connection is unusable"))
    }

    /// Notified after each commit made by this process.
    pub fn committed(&self) -> Arc<LocalCommits> {
        self.committed.clone()
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Op) -> Result<T> {
        call(&self.ops, make).await
    }

    /// An operation with its audit entry, if an operator did it: the entry goes in with
    /// it, or, when it fails, on its own with why.
    async fn audited<T>(
        &self,
        entry: Option<AuditEntry>,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Op,
    ) -> Result<T> {
        let Some(entry) = entry else {
            return self.call(make).await;
        };
        let failed = entry.clone();
        let r = self
            .call(|reply| Op::Audited {
                op: Box::new(make(reply)),
                entry: Box::new(entry),
            })
            .await;
        if let Err(e) = &r
            && let Err(a) = self.audit(failed.failed(e)).await
        {
            tracing::warn!("cannot record a failed action in the audit trail: {a:#}");
        }
        r
    }

    /// Runs work of many steps in a task of its own, to its end even when the caller stops
    /// waiting: an API client that hangs up drops its request's future, and a removal
    /// stopped there would leave its subscription paused with most of its backlog still
    /// waiting. A single writer operation needs none of this: once queued, the writer
    /// carries it out.
    async fn to_the_end<T, F>(&self, work: impl FnOnce(Detached) -> F) -> Result<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let detached = Detached {
            ops: self.ops.clone(),
            read: self.read.clone(),
        };
        tokio::spawn(work(detached))
            .await
            .map_err(|e| anyhow::anyhow!("the store's task failed: {e}"))?
    }
}

async fn call<T>(
    ops: &mpsc::Sender<Op>,
    make: impl FnOnce(oneshot::Sender<Result<T>>) -> Op,
) -> Result<T> {
    let (tx, rx) = oneshot::channel();
    ops.send(make(tx))
        .await
        .map_err(|_| anyhow::anyhow!("the store's writer has stopped"))?;
    rx.await
        .map_err(|_| anyhow::anyhow!("the store's writer has stopped"))?
}

#[async_trait]
impl Store for SqliteStore {
    fn local_commits(&self) -> Arc<LocalCommits> {
        self.committed.clone()
    }

    fn claim_engine(&self) -> Result<Result<EngineClaim, EngineRunning>> {
        Ok(lock::try_acquire(&self.path)?.map(|l| Box::new(l) as EngineClaim))
    }

    fn engine_pid(&self) -> Option<u32> {
        lock::holder(&self.path)
    }

    fn closed(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(self.on_closed())
    }

    async fn publish(&self, events: Vec<NewEvent>) -> Result<Vec<Published>> {
        self.call(|reply| Op::Publish {
            events,
            token: None,
            reply,
        })
        .await
    }

    async fn publish_as(&self, events: Vec<NewEvent>, token_id: String) -> Result<Vec<Published>> {
        self.call(|reply| Op::Publish {
            events,
            token: Some(token_id),
            reply,
        })
        .await
    }

    async fn add_subscription(&self, sub: Subscription, by: Option<&Actor>) -> Result<()> {
        let entry = by.map(|b| AuditEntry::new(b, crate::audit::action::SUB_ADD).on_sub(&sub.id));
        self.audited(entry, |reply| Op::AddSubscription {
            sub: Box::new(sub),
            reply,
        })
        .await
    }

    async fn update_subscription(&self, sub: Subscription, by: Option<&Actor>) -> Result<()> {
        let entry = by.map(|b| AuditEntry::new(b, crate::audit::action::SUB_EDIT).on_sub(&sub.id));
        self.audited(entry, |reply| Op::UpdateSubscription {
            sub: Box::new(sub),
            reply,
        })
        .await
    }

    async fn set_subscription_state(
        &self,
        id: &str,
        state: SubState,
        by: Option<&Actor>,
    ) -> Result<bool> {
        let entry = by.map(|b| crate::audit::entry::state(b, id, state));
        let id = id.to_string();
        self.audited(entry, |reply| Op::SetState { id, state, reply })
            .await
    }

    async fn claim_for_lanes(
        &self,
        wants: Vec<(String, usize)>,
        now: Millis,
        lease_until: Millis,
        _on_wire: usize,
    ) -> Result<Claim> {
        let leased = self
            .call(|reply| Op::Claim {
                wants,
                now,
                lease_until,
                reply,
            })
            .await?;
        if leased.is_empty() {
            return Ok(Claim::default());
        }
        let mut seqs: Vec<i64> = leased.iter().map(|l| l.event_seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        // Only deliveries attempted before have a body to reuse.
        let again: Vec<(i64, i64)> = leased
            .iter()
            .filter(|l| l.attempts > 0 || l.probes > 0)
            .map(|l| (l.delivery_id, l.event_seq))
            .collect();
        let read = self.read.run(move |c| {
            // One read transaction for all the lookups: on its own, each statement took
            // and released a WAL read lock, a third of the time these reads took.
            let tx = c.unchecked_transaction()?;
            let c = &*tx;
            let events: HashMap<i64, Arc<Event>> = read::events_by_seq(c, &seqs)?
                .into_iter()
                .map(|(seq, e)| (seq, Arc::new(e)))
                .collect();
            let again: Vec<(i64, Arc<Event>)> = again
                .into_iter()
                .filter_map(|(id, seq)| Some((id, Arc::clone(events.get(&seq)?))))
                .collect();
            let bodies = if again.is_empty() {
                HashMap::new()
            } else {
                read::bodies(c, &again)?
            };
            tx.finish()?;
            anyhow::Ok((events, bodies))
        });
        let (events, bodies) = match read.await {
            Ok(read) => read,
            Err(e) => {
                // Hand the leases back at once rather than leave them to expire.
                let ids = leased.iter().map(|l| l.delivery_id).collect();
                let _ = self.release(Release::Ids(ids)).await;
                return Err(e.context("reading the claimed deliveries' events"));
            }
        };
        let (jobs, orphans) = jobs_from(leased, &events, bodies);
        if !orphans.is_empty() {
            // Cannot happen while deliveries cascade with their events; say so if it does.
            tracing::error!(?orphans, "claimed deliveries whose events are missing");
            self.release(Release::Ids(orphans)).await?;
        }
        Ok(Claim {
            jobs,
            lane_limit: None,
        })
    }

    async fn record(&self, outcomes: Arc<[Outcome]>, circuit_threshold: u32) -> Result<()> {
        self.call(|reply| Op::Record {
            outcomes,
            circuit_threshold,
            reply,
        })
        .await
    }

    async fn delete_subscription(
        &self,
        id: &str,
        force: bool,
        by: Option<&Actor>,
    ) -> Result<DeleteOutcome> {
        let entry = by.map(|b| crate::audit::entry::delete(b, id, force));
        let id = id.to_string();
        self.to_the_end(move |d| d.delete_subscription(id, force, entry))
            .await
    }

    async fn rotate_secret(
        &self,
        id: &str,
        secret: String,
        grace_until: Millis,
        by: Option<&Actor>,
    ) -> Result<()> {
        let entry = by.map(|b| AuditEntry::new(b, crate::audit::action::ROTATE_SECRET).on_sub(id));
        let id = id.to_string();
        self.audited(entry, |reply| Op::RotateSecret {
            id,
            secret,
            grace_until,
            reply,
        })
        .await
    }

    async fn purge(
        &self,
        filter: PurgeFilter,
        dry_run: bool,
        by: Option<&Actor>,
    ) -> Result<PurgeCount> {
        if dry_run {
            // A count changes nothing: it never needs the writer.
            return self
                .read
                .run(move |c| writer::purge(c, &filter, true, None))
                .await;
        }
        let entry = by.map(|b| crate::audit::entry::purge(b, &filter));
        self.to_the_end(move |d| async move {
            let r = d.clone().purge(filter).await;
            let entry = entry.map(|e| match &r {
                Ok(n) => e.count(n.deliveries as i64),
                Err(err) => e.failed(err),
            });
            d.audit(entry).await;
            r
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

    async fn prune(&self, before: Millis, from: Millis, limit: u32) -> Result<Pruned> {
        self.call(|reply| Op::Prune {
            before,
            from,
            limit,
            reply,
        })
        .await
    }

    async fn retry_queue(&self, limit: u32) -> Result<Vec<RetryItem>> {
        self.read.run(move |c| read::retry_queue(c, limit)).await
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadItem>> {
        self.read.run(move |c| read::dead_letters(c, limit)).await
    }

    async fn attempt_samples(
        &self,
        since: Millis,
        limit: u32,
    ) -> Result<std::collections::HashMap<String, Vec<AttemptSample>>> {
        self.read
            .run(move |c| read::attempt_samples(c, since, limit))
            .await
    }

    async fn events_since(&self, since: Millis) -> Result<i64> {
        self.read
            .run(move |c| {
                Ok(
                    c.prepare_cached("SELECT COUNT(*) FROM events WHERE received_at >= ?")?
                        .query_row([since], |r| r.get(0))?,
                )
            })
            .await
    }

    async fn queue_counts(&self) -> Result<QueueCounts> {
        self.read.run(read::queue_counts).await
    }

    async fn overview(&self) -> Result<(QueueCounts, Vec<SubscriptionStats>)> {
        self.read.run(read::overview).await
    }

    async fn subscription_log(&self, id: &str, limit: u32) -> Result<Vec<LogEntry>> {
        let id = id.to_string();
        self.read
            .run(move |c| read::subscription_log(c, &id, limit))
            .await
    }

    async fn release(&self, which: Release) -> Result<u64> {
        self.call(|reply| Op::Release { which, reply }).await
    }

    async fn redeliver(
        &self,
        target: RedeliverTarget,
        dry_run: bool,
        now: Millis,
        by: Option<&Actor>,
    ) -> Result<Vec<Redelivered>> {
        if dry_run {
            // A plan changes nothing: it never needs the writer.
            return self
                .read
                .run(move |c| writer::redeliver(c, &target, true, now, None))
                .await;
        }
        let entry = by.map(|b| crate::audit::entry::redeliver(b, &target));
        if matches!(
            target,
            RedeliverTarget::Event { .. } | RedeliverTarget::Pairs(_)
        ) {
            return self
                .audited(entry, |reply| Op::Redeliver {
                    target,
                    now,
                    page: None,
                    reply,
                })
                .await;
        }
        self.to_the_end(move |d| async move {
            let r = d.clone().redeliver_bulk(target, now).await;
            let entry = entry.map(|e| match &r {
                Ok(done) => e.count(done.len() as i64),
                Err(err) => e.failed(err),
            });
            d.audit(entry).await;
            r
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

    async fn add_token(&self, token: ApiToken, hash: String, by: Option<&Actor>) -> Result<()> {
        let entry = by.map(|b| {
            AuditEntry::new(b, crate::audit::action::TOKEN_CREATE)
                .filter(format!("id={}", token.id))
        });
        self.audited(entry, |reply| Op::AddToken {
            token: Box::new(token),
            hash,
            reply,
        })
        .await
    }

    async fn revoke_token(&self, id: &str, by: Option<&Actor>) -> Result<bool> {
        let entry = by.map(|b| {
            AuditEntry::new(b, crate::audit::action::TOKEN_REVOKE).filter(format!("id={id}"))
        });
        let id = id.to_string();
        self.audited(entry, |reply| Op::RevokeToken { id, reply })
            .await
    }

    async fn audit(&self, entry: AuditEntry) -> Result<()> {
        self.call(|reply| Op::Audit {
            entry: Box::new(entry),
            reply,
        })
        .await
    }

    async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let filter = filter.clone();
        self.read.run(move |c| read::audit_log(c, &filter)).await
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
        self.read.run(move |c| read::tokens(c, None)).await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>> {
        Ok(read::tokens(&*self.point()?, Some(hash))?
            .into_iter()
            .next())
    }

    async fn inbounds(&self) -> Result<Vec<Inbound>> {
        self.read.run(move |c| read::inbounds(c, None)).await
    }

    async fn inbound_by_hash(&self, hash: &str) -> Result<Option<Inbound>> {
        Ok(read::inbounds(&*self.point()?, Some(hash))?
            .into_iter()
            .next())
    }

    async fn verify_token(&self, id: &str) -> Result<Option<String>> {
        use rusqlite::OptionalExtension;
        let id = id.to_string();
        self.read
            .run(move |c| {
                let row: Option<Option<String>> = c
                    .prepare_cached("SELECT verify_token FROM subscriptions WHERE id = ?")?
                    .query_row([id], |r| r.get(0))
                    .optional()?;
                Ok(row.flatten())
            })
            .await
    }

    async fn counters(&self) -> Result<Vec<(String, i64)>> {
        self.read
            .run(|c| {
                sql::each(
                    c,
                    "SELECT name, value FROM counters ORDER BY name",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .await
    }

    async fn values(&self) -> Result<Vec<CustomValue>> {
        let rows: Vec<(String, String, String)> = self
            .read
            .run(|c| {
                sql::each(
                    c,
                    "SELECT name, location_id, value FROM custom_values ORDER BY name, location_id",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
            })
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
        self.read.run(read::subscriptions).await
    }

    async fn find_subscription(&self, id_or_prefix: &str) -> Result<Option<Subscription>> {
        let key = id_or_prefix.to_string();
        self.read
            .run(move |c| read::find_subscription(c, &key))
            .await
    }

    async fn subscription_stats(&self) -> Result<Vec<SubscriptionStats>> {
        self.read.run(read::subscription_stats).await
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRow>> {
        let filter = filter.clone();
        self.read.run(move |c| read::list_events(c, &filter)).await
    }

    async fn event_detail(&self, id: &str) -> Result<Option<EventDetail>> {
        let id = id.to_string();
        self.read.run(move |c| read::event_detail(c, &id)).await
    }

    async fn export(
        &self,
        filter: &ExportFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ExportedDelivery>> {
        let filter = filter.clone();
        self.read
            .run(move |c| read::export(c, &filter, after, limit))
            .await
    }

    async fn incident(&self, since: Millis) -> Result<Vec<crate::incident::EndpointIncident>> {
        self.read.run(move |c| read::incident(c, since)).await
    }

    async fn ops_tick(&self, limits: crate::ops::Limits, now: Millis) -> Result<usize> {
        let backlogs = self.read.run(read::backlogs).await?;
        self.call(|reply| Op::OpsTick {
            backlogs,
            limits,
            now,
            reply,
        })
        .await
    }

    async fn next_due(&self) -> Result<Option<Millis>> {
        self.read.run(read::next_due).await
    }

    async fn change_counter(&self) -> Result<i64> {
        Ok(self
            .point()?
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }
}
