//! The PostgreSQL store: every write one transaction on the pool, whose commit notifies
//! the other processes; an optional worker registration with its heartbeat for engines.

use super::workers::{self, Heard, Worker};
use super::{admin, maintenance, read, record, work};
use crate::audit::{AuditEntry, action};
use crate::model::*;
use crate::store::*;
use anyhow::Result;
use sqlx::{PgPool, Postgres, Transaction};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use tokio::sync::watch;

/// Deliveries (by id) or events (by sequence) looked at per step of a purge.
const PURGE_STEP: i64 = 5_000;
/// Deliveries replaced per transaction of a bulk redelivery.
const REDELIVER_PAGE: u32 = 2_000;
/// Unfinished deliveries cancelled per transaction when a subscription is removed by force.
const CANCEL_STEP: u32 = 5_000;
/// The first key of the advisory lock the periodic operational events take ("ops").
const OPS_LOCK: i64 = 0x006f_7073;

/// How a PostgreSQL store is opened.
#[derive(Debug, Clone)]
pub struct PgSettings {
    pub max_connections: u32,
    /// How long a lease lasts unless its worker renews it (every third of it).
    pub lease_ms: i64,
    /// Requests in flight to one endpoint across all workers.
    pub endpoint_slots: usize,
    /// How often an open circuit is probed, by any worker.
    pub probe_ms: i64,
}

/// Which channel a commit tells the other processes on.
#[derive(Clone, Copy, PartialEq)]
enum Wake {
    Work,
    Config,
}

pub struct PgStore {
    pool: PgPool,
    worker: String,
    settings: PgSettings,
    commits: Arc<LocalCommits>,
    changes: Arc<AtomicI64>,
    live_pid: Arc<AtomicU32>,
    live_count: Arc<AtomicU32>,
    publishes: tokio::sync::mpsc::Sender<super::batch::Publish>,
    /// Dropped with the store, which ends its listener.
    _closed: watch::Sender<()>,
}

type Tx = Transaction<'static, Postgres>;

impl PgStore {
    pub async fn open(url: &str, settings: PgSettings) -> Result<Arc<PgStore>> {
        let pool = super::connect(url, settings.max_connections).await?;
        let commits = Arc::new(LocalCommits::default());
        let changes = Arc::new(AtomicI64::new(0));
        let stale = settings.lease_ms;
        let live = workers::live(&pool, stale).await?;
        let live_pid = Arc::new(AtomicU32::new(live.last().map_or(0, |w| w.pid)));
        let live_count = Arc::new(AtomicU32::new(
            u32::try_from(live.len()).unwrap_or(u32::MAX),
        ));
        let (closed_tx, closed) = watch::channel(());
        let (publishes, queued) = tokio::sync::mpsc::channel(4096);
        let queued = Arc::new(tokio::sync::Mutex::new(queued));
        for _ in 0..super::batch::PUBLISHERS {
            let heard = Heard {
                commits: commits.clone(),
                changes: changes.clone(),
                live_pid: live_pid.clone(),
                live_count: live_count.clone(),
            };
            tokio::spawn(super::batch::run(pool.clone(), queued.clone(), move || {
                heard.work()
            }));
        }
        tokio::spawn(workers::listen(
            pool.clone(),
            Heard {
                commits: commits.clone(),
                changes: changes.clone(),
                live_pid: live_pid.clone(),
                live_count: live_count.clone(),
            },
            stale,
            closed,
        ));
        Ok(Arc::new(PgStore {
            pool,
            worker: workers::worker_id(),
            settings,
            commits,
            changes,
            live_pid,
            live_count,
            publishes,
            _closed: closed_tx,
        }))
    }

    async fn queue_publish(
        &self,
        events: Vec<NewEvent>,
        token: Option<String>,
    ) -> Result<Vec<Published>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.publishes
            .send(super::batch::Publish {
                events,
                token,
                reply,
            })
            .await
            .map_err(|_| anyhow::anyhow!("the store's publisher has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the store's publisher has stopped"))?
    }

    fn heard(&self) -> Heard {
        Heard {
            commits: self.commits.clone(),
            changes: self.changes.clone(),
            live_pid: self.live_pid.clone(),
            live_count: self.live_count.clone(),
        }
    }

    /// Engines on this database with a heartbeat younger than a lease.
    pub async fn workers(&self) -> Result<Vec<Worker>> {
        workers::live(&self.pool, self.settings.lease_ms).await
    }

    async fn begin(&self) -> Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    /// Commits with a notice to every listening process, and tells this one's engine.
    async fn commit(&self, mut tx: Tx, wake: Wake) -> Result<()> {
        let channel = match wake {
            Wake::Work => workers::WORK,
            Wake::Config => workers::CONFIG,
        };
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(channel)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        match wake {
            Wake::Work => self.heard().work(),
            Wake::Config => self.heard().config(),
        }
        Ok(())
    }

    /// Ends an operation run in `tx`: with its audit entry (as `judge` words it) when it
    /// succeeded, or rolled back and the entry recorded on its own with why it failed.
    async fn finish<T>(
        &self,
        mut tx: Tx,
        r: Result<T>,
        entry: Option<AuditEntry>,
        judge: impl FnOnce(&T, AuditEntry) -> AuditEntry,
        wake: Wake,
    ) -> Result<T> {
        match r {
            Ok(v) => {
                if let Some(e) = entry {
                    admin::insert_audit(&mut tx, &judge(&v, e)).await?;
                }
                self.commit(tx, wake).await?;
                Ok(v)
            }
            Err(err) => {
                drop(tx);
                if let Some(e) = entry
                    && let Err(a) = self.audit(e.failed(&err)).await
                {
                    tracing::warn!("cannot record a failed action in the audit trail: {a:#}");
                }
                Err(err)
            }
        }
    }

    fn same(&self) -> PgStore {
        PgStore {
            pool: self.pool.clone(),
            worker: self.worker.clone(),
            settings: self.settings.clone(),
            commits: self.commits.clone(),
            changes: self.changes.clone(),
            live_pid: self.live_pid.clone(),
            live_count: self.live_count.clone(),
            publishes: self.publishes.clone(),
            _closed: watch::channel(()).0,
        }
    }

    /// Runs work of many steps on a task of its own, to its end even when the caller
    /// stops waiting (an API client that hangs up).
    async fn to_the_end<T, F>(&self, work: impl FnOnce(PgStore) -> F) -> Result<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        tokio::spawn(work(self.same()))
            .await
            .map_err(|e| anyhow::anyhow!("the store's task failed: {e}"))?
    }

    async fn key_span(&self, sql: &'static str) -> Result<(i64, i64)> {
        let (a, b): (Option<i64>, Option<i64>) = sqlx::query_as(sql).fetch_one(&self.pool).await?;
        Ok((a.unwrap_or(0), b.unwrap_or(0)))
    }

    async fn purge_in_steps(&self, filter: PurgeFilter) -> Result<PurgeCount> {
        let ids = self
            .key_span("SELECT min(id), max(id) FROM deliveries")
            .await?;
        let seqs = self
            .key_span("SELECT min(seq), max(seq) FROM events")
            .await?;
        let mut count = PurgeCount::default();
        for (after, upto) in steps(ids) {
            let mut tx = self.begin().await?;
            count.deliveries += maintenance::purge(&mut tx, &filter, false, (after, upto)).await?;
            tx.commit().await?;
        }
        for span in steps(seqs) {
            let mut tx = self.begin().await?;
            count.events += maintenance::delete_orphan_events(&mut tx, span).await?;
            tx.commit().await?;
        }
        self.heard().work();
        Ok(count)
    }

    async fn delete_in_steps(
        &self,
        id: String,
        force: bool,
        entry: Option<AuditEntry>,
    ) -> Result<DeleteOutcome> {
        let mut cancelled = 0i64;
        if force {
            let (at_start, active): (i64, bool) = sqlx::query_as(
                "SELECT (SELECT count(*) FROM deliveries \
                   WHERE subscription_id = $1 AND status IN ('pending', 'retrying')), \
                 EXISTS (SELECT 1 FROM subscriptions WHERE id = $1 AND state = 'active')",
            )
            .bind(&id)
            .fetch_one(&self.pool)
            .await?;
            // Paused first, so that no engine sends what the next step cancels.
            if active && at_start > i64::from(CANCEL_STEP) {
                let mut tx = self.begin().await?;
                admin::set_state(&mut tx, &id, SubState::Paused).await?;
                self.commit(tx, Wake::Config).await?;
            }
            while cancelled < at_start {
                let mut tx = self.begin().await?;
                let n = admin::cancel_unfinished(&mut tx, &id, Some(CANCEL_STEP)).await?;
                tx.commit().await?;
                cancelled += n as i64;
                if n < u64::from(CANCEL_STEP) {
                    break;
                }
            }
        }
        let mut tx = self.begin().await?;
        let r = admin::delete_subscription(&mut tx, &id, force, cancelled).await;
        self.finish(
            tx,
            r,
            entry,
            |out: &DeleteOutcome, e| {
                if out.deleted {
                    e.count(out.unfinished)
                } else {
                    let n = out.unfinished;
                    e.failed(format!("{n} unfinished deliveries (--force cancels them)"))
                }
            },
            Wake::Config,
        )
        .await
    }

    async fn redeliver_bulk(
        &self,
        target: RedeliverTarget,
        now: Millis,
    ) -> Result<Vec<Redelivered>> {
        let (_, last_id) = self
            .key_span("SELECT min(id), max(id) FROM deliveries")
            .await?;
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let mut tx = self.begin().await?;
            let page = maintenance::redeliver(
                &mut tx,
                &target,
                false,
                now,
                Some((after, last_id, REDELIVER_PAGE)),
            )
            .await?;
            self.commit(tx, Wake::Work).await?;
            let full = page.len() >= REDELIVER_PAGE as usize;
            let last = page.iter().filter_map(|r| r.previous).max();
            out.extend(page);
            match last {
                Some(last) if full => after = last,
                _ => return Ok(out),
            }
        }
    }
}

/// The ranges `(after, upto]` of [`PURGE_STEP`] keys that cover `first..=last`.
fn steps((first, last): (i64, i64)) -> impl Iterator<Item = (i64, i64)> {
    (first - 1..last)
        .step_by(PURGE_STEP as usize)
        .map(|after| (after, after + PURGE_STEP))
}

/// An engine's registration, held for as long as it runs: dropping it stops the heartbeat
/// and removes the worker's row.
struct WorkerClaim {
    _stop: watch::Sender<()>,
}

fn kept<T>(_: &T, e: AuditEntry) -> AuditEntry {
    e
}

#[async_trait]
impl Store for PgStore {
    fn local_commits(&self) -> Arc<LocalCommits> {
        self.commits.clone()
    }

    fn claim_engine(&self) -> Result<Result<EngineClaim, EngineRunning>> {
        let (stop, stopped) = watch::channel(());
        tokio::spawn(workers::beat(
            self.pool.clone(),
            self.worker.clone(),
            self.settings.lease_ms,
            stopped,
        ));
        Ok(Ok(Box::new(WorkerClaim { _stop: stop })))
    }

    fn shares_engines(&self) -> bool {
        true
    }

    fn outcome_gathering(&self) -> std::time::Duration {
        // An endpoint's leases are its slots across workers, freed when the outcome is
        // recorded: gathering would hold each slot that much longer. What finished while
        // the last batch committed still goes in one transaction.
        std::time::Duration::ZERO
    }

    fn engine_pid(&self) -> Option<u32> {
        Some(self.live_pid.load(Ordering::Relaxed)).filter(|p| *p != 0)
    }

    fn live_engines(&self) -> usize {
        self.live_count.load(Ordering::Relaxed) as usize
    }

    async fn engines(&self) -> Result<Vec<EngineInfo>> {
        Ok(self
            .workers()
            .await?
            .into_iter()
            .map(|w| EngineInfo {
                worker: w.id,
                host: w.host,
                pid: w.pid,
                started_at: Some(w.started_at),
                heartbeat_at: Some(w.heartbeat_at),
                endpoint_share: w.lane_bound,
            })
            .collect())
    }

    fn closed(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let pool = self.pool.clone();
        Box::pin(async move { pool.close().await })
    }

    async fn publish(&self, events: Vec<NewEvent>) -> Result<Vec<Published>> {
        self.queue_publish(events, None).await
    }

    async fn publish_as(&self, events: Vec<NewEvent>, token_id: String) -> Result<Vec<Published>> {
        self.queue_publish(events, Some(token_id)).await
    }

    async fn add_subscription(&self, sub: Subscription, by: Option<&Actor>) -> Result<()> {
        let entry = by.map(|b| AuditEntry::new(b, action::SUB_ADD).on_sub(&sub.id));
        let mut tx = self.begin().await?;
        let r = admin::add_subscription(&mut tx, &sub).await;
        self.finish(tx, r, entry, kept, Wake::Config).await
    }

    async fn update_subscription(&self, sub: Subscription, by: Option<&Actor>) -> Result<()> {
        let entry = by.map(|b| AuditEntry::new(b, action::SUB_EDIT).on_sub(&sub.id));
        let mut tx = self.begin().await?;
        let r = admin::update_subscription(&mut tx, &sub).await;
        self.finish(tx, r, entry, kept, Wake::Config).await
    }

    async fn set_subscription_state(
        &self,
        id: &str,
        state: SubState,
        by: Option<&Actor>,
    ) -> Result<bool> {
        let entry = by.map(|b| crate::audit::entry::state(b, id, state));
        let mut tx = self.begin().await?;
        let r = admin::set_state(&mut tx, id, state).await;
        let judge = |found: &bool, e: AuditEntry| {
            if *found {
                e
            } else {
                e.failed("no such subscription")
            }
        };
        self.finish(tx, r, entry, judge, Wake::Config).await
    }

    async fn claim_for_lanes(
        &self,
        wants: Vec<(String, usize)>,
        now: Millis,
        _lease_until: Millis,
        on_wire: usize,
    ) -> Result<Claim> {
        // The lease is the store's: short, and renewed by the worker's heartbeat.
        let lease_until = now_ms() + self.settings.lease_ms;
        let (leased, share) = work::claim(
            &self.pool,
            &wants,
            (now, lease_until),
            &self.worker,
            &work::Limits {
                slots: self.settings.endpoint_slots,
                lease_ms: self.settings.lease_ms,
                probe_ms: self.settings.probe_ms,
            },
            on_wire,
        )
        .await?;
        let lane_limit = Some(share);
        if leased.is_empty() {
            return Ok(Claim {
                jobs: Vec::new(),
                lane_limit,
            });
        }
        let mut seqs: Vec<i64> = leased.iter().map(|l| l.event_seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        let read = async {
            let events = read::events_by_seq(&self.pool, &seqs).await?;
            let again: Vec<(i64, Arc<Event>)> = leased
                .iter()
                .filter(|l| l.attempts > 0 || l.probes > 0)
                .filter_map(|l| Some((l.delivery_id, Arc::clone(events.get(&l.event_seq)?))))
                .collect();
            let bodies = if again.is_empty() {
                Default::default()
            } else {
                read::bodies(&self.pool, &again).await?
            };
            anyhow::Ok((events, bodies))
        };
        let (events, bodies) = match read.await {
            Ok(r) => r,
            Err(e) => {
                let ids = leased.iter().map(|l| l.delivery_id).collect();
                let _ = self.release(Release::Ids(ids)).await;
                return Err(e.context("reading the claimed deliveries' events"));
            }
        };
        let (jobs, orphans) = jobs_from(leased, &events, bodies);
        if !orphans.is_empty() {
            tracing::error!(?orphans, "claimed deliveries whose events are missing");
            self.release(Release::Ids(orphans)).await?;
        }
        Ok(Claim { jobs, lane_limit })
    }

    async fn record(&self, outcomes: Arc<[Outcome]>, circuit_threshold: u32) -> Result<()> {
        let news = record::record(&self.pool, &outcomes, circuit_threshold).await?;
        if news.is_empty() {
            self.heard().work();
        } else {
            self.heard().config();
        }
        Ok(())
    }

    async fn delete_subscription(
        &self,
        id: &str,
        force: bool,
        by: Option<&Actor>,
    ) -> Result<DeleteOutcome> {
        let entry = by.map(|b| crate::audit::entry::delete(b, id, force));
        let id = id.to_string();
        self.to_the_end(move |s| async move {
            let failed = entry.clone();
            let r = s.delete_in_steps(id, force, entry).await;
            if let (Err(e), Some(f)) = (&r, failed)
                && let Err(a) = s.audit(f.failed(e)).await
            {
                tracing::warn!("cannot record a failed action in the audit trail: {a:#}");
            }
            r
        })
        .await
    }

    async fn rotate_secret(
        &self,
        id: &str,
        secret: String,
        grace_until: Millis,
        by: Option<&Actor>,
    ) -> Result<()> {
        let entry = by.map(|b| AuditEntry::new(b, action::ROTATE_SECRET).on_sub(id));
        let mut tx = self.begin().await?;
        let r = admin::rotate_secret(&mut tx, id, &secret, grace_until).await;
        self.finish(tx, r, entry, kept, Wake::Config).await
    }

    async fn purge(
        &self,
        filter: PurgeFilter,
        dry_run: bool,
        by: Option<&Actor>,
    ) -> Result<PurgeCount> {
        if dry_run {
            let mut c = self.pool.acquire().await?;
            let n = maintenance::purge(&mut c, &filter, true, (i64::MIN, i64::MAX)).await?;
            return Ok(PurgeCount {
                deliveries: n,
                events: 0,
            });
        }
        let entry = by.map(|b| crate::audit::entry::purge(b, &filter));
        self.to_the_end(move |s| async move {
            let r = s.purge_in_steps(filter).await;
            if let Some(e) = entry {
                let e = match &r {
                    Ok(n) => e.count(n.deliveries as i64),
                    Err(err) => e.failed(err),
                };
                if let Err(a) = s.audit(e).await {
                    tracing::warn!("cannot record an action in the audit trail: {a:#}");
                }
            }
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
        let mut tx = self.begin().await?;
        let n = maintenance::expire_held(&mut tx, subscription_id, before, &reason).await?;
        self.commit(tx, Wake::Work).await?;
        Ok(n)
    }

    async fn prune(&self, before: Millis, from: Millis, limit: u32) -> Result<Pruned> {
        let mut tx = self.begin().await?;
        let p = maintenance::prune(&mut tx, before, from, limit).await?;
        tx.commit().await?;
        self.changes.fetch_add(1, Ordering::AcqRel);
        Ok(p)
    }

    async fn release(&self, which: Release) -> Result<u64> {
        let mut tx = self.begin().await?;
        let n = maintenance::release(&mut tx, &which, &self.worker).await?;
        if n > 0 {
            self.commit(tx, Wake::Work).await?;
        } else {
            tx.commit().await?;
        }
        Ok(n)
    }

    async fn redeliver(
        &self,
        target: RedeliverTarget,
        dry_run: bool,
        now: Millis,
        by: Option<&Actor>,
    ) -> Result<Vec<Redelivered>> {
        if dry_run {
            let mut c = self.pool.acquire().await?;
            return maintenance::redeliver(&mut c, &target, true, now, None).await;
        }
        let entry = by.map(|b| crate::audit::entry::redeliver(b, &target));
        if matches!(
            target,
            RedeliverTarget::Event { .. } | RedeliverTarget::Pairs(_)
        ) {
            let mut tx = self.begin().await?;
            let r = maintenance::redeliver(&mut tx, &target, false, now, None).await;
            let judge = |done: &Vec<Redelivered>, e: AuditEntry| {
                let e = e.count(done.len() as i64);
                if done.is_empty() && e.action == action::REDELIVER {
                    e.failed("nothing to redeliver")
                } else {
                    e
                }
            };
            return self.finish(tx, r, entry, judge, Wake::Work).await;
        }
        self.to_the_end(move |s| async move {
            let r = s.redeliver_bulk(target, now).await;
            if let Some(e) = entry {
                let e = match &r {
                    Ok(done) => e.count(done.len() as i64),
                    Err(err) => e.failed(err),
                };
                if let Err(a) = s.audit(e).await {
                    tracing::warn!("cannot record an action in the audit trail: {a:#}");
                }
            }
            r
        })
        .await
    }

    async fn set_value(&self, name: &str, location: Option<&str>, value: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        admin::set_value(&mut tx, name, location.unwrap_or(""), Some(value)).await?;
        self.commit(tx, Wake::Config).await
    }

    async fn remove_value(&self, name: &str, location: Option<&str>) -> Result<bool> {
        let mut tx = self.begin().await?;
        let found = admin::set_value(&mut tx, name, location.unwrap_or(""), None).await?;
        self.commit(tx, Wake::Config).await?;
        Ok(found)
    }

    async fn add_token(&self, token: ApiToken, hash: String, by: Option<&Actor>) -> Result<()> {
        let entry =
            by.map(|b| AuditEntry::new(b, action::TOKEN_CREATE).filter(format!("id={}", token.id)));
        let mut tx = self.begin().await?;
        let r = admin::add_token(&mut tx, &token, &hash).await;
        self.finish(tx, r, entry, kept, Wake::Work).await
    }

    async fn revoke_token(&self, id: &str, by: Option<&Actor>) -> Result<bool> {
        let entry = by.map(|b| AuditEntry::new(b, action::TOKEN_REVOKE).filter(format!("id={id}")));
        let mut tx = self.begin().await?;
        let r = admin::revoke_token(&mut tx, id).await;
        let judge = |found: &bool, e: AuditEntry| {
            if *found {
                e
            } else {
                e.failed("no such live token")
            }
        };
        self.finish(tx, r, entry, judge, Wake::Work).await
    }

    async fn add_inbound(&self, inbound: Inbound, hash: String) -> Result<()> {
        let mut tx = self.begin().await?;
        admin::add_inbound(&mut tx, &inbound, &hash).await?;
        self.commit(tx, Wake::Work).await
    }

    async fn remove_inbound(&self, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let found = admin::remove_inbound(&mut tx, id).await?;
        self.commit(tx, Wake::Work).await?;
        Ok(found)
    }

    async fn set_verify_token(&self, id: &str, token: Option<String>) -> Result<()> {
        let mut tx = self.begin().await?;
        admin::set_verify_token(&mut tx, id, token.as_deref()).await?;
        self.commit(tx, Wake::Config).await
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>> {
        read::tokens(&self.pool, None).await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>> {
        Ok(read::tokens(&self.pool, Some(hash))
            .await?
            .into_iter()
            .next())
    }

    async fn inbounds(&self) -> Result<Vec<Inbound>> {
        read::inbounds(&self.pool, None).await
    }

    async fn inbound_by_hash(&self, hash: &str) -> Result<Option<Inbound>> {
        Ok(read::inbounds(&self.pool, Some(hash))
            .await?
            .into_iter()
            .next())
    }

    async fn verify_token(&self, id: &str) -> Result<Option<String>> {
        let row: Option<Option<String>> =
            sqlx::query_scalar("SELECT verify_token FROM subscriptions WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.flatten())
    }

    async fn counters(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT name, sum(value)::bigint FROM counters GROUP BY name ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn values(&self) -> Result<Vec<CustomValue>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT name, location_id, value FROM custom_values ORDER BY name, location_id",
        )
        .fetch_all(&self.pool)
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
        let mut c = self.pool.acquire().await?;
        read::subscriptions(&mut c).await
    }

    async fn find_subscription(&self, id_or_prefix: &str) -> Result<Option<Subscription>> {
        read::find_subscription(&self.pool, id_or_prefix).await
    }

    async fn subscription_stats(&self) -> Result<Vec<SubscriptionStats>> {
        Ok(read::overview(&self.pool).await?.1)
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRow>> {
        read::list_events(&self.pool, filter).await
    }

    async fn event_detail(&self, id: &str) -> Result<Option<EventDetail>> {
        read::event_detail(&self.pool, id).await
    }

    async fn queue_counts(&self) -> Result<QueueCounts> {
        Ok(read::overview(&self.pool).await?.0)
    }

    async fn overview(&self) -> Result<(QueueCounts, Vec<SubscriptionStats>)> {
        read::overview(&self.pool).await
    }

    async fn retry_queue(&self, limit: u32) -> Result<Vec<RetryItem>> {
        read::retry_queue(&self.pool, limit).await
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadItem>> {
        read::dead_letters(&self.pool, limit).await
    }

    async fn attempt_samples(
        &self,
        since: Millis,
        limit: u32,
    ) -> Result<std::collections::HashMap<String, Vec<AttemptSample>>> {
        read::attempt_samples(&self.pool, since, limit).await
    }

    async fn events_since(&self, since: Millis) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM events WHERE received_at >= $1")
                .bind(since)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn subscription_log(&self, id: &str, limit: u32) -> Result<Vec<LogEntry>> {
        read::subscription_log(&self.pool, id, limit).await
    }

    async fn audit(&self, entry: AuditEntry) -> Result<()> {
        let mut tx = self.begin().await?;
        admin::insert_audit(&mut tx, &entry).await?;
        self.commit(tx, Wake::Work).await
    }

    async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        read::audit_log(&self.pool, filter).await
    }

    async fn export(
        &self,
        filter: &ExportFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ExportedDelivery>> {
        read::export(&self.pool, filter, after, limit).await
    }

    async fn incident(&self, since: Millis) -> Result<Vec<crate::incident::EndpointIncident>> {
        read::incident(&self.pool, since).await
    }

    async fn ops_tick(&self, limits: crate::ops::Limits, now: Millis) -> Result<usize> {
        let mut tx = self.begin().await?;
        // One worker at a time; the others find the work done.
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(OPS_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !got {
            return Ok(0);
        }
        let n = maintenance::ops_tick(&mut tx, limits, now).await?;
        if n > 0 {
            self.commit(tx, Wake::Work).await?;
        } else {
            tx.commit().await?;
        }
        Ok(n)
    }

    async fn next_due(&self) -> Result<Option<Millis>> {
        read::next_due(&self.pool).await
    }

    async fn change_counter(&self) -> Result<i64> {
        // A round trip, so that a caller asking whether the store answers hears the truth.
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(self.changes.load(Ordering::Acquire))
    }
}
