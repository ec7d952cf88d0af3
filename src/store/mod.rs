//! Persistence behind one interface, so that a PostgreSQL backend can stand beside SQLite.
//! Writes are few kinds of operation (publish, claim, record, state changes); reads serve
//! the CLI, the console and the API and never block the writer.

pub mod fanout;
pub mod header_text;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;

pub use crate::audit::{Actor, AuditEntry, AuditFilter};
use crate::model::{Attempt, DeliveryStatus, ErrorClass, Event, Millis, SubState, Subscription};
use anyhow::Result;
use async_trait::async_trait;
use std::sync::Arc;

pub use header_text::KeptHeaders;

/// What a store tells an engine in the same process about its own commits.
#[derive(Debug, Default)]
pub struct LocalCommits {
    /// Signalled after every commit that may make work (anything but claims).
    pub any: tokio::sync::Notify,
    /// How many such commits there have been, bumped before `any` is signalled: a claim
    /// that found too little can tell whether work may have come since it was asked for
    /// (the signal itself may arrive before the claim's answer does).
    pub generation: std::sync::atomic::AtomicU64,
    /// Bumped by commits that change subscriptions or custom values, so the engine rereads
    /// them at once instead of at its next poll.
    pub config: std::sync::atomic::AtomicU64,
}

/// An event as a producer hands it in, its type already canonical.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub event_type: String,
    pub location_id: Option<String>,
    pub timestamp: Millis,
    pub data: serde_json::Value,
    /// When it was received; `None` for now (importers and fixtures set it).
    pub received_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Published {
    pub id: String,
    /// The id was already stored: accepted once, nothing new fanned out.
    pub duplicate: bool,
    pub deliveries: usize,
}

/// A delivery an engine has leased and is about to attempt.
#[derive(Debug, Clone)]
pub struct Job {
    pub delivery_id: i64,
    pub subscription_id: String,
    /// Attempts already made before this one.
    pub attempts: u32,
    /// Of those, failed circuit-breaker probes (they do not spend the schedule).
    pub probes: u32,
    /// The body as first sent, when an earlier attempt rendered it.
    pub body: Option<Vec<u8>>,
    /// Shared by the deliveries of one event (a fan-out to ten endpoints reads it once).
    pub event: Arc<Event>,
}

/// What a claim leased, and how many requests its engine may have on the wire to any one
/// endpoint from now on.
#[derive(Debug, Default)]
pub struct Claim {
    pub jobs: Vec<Job>,
    /// Where engines share endpoints' limits, this engine's part of each (None: the
    /// whole limit is its own).
    pub lane_limit: Option<usize>,
}

/// A delivery a claim leased, before its event is read.
#[derive(Debug, Clone, PartialEq)]
pub struct Leased {
    pub delivery_id: i64,
    pub event_seq: i64,
    pub subscription_id: String,
    pub attempts: u32,
    pub probes: u32,
}

/// Leased deliveries with their events (by sequence) and earlier bodies (by delivery) as
/// jobs, and the deliveries whose events were not found (their leases go back).
pub fn jobs_from(
    leased: Vec<Leased>,
    events: &std::collections::HashMap<i64, Arc<Event>>,
    mut bodies: std::collections::HashMap<i64, Vec<u8>>,
) -> (Vec<Job>, Vec<i64>) {
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
    (jobs, orphans)
}

/// The result of one attempt, with the delivery's next state already decided.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub delivery_id: i64,
    pub subscription_id: String,
    /// The attempt probed an open circuit.
    pub probe: bool,
    /// Failed probes of the delivery, this one included.
    pub probes: u32,
    /// The endpoint answered 410 Gone: disable the subscription.
    pub gone: bool,
    pub attempt: Attempt,
    pub status: DeliveryStatus,
    pub next_at: Option<Millis>,
    /// How the first attempt's body can be had again (later attempts bring none).
    pub body: Option<SentBody>,
    /// The attempt's headers as the store keeps them, made where the attempt ran (the
    /// engine then leaves `attempt`'s header lists empty); when None the store makes them
    /// from those lists.
    pub kept_headers: Option<KeptHeaders>,
}

/// What the store keeps of a delivery's first body, so that every later attempt, and the
/// console, has the same bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum SentBody {
    /// A template's output, which depends on custom values that may change: the bytes.
    Bytes(Vec<u8>),
    /// Made from the event alone: the shape, and the bytes are made again when needed
    /// (a kilobyte less to write per delivery).
    Made(crate::payload::Shape),
}

impl SentBody {
    /// What a backend keeps (a shape's name, or bytes) as a `SentBody`; a shape this
    /// binary does not know gives None, and the body is rendered afresh.
    pub fn from_kept(shape: Option<&str>, bytes: Option<Vec<u8>>) -> Option<SentBody> {
        match bytes {
            Some(b) => Some(SentBody::Bytes(b)),
            None => crate::payload::Shape::parse(shape?).map(SentBody::Made),
        }
    }

    /// The bytes as the engine first sent them: kept, or made again from the event.
    pub fn into_bytes(self, event: &Event) -> Option<Vec<u8>> {
        match self {
            SentBody::Bytes(b) => Some(b),
            SentBody::Made(shape) => shape.make(event).ok(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub status: Option<DeliveryStatus>,
    pub subscription_id: Option<String>,
    pub event_type: Option<String>,
    pub location_id: Option<String>,
    pub since: Option<Millis>,
    /// Substring of the event id or type.
    pub text: Option<String>,
    /// Paging by sequence: only events at or before (older than) this one…
    pub before_seq: Option<i64>,
    /// …or only events after (newer than) this one, oldest first.
    pub after_seq: Option<i64>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeliveryBrief {
    pub id: i64,
    pub subscription_id: String,
    pub status: DeliveryStatus,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventRow {
    #[serde(skip)]
    pub seq: i64,
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub location_id: Option<String>,
    pub timestamp: Millis,
    #[serde(skip)]
    pub received_at: Millis,
    pub deliveries: Vec<DeliveryBrief>,
}

/// A delivery waiting for its next attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryItem {
    pub delivery_id: i64,
    pub event_id: String,
    pub event_type: String,
    pub subscription_id: String,
    pub attempts: u32,
    pub probes: u32,
    pub next_at: Option<Millis>,
    pub last_error_class: Option<ErrorClass>,
    pub last_error: Option<String>,
    pub last_status_code: Option<u16>,
}

/// A dead delivery not redelivered since, with the attempt that gave up.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadItem {
    pub delivery_id: i64,
    pub event_id: String,
    pub event_type: String,
    pub subscription_id: String,
    pub attempts: u32,
    pub died_at: Millis,
    pub error_class: Option<ErrorClass>,
    pub error: Option<String>,
    pub status_code: Option<u16>,
}

/// One attempt, reduced to what health figures need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttemptSample {
    pub at: Millis,
    pub latency_ms: u64,
    pub ok: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryDetail {
    pub id: i64,
    pub subscription_id: String,
    pub url: Option<String>,
    pub status: DeliveryStatus,
    pub next_at: Option<Millis>,
    pub superseded_by: Option<i64>,
    pub body: Option<Vec<u8>>,
    pub created_at: Millis,
    pub attempts: Vec<Attempt>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventDetail {
    pub event: Event,
    pub deliveries: Vec<DeliveryDetail>,
}

/// Which leases to give up.
#[derive(Debug, Clone)]
pub enum Release {
    /// Every lease: the engine that takes the database's lock owns all work, so claims
    /// made by an engine before it are void.
    All,
    Ids(Vec<i64>),
    /// Leases that ran out before this time.
    ExpiredBefore(Millis),
}

/// Which deliveries to send again.
#[derive(Debug, Clone)]
pub enum RedeliverTarget {
    /// One event: its latest delivery to each subscription (or to one).
    Event {
        event_id: String,
        subscription_id: Option<String>,
    },
    /// Every delivery of a subscription in a state, optionally recent ones only.
    Bulk {
        subscription_id: String,
        statuses: Vec<DeliveryStatus>,
        since: Option<Millis>,
    },
    /// Exactly these (event id, subscription id) pairs, e.g. from an export; a pair whose
    /// latest delivery has arrived since, or whose event is no longer stored, is skipped.
    /// One transaction: a long list goes in steps of the caller's.
    Pairs(Vec<(String, String)>),
}

/// Which deliveries an export takes: the latest of each (event, subscription) pair.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    pub status: Option<DeliveryStatus>,
    pub subscription_id: Option<String>,
    /// Only deliveries whose last change was at or after this time…
    pub since: Option<Millis>,
    /// …and before this one.
    pub until: Option<Millis>,
}

/// A delivery with its event and every attempt, as an export writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedDelivery {
    pub delivery_id: i64,
    pub subscription_id: String,
    pub status: DeliveryStatus,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub event: Event,
    pub attempts: Vec<Attempt>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Redelivered {
    pub event_id: String,
    pub subscription_id: String,
    /// The delivery replaced; `None` when the subscription had none for the event.
    pub previous: Option<i64>,
    /// The new delivery; `None` on a dry run.
    pub delivery_id: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SubscriptionStats {
    pub subscription_id: String,
    pub pending: i64,
    pub retrying: i64,
    pub delivered: i64,
    pub dead: i64,
    pub cancelled: i64,
    pub last_status_code: Option<u16>,
    pub last_attempt_at: Option<Millis>,
}

/// The right to run the engine on a store, held for as long as the engine runs.
pub type EngineClaim = Box<dyn std::any::Any + Send + Sync>;

/// Another process runs the engine on this store.
#[derive(Debug, thiserror::Error)]
#[error("another engine is already running on {db}{}", .pid.as_ref().map(|p| format!(" (pid {p})")).unwrap_or_default())]
pub struct EngineRunning {
    pub db: String,
    pub pid: Option<String>,
}

/// An engine running on a store.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EngineInfo {
    /// The engine's name among several on one database.
    pub worker: String,
    pub host: String,
    pub pid: u32,
    pub started_at: Option<Millis>,
    /// Its last sign of life, where the backend keeps one.
    pub heartbeat_at: Option<Millis>,
    /// Where engines share the endpoints' in-flight limits: the most requests this one
    /// may have on the wire to one endpoint.
    pub endpoint_share: Option<u32>,
}

/// How a store is opened; what each backend makes of it is its own business.
#[derive(Debug, Clone)]
pub struct OpenSettings {
    /// Every commit survives power loss, at a throughput cost.
    pub synchronous_full: bool,
    /// How long to wait for another process's write lock.
    pub busy_timeout: std::time::Duration,
    /// Several engines on one database: how long a lease lasts unless renewed.
    pub worker_lease: std::time::Duration,
    /// Requests in flight to one endpoint, for the whole deployment where several engines
    /// share a database.
    pub endpoint_in_flight: usize,
    /// Connections a backend with a server may open.
    pub max_connections: u32,
    /// How often an endpoint with an open circuit is probed, by the whole deployment.
    pub probe_interval: std::time::Duration,
}

impl Default for OpenSettings {
    fn default() -> Self {
        OpenSettings {
            synchronous_full: false,
            busy_timeout: std::time::Duration::from_secs(10),
            worker_lease: std::time::Duration::from_secs(10),
            endpoint_in_flight: 32,
            max_connections: 16,
            probe_interval: std::time::Duration::from_secs(30),
        }
    }
}

/// Whether `db` names a database server (a `postgres://` URL) rather than a SQLite file.
pub fn is_url(db: &std::path::Path) -> bool {
    db.to_str()
        .is_some_and(|d| d.starts_with("postgres://") || d.starts_with("postgresql://"))
}

/// `db` as it may be shown: a URL without its password.
pub fn shown(db: &std::path::Path) -> String {
    match db.to_str() {
        Some(url) if is_url(db) => redact_url(url),
        _ => db.display().to_string(),
    }
}

fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "the database URL".to_string(),
    }
}

/// Opens the store `db` names: a `postgres://` URL is PostgreSQL, anything else a SQLite
/// file. Callers hold `dyn Store` and never a backend's type.
pub async fn open(db: &std::path::Path, s: &OpenSettings) -> Result<Arc<dyn Store>> {
    if is_url(db) {
        return open_server(db.to_str().unwrap_or_default(), s).await;
    }
    let store = sqlite::SqliteStore::open(
        db,
        sqlite::OpenOptions {
            synchronous_full: s.synchronous_full,
            busy_timeout: s.busy_timeout,
            ..sqlite::OpenOptions::default()
        },
    )
    .await?;
    Ok(store)
}

/// Scratch databases on a database server, for `hookctl bench`: made, measured, dropped.
pub mod scratch {
    #[cfg(feature = "postgres")]
    pub use super::postgres::scratch::{bytes, create, drop};

    #[cfg(not(feature = "postgres"))]
    pub async fn create(_: &str) -> anyhow::Result<(String, String)> {
        anyhow::bail!("this hookctl was built without PostgreSQL (cargo feature `postgres`)")
    }

    #[cfg(not(feature = "postgres"))]
    pub async fn drop(_: &str, _: &str) -> anyhow::Result<()> {
        Ok(())
    }

    #[cfg(not(feature = "postgres"))]
    pub async fn bytes(_: &str, _: &str) -> anyhow::Result<u64> {
        Ok(0)
    }
}

#[cfg(feature = "postgres")]
async fn open_server(url: &str, s: &OpenSettings) -> Result<Arc<dyn Store>> {
    let store = postgres::PgStore::open(
        url,
        postgres::PgSettings {
            max_connections: s.max_connections,
            lease_ms: i64::try_from(s.worker_lease.as_millis())
                .unwrap_or(i64::MAX)
                .max(300),
            endpoint_slots: s.endpoint_in_flight.max(1),
            probe_ms: i64::try_from(s.probe_interval.as_millis()).unwrap_or(i64::MAX),
        },
    )
    .await?;
    Ok(store)
}

#[cfg(not(feature = "postgres"))]
async fn open_server(url: &str, _: &OpenSettings) -> Result<Arc<dyn Store>> {
    anyhow::bail!(
        "{}: this hookctl was built without PostgreSQL (cargo feature `postgres`)",
        redact_url(url)
    )
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// What this process has committed, so that its engine and console wake at once
    /// instead of at their next poll.
    fn local_commits(&self) -> Arc<LocalCommits>;
    /// Takes the right to run the engine on this store, or says who holds it.
    fn claim_engine(&self) -> Result<Result<EngineClaim, EngineRunning>>;
    /// The process running an engine on this store, if any (one of them, where several
    /// share it).
    fn engine_pid(&self) -> Option<u32>;
    /// How many engines run on this store (as last seen, where several share it).
    fn live_engines(&self) -> usize {
        usize::from(self.engine_pid().is_some())
    }
    /// Several engines may run on this store at once, each claiming its own share of the
    /// work (a console then attaches to them rather than start one of its own).
    fn shares_engines(&self) -> bool {
        false
    }
    /// How long an engine gathers attempt outcomes before it records them. Larger batches
    /// cost less per outcome to commit, but outcomes awaiting their commit hold leases.
    /// On SQLite a commit writes every page it changed to the WAL, nearly as many for ten
    /// outcomes as for a hundred: gathering for 4 ms, the writer made 768 commits and
    /// 13,974 WAL frames a second in workload 1 instead of 1,638 and 23,140.
    fn outcome_gathering(&self) -> std::time::Duration {
        std::time::Duration::from_millis(4)
    }
    /// Every engine running on this store.
    async fn engines(&self) -> Result<Vec<EngineInfo>> {
        Ok(self
            .engine_pid()
            .map(|pid| EngineInfo {
                worker: format!("pid {pid}"),
                host: String::new(),
                pid,
                started_at: None,
                heartbeat_at: None,
                endpoint_share: None,
            })
            .into_iter()
            .collect())
    }
    /// Resolves once the store has closed its files and connections after its last
    /// handle was dropped (removing a database before that leaves its space in use).
    fn closed(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

    // Writes. Each returns after its change is committed.
    async fn publish(&self, events: Vec<NewEvent>) -> Result<Vec<Published>>;
    /// Publishes on behalf of the API token `token_id`, which is checked in the transaction
    /// that stores the events: fails with [`TokenRevoked`] (storing nothing) once that token
    /// is revoked, whichever process revoked it.
    async fn publish_as(&self, events: Vec<NewEvent>, token_id: String) -> Result<Vec<Published>>;
    async fn add_subscription(&self, sub: Subscription, by: Option<&Actor>) -> Result<()>;
    /// Replaces a subscription's settings (not its secret, state or health).
    async fn update_subscription(&self, sub: Subscription, by: Option<&Actor>) -> Result<()>;
    /// `false` when no subscription has that id.
    async fn set_subscription_state(
        &self,
        id: &str,
        state: SubState,
        by: Option<&Actor>,
    ) -> Result<bool>;
    /// Leases up to `n` due deliveries of each listed active subscription until `lease_until`.
    async fn claim(
        &self,
        wants: Vec<(String, usize)>,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Vec<Job>> {
        Ok(self.claim_for_lanes(wants, now, lease_until, 0).await?.jobs)
    }
    /// [`claim`](Store::claim) for an engine that has, and until it applies the answer's
    /// `lane_limit` may have, at most `on_wire` requests on the wire to any one endpoint.
    async fn claim_for_lanes(
        &self,
        wants: Vec<(String, usize)>,
        now: Millis,
        lease_until: Millis,
        on_wire: usize,
    ) -> Result<Claim>;
    /// Commits attempt outcomes and their effect on endpoint health: the circuit opens
    /// after `circuit_threshold` consecutive failures and closes on a success.
    async fn record(&self, outcomes: Arc<[Outcome]>, circuit_threshold: u32) -> Result<()>;
    /// Removes a subscription. Refused while it has unfinished deliveries unless `force`,
    /// which cancels them (recorded as cancelled): a large backlog in steps of its own
    /// transactions before the removal, so the outcome is final only when this returns.
    async fn delete_subscription(
        &self,
        id: &str,
        force: bool,
        by: Option<&Actor>,
    ) -> Result<DeleteOutcome>;
    /// Installs a new secret; the old one keeps signing the main header until `grace_until`.
    async fn rotate_secret(
        &self,
        id: &str,
        secret: String,
        grace_until: Millis,
        by: Option<&Actor>,
    ) -> Result<()>;
    /// Deletes final deliveries (and events left with none) matching the filter.
    async fn purge(
        &self,
        filter: PurgeFilter,
        dry_run: bool,
        by: Option<&Actor>,
    ) -> Result<PurgeCount>;
    /// Deliveries of `subscription_id` still waiting that were created before `before` go
    /// dead, each with an attempt of class `circuit_open` saying why: an endpoint whose
    /// circuit stays open longer than the retry schedule does not hold work forever.
    async fn expire_held(
        &self,
        subscription_id: &str,
        before: Millis,
        reason: String,
    ) -> Result<u64>;
    /// Retention, one bounded step: deletes up to `limit` of the oldest events received in
    /// `[from, before)` whose deliveries are all final (with their deliveries and attempts).
    async fn prune(&self, before: Millis, from: Millis, limit: u32) -> Result<Pruned>;
    /// Returns leased deliveries to the queue.
    async fn release(&self, which: Release) -> Result<u64>;
    async fn redeliver(
        &self,
        target: RedeliverTarget,
        dry_run: bool,
        now: Millis,
        by: Option<&Actor>,
    ) -> Result<Vec<Redelivered>>;

    /// Sets a custom value, globally (`None`) or for one location.
    async fn set_value(&self, name: &str, location: Option<&str>, value: &str) -> Result<()>;
    /// `false` when there was no such value.
    async fn remove_value(&self, name: &str, location: Option<&str>) -> Result<bool>;

    async fn add_token(&self, token: ApiToken, hash: String, by: Option<&Actor>) -> Result<()>;
    async fn revoke_token(&self, id: &str, by: Option<&Actor>) -> Result<bool>;
    async fn add_inbound(&self, inbound: Inbound, hash: String) -> Result<()>;
    async fn remove_inbound(&self, id: &str) -> Result<bool>;
    /// Sets (or clears) a subscription's confirmation token.
    async fn set_verify_token(&self, id: &str, token: Option<String>) -> Result<()>;

    // Reads.
    async fn tokens(&self) -> Result<Vec<ApiToken>>;
    /// A live (not revoked) token by the hash of its secret.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>>;
    async fn inbounds(&self) -> Result<Vec<Inbound>>;
    async fn inbound_by_hash(&self, hash: &str) -> Result<Option<Inbound>>;
    async fn verify_token(&self, id: &str) -> Result<Option<String>>;
    /// Monotonic counters (name → value) for metrics.
    async fn counters(&self) -> Result<Vec<(String, i64)>>;
    async fn values(&self) -> Result<Vec<CustomValue>>;
    async fn subscriptions(&self) -> Result<Vec<Subscription>>;
    /// By full id or an unambiguous prefix of one.
    async fn find_subscription(&self, id_or_prefix: &str) -> Result<Option<Subscription>>;
    async fn subscription_stats(&self) -> Result<Vec<SubscriptionStats>>;
    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRow>>;
    async fn event_detail(&self, id: &str) -> Result<Option<EventDetail>>;
    async fn queue_counts(&self) -> Result<QueueCounts>;
    /// [`Store::queue_counts`] and [`Store::subscription_stats`] as of one moment, for
    /// less than the two cost apart (both count the same index once).
    async fn overview(&self) -> Result<(QueueCounts, Vec<SubscriptionStats>)>;
    /// Retrying deliveries, soonest first.
    async fn retry_queue(&self, limit: u32) -> Result<Vec<RetryItem>>;
    /// Dead letters, grouped by subscription and error, newest first within a group.
    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadItem>>;
    /// The most recent attempts since `since`, per subscription (at most `limit` in all).
    async fn attempt_samples(
        &self,
        since: Millis,
        limit: u32,
    ) -> Result<std::collections::HashMap<String, Vec<AttemptSample>>>;
    /// Events received since `since`.
    async fn events_since(&self, since: Millis) -> Result<i64>;
    async fn subscription_log(&self, id: &str, limit: u32) -> Result<Vec<LogEntry>>;
    /// Records an entry on its own: an action that failed and stored nothing.
    async fn audit(&self, entry: AuditEntry) -> Result<()>;
    async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;
    /// Up to `limit` deliveries matching `filter` with ids after `after`, in id order: an
    /// export pages through any number of them in constant memory.
    async fn export(
        &self,
        filter: &ExportFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ExportedDelivery>>;
    /// Endpoints in trouble since `since`: circuit open, disabled, failed attempts or dead
    /// letters within the window, backlog alerts raised (their `actions` left empty).
    async fn incident(&self, since: Millis) -> Result<Vec<crate::incident::EndpointIncident>>;
    /// Operational events due by time — dead-letter windows that ended with deaths untold,
    /// backlog alerts raised or cleared against `limits` — published; says how many.
    async fn ops_tick(&self, limits: crate::ops::Limits, now: Millis) -> Result<usize>;
    /// When the earliest unleased delivery of an active, circuit-closed subscription is due.
    async fn next_due(&self) -> Result<Option<Millis>>;
    /// A number that changes whenever any process commits to the store.
    async fn change_counter(&self) -> Result<i64>;
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeleteOutcome {
    pub deleted: bool,
    /// Unfinished deliveries: the reason for a refusal, or how many were cancelled.
    pub unfinished: i64,
}

#[derive(Debug, Clone, Default)]
pub struct PurgeFilter {
    pub status: Vec<DeliveryStatus>,
    pub subscription_id: Option<String>,
    /// Only deliveries that reached their state before this time.
    pub before: Option<Millis>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PurgeCount {
    pub deliveries: u64,
    pub events: u64,
}

/// Work on many rows goes in steps, each its own transaction; before the next, the write
/// lock stays free as long as the last step held it, so that another process writing to
/// the file (a CLI command beside `serve`, or `serve` beside one) gets its turn instead of
/// failing at its busy timeout, and the writer's queue runs meanwhile.
pub async fn leave_the_lock_free(step_took: std::time::Duration) {
    tokio::time::sleep(step_took).await;
}

/// One step of retention.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pruned {
    pub events: u64,
    /// Where the next step starts, when this one was full (more may be due); events before
    /// it that were kept (work still to do) are not looked at again by the next step.
    pub next_from: Option<Millis>,
}

/// Deliveries by state, across all subscriptions.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct QueueCounts {
    pub pending: i64,
    pub retrying: i64,
    pub delivered: i64,
    /// Dead and not redelivered since.
    pub dead: i64,
    pub cancelled: i64,
    /// Leased by an engine right now.
    pub in_flight: i64,
    pub events: i64,
    pub oldest_event_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LogEntry {
    pub at: Millis,
    pub change: String,
    pub reason: Option<String>,
}

/// An API token: the secret itself is shown once and only its hash is stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ApiToken {
    pub id: String,
    pub scopes: Vec<String>,
    pub location_id: Option<String>,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// A publish refused because its API token has been revoked.
#[derive(Debug)]
pub struct TokenRevoked;

impl std::fmt::Display for TokenRevoked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the token was revoked")
    }
}

impl std::error::Error for TokenRevoked {}

/// An inbound webhook endpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Inbound {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub location_id: Option<String>,
    /// (event field, JSON pointer into the incoming body)
    pub map: Vec<(String, String)>,
    #[serde(skip)]
    pub secret: Option<String>,
    pub created_at: Millis,
}

/// Latency buckets (ms) of the attempt histogram in /metrics.
pub const LATENCY_BUCKETS_MS: &[u64] = &[5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// A value for merge tags: `{{custom_values.NAME}}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CustomValue {
    pub name: String,
    /// `None`: the global value.
    pub location_id: Option<String>,
    pub value: String,
}

/// The values an event of `location` sees: the global ones, overridden by the location's.
pub fn values_for(
    all: &[CustomValue],
    location: Option<&str>,
) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    for v in all.iter().filter(|v| v.location_id.is_none()) {
        out.insert(v.name.clone(), v.value.clone());
    }
    if let Some(loc) = location {
        for v in all.iter().filter(|v| v.location_id.as_deref() == Some(loc)) {
            out.insert(v.name.clone(), v.value.clone());
        }
    }
    out
}

/// Raised when an id prefix names more than one subscription.
#[derive(Debug, thiserror::Error)]
#[error("'{prefix}' matches several subscriptions: {}", .matches.join(", "))]
pub struct AmbiguousId {
    pub prefix: String,
    pub matches: Vec<String>,
}
