//! The only writer: a task that owns the write connection and commits whatever operations
//! have queued up in one `BEGIN IMMEDIATE` transaction (group commit), then answers each
//! sender. Each operation runs inside its own savepoint, so one that fails is undone alone
//! and stores nothing partial.

use super::rows;
use crate::model::*;
use crate::store::*;
use anyhow::{Result, anyhow};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

type Reply<T> = oneshot::Sender<Result<T>>;

pub enum Op {
    Publish {
        events: Vec<NewEvent>,
        reply: Reply<Vec<Published>>,
    },
    AddSubscription {
        sub: Box<Subscription>,
        reply: Reply<()>,
    },
    UpdateSubscription {
        sub: Box<Subscription>,
        reply: Reply<()>,
    },
    SetState {
        id: String,
        state: SubState,
        reply: Reply<bool>,
    },
    Claim {
        wants: Vec<(String, usize)>,
        now: Millis,
        lease_until: Millis,
        reply: Reply<Vec<Leased>>,
    },
    Record {
        outcomes: Vec<Outcome>,
        circuit_threshold: u32,
        reply: Reply<()>,
    },
    DeleteSubscription {
        id: String,
        force: bool,
        reply: Reply<DeleteOutcome>,
    },
    RotateSecret {
        id: String,
        secret: String,
        grace_until: Millis,
        reply: Reply<()>,
    },
    Purge {
        filter: PurgeFilter,
        dry_run: bool,
        reply: Reply<PurgeCount>,
    },
    Prune {
        before: Millis,
        reply: Reply<PurgeCount>,
    },
    ExpireHeld {
        sub: String,
        before: Millis,
        reason: String,
        reply: Reply<u64>,
    },
    AddToken {
        token: Box<ApiToken>,
        hash: String,
        reply: Reply<()>,
    },
    RevokeToken {
        id: String,
        reply: Reply<bool>,
    },
    AddInbound {
        inbound: Box<Inbound>,
        hash: String,
        reply: Reply<()>,
    },
    RemoveInbound {
        id: String,
        reply: Reply<bool>,
    },
    SetVerifyToken {
        id: String,
        token: Option<String>,
        reply: Reply<()>,
    },
    /// Sets a custom value, or removes it (`value: None`); answers whether one existed.
    SetValue {
        name: String,
        location: String,
        value: Option<String>,
        reply: Reply<bool>,
    },
    Release {
        which: Release,
        reply: Reply<u64>,
    },
    Redeliver {
        target: RedeliverTarget,
        dry_run: bool,
        now: Millis,
        reply: Reply<Vec<Redelivered>>,
    },
}

/// Most operations taken into one transaction.
const MAX_BATCH: usize = 256;
/// Rows (events published, outcomes recorded) taken into one transaction: a claim that
/// arrives meanwhile waits for all of them.
const MAX_BATCH_ROWS: usize = 2000;
/// Rows per multi-row statement (well under SQLite's bound-variable limit).
const ROWS_PER_STATEMENT: usize = 200;

impl Op {
    fn rows(&self) -> usize {
        match self {
            Op::Publish { events, .. } => events.len(),
            Op::Record { outcomes, .. } => outcomes.len(),
            _ => 1,
        }
    }
}

/// Sends an operation's answer once the transaction's fate is known.
type Finish = Box<dyn FnOnce(Option<&str>) + Send>;

fn finisher<T: Send + 'static>(reply: Reply<T>, result: Result<T>) -> Finish {
    Box::new(move |commit_error| {
        let answer = match (commit_error, result) {
            (Some(e), _) => Err(anyhow!("commit failed: {e}")),
            (None, r) => r,
        };
        // The sender may have given up (e.g. the console quit); nothing to do then.
        let _ = reply.send(answer);
    })
}

pub async fn run(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Op>,
    committed: Arc<LocalCommits>,
    checkpoints: Option<mpsc::Sender<()>>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        let mut rows = first.rows();
        batch.push(first);
        while batch.len() < MAX_BATCH && rows < MAX_BATCH_ROWS {
            match rx.try_recv() {
                Ok(op) => {
                    rows += op.rows();
                    batch.push(op);
                }
                Err(_) => break,
            }
        }
        // Claims go first, in a short transaction of their own: the engine's lanes are
        // waiting on them, and behind a batch of records and publishes they would wait
        // for all of it.
        let (claims, rest): (Vec<Op>, Vec<Op>) = batch
            .drain(..)
            .partition(|op| matches!(op, Op::Claim { .. }));
        for part in [claims, rest] {
            if part.is_empty() {
                continue;
            }
            commit_part(&mut conn, part, &committed, checkpoints.as_ref()).await;
        }
    }
}

async fn commit_part(
    conn: &mut SqliteConnection,
    batch: Vec<Op>,
    committed: &LocalCommits,
    checkpoints: Option<&mpsc::Sender<()>>,
) {
    // Claims make no new work for anyone; everything else may (new events, resumed
    // endpoints, retries scheduled), so the local engine is woken for those.
    let wake = batch.iter().any(|op| !matches!(op, Op::Claim { .. }));
    let config = batch.iter().any(|op| {
        matches!(
            op,
            Op::AddSubscription { .. }
                | Op::UpdateSubscription { .. }
                | Op::SetState { .. }
                | Op::DeleteSubscription { .. }
                | Op::RotateSecret { .. }
                | Op::SetValue { .. }
                | Op::SetVerifyToken { .. }
        )
    });
    commit_batch(conn, batch.into_iter()).await;
    if config {
        committed
            .config
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }
    if wake {
        committed
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        committed.any.notify_waiters();
    }
    if let Some(c) = checkpoints {
        // Full means a checkpoint is already due; nothing to add.
        let _ = c.try_send(());
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<()> {
    sqlx::query(sql).execute(&mut *conn).await?;
    Ok(())
}

async fn commit_batch(conn: &mut SqliteConnection, ops: impl Iterator<Item = Op>) {
    let ops: Vec<Op> = ops.collect();
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE").await {
        let msg = describe_begin_error(&e);
        for op in ops {
            finisher_for_failed(op, &msg)(None);
        }
        return;
    }
    let mut finishes: Vec<Finish> = Vec::with_capacity(ops.len());
    if ops.len() == 1 {
        // Alone in its transaction, an operation needs no savepoint: if it fails, the
        // whole transaction is rolled back.
        for op in ops {
            let (finish, ok) = apply(conn, op).await;
            let end = if ok {
                exec(conn, "COMMIT").await.err().map(|e| {
                    tracing::debug!("commit failed: {e:#}");
                    e.to_string()
                })
            } else {
                if let Err(e) = exec(conn, "ROLLBACK").await {
                    tracing::error!("rollback failed: {e:#}");
                }
                None
            };
            if end.is_some() {
                let _ = exec(conn, "ROLLBACK").await;
            }
            finish(end.as_deref());
        }
        return;
    }
    let mut ops = ops.into_iter().peekable();
    while let Some(op) = ops.next() {
        let Op::Publish { events, reply } = op else {
            finishes.push(in_savepoint(conn, op).await);
            continue;
        };
        // Producers publishing one event per request (the HTTP API) each send their own
        // operation: consecutive ones are stored by one publish, not one each.
        let mut run = vec![(events, reply)];
        while let Some(Op::Publish { events, reply }) =
            ops.next_if(|o| matches!(o, Op::Publish { .. }))
        {
            run.push((events, reply));
        }
        if run.len() == 1 {
            let (events, reply) = run.remove(0);
            finishes.push(in_savepoint(conn, Op::Publish { events, reply }).await);
            continue;
        }
        match publish_together(conn, run).await {
            Ok(done) => finishes.extend(done),
            // One of them failed: each again on its own, so only that one fails.
            Err(run) => {
                for (events, reply) in run {
                    finishes.push(in_savepoint(conn, Op::Publish { events, reply }).await);
                }
            }
        }
    }
    let commit_error = match exec(conn, "COMMIT").await {
        Ok(()) => None,
        Err(e) => {
            // Every sender gets this error; the caller decides how to report it.
            tracing::debug!("commit failed: {e:#}");
            let _ = exec(conn, "ROLLBACK").await;
            Some(e.to_string())
        }
    };
    for f in finishes {
        f(commit_error.as_deref());
    }
}

/// One operation inside its own savepoint, so a failure undoes it alone.
async fn in_savepoint(conn: &mut SqliteConnection, op: Op) -> Finish {
    if let Err(e) = exec(conn, "SAVEPOINT op").await {
        return finisher_for_failed(op, &e.to_string());
    }
    let (finish, ok) = apply(conn, op).await;
    let end = if ok {
        exec(conn, "RELEASE op").await
    } else {
        match exec(conn, "ROLLBACK TO op").await {
            Ok(()) => exec(conn, "RELEASE op").await,
            Err(e) => Err(e),
        }
    };
    if let Err(e) = end {
        tracing::error!("savepoint handling failed: {e:#}");
    }
    finish
}

type PublishRun = Vec<(Vec<NewEvent>, Reply<Vec<Published>>)>;

/// Several publish operations as one, in one savepoint. An id sent twice across them is
/// stored once, by the first, exactly as within one batch. On failure nothing is kept and
/// the operations come back to be retried one by one.
async fn publish_together(
    conn: &mut SqliteConnection,
    run: PublishRun,
) -> std::result::Result<Vec<Finish>, PublishRun> {
    let lens: Vec<usize> = run.iter().map(|(events, _)| events.len()).collect();
    let (batches, replies): (Vec<Vec<NewEvent>>, Vec<_>) = run.into_iter().unzip();
    let all: Vec<NewEvent> = batches.into_iter().flatten().collect();
    let split = |mut all: Vec<NewEvent>| {
        let mut parts = Vec::with_capacity(lens.len());
        for n in lens.iter().rev() {
            parts.push(all.split_off(all.len() - n));
        }
        parts.reverse();
        parts
    };
    if exec(conn, "SAVEPOINT publish").await.is_err() {
        return Err(split(all).into_iter().zip(replies).collect());
    }
    let published = match publish(conn, &all).await {
        Ok(p) => exec(conn, "RELEASE publish").await.map(|()| p),
        Err(e) => Err(e),
    };
    match published {
        Ok(mut published) => {
            let mut finishes = Vec::with_capacity(replies.len());
            for (reply, n) in replies.into_iter().zip(&lens).rev() {
                let mine = published.split_off(published.len() - n);
                finishes.push(finisher(reply, Ok(mine)));
            }
            finishes.reverse();
            Ok(finishes)
        }
        Err(e) => {
            tracing::debug!("publishing together failed, one by one now: {e:#}");
            if exec(conn, "ROLLBACK TO publish").await.is_ok() {
                let _ = exec(conn, "RELEASE publish").await;
            }
            Err(split(all).into_iter().zip(replies).collect())
        }
    }
}

fn describe_begin_error(e: &anyhow::Error) -> String {
    let text = e.to_string();
    if text.contains("locked") || text.contains("busy") {
        format!("the database is locked by another process beyond the busy timeout ({text})")
    } else {
        format!("cannot start a write transaction: {text}")
    }
}

fn finisher_for_failed(op: Op, msg: &str) -> Finish {
    let e = || anyhow!("{msg}");
    match op {
        Op::Publish { reply, .. } => finisher(reply, Err(e())),
        Op::AddSubscription { reply, .. } => finisher(reply, Err(e())),
        Op::SetState { reply, .. } => finisher(reply, Err(e())),
        Op::UpdateSubscription { reply, .. } => finisher(reply, Err(e())),
        Op::Claim { reply, .. } => finisher(reply, Err(e())),
        Op::Record { reply, .. } => finisher(reply, Err(e())),
        Op::Release { reply, .. } => finisher(reply, Err(e())),
        Op::Redeliver { reply, .. } => finisher(reply, Err(e())),
        Op::DeleteSubscription { reply, .. } => finisher(reply, Err(e())),
        Op::RotateSecret { reply, .. } => finisher(reply, Err(e())),
        Op::Purge { reply, .. } => finisher(reply, Err(e())),
        Op::Prune { reply, .. } => finisher(reply, Err(e())),
        Op::ExpireHeld { reply, .. } => finisher(reply, Err(e())),
        Op::SetValue { reply, .. } => finisher(reply, Err(e())),
        Op::AddToken { reply, .. } => finisher(reply, Err(e())),
        Op::RevokeToken { reply, .. } => finisher(reply, Err(e())),
        Op::AddInbound { reply, .. } => finisher(reply, Err(e())),
        Op::RemoveInbound { reply, .. } => finisher(reply, Err(e())),
        Op::SetVerifyToken { reply, .. } => finisher(reply, Err(e())),
    }
}

/// Runs one operation; the flag says whether its savepoint should be kept.
async fn apply(conn: &mut SqliteConnection, op: Op) -> (Finish, bool) {
    fn done<T: Send + 'static>(reply: Reply<T>, r: Result<T>) -> (Finish, bool) {
        let ok = r.is_ok();
        (finisher(reply, r), ok)
    }
    match op {
        Op::Publish { events, reply } => done(reply, publish(conn, &events).await),
        Op::AddSubscription { sub, reply } => done(reply, add_subscription(conn, &sub).await),
        Op::SetState { id, state, reply } => done(reply, set_state(conn, &id, state).await),
        Op::UpdateSubscription { sub, reply } => done(reply, update_subscription(conn, &sub).await),
        Op::Claim {
            wants,
            now,
            lease_until,
            reply,
        } => done(reply, claim(conn, &wants, now, lease_until).await),
        Op::Record {
            outcomes,
            circuit_threshold,
            reply,
        } => done(reply, record(conn, &outcomes, circuit_threshold).await),
        Op::DeleteSubscription { id, force, reply } => {
            done(reply, delete_subscription(conn, &id, force).await)
        }
        Op::RotateSecret {
            id,
            secret,
            grace_until,
            reply,
        } => done(reply, rotate_secret(conn, &id, &secret, grace_until).await),
        Op::Purge {
            filter,
            dry_run,
            reply,
        } => done(reply, purge(conn, &filter, dry_run).await),
        Op::Prune { before, reply } => done(reply, prune(conn, before).await),
        Op::ExpireHeld {
            sub,
            before,
            reason,
            reply,
        } => done(reply, expire_held(conn, &sub, before, &reason).await),
        Op::SetValue {
            name,
            location,
            value,
            reply,
        } => done(
            reply,
            set_value(conn, &name, &location, value.as_deref()).await,
        ),
        Op::AddToken { token, hash, reply } => done(reply, add_token(conn, &token, &hash).await),
        Op::RevokeToken { id, reply } => done(reply, revoke_token(conn, &id).await),
        Op::AddInbound {
            inbound,
            hash,
            reply,
        } => done(reply, add_inbound(conn, &inbound, &hash).await),
        Op::RemoveInbound { id, reply } => done(reply, remove_inbound(conn, &id).await),
        Op::SetVerifyToken { id, token, reply } => {
            done(reply, set_verify_token(conn, &id, token.as_deref()).await)
        }
        Op::Release { which, reply } => done(reply, release(conn, &which).await),
        Op::Redeliver {
            target,
            dry_run,
            now,
            reply,
        } => done(reply, redeliver(conn, &target, dry_run, now).await),
    }
}

/// What fan-out needs of a subscription.
struct Route {
    id: String,
    events: Option<Vec<String>>,
    location_id: Option<String>,
}

impl Route {
    fn matches(&self, event_type: &str, location: Option<&str>) -> bool {
        self.events
            .as_ref()
            .is_none_or(|t| t.iter().any(|t| t == event_type))
            && self
                .location_id
                .as_deref()
                .is_none_or(|l| location == Some(l))
    }
}

async fn routes(conn: &mut SqliteConnection) -> Result<Vec<Route>> {
    let rows = sqlx::query("SELECT id, events, location_id FROM subscriptions")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            let events: Option<String> = r.try_get("events")?;
            Ok(Route {
                id: r.try_get("id")?,
                events: events.map(|e| serde_json::from_str(&e)).transpose()?,
                location_id: r.try_get("location_id")?,
            })
        })
        .collect()
}

async fn publish(conn: &mut SqliteConnection, events: &[NewEvent]) -> Result<Vec<Published>> {
    let now = now_ms();
    let routes = routes(conn).await?;
    let mut seqs: HashMap<String, i64> = HashMap::with_capacity(events.len());
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO events (id, type, location_id, timestamp, data, received_at) ",
        );
        q.push_values(chunk, |mut b, e| {
            b.push_bind(e.id.clone())
                .push_bind(e.event_type.clone())
                .push_bind(e.location_id.clone())
                .push_bind(e.timestamp)
                .push_bind(e.data.to_string())
                .push_bind(e.received_at.unwrap_or(now));
        });
        q.push(" ON CONFLICT(id) DO NOTHING RETURNING seq, id");
        for row in q.build().fetch_all(&mut *conn).await? {
            seqs.insert(row.try_get("id")?, row.try_get("seq")?);
        }
    }
    // (event_seq, subscription_id) for every new event × matching subscription.
    let mut fan: Vec<(i64, &str)> = Vec::new();
    let mut out = Vec::with_capacity(events.len());
    let mut seen: HashMap<&str, ()> = HashMap::new();
    for e in events {
        // The same id twice in one batch: the first is stored, the second is a duplicate.
        let first = seen.insert(e.id.as_str(), ()).is_none();
        match seqs.get(&e.id) {
            Some(&seq) if first => {
                let before = fan.len();
                for r in routes
                    .iter()
                    .filter(|r| r.matches(&e.event_type, e.location_id.as_deref()))
                {
                    fan.push((seq, r.id.as_str()));
                }
                out.push(Published {
                    id: e.id.clone(),
                    duplicate: false,
                    deliveries: fan.len() - before,
                });
            }
            _ => out.push(Published {
                id: e.id.clone(),
                duplicate: true,
                deliveries: 0,
            }),
        }
    }
    insert_deliveries(conn, &fan, now).await?;
    let fresh = out.iter().filter(|p| !p.duplicate).count() as i64;
    bump(conn, &[("events_published".into(), fresh)]).await?;
    Ok(out)
}

async fn insert_deliveries(
    conn: &mut SqliteConnection,
    rows: &[(i64, &str)],
    now: Millis,
) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO deliveries (event_seq, subscription_id, status, attempts, next_at, created_at, updated_at) ",
        );
        q.push_values(chunk, |mut b, (seq, sub)| {
            b.push_bind(*seq)
                .push_bind(sub.to_string())
                .push_bind("pending")
                .push_bind(0i64)
                .push_bind(now)
                .push_bind(now)
                .push_bind(now);
        });
        q.push(" RETURNING id");
        let mut chunk_ids: Vec<i64> = Vec::with_capacity(chunk.len());
        for row in q.build().fetch_all(&mut *conn).await? {
            chunk_ids.push(row.try_get("id")?);
        }
        // RETURNING's order is unspecified, but rowids are handed out in VALUES order.
        chunk_ids.sort_unstable();
        ids.extend(chunk_ids);
    }
    Ok(ids)
}

async fn add_subscription(conn: &mut SqliteConnection, s: &Subscription) -> Result<()> {
    let events = s.events.as_ref().map(serde_json::to_string).transpose()?;
    sqlx::query(
        "INSERT INTO subscriptions (id, name, url, events, location_id, secret, method, headers, format, payload, template, retry_schedule, timeout_ms, rate_per_sec, signature_scheme, signature_header, state, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    )
    .bind(&s.id)
    .bind(&s.name)
    .bind(&s.url)
    .bind(events)
    .bind(&s.location_id)
    .bind(&s.secret)
    .bind(s.method.as_str())
    .bind(rows::headers_to_json(&s.headers))
    .bind(s.format.as_str())
    .bind(s.payload.as_str())
    .bind(&s.template)
    .bind(serde_json::to_string(&s.retry_schedule_ms)?)
    .bind(s.timeout_ms as i64)
    .bind(s.rate_per_sec)
    .bind(s.signature_scheme.as_str())
    .bind(&s.signature_header)
    .bind(s.state.as_str())
    .bind(s.created_at)
    .bind(s.updated_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn log(
    conn: &mut SqliteConnection,
    id: &str,
    change: &str,
    reason: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO subscription_log (subscription_id, at, change, reason) VALUES (?, ?, ?, ?)",
    )
    .bind(id)
    .bind(now_ms())
    .bind(change)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn update_subscription(conn: &mut SqliteConnection, s: &Subscription) -> Result<()> {
    let events = s.events.as_ref().map(serde_json::to_string).transpose()?;
    let r = sqlx::query(
        "UPDATE subscriptions SET name = ?, url = ?, events = ?, location_id = ?, method = ?, headers = ?, \
           format = ?, payload = ?, template = ?, retry_schedule = ?, timeout_ms = ?, rate_per_sec = ?, \
           signature_scheme = ?, signature_header = ?, updated_at = ? WHERE id = ?",
    )
    .bind(&s.name)
    .bind(&s.url)
    .bind(events)
    .bind(&s.location_id)
    .bind(s.method.as_str())
    .bind(rows::headers_to_json(&s.headers))
    .bind(s.format.as_str())
    .bind(s.payload.as_str())
    .bind(&s.template)
    .bind(serde_json::to_string(&s.retry_schedule_ms)?)
    .bind(s.timeout_ms as i64)
    .bind(s.rate_per_sec)
    .bind(s.signature_scheme.as_str())
    .bind(&s.signature_header)
    .bind(now_ms())
    .bind(&s.id)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() == 0 {
        return Err(anyhow!("no subscription with id '{}'", s.id));
    }
    log(conn, &s.id, "edited", Some("operator")).await
}

async fn set_state(conn: &mut SqliteConnection, id: &str, state: SubState) -> Result<bool> {
    // Resuming also closes the circuit: the operator says the endpoint is back.
    let r = sqlx::query(
        "UPDATE subscriptions SET state = ?1, state_reason = NULL, updated_at = ?2, \
           consecutive_failures = CASE WHEN ?1 = 'active' THEN 0 ELSE consecutive_failures END, \
           circuit = CASE WHEN ?1 = 'active' THEN 'closed' ELSE circuit END \
         WHERE id = ?3",
    )
    .bind(state.as_str())
    .bind(now_ms())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() > 0 {
        log(conn, id, state.as_str(), Some("operator")).await?;
    }
    Ok(r.rows_affected() > 0)
}

async fn delete_subscription(
    conn: &mut SqliteConnection,
    id: &str,
    force: bool,
) -> Result<DeleteOutcome> {
    let (unfinished,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM deliveries WHERE subscription_id = ? AND status IN ('pending', 'retrying')",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    if unfinished > 0 && !force {
        return Ok(DeleteOutcome {
            deleted: false,
            unfinished,
        });
    }
    let now = now_ms();
    sqlx::query(
        "UPDATE deliveries SET status = 'cancelled', next_at = NULL, updated_at = ? \
         WHERE subscription_id = ? AND status IN ('pending', 'retrying')",
    )
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    let r = sqlx::query("DELETE FROM subscriptions WHERE id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    if r.rows_affected() > 0 {
        let reason = format!("{unfinished} unfinished deliveries cancelled");
        log(conn, id, "deleted", Some(&reason)).await?;
    }
    Ok(DeleteOutcome {
        deleted: r.rows_affected() > 0,
        unfinished,
    })
}

async fn rotate_secret(
    conn: &mut SqliteConnection,
    id: &str,
    secret: &str,
    grace_until: Millis,
) -> Result<()> {
    let r = sqlx::query(
        "UPDATE subscriptions SET previous_secret = secret, previous_secret_until = ?, secret = ?, updated_at = ? WHERE id = ?",
    )
    .bind(grace_until)
    .bind(secret)
    .bind(now_ms())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() == 0 {
        return Err(anyhow!("no subscription with id '{id}'"));
    }
    log(
        conn,
        id,
        "secret rotated",
        Some(&format!("old secret valid until {}", rfc3339(grace_until))),
    )
    .await
}

/// Deletes events that no longer have any delivery (after deliveries were purged).
async fn delete_orphan_events(conn: &mut SqliteConnection, dry_run: bool) -> Result<u64> {
    if dry_run {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq)",
        )
        .fetch_one(&mut *conn)
        .await?;
        return Ok(n as u64);
    }
    let r = sqlx::query(
        "DELETE FROM events WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = events.seq)",
    )
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected())
}

async fn purge(conn: &mut SqliteConnection, f: &PurgeFilter, dry_run: bool) -> Result<PurgeCount> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(if dry_run {
        "SELECT COUNT(*) FROM deliveries WHERE status IN ("
    } else {
        "DELETE FROM deliveries WHERE status IN ("
    });
    let mut sep = q.separated(", ");
    for st in f.status.iter().filter(|s| s.is_final()) {
        sep.push_bind(st.as_str());
    }
    sep.push_bind("-");
    q.push(")");
    if let Some(sub) = &f.subscription_id {
        q.push(" AND subscription_id = ").push_bind(sub.clone());
    }
    if let Some(before) = f.before {
        q.push(" AND updated_at < ").push_bind(before);
    }
    let deliveries = if dry_run {
        let (n,): (i64,) = q.build_query_as().fetch_one(&mut *conn).await?;
        n as u64
    } else {
        q.build().execute(&mut *conn).await?.rows_affected()
    };
    // A dry run cannot know which events a real purge would orphan without doing it.
    let events = if dry_run {
        0
    } else {
        delete_orphan_events(conn, false).await?
    };
    Ok(PurgeCount { deliveries, events })
}

async fn set_value(
    conn: &mut SqliteConnection,
    name: &str,
    location: &str,
    value: Option<&str>,
) -> Result<bool> {
    let r = match value {
        Some(v) => {
            sqlx::query(
                "INSERT INTO custom_values (name, location_id, value, updated_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT(name, location_id) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(location)
            .bind(v)
            .bind(now_ms())
            .execute(&mut *conn)
            .await?
        }
        None => {
            sqlx::query("DELETE FROM custom_values WHERE name = ? AND location_id = ?")
                .bind(name)
                .bind(location)
                .execute(&mut *conn)
                .await?
        }
    };
    Ok(r.rows_affected() > 0)
}

async fn add_token(conn: &mut SqliteConnection, t: &ApiToken, hash: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO tokens (id, hash, scopes, location_id, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&t.id)
    .bind(hash)
    .bind(serde_json::to_string(&t.scopes)?)
    .bind(&t.location_id)
    .bind(t.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn revoke_token(conn: &mut SqliteConnection, id: &str) -> Result<bool> {
    let r = sqlx::query("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
        .bind(now_ms())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() > 0)
}

async fn add_inbound(conn: &mut SqliteConnection, i: &Inbound, hash: &str) -> Result<()> {
    sqlx::query("INSERT INTO inbound (id, hash, type, location_id, map, secret, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .bind(&i.id)
        .bind(hash)
        .bind(&i.event_type)
        .bind(&i.location_id)
        .bind(serde_json::to_string(&i.map)?)
        .bind(&i.secret)
        .bind(i.created_at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn remove_inbound(conn: &mut SqliteConnection, id: &str) -> Result<bool> {
    let r = sqlx::query("DELETE FROM inbound WHERE id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() > 0)
}

async fn set_verify_token(
    conn: &mut SqliteConnection,
    id: &str,
    token: Option<&str>,
) -> Result<()> {
    sqlx::query("UPDATE subscriptions SET verify_token = ? WHERE id = ?")
        .bind(token)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Adds to monotonic counters in one statement.
async fn bump(conn: &mut SqliteConnection, deltas: &[(String, i64)]) -> Result<()> {
    let deltas: Vec<&(String, i64)> = deltas.iter().filter(|(_, d)| *d != 0).collect();
    if deltas.is_empty() {
        return Ok(());
    }
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("INSERT INTO counters (name, value) ");
    q.push_values(deltas, |mut b, (name, d)| {
        b.push_bind(name.clone()).push_bind(*d);
    });
    q.push(" ON CONFLICT(name) DO UPDATE SET value = value + excluded.value");
    q.build().execute(&mut *conn).await?;
    Ok(())
}

async fn expire_held(
    conn: &mut SqliteConnection,
    sub: &str,
    before: Millis,
    reason: &str,
) -> Result<u64> {
    let now = now_ms();
    let held = "subscription_id = ?1 AND status IN ('pending', 'retrying') AND lease_until IS NULL AND created_at < ?2";
    let sql = format!(
        "INSERT OR REPLACE INTO attempts (delivery_id, n, at, error_class, error, latency_ms) \
         SELECT id, attempts + 1, ?3, 'circuit_open', ?4, 0 FROM deliveries WHERE {held}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(sub)
        .bind(before)
        .bind(now)
        .bind(reason)
        .execute(&mut *conn)
        .await?;
    let sql = format!(
        "UPDATE deliveries SET status = 'dead', attempts = attempts + 1, next_at = NULL, updated_at = ?3 WHERE {held}"
    );
    let n = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(sub)
        .bind(before)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if n > 0 {
        bump(
            conn,
            &[
                ("deliveries_dead".into(), n as i64),
                ("attempts".into(), n as i64),
                ("attempts_failed_circuit_open".into(), n as i64),
            ],
        )
        .await?;
        log(
            conn,
            sub,
            "expired held deliveries",
            Some(&format!("{n}: {reason}")),
        )
        .await?;
    }
    Ok(n)
}

async fn prune(conn: &mut SqliteConnection, before: Millis) -> Result<PurgeCount> {
    // Only events whose every delivery is final: retention never drops work still to do.
    let r = sqlx::query(
        "DELETE FROM events WHERE received_at < ?1 AND NOT EXISTS \
           (SELECT 1 FROM deliveries d WHERE d.event_seq = events.seq AND d.status IN ('pending', 'retrying'))",
    )
    .bind(before)
    .execute(&mut *conn)
    .await?;
    // Deliveries and attempts go with their events (ON DELETE CASCADE).
    Ok(PurgeCount {
        deliveries: 0,
        events: r.rows_affected(),
    })
}

/// A leased delivery; its event is read afterwards on the read pool, outside the write
/// transaction (events never change, and a leased delivery's event is never pruned).
pub struct Leased {
    pub delivery_id: i64,
    pub event_seq: i64,
    pub subscription_id: String,
    pub attempts: u32,
    pub probes: u32,
}

async fn claim(
    conn: &mut SqliteConnection,
    wants: &[(String, usize)],
    now: Millis,
    lease_until: Millis,
) -> Result<Vec<Leased>> {
    let mut claimed: Vec<Leased> = Vec::new();
    for (sub, n) in wants.iter().filter(|(_, n)| *n > 0) {
        let rows = sqlx::query(
            "UPDATE deliveries SET lease_until = ?1 \
             WHERE id IN (SELECT id FROM deliveries \
                 WHERE subscription_id = ?2 AND status IN ('pending', 'retrying') \
                   AND lease_until IS NULL AND next_at <= ?3 \
                 ORDER BY next_at LIMIT ?4) \
               AND EXISTS (SELECT 1 FROM subscriptions WHERE id = ?2 AND state = 'active') \
             RETURNING id, event_seq, attempts, probes",
        )
        .bind(lease_until)
        .bind(sub)
        .bind(now)
        .bind(*n as i64)
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            let attempts: i64 = r.try_get("attempts")?;
            let probes: i64 = r.try_get("probes")?;
            claimed.push(Leased {
                delivery_id: r.try_get("id")?,
                event_seq: r.try_get("event_seq")?,
                subscription_id: sub.clone(),
                attempts: attempts as u32,
                probes: probes as u32,
            });
        }
    }
    Ok(claimed)
}

async fn record(
    conn: &mut SqliteConnection,
    outcomes: &[Outcome],
    circuit_threshold: u32,
) -> Result<()> {
    let now = now_ms();
    for chunk in outcomes.chunks(ROWS_PER_STATEMENT) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT OR REPLACE INTO attempts (delivery_id, n, at, status_code, error_class, error, latency_ms, request_headers, response_headers, response_body) ",
        );
        q.push_values(chunk, |mut b, o| {
            let a = &o.attempt;
            b.push_bind(o.delivery_id)
                .push_bind(a.n as i64)
                .push_bind(a.at)
                .push_bind(a.status_code.map(i64::from))
                .push_bind(a.error_class.map(|c| c.as_str()))
                .push_bind(a.error.clone())
                .push_bind(a.latency_ms as i64)
                .push_bind(Some(rows::headers_to_json(&a.request_headers)))
                .push_bind(
                    (!a.response_headers.is_empty())
                        .then(|| rows::headers_to_json(&a.response_headers)),
                )
                .push_bind(a.response_body.clone());
        });
        q.build().execute(&mut *conn).await?;

        // One statement updates every delivery of the chunk. A delivery cancelled while in
        // flight keeps its final state; the attempt is still on record.
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "UPDATE deliveries SET \
               status = CASE WHEN deliveries.status IN ('pending', 'retrying') THEN v.column2 ELSE deliveries.status END, \
               next_at = CASE WHEN deliveries.status IN ('pending', 'retrying') THEN v.column3 ELSE NULL END, \
               attempts = v.column4, \
               probes = v.column5, \
               lease_until = NULL, \
               updated_at = ",
        );
        q.push_bind(now);
        q.push(" FROM (");
        q.push_values(chunk, |mut b, o| {
            b.push_bind(o.delivery_id)
                .push_bind(o.status.as_str())
                .push_bind(o.next_at)
                .push_bind(o.attempt.n as i64)
                .push_bind(o.probes as i64);
        });
        q.push(") AS v WHERE deliveries.id = v.column1");
        q.build().execute(&mut *conn).await?;

        // The body as first sent; a later attempt (which reuses it) brings none.
        let bodies: Vec<(i64, &Vec<u8>)> = chunk
            .iter()
            .filter_map(|o| o.body.as_ref().map(|b| (o.delivery_id, b)))
            .collect();
        if !bodies.is_empty() {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT OR IGNORE INTO delivery_bodies (delivery_id, body) ");
            q.push_values(bodies, |mut b, (id, body)| {
                b.push_bind(id).push_bind(body.as_slice());
            });
            q.build().execute(&mut *conn).await?;
        }
    }
    count_outcomes(conn, outcomes).await?;
    update_health(conn, outcomes, circuit_threshold).await
}

/// Attempts, their latency histogram and final outcomes, for /metrics.
async fn count_outcomes(conn: &mut SqliteConnection, outcomes: &[Outcome]) -> Result<()> {
    let mut deltas: HashMap<String, i64> = HashMap::new();
    for o in outcomes {
        let a = &o.attempt;
        *deltas.entry("attempts".into()).or_default() += 1;
        if let Some(class) = a.error_class {
            *deltas
                .entry(format!("attempts_failed_{class}"))
                .or_default() += 1;
        }
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .find(|b| a.latency_ms <= **b)
            .map(|b| b.to_string())
            .unwrap_or_else(|| "inf".into());
        *deltas
            .entry(format!("latency_bucket_{bucket}"))
            .or_default() += 1;
        *deltas.entry("latency_sum_ms".into()).or_default() += a.latency_ms as i64;
        match o.status {
            DeliveryStatus::Delivered => {
                *deltas.entry("deliveries_delivered".into()).or_default() += 1
            }
            DeliveryStatus::Dead => *deltas.entry("deliveries_dead".into()).or_default() += 1,
            _ => {}
        }
    }
    let deltas: Vec<(String, i64)> = deltas.into_iter().collect();
    bump(conn, &deltas).await
}

/// Endpoint health from a batch of outcomes, in the order they finished.
async fn update_health(
    conn: &mut SqliteConnection,
    outcomes: &[Outcome],
    threshold: u32,
) -> Result<()> {
    #[derive(Default)]
    struct Health {
        succeeded: bool,
        failures_since: i64,
        gone: bool,
        last_error: Option<String>,
    }
    let mut by_sub: Vec<(&str, Health)> = Vec::new();
    for o in outcomes {
        let i = match by_sub.iter().position(|(s, _)| *s == o.subscription_id) {
            Some(i) => i,
            None => {
                by_sub.push((o.subscription_id.as_str(), Health::default()));
                by_sub.len() - 1
            }
        };
        let h = &mut by_sub[i].1;
        if o.status == DeliveryStatus::Delivered {
            h.succeeded = true;
            h.failures_since = 0;
        } else if o.attempt.error_class != Some(ErrorClass::Render) {
            // A template that cannot render says nothing about the endpoint's health.
            h.failures_since += 1;
            h.last_error = o.attempt.error.clone();
        }
        h.gone |= o.gone;
    }
    let now = now_ms();
    for (sub, h) in by_sub {
        if h.succeeded && h.failures_since == 0 && !h.gone {
            // The common case, a healthy endpoint staying healthy, needs no write.
            let row: Option<(i64, String)> = sqlx::query_as(
                "SELECT consecutive_failures, circuit FROM subscriptions WHERE id = ?",
            )
            .bind(sub)
            .fetch_optional(&mut *conn)
            .await?;
            if row.is_none_or(|(failures, circuit)| failures == 0 && circuit == "closed") {
                continue;
            }
        }
        sqlx::query(
            "UPDATE subscriptions SET consecutive_failures = \
               CASE WHEN ?1 THEN ?2 ELSE consecutive_failures + ?2 END WHERE id = ?3",
        )
        .bind(h.succeeded)
        .bind(h.failures_since)
        .bind(sub)
        .execute(&mut *conn)
        .await?;
        if h.succeeded && h.failures_since == 0 {
            let r = sqlx::query(
                "UPDATE subscriptions SET circuit = 'closed', circuit_changed_at = ? WHERE id = ? AND circuit = 'open'",
            )
            .bind(now)
            .bind(sub)
            .execute(&mut *conn)
            .await?;
            if r.rows_affected() > 0 {
                log(conn, sub, "circuit closed", Some("a delivery succeeded")).await?;
            }
        }
        let r = sqlx::query(
            "UPDATE subscriptions SET circuit = 'open', circuit_changed_at = ? \
             WHERE id = ? AND circuit = 'closed' AND consecutive_failures >= ?",
        )
        .bind(now)
        .bind(sub)
        .bind(i64::from(threshold.max(1)))
        .execute(&mut *conn)
        .await?;
        if r.rows_affected() > 0 {
            let reason = format!(
                "{threshold} consecutive failures; last: {}",
                h.last_error.as_deref().unwrap_or("?")
            );
            log(conn, sub, "circuit opened", Some(&reason)).await?;
        }
        if h.gone {
            let r = sqlx::query(
                "UPDATE subscriptions SET state = 'disabled', state_reason = ?, updated_at = ? \
                 WHERE id = ? AND state != 'disabled'",
            )
            .bind("the endpoint answered 410 Gone")
            .bind(now)
            .bind(sub)
            .execute(&mut *conn)
            .await?;
            if r.rows_affected() > 0 {
                log(
                    conn,
                    sub,
                    "disabled",
                    Some("the endpoint answered 410 Gone"),
                )
                .await?;
            }
        }
    }
    Ok(())
}

async fn release(conn: &mut SqliteConnection, which: &Release) -> Result<u64> {
    match which {
        Release::All => {
            let r = sqlx::query(
                "UPDATE deliveries SET lease_until = NULL WHERE lease_until IS NOT NULL",
            )
            .execute(&mut *conn)
            .await?;
            Ok(r.rows_affected())
        }
        Release::ExpiredBefore(t) => {
            let r = sqlx::query(
                "UPDATE deliveries SET lease_until = NULL WHERE lease_until IS NOT NULL AND lease_until < ?",
            )
            .bind(t)
            .execute(&mut *conn)
            .await?;
            Ok(r.rows_affected())
        }
        Release::Ids(ids) => {
            let mut n = 0;
            for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                let mut q: QueryBuilder<Sqlite> =
                    QueryBuilder::new("UPDATE deliveries SET lease_until = NULL WHERE id IN (");
                let mut sep = q.separated(", ");
                for id in chunk {
                    sep.push_bind(*id);
                }
                q.push(")");
                n += q.build().execute(&mut *conn).await?.rows_affected();
            }
            Ok(n)
        }
    }
}

/// The deliveries a redelivery replaces: (event seq, event id, subscription, delivery, status, leased).
type Replaced = (i64, String, String, Option<i64>, Option<String>, bool);

async fn redeliver(
    conn: &mut SqliteConnection,
    target: &RedeliverTarget,
    dry_run: bool,
    now: Millis,
) -> Result<Vec<Redelivered>> {
    let mut plan: Vec<Replaced> = Vec::new();
    match target {
        RedeliverTarget::Event {
            event_id,
            subscription_id,
        } => {
            let seq: Option<(i64,)> = sqlx::query_as("SELECT seq FROM events WHERE id = ?")
                .bind(event_id)
                .fetch_optional(&mut *conn)
                .await?;
            let Some((seq,)) = seq else {
                return Err(anyhow!("no event with id '{event_id}'"));
            };
            let rows = sqlx::query(
                "SELECT id, subscription_id, status, lease_until IS NOT NULL AS leased FROM deliveries \
                 WHERE event_seq = ? AND superseded_by IS NULL AND (?2 IS NULL OR subscription_id = ?2) \
                 ORDER BY id",
            )
            .bind(seq)
            .bind(subscription_id)
            .fetch_all(&mut *conn)
            .await?;
            for r in &rows {
                plan.push((
                    seq,
                    event_id.clone(),
                    r.try_get("subscription_id")?,
                    Some(r.try_get("id")?),
                    Some(r.try_get("status")?),
                    r.try_get("leased")?,
                ));
            }
            if let (Some(sub), true) = (subscription_id, rows.is_empty()) {
                // Sending an event to a subscription that never had it (e.g. made later).
                let exists: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM subscriptions WHERE id = ?")
                        .bind(sub)
                        .fetch_optional(&mut *conn)
                        .await?;
                if exists.is_none() {
                    return Err(anyhow!("no subscription with id '{sub}'"));
                }
                plan.push((seq, event_id.clone(), sub.clone(), None, None, false));
            }
        }
        RedeliverTarget::Bulk {
            subscription_id,
            statuses,
            since,
        } => {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT d.id, d.event_seq, e.id AS event_id, d.status, d.lease_until IS NOT NULL AS leased \
                 FROM deliveries d JOIN events e ON e.seq = d.event_seq \
                 WHERE d.superseded_by IS NULL AND d.subscription_id = ",
            );
            q.push_bind(subscription_id.clone());
            q.push(" AND d.status IN (");
            let mut sep = q.separated(", ");
            for s in statuses {
                sep.push_bind(s.as_str());
            }
            q.push(")");
            if let Some(since) = since {
                q.push(" AND d.updated_at >= ");
                q.push_bind(*since);
            }
            q.push(" ORDER BY d.id");
            for r in q.build().fetch_all(&mut *conn).await? {
                plan.push((
                    r.try_get("event_seq")?,
                    r.try_get("event_id")?,
                    subscription_id.clone(),
                    Some(r.try_get("id")?),
                    Some(r.try_get("status")?),
                    r.try_get("leased")?,
                ));
            }
        }
    }
    if dry_run {
        return Ok(plan
            .into_iter()
            .map(
                |(_, event_id, subscription_id, previous, _, _)| Redelivered {
                    event_id,
                    subscription_id,
                    previous,
                    delivery_id: None,
                },
            )
            .collect());
    }
    let fan: Vec<(i64, &str)> = plan.iter().map(|p| (p.0, p.2.as_str())).collect();
    let new_ids = insert_deliveries(conn, &fan, now).await?;
    let mut out = Vec::with_capacity(plan.len());
    for ((_, event_id, subscription_id, previous, status, leased), new_id) in
        plan.into_iter().zip(new_ids)
    {
        if let Some(prev) = previous {
            // An unfinished delivery that is not in flight is cancelled, so the event is not
            // sent twice; one in flight finishes and keeps its own outcome.
            let unfinished = matches!(status.as_deref(), Some("pending" | "retrying"));
            let cancel = unfinished && !leased;
            sqlx::query(
                "UPDATE deliveries SET superseded_by = ?, updated_at = ?, \
                   status = CASE WHEN ? THEN 'cancelled' ELSE status END, \
                   next_at = CASE WHEN ? THEN NULL ELSE next_at END \
                 WHERE id = ?",
            )
            .bind(new_id)
            .bind(now)
            .bind(cancel)
            .bind(cancel)
            .bind(prev)
            .execute(&mut *conn)
            .await?;
        }
        out.push(Redelivered {
            event_id,
            subscription_id,
            previous,
            delivery_id: Some(new_id),
        });
    }
    Ok(out)
}
