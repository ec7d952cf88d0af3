//! The only writer: a task that owns the write connection and commits whatever operations
//! have queued up in one `BEGIN IMMEDIATE` transaction (group commit), then answers each
//! sender. Each operation runs inside its own savepoint, so one that fails is undone alone
//! and stores nothing partial.

use super::rows;
use super::sql::{MultiRowInsert, Sql, insert_in_chunks, multi_row_insert};
use crate::model::*;
use crate::store::*;
use anyhow::{Result, anyhow};
use rusqlite::{Connection, OptionalExtension, Statement, params};
use std::collections::{HashMap, HashSet};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, LazyLock};
use tokio::sync::{mpsc, oneshot};

type Reply<T> = oneshot::Sender<Result<T>>;

pub enum Op {
    Publish {
        events: Vec<NewEvent>,
        /// The API token the events are published with, checked in the transaction.
        token: Option<String>,
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
        outcomes: Arc<[Outcome]>,
        circuit_threshold: u32,
        reply: Reply<()>,
    },
    /// Removes a subscription; `cancelled` deliveries were cancelled by the steps before.
    DeleteSubscription {
        id: String,
        force: bool,
        cancelled: i64,
        reply: Reply<DeleteOutcome>,
    },
    /// Cancels up to `limit` unfinished deliveries of a subscription: one step of a forced
    /// removal.
    CancelUnfinished {
        id: String,
        limit: u32,
        reply: Reply<u64>,
    },
    RotateSecret {
        id: String,
        secret: String,
        grace_until: Millis,
        reply: Reply<()>,
    },
    /// Deletes the final deliveries the filter names whose ids are in `(ids.0, ids.1]`.
    Purge {
        filter: PurgeFilter,
        ids: (i64, i64),
        reply: Reply<PurgeCount>,
    },
    /// Deletes the events in `(seqs.0, seqs.1]` that have no delivery left.
    DeleteOrphans {
        seqs: (i64, i64),
        reply: Reply<u64>,
    },
    Prune {
        before: Millis,
        from: Millis,
        limit: u32,
        reply: Reply<Pruned>,
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
    /// A bulk target with `page` (after this id, up to that one, at most so many) takes
    /// one page of its deliveries, in id order.
    Redeliver {
        target: RedeliverTarget,
        now: Millis,
        page: Option<(i64, i64, u32)>,
        reply: Reply<Vec<Redelivered>>,
    },
}

/// How long the writer waits for more publishes when several arrived at once, and how many
/// operations make that wait unnecessary.
const LINGER: std::time::Duration = std::time::Duration::from_micros(300);
const LINGER_UNTIL: usize = 48;

/// Most operations taken into one transaction.
const MAX_BATCH: usize = 256;
/// Rows (events published, outcomes recorded) taken into one transaction: a claim that
/// arrives meanwhile waits for all of them.
const MAX_BATCH_ROWS: usize = 2000;

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

pub fn run(
    conn: Connection,
    mut rx: mpsc::Receiver<Op>,
    committed: Arc<LocalCommits>,
    checkpoints: Option<SyncSender<()>>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        let mut rows = first.rows();
        batch.push(first);
        let mut lingered = false;
        loop {
            while batch.len() < MAX_BATCH && rows < MAX_BATCH_ROWS {
                match rx.try_recv() {
                    Ok(op) => {
                        rows += op.rows();
                        batch.push(op);
                    }
                    Err(_) => break,
                }
            }
            // Several producers publishing one event each (the API under load): wait a
            // moment for more of them, so that one commit carries more. Every commit writes
            // each page it changed to the WAL, and a commit of seven events wrote nearly as
            // many pages as one of seventy; meanwhile their sends need not wake this thread.
            let publishes = batch
                .iter()
                .filter(|op| matches!(op, Op::Publish { .. }))
                .count();
            if lingered || publishes < 2 || batch.len() >= LINGER_UNTIL {
                break;
            }
            lingered = true;
            std::thread::sleep(LINGER);
        }
        // Claims go first, in a short transaction of their own: the engine's lanes are
        // waiting on them, and behind a batch of records and publishes they would wait
        // for all of it. Then everything else in one transaction, publishes first (see
        // `commit_batch`): a commit writes every page it changed, and publishes and
        // outcomes change many of the same ones (the newest deliveries, their indexes,
        // the counters).
        let (claims, mut rest): (Vec<Op>, Vec<Op>) = batch
            .drain(..)
            .partition(|op| matches!(op, Op::Claim { .. }));
        // Stable: publishes keep their order among themselves, and so does the rest.
        rest.sort_by_key(|op| !matches!(op, Op::Publish { .. }));
        for part in [claims, rest] {
            if part.is_empty() {
                continue;
            }
            commit_part(&conn, part, &committed, checkpoints.as_ref());
        }
    }
}

fn commit_part(
    conn: &Connection,
    batch: Vec<Op>,
    committed: &LocalCommits,
    checkpoints: Option<&SyncSender<()>>,
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
    commit_batch(conn, batch.into_iter());
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

fn exec(conn: &Connection, sql: &'static str) -> Result<()> {
    conn.prepare_cached(sql)?.execute(params![])?;
    Ok(())
}

/// Starts the write transaction, or fails every operation with the reason.
fn begin(conn: &Connection, ops: Vec<Op>) -> Option<Vec<Op>> {
    match exec(conn, "BEGIN IMMEDIATE") {
        Ok(()) => Some(ops),
        Err(e) => {
            let msg = describe_begin_error(&e);
            for op in ops {
                finisher_for_failed(op, &msg)(None);
            }
            None
        }
    }
}

/// Answers, storing nothing, the publishes whose API token has been revoked; the rest go
/// on. Checked here, inside the write transaction, so that the API may keep the tokens it
/// has seen instead of reading each again per request (5 % of the engine's time when
/// producers publish one event per request), and a revocation made by any process still
/// counts from the very next publish.
fn refuse_revoked(conn: &Connection, ops: Vec<Op>) -> Vec<Op> {
    if !ops
        .iter()
        .any(|op| matches!(op, Op::Publish { token: Some(_), .. }))
    {
        return ops;
    }
    let mut live: HashMap<String, bool> = HashMap::new();
    let mut kept = Vec::with_capacity(ops.len());
    for op in ops {
        let Op::Publish {
            token: Some(id),
            events,
            reply,
        } = op
        else {
            kept.push(op);
            continue;
        };
        let ok = match live.get(&id) {
            Some(ok) => Ok(*ok),
            None => token_live(conn, &id).inspect(|ok| {
                live.insert(id.clone(), *ok);
            }),
        };
        match ok {
            // The token stays with the operation: should the publishes have to be stored
            // again one by one, in a new transaction, it is checked again there.
            Ok(true) => kept.push(Op::Publish {
                events,
                token: Some(id),
                reply,
            }),
            Ok(false) => finisher(reply, Err(anyhow::Error::new(TokenRevoked)))(None),
            Err(e) => finisher(reply, Err(e))(None),
        }
    }
    kept
}

fn token_live(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM tokens WHERE id = ? AND revoked_at IS NULL")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The publishes the operations start with, and what follows them.
fn leading_publishes(ops: Vec<Op>) -> (PublishRun, Vec<Op>) {
    let mut ops = ops.into_iter().peekable();
    let mut run = Vec::new();
    while let Some(Op::Publish {
        events,
        token,
        reply,
    }) = ops.next_if(|o| matches!(o, Op::Publish { .. }))
    {
        run.push((events, token, reply));
    }
    (run, ops.collect())
}

fn into_ops(run: PublishRun) -> Vec<Op> {
    run.into_iter()
        .map(|(events, token, reply)| Op::Publish {
            events,
            token,
            reply,
        })
        .collect()
}

fn commit_batch(conn: &Connection, ops: impl Iterator<Item = Op>) {
    let Some(ops) = begin(conn, ops.collect()) else {
        return;
    };
    let ops = refuse_revoked(conn, ops);
    if ops.len() == 1 {
        // Alone in its transaction, an operation needs no savepoint: if it fails, the
        // whole transaction is rolled back.
        for op in ops {
            let (finish, ok) = apply(conn, op);
            let end = if ok {
                exec(conn, "COMMIT").err().map(|e| {
                    tracing::debug!("commit failed: {e:#}");
                    e.to_string()
                })
            } else {
                if let Err(e) = exec(conn, "ROLLBACK") {
                    tracing::error!("rollback failed: {e:#}");
                }
                None
            };
            if end.is_some() {
                let _ = exec(conn, "ROLLBACK");
            }
            finish(end.as_deref());
        }
        return;
    }
    // Publishes first in the transaction (`run` puts them there: producers one event per
    // request, with the outcomes recorded meanwhile behind them), stored together without
    // a savepoint. A savepoint copies every page it changes to its journal first, in
    // 1 KiB chunks, each a malloc: a fifth of the writer's time when the API fed it.
    // Being first, should they fail, undoing the whole transaction undoes only them: they
    // are then stored again one by one, and what followed them after them. Every other
    // operation has a savepoint of its own, so a failure undoes it alone.
    let (run, rest) = leading_publishes(ops);
    let (mut finishes, rest) = if run.is_empty() {
        (Vec::with_capacity(rest.len()), rest)
    } else {
        match publish_together(conn, run) {
            Ok(finishes) => (finishes, rest),
            Err(run) => {
                let _ = exec(conn, "ROLLBACK");
                let mut ops = into_ops(run);
                ops.extend(rest);
                let Some(ops) = begin(conn, ops) else {
                    return;
                };
                // A token revoked by another process since the first check counts here.
                let ops = refuse_revoked(conn, ops);
                (Vec::with_capacity(ops.len()), ops)
            }
        }
    };
    finishes.extend(rest.into_iter().map(|op| in_savepoint(conn, op)));
    commit_and_finish(conn, finishes);
}

/// Commits and then answers each operation: with its result, or the commit's error.
fn commit_and_finish(conn: &Connection, finishes: Vec<Finish>) {
    let commit_error = match exec(conn, "COMMIT") {
        Ok(()) => None,
        Err(e) => {
            // Every sender gets this error; the caller decides how to report it.
            tracing::debug!("commit failed: {e:#}");
            let _ = exec(conn, "ROLLBACK");
            Some(e.to_string())
        }
    };
    for f in finishes {
        f(commit_error.as_deref());
    }
}

/// One operation inside its own savepoint, so a failure undoes it alone.
fn in_savepoint(conn: &Connection, op: Op) -> Finish {
    if let Err(e) = exec(conn, "SAVEPOINT op") {
        return finisher_for_failed(op, &e.to_string());
    }
    let (finish, ok) = apply(conn, op);
    let end = if ok {
        exec(conn, "RELEASE op")
    } else {
        match exec(conn, "ROLLBACK TO op") {
            Ok(()) => exec(conn, "RELEASE op"),
            Err(e) => Err(e),
        }
    };
    if let Err(e) = end {
        tracing::error!("savepoint handling failed: {e:#}");
    }
    finish
}

type PublishRun = Vec<(Vec<NewEvent>, Option<String>, Reply<Vec<Published>>)>;

/// Several publish operations as one, without a savepoint. An id sent twice across them
/// is stored once, by the first, exactly as within one batch. On failure the operations
/// come back to be retried one by one, and the caller must roll the transaction back.
fn publish_together(
    conn: &Connection,
    mut run: PublishRun,
) -> std::result::Result<Vec<Finish>, PublishRun> {
    let lens: Vec<usize> = run.iter().map(|(events, _, _)| events.len()).collect();
    // The events are taken out of their operations, which keep their tokens and replies,
    // and are given back should the operations have to be stored one by one.
    let all: Vec<NewEvent> = run
        .iter_mut()
        .flat_map(|(events, _, _)| std::mem::take(events))
        .collect();
    match publish(conn, &all) {
        Ok(mut published) => {
            let mut finishes = Vec::with_capacity(run.len());
            for ((_, _, reply), n) in run.into_iter().zip(&lens).rev() {
                let mine = published.split_off(published.len() - n);
                finishes.push(finisher(reply, Ok(mine)));
            }
            finishes.reverse();
            Ok(finishes)
        }
        Err(e) => {
            tracing::debug!("publishing together failed, one by one now: {e:#}");
            let mut all = all.into_iter();
            for ((events, _, _), n) in run.iter_mut().zip(&lens) {
                *events = all.by_ref().take(*n).collect();
            }
            Err(run)
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
        Op::CancelUnfinished { reply, .. } => finisher(reply, Err(e())),
        Op::RotateSecret { reply, .. } => finisher(reply, Err(e())),
        Op::Purge { reply, .. } => finisher(reply, Err(e())),
        Op::DeleteOrphans { reply, .. } => finisher(reply, Err(e())),
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
fn apply(conn: &Connection, op: Op) -> (Finish, bool) {
    fn done<T: Send + 'static>(reply: Reply<T>, r: Result<T>) -> (Finish, bool) {
        let ok = r.is_ok();
        (finisher(reply, r), ok)
    }
    match op {
        Op::Publish { events, reply, .. } => done(reply, publish(conn, &events)),
        Op::AddSubscription { sub, reply } => done(reply, add_subscription(conn, &sub)),
        Op::SetState { id, state, reply } => done(reply, set_state(conn, &id, state)),
        Op::UpdateSubscription { sub, reply } => done(reply, update_subscription(conn, &sub)),
        Op::Claim {
            wants,
            now,
            lease_until,
            reply,
        } => done(reply, claim(conn, &wants, now, lease_until)),
        Op::Record {
            outcomes,
            circuit_threshold,
            reply,
        } => done(reply, record(conn, &outcomes, circuit_threshold)),
        Op::DeleteSubscription {
            id,
            force,
            cancelled,
            reply,
        } => done(reply, delete_subscription(conn, &id, force, cancelled)),
        Op::CancelUnfinished { id, limit, reply } => {
            done(reply, cancel_unfinished(conn, &id, Some(limit)))
        }
        Op::RotateSecret {
            id,
            secret,
            grace_until,
            reply,
        } => done(reply, rotate_secret(conn, &id, &secret, grace_until)),
        Op::Purge { filter, ids, reply } => done(reply, purge(conn, &filter, false, Some(ids))),
        Op::DeleteOrphans { seqs, reply } => done(reply, delete_orphan_events(conn, seqs)),
        Op::Prune {
            before,
            from,
            limit,
            reply,
        } => done(reply, prune(conn, before, from, limit)),
        Op::ExpireHeld {
            sub,
            before,
            reason,
            reply,
        } => done(reply, expire_held(conn, &sub, before, &reason)),
        Op::SetValue {
            name,
            location,
            value,
            reply,
        } => done(reply, set_value(conn, &name, &location, value.as_deref())),
        Op::AddToken { token, hash, reply } => done(reply, add_token(conn, &token, &hash)),
        Op::RevokeToken { id, reply } => done(reply, revoke_token(conn, &id)),
        Op::AddInbound {
            inbound,
            hash,
            reply,
        } => done(reply, add_inbound(conn, &inbound, &hash)),
        Op::RemoveInbound { id, reply } => done(reply, remove_inbound(conn, &id)),
        Op::SetVerifyToken { id, token, reply } => {
            done(reply, set_verify_token(conn, &id, token.as_deref()))
        }
        Op::Release { which, reply } => done(reply, release(conn, &which)),
        Op::Redeliver {
            target,
            now,
            page,
            reply,
        } => done(reply, redeliver(conn, &target, false, now, page)),
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

fn routes(conn: &Connection) -> Result<Vec<Route>> {
    let mut q = conn.prepare_cached("SELECT id, events, location_id FROM subscriptions")?;
    let rows = q.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Option<String>>(2)?,
        ))
    })?;
    rows.map(|r| {
        let (id, events, location_id) = r?;
        Ok(Route {
            id,
            events: events.map(|e| serde_json::from_str(&e)).transpose()?,
            location_id,
        })
    })
    .collect()
}

fn publish(conn: &Connection, events: &[NewEvent]) -> Result<Vec<Published>> {
    let now = now_ms();
    let routes = routes(conn)?;
    let stored = insert_events(conn, events, now)?;
    // (event_seq, subscription_id) for every new event × matching subscription, one
    // subscription after another (each in event order): the deliveries' indexes begin with
    // the subscription, so rows in this order go in next to one another, where event by
    // event each row landed in another subscription's part of them. A scratch program on
    // this schema, 500 events × 10 subscriptions a transaction: 6.0 → 3.4 µs a row.
    let mut fan: Vec<(i64, &str)> = Vec::new();
    let mut per_event = vec![0; events.len()];
    for r in &routes {
        for ((e, seq), n) in events.iter().zip(&stored).zip(&mut per_event) {
            if let Some(seq) = seq
                && r.matches(&e.event_type, e.location_id.as_deref())
            {
                fan.push((*seq, r.id.as_str()));
                *n += 1;
            }
        }
    }
    let out: Vec<Published> = events
        .iter()
        .zip(&stored)
        .zip(per_event)
        .map(|((e, seq), deliveries)| Published {
            id: e.id.clone(),
            duplicate: seq.is_none(),
            deliveries,
        })
        .collect();
    insert_deliveries(conn, &fan, now)?;
    let fresh = out.iter().filter(|p| !p.duplicate).count() as i64;
    bump(conn, &[("events_published".into(), fresh)])?;
    Ok(out)
}

// No RETURNING: with it SQLite kept a statement journal (a copy of each page the statement
// touches) inside the transaction; without it, and without OR REPLACE in `record`, the
// writer spent 17 % less CPU on workload 1.
static EVENTS: LazyLock<MultiRowInsert> = LazyLock::new(|| {
    multi_row_insert(
        "INSERT INTO events (seq, id, type, location_id, timestamp, data, received_at)",
        "(?, ?, ?, ?, ?, ?, ?)",
        "ON CONFLICT(id) DO NOTHING",
    )
});

/// Stores each event whose id is not stored yet (nor earlier in `events`); gives each its
/// sequence number, `None` for a duplicate. The numbers are given, not left to SQLite, for
/// the reason `insert_deliveries` says.
fn insert_events(conn: &Connection, events: &[NewEvent], now: Millis) -> Result<Vec<Option<i64>>> {
    let last: i64 = conn
        .prepare_cached("SELECT coalesce(max(seq), 0) FROM events")?
        .query_row([], |r| r.get(0))?;
    let seq = std::cell::Cell::new(last);
    let mut stored = Vec::with_capacity(events.len());
    let bind = |q: &mut Statement<'_>, at: usize, e: &NewEvent| {
        seq.set(seq.get() + 1);
        q.raw_bind_parameter(at, seq.get())?;
        q.raw_bind_parameter(at + 1, &e.id)?;
        q.raw_bind_parameter(at + 2, &e.event_type)?;
        q.raw_bind_parameter(at + 3, &e.location_id)?;
        q.raw_bind_parameter(at + 4, e.timestamp)?;
        q.raw_bind_parameter(at + 5, e.data.to_string())?;
        q.raw_bind_parameter(at + 6, e.received_at.unwrap_or(now))
    };
    let note = |chunk: &[NewEvent], changes: usize| -> Result<()> {
        let (first, last) = (seq.get() - chunk.len() as i64 + 1, seq.get());
        if changes == chunk.len() {
            stored.extend((first..=last).map(Some));
            return Ok(());
        }
        // Some ids were stored already: the numbers they were offered stay unused.
        let taken: HashSet<i64> = conn
            .prepare_cached("SELECT seq FROM events WHERE seq BETWEEN ?1 AND ?2")?
            .query_map(params![first, last], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        stored.extend((first..=last).map(|s| taken.contains(&s).then_some(s)));
        Ok(())
    };
    insert_in_chunks(conn, events, &EVENTS, bind, note)?;
    Ok(stored)
}

static DELIVERIES: LazyLock<MultiRowInsert> = LazyLock::new(|| {
    multi_row_insert(
        "INSERT INTO deliveries (id, event_seq, subscription_id, status, attempts, next_at, \
           created_at, updated_at)",
        "(?, ?, ?, 'pending', 0, ?, ?, ?)",
        "",
    )
});

/// Inserts `(event_seq, subscription_id)` rows as pending deliveries; returns their ids.
/// The ids are given, not left to SQLite, so that a multi-row statement can tell them
/// (it has no `last_insert_rowid` per row, and RETURNING costs a statement journal): the
/// writer holds the write lock, so nothing else takes them meanwhile.
fn insert_deliveries(conn: &Connection, rows: &[(i64, &str)], now: Millis) -> Result<Vec<i64>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let last: i64 = conn
        .prepare_cached("SELECT coalesce(max(id), 0) FROM deliveries")?
        .query_row([], |r| r.get(0))?;
    let mut id = last;
    let bind = |q: &mut Statement<'_>, at: usize, (seq, sub): &(i64, &str)| {
        id += 1;
        q.raw_bind_parameter(at, id)?;
        q.raw_bind_parameter(at + 1, seq)?;
        q.raw_bind_parameter(at + 2, sub)?;
        for t in at + 3..=at + 5 {
            q.raw_bind_parameter(t, now)?;
        }
        Ok(())
    };
    insert_in_chunks(conn, rows, &DELIVERIES, bind, |_, _| Ok(()))?;
    Ok((last + 1..=last + rows.len() as i64).collect())
}

fn add_subscription(conn: &Connection, s: &Subscription) -> Result<()> {
    let events = s.events.as_ref().map(serde_json::to_string).transpose()?;
    conn.prepare_cached(
        "INSERT INTO subscriptions (id, name, url, events, location_id, secret, method, \
         headers, format, payload, template, retry_schedule, timeout_ms, rate_per_sec, \
         signature_scheme, signature_header, state, created_at, updated_at) \
         VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    )?
    .execute(params![
        &s.id,
        &s.name,
        &s.url,
        events,
        &s.location_id,
        &s.secret,
        s.method.as_str(),
        rows::headers_to_json(&s.headers),
        s.format.as_str(),
        s.payload.as_str(),
        &s.template,
        serde_json::to_string(&s.retry_schedule_ms)?,
        s.timeout_ms as i64,
        s.rate_per_sec,
        s.signature_scheme.as_str(),
        &s.signature_header,
        s.state.as_str(),
        s.created_at,
        s.updated_at
    ])?;
    Ok(())
}

fn log(conn: &Connection, id: &str, change: &str, reason: Option<&str>) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO subscription_log (subscription_id, at, change, reason) VALUES (?, ?, ?, ?)",
    )?
    .execute(params![id, now_ms(), change, reason])?;
    Ok(())
}

fn update_subscription(conn: &Connection, s: &Subscription) -> Result<()> {
    let events = s.events.as_ref().map(serde_json::to_string).transpose()?;
    let r = conn
        .prepare_cached(
            "UPDATE subscriptions SET name = ?, url = ?, events = ?, location_id = ?, method = ?, \
             headers = ?, format = ?, payload = ?, template = ?, retry_schedule = ?, timeout_ms = ?, \
             rate_per_sec = ?, signature_scheme = ?, signature_header = ?, updated_at = ? \
             WHERE id = ?",
        )?
        .execute(params![
            &s.name,
            &s.url,
            events,
            &s.location_id,
            s.method.as_str(),
            rows::headers_to_json(&s.headers),
            s.format.as_str(),
            s.payload.as_str(),
            &s.template,
            serde_json::to_string(&s.retry_schedule_ms)?,
            s.timeout_ms as i64,
            s.rate_per_sec,
            s.signature_scheme.as_str(),
            &s.signature_header,
            now_ms(),
            &s.id
        ])?;
    if r == 0 {
        return Err(anyhow!("no subscription with id '{}'", s.id));
    }
    log(conn, &s.id, "edited", Some("operator"))
}

fn set_state(conn: &Connection, id: &str, state: SubState) -> Result<bool> {
    // Resuming also closes the circuit: the operator says the endpoint is back.
    let r = conn
        .prepare_cached(
            "UPDATE subscriptions SET state = ?1, state_reason = NULL, updated_at = ?2, \
           consecutive_failures = CASE WHEN ?1 = 'active' THEN 0 ELSE consecutive_failures END, \
           circuit = CASE WHEN ?1 = 'active' THEN 'closed' ELSE circuit END \
         WHERE id = ?3",
        )?
        .execute(params![state.as_str(), now_ms(), id])?;
    if r > 0 {
        log(conn, id, state.as_str(), Some("operator"))?;
    }
    Ok(r > 0)
}

fn delete_subscription(
    conn: &Connection,
    id: &str,
    force: bool,
    cancelled: i64,
) -> Result<DeleteOutcome> {
    // By force, what the steps before left (work published meanwhile) is cancelled here;
    // otherwise any unfinished work refuses the removal.
    let left = if force {
        cancel_unfinished(conn, id, None)? as i64
    } else {
        let left: i64 = conn.query_row(
            "SELECT COUNT(*) FROM deliveries WHERE subscription_id = ? AND status IN ('pending', 'retrying')",
            [id],
            |r| r.get(0),
        )?;
        if left > 0 {
            return Ok(DeleteOutcome {
                deleted: false,
                unfinished: left,
            });
        }
        0
    };
    let unfinished = cancelled + left;
    let r = conn
        .prepare_cached("DELETE FROM subscriptions WHERE id = ?")?
        .execute(params![id])?;
    if r > 0 {
        let reason = format!("{unfinished} unfinished deliveries cancelled");
        log(conn, id, "deleted", Some(&reason))?;
    }
    Ok(DeleteOutcome {
        deleted: r > 0,
        unfinished,
    })
}

/// Cancels a subscription's unfinished deliveries, at most `limit` of them (all without).
fn cancel_unfinished(conn: &Connection, id: &str, limit: Option<u32>) -> Result<u64> {
    let r = conn
        .prepare_cached(
            "UPDATE deliveries SET status = 'cancelled', next_at = NULL, updated_at = ?1 \
             WHERE id IN (SELECT id FROM deliveries WHERE subscription_id = ?2 \
                 AND status IN ('pending', 'retrying') LIMIT ?3)",
        )?
        // A negative LIMIT is no limit in SQLite.
        .execute(params![now_ms(), id, limit.map_or(-1, i64::from)])?;
    Ok(r as u64)
}

fn rotate_secret(conn: &Connection, id: &str, secret: &str, grace_until: Millis) -> Result<()> {
    let r = conn
        .prepare_cached(
            "UPDATE subscriptions SET previous_secret = secret, previous_secret_until = ?, \
             secret = ?, updated_at = ? WHERE id = ?",
        )?
        .execute(params![grace_until, secret, now_ms(), id])?;
    if r == 0 {
        return Err(anyhow!("no subscription with id '{id}'"));
    }
    log(
        conn,
        id,
        "secret rotated",
        Some(&format!("old secret valid until {}", rfc3339(grace_until))),
    )
}

/// Deletes the events of a range of sequence numbers that have no delivery left (after
/// deliveries were purged, and those no subscription wanted).
fn delete_orphan_events(conn: &Connection, (after, upto): (i64, i64)) -> Result<u64> {
    let r = conn
        .prepare_cached(
            "DELETE FROM events WHERE seq > ?1 AND seq <= ?2 AND NOT EXISTS \
             (SELECT 1 FROM deliveries d WHERE d.event_seq = events.seq)",
        )?
        .execute(params![after, upto])?;
    Ok(r as u64)
}

/// Also counts, with `dry_run`, on a read connection.
pub(super) fn purge(
    conn: &Connection,
    f: &PurgeFilter,
    dry_run: bool,
    ids: Option<(i64, i64)>,
) -> Result<PurgeCount> {
    let mut q = Sql::new(if dry_run {
        "SELECT COUNT(*) FROM deliveries WHERE status IN ("
    } else {
        "DELETE FROM deliveries WHERE status IN ("
    });
    let statuses = f.status.iter().filter(|s| s.is_final());
    q.list(
        statuses
            .map(|s| s.as_str().to_string())
            .chain(["-".to_string()]),
    );
    q.push(")");
    if let Some(sub) = &f.subscription_id {
        q.push(" AND subscription_id = ").bind(sub.clone());
    }
    if let Some(before) = f.before {
        q.push(" AND updated_at < ").bind(before);
    }
    if let Some((after, upto)) = ids {
        q.push(" AND id > ").bind(after);
        q.push(" AND id <= ").bind(upto);
    }
    let deliveries = if dry_run {
        let n = q.rows(conn, |r| Ok(r.get::<_, i64>(0)?))?;
        n.first().copied().unwrap_or(0) as u64
    } else {
        q.execute(conn)? as u64
    };
    // Events left without deliveries are the caller's next step (`DeleteOrphans`): a dry
    // run cannot know which events a real purge would orphan without doing it.
    Ok(PurgeCount {
        deliveries,
        events: 0,
    })
}

fn set_value(conn: &Connection, name: &str, location: &str, value: Option<&str>) -> Result<bool> {
    let r = match value {
        Some(v) => conn
            .prepare_cached(
                "INSERT INTO custom_values (name, location_id, value, updated_at) \
                 VALUES (?, ?, ?, ?) ON CONFLICT(name, location_id) \
                 DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )?
            .execute(params![name, location, v, now_ms()])?,
        None => conn
            .prepare_cached("DELETE FROM custom_values WHERE name = ? AND location_id = ?")?
            .execute(params![name, location])?,
    };
    Ok(r > 0)
}

fn add_token(conn: &Connection, t: &ApiToken, hash: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO tokens (id, hash, scopes, location_id, created_at) VALUES (?, ?, ?, ?, ?)",
    )?
    .execute(params![
        &t.id,
        hash,
        serde_json::to_string(&t.scopes)?,
        &t.location_id,
        t.created_at
    ])?;
    Ok(())
}

fn revoke_token(conn: &Connection, id: &str) -> Result<bool> {
    let r = conn
        .prepare_cached("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")?
        .execute(params![now_ms(), id])?;
    Ok(r > 0)
}

fn add_inbound(conn: &Connection, i: &Inbound, hash: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO inbound (id, hash, type, location_id, map, secret, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        &i.id,
        hash,
        &i.event_type,
        &i.location_id,
        serde_json::to_string(&i.map)?,
        &i.secret,
        i.created_at
    ])?;
    Ok(())
}

fn remove_inbound(conn: &Connection, id: &str) -> Result<bool> {
    let r = conn
        .prepare_cached("DELETE FROM inbound WHERE id = ?")?
        .execute(params![id])?;
    Ok(r > 0)
}

fn set_verify_token(conn: &Connection, id: &str, token: Option<&str>) -> Result<()> {
    conn.prepare_cached("UPDATE subscriptions SET verify_token = ? WHERE id = ?")?
        .execute(params![token, id])?;
    Ok(())
}

/// Adds to monotonic counters.
fn bump(conn: &Connection, deltas: &[(String, i64)]) -> Result<()> {
    let mut q = conn.prepare_cached(
        "INSERT INTO counters (name, value) VALUES (?1, ?2) \
         ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
    )?;
    for (name, d) in deltas.iter().filter(|(_, d)| *d != 0) {
        q.execute(params![name, d])?;
    }
    Ok(())
}

fn expire_held(conn: &Connection, sub: &str, before: Millis, reason: &str) -> Result<u64> {
    let now = now_ms();
    let held = "subscription_id = ?1 AND status IN ('pending', 'retrying') AND lease_until IS NULL AND created_at < ?2";
    let sql = format!(
        "INSERT OR REPLACE INTO attempts (delivery_id, n, at, error_class, error, latency_ms) \
         SELECT id, attempts + 1, ?3, 'circuit_open', ?4, 0 FROM deliveries WHERE {held}"
    );
    conn.prepare_cached(&sql)?
        .execute(params![sub, before, now, reason])?;
    let sql = format!(
        "UPDATE deliveries SET status = 'dead', attempts = attempts + 1, next_at = NULL, updated_at = ?3 WHERE {held}"
    );
    let n = conn
        .prepare_cached(&sql)?
        .execute(params![sub, before, now])? as u64;
    if n > 0 {
        bump(
            conn,
            &[
                ("deliveries_dead".into(), n as i64),
                ("attempts".into(), n as i64),
                ("attempts_failed_circuit_open".into(), n as i64),
            ],
        )?;
        log(
            conn,
            sub,
            "expired held deliveries",
            Some(&format!("{n}: {reason}")),
        )?;
    }
    Ok(n)
}

fn prune(conn: &Connection, before: Millis, from: Millis, limit: u32) -> Result<Pruned> {
    // Only events whose every delivery is final: retention never drops work still to do.
    // Oldest first, through the received_at index, from where the last step stopped.
    let doomed: Vec<(i64, Millis)> = conn
        .prepare_cached(
            "SELECT seq, received_at FROM events \
             WHERE received_at >= ?1 AND received_at < ?2 AND NOT EXISTS \
             (SELECT 1 FROM deliveries d \
             WHERE d.event_seq = events.seq AND d.status IN ('pending', 'retrying')) \
             ORDER BY received_at LIMIT ?3",
        )?
        .query_map(params![from, before, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    // Deliveries and attempts go with their events (ON DELETE CASCADE).
    let mut delete = conn.prepare_cached("DELETE FROM events WHERE seq = ?")?;
    for (seq, _) in &doomed {
        delete.execute([seq])?;
    }
    Ok(Pruned {
        events: doomed.len() as u64,
        // Events received in the same millisecond as the last one may remain: start there.
        next_from: match doomed.last() {
            Some((_, at)) if doomed.len() as u64 >= u64::from(limit) => Some(*at),
            _ => None,
        },
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

fn claim(
    conn: &Connection,
    wants: &[(String, usize)],
    now: Millis,
    lease_until: Millis,
) -> Result<Vec<Leased>> {
    let mut claimed: Vec<Leased> = Vec::new();
    for (sub, n) in wants.iter().filter(|(_, n)| *n > 0) {
        let mut q = conn.prepare_cached(
            "UPDATE deliveries SET lease_until = ?1 \
             WHERE id IN (SELECT id FROM deliveries \
                 WHERE subscription_id = ?2 AND status IN ('pending', 'retrying') \
                   AND lease_until IS NULL AND next_at <= ?3 \
                 ORDER BY next_at LIMIT ?4) \
               AND EXISTS (SELECT 1 FROM subscriptions WHERE id = ?2 AND state = 'active') \
             RETURNING id, event_seq, attempts, probes",
        )?;
        let rows = q.query_map(params![lease_until, sub, now, *n as i64], |r| {
            Ok(Leased {
                delivery_id: r.get(0)?,
                event_seq: r.get(1)?,
                subscription_id: sub.clone(),
                attempts: r.get::<_, i64>(2)? as u32,
                probes: r.get::<_, i64>(3)? as u32,
            })
        })?;
        for r in rows {
            claimed.push(r?);
        }
    }
    Ok(claimed)
}

// An upsert, not INSERT OR REPLACE: a replace that may delete index entries makes SQLite
// keep a statement journal (see `insert_events`). The same attempt recorded again replaces
// the first record either way.
static ATTEMPTS: LazyLock<MultiRowInsert> = LazyLock::new(|| {
    multi_row_insert(
        "INSERT INTO attempts (delivery_id, n, at, status_code, error_class, error, latency_ms, \
           request_headers, response_headers, response_body)",
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "ON CONFLICT(delivery_id, n) DO UPDATE SET at = excluded.at, \
           status_code = excluded.status_code, error_class = excluded.error_class, \
           error = excluded.error, latency_ms = excluded.latency_ms, \
           request_headers = excluded.request_headers, \
           response_headers = excluded.response_headers, response_body = excluded.response_body",
    )
});

/// Binds one attempt's values to parameters `at`, `at + 1`, ….
fn bind_attempt(q: &mut Statement<'_>, at: usize, o: &Outcome) -> rusqlite::Result<()> {
    let a = &o.attempt;
    let made;
    let (request_headers, response_headers) = match &o.kept_headers {
        Some(k) => (k.request.as_str(), k.response.as_deref()),
        None => {
            made = KeptHeaders {
                request: header_text::to_text(&a.request_headers),
                response: header_text::response_text(&a.response_headers),
            };
            (made.request.as_str(), made.response.as_deref())
        }
    };
    q.raw_bind_parameter(at, o.delivery_id)?;
    q.raw_bind_parameter(at + 1, a.n)?;
    q.raw_bind_parameter(at + 2, a.at)?;
    q.raw_bind_parameter(at + 3, a.status_code)?;
    q.raw_bind_parameter(at + 4, a.error_class.map(|c| c.as_str()))?;
    q.raw_bind_parameter(at + 5, &a.error)?;
    q.raw_bind_parameter(at + 6, a.latency_ms as i64)?;
    q.raw_bind_parameter(at + 7, request_headers)?;
    q.raw_bind_parameter(at + 8, response_headers)?;
    q.raw_bind_parameter(at + 9, &a.response_body)
}

fn record(conn: &Connection, outcomes: &[Outcome], circuit_threshold: u32) -> Result<()> {
    let now = now_ms();
    insert_in_chunks(conn, outcomes, &ATTEMPTS, bind_attempt, |_, _| Ok(()))?;
    // A delivery cancelled while in flight keeps its final state; the attempt is still on
    // record.
    const UPDATE: &str = "UPDATE deliveries SET \
           status = CASE WHEN status IN ('pending', 'retrying') THEN ?2 ELSE status END, \
           next_at = CASE WHEN status IN ('pending', 'retrying') THEN ?3 ELSE NULL END, \
           attempts = ?4, probes = ?5, lease_until = NULL, updated_at = ?6, \
           body_shape = coalesce(?7, body_shape) \
         WHERE id = ?1";
    let mut delivery = conn.prepare_cached(UPDATE)?;
    // The event is wanted only to keep a body's bytes under it (RETURNING is not free).
    let mut delivery_event = conn.prepare_cached(&format!("{UPDATE} RETURNING event_seq"))?;
    // A first body made from the event alone is kept as its shape (in the update above).
    // Bytes (a template's output) are kept once per event and distinct bytes: a fan-out's
    // deliveries mostly send the same. A later attempt (which reuses them) brings none.
    let mut same_body =
        conn.prepare_cached("SELECT id FROM bodies WHERE event_seq = ?1 AND body = ?2")?;
    let mut new_body =
        conn.prepare_cached("INSERT INTO bodies (event_seq, body) VALUES (?1, ?2)")?;
    let mut link = conn.prepare_cached(
        "INSERT OR IGNORE INTO delivery_bodies (delivery_id, body_id) VALUES (?1, ?2)",
    )?;
    for o in outcomes {
        let a = &o.attempt;
        let update = params![
            o.delivery_id,
            o.status.as_str(),
            o.next_at,
            a.n,
            o.probes,
            now,
            match &o.body {
                Some(SentBody::Made(shape)) => Some(shape.as_str()),
                _ => None,
            }
        ];
        let Some(SentBody::Bytes(b)) = &o.body else {
            delivery.execute(update)?;
            continue;
        };
        let seq: Option<i64> = delivery_event.query_row(update, |r| r.get(0)).optional()?;
        if let Some(seq) = seq {
            let found: Option<i64> = same_body
                .query_row(params![seq, b], |r| r.get(0))
                .optional()?;
            let id = match found {
                Some(id) => id,
                None => {
                    new_body.execute(params![seq, b])?;
                    conn.last_insert_rowid()
                }
            };
            link.execute(params![o.delivery_id, id])?;
        }
    }
    count_outcomes(conn, outcomes)?;
    update_health(conn, outcomes, circuit_threshold)
}

/// Attempts, their latency histogram and final outcomes, for /metrics.
fn count_outcomes(conn: &Connection, outcomes: &[Outcome]) -> Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    // Tallied first, so that each counter's name is made once per batch, not per outcome.
    let mut failed: HashMap<&'static str, i64> = HashMap::new();
    let mut buckets = [0i64; LATENCY_BUCKETS_MS.len() + 1];
    let (mut latency_sum, mut delivered, mut dead) = (0i64, 0i64, 0i64);
    for o in outcomes {
        let a = &o.attempt;
        if let Some(class) = a.error_class {
            *failed.entry(class.as_str()).or_default() += 1;
        }
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|b| a.latency_ms <= *b)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        buckets[bucket] += 1;
        latency_sum += a.latency_ms as i64;
        match o.status {
            DeliveryStatus::Delivered => delivered += 1,
            DeliveryStatus::Dead => dead += 1,
            _ => {}
        }
    }
    let mut deltas: Vec<(String, i64)> = vec![
        ("attempts".into(), outcomes.len() as i64),
        ("latency_sum_ms".into(), latency_sum),
    ];
    deltas.extend(
        failed
            .into_iter()
            .map(|(class, n)| (format!("attempts_failed_{class}"), n)),
    );
    for (i, n) in buckets.iter().enumerate().filter(|(_, n)| **n > 0) {
        let name = match LATENCY_BUCKETS_MS.get(i) {
            Some(b) => format!("latency_bucket_{b}"),
            None => "latency_bucket_inf".into(),
        };
        deltas.push((name, *n));
    }
    for (name, n) in [
        ("deliveries_delivered", delivered),
        ("deliveries_dead", dead),
    ] {
        if n > 0 {
            deltas.push((name.into(), n));
        }
    }
    bump(conn, &deltas)
}

/// Endpoint health from a batch of outcomes, in the order they finished.
fn update_health(conn: &Connection, outcomes: &[Outcome], threshold: u32) -> Result<()> {
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
            let row: Option<(i64, String)> = conn
                .prepare_cached(
                    "SELECT consecutive_failures, circuit FROM subscriptions WHERE id = ?",
                )?
                .query_row([sub], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if row.is_none_or(|(failures, circuit)| failures == 0 && circuit == "closed") {
                continue;
            }
        }
        conn.prepare_cached(
            "UPDATE subscriptions SET consecutive_failures = \
               CASE WHEN ?1 THEN ?2 ELSE consecutive_failures + ?2 END WHERE id = ?3",
        )?
        .execute(params![h.succeeded, h.failures_since, sub])?;
        if h.succeeded && h.failures_since == 0 {
            let r = conn
                .prepare_cached(
                    "UPDATE subscriptions SET circuit = 'closed', circuit_changed_at = ? \
                 WHERE id = ? AND circuit = 'open'",
                )?
                .execute(params![now, sub])?;
            if r > 0 {
                log(conn, sub, "circuit closed", Some("a delivery succeeded"))?;
            }
        }
        let r = conn
            .prepare_cached(
                "UPDATE subscriptions SET circuit = 'open', circuit_changed_at = ? \
                 WHERE id = ? AND circuit = 'closed' AND consecutive_failures >= ?",
            )?
            .execute(params![now, sub, i64::from(threshold.max(1))])?;
        if r > 0 {
            let reason = format!(
                "{threshold} consecutive failures; last: {}",
                h.last_error.as_deref().unwrap_or("?")
            );
            log(conn, sub, "circuit opened", Some(&reason))?;
        }
        if h.gone {
            let r = conn
                .prepare_cached(
                    "UPDATE subscriptions SET state = 'disabled', state_reason = ?, updated_at = ? \
                 WHERE id = ? AND state != 'disabled'",
                )?
                .execute(params!["the endpoint answered 410 Gone", now, sub])?;
            if r > 0 {
                log(
                    conn,
                    sub,
                    "disabled",
                    Some("the endpoint answered 410 Gone"),
                )?;
            }
        }
    }
    Ok(())
}

fn release(conn: &Connection, which: &Release) -> Result<u64> {
    match which {
        Release::All => {
            let r = conn
                .prepare_cached(
                    "UPDATE deliveries SET lease_until = NULL WHERE lease_until IS NOT NULL",
                )?
                .execute(params![])?;
            Ok(r as u64)
        }
        Release::ExpiredBefore(t) => {
            let r = conn
                .prepare_cached(
                    "UPDATE deliveries SET lease_until = NULL \
                     WHERE lease_until IS NOT NULL AND lease_until < ?",
                )?
                .execute(params![t])?;
            Ok(r as u64)
        }
        Release::Ids(ids) => {
            let mut q =
                conn.prepare_cached("UPDATE deliveries SET lease_until = NULL WHERE id = ?")?;
            let mut n = 0;
            for id in ids {
                n += q.execute([id])? as u64;
            }
            Ok(n)
        }
    }
}

/// The deliveries a redelivery replaces: (event seq, event id, subscription, delivery, status, leased).
type Replaced = (i64, String, String, Option<i64>, Option<String>, bool);

/// Also plans, with `dry_run`, on a read connection.
pub(super) fn redeliver(
    conn: &Connection,
    target: &RedeliverTarget,
    dry_run: bool,
    now: Millis,
    page: Option<(i64, i64, u32)>,
) -> Result<Vec<Redelivered>> {
    let mut plan: Vec<Replaced> = Vec::new();
    match target {
        RedeliverTarget::Event {
            event_id,
            subscription_id,
        } => {
            let seq: Option<i64> = conn
                .query_row("SELECT seq FROM events WHERE id = ?", [event_id], |r| {
                    r.get(0)
                })
                .optional()?;
            let Some(seq) = seq else {
                return Err(anyhow!("no event with id '{event_id}'"));
            };
            let mut q = conn.prepare(
                "SELECT id, subscription_id, status, lease_until IS NOT NULL AS leased FROM deliveries \
                 WHERE event_seq = ?1 AND superseded_by IS NULL AND (?2 IS NULL OR subscription_id = ?2) \
                 ORDER BY id",
            )?;
            let rows = q
                .query_map(params![seq, subscription_id], |r| {
                    Ok((
                        seq,
                        event_id.clone(),
                        r.get("subscription_id")?,
                        Some(r.get("id")?),
                        Some(r.get("status")?),
                        r.get("leased")?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<Replaced>>>()?;
            let none = rows.is_empty();
            plan.extend(rows);
            if let (Some(sub), true) = (subscription_id, none) {
                // Sending an event to a subscription that never had it (e.g. made later).
                let exists: Option<String> = conn
                    .query_row("SELECT id FROM subscriptions WHERE id = ?", [sub], |r| {
                        r.get(0)
                    })
                    .optional()?;
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
            let mut q = Sql::new(
                "SELECT d.id, d.event_seq, e.id AS event_id, d.status, d.lease_until IS NOT NULL AS leased \
                 FROM deliveries d JOIN events e ON e.seq = d.event_seq \
                 WHERE d.superseded_by IS NULL AND d.subscription_id = ",
            );
            q.bind(subscription_id.clone());
            q.push(" AND d.status IN (");
            q.list(statuses.iter().map(|s| s.as_str().to_string()));
            q.push(")");
            if let Some(since) = since {
                q.push(" AND d.updated_at >= ").bind(*since);
            }
            if let Some((after, upto, _)) = page {
                q.push(" AND d.id > ").bind(after);
                q.push(" AND d.id <= ").bind(upto);
            }
            q.push(" ORDER BY d.id");
            if let Some((_, _, limit)) = page {
                q.push(" LIMIT ").bind(i64::from(limit));
            }
            plan.extend(q.rows(conn, |r| {
                Ok((
                    r.get("event_seq")?,
                    r.get("event_id")?,
                    subscription_id.clone(),
                    Some(r.get("id")?),
                    Some(r.get("status")?),
                    r.get("leased")?,
                ))
            })?);
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
    let new_ids = insert_deliveries(conn, &fan, now)?;
    let mut out = Vec::with_capacity(plan.len());
    for ((_, event_id, subscription_id, previous, status, leased), new_id) in
        plan.into_iter().zip(new_ids)
    {
        if let Some(prev) = previous {
            // An unfinished delivery that is not in flight is cancelled, so the event is not
            // sent twice; one in flight finishes and keeps its own outcome.
            let unfinished = matches!(status.as_deref(), Some("pending" | "retrying"));
            let cancel = unfinished && !leased;
            conn.prepare_cached(
                "UPDATE deliveries SET superseded_by = ?, updated_at = ?, \
                   status = CASE WHEN ? THEN 'cancelled' ELSE status END, \
                   next_at = CASE WHEN ? THEN NULL ELSE next_at END \
                 WHERE id = ?",
            )?
            .execute(params![new_id, now, cancel, cancel, prev])?;
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
