//! The only writer: a task that owns the write connection and commits whatever operations
//! have queued up in one `BEGIN IMMEDIATE` transaction (group commit), then answers each
//! sender. Each operation runs inside its own savepoint, so one that fails is undone alone
//! and stores nothing partial.

use crate::model::*;
use crate::store::*;
use anyhow::{Result, anyhow};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;

mod audit;
mod deliveries;
mod maintenance;
mod operational;
mod publish;
mod subscriptions;

use audit::*;
pub use deliveries::Leased;
pub(crate) use deliveries::redeliver;
use deliveries::*;
pub(crate) use maintenance::purge;
use maintenance::*;
use publish::*;
use subscriptions::*;
use tokio::sync::{mpsc, oneshot};

type Reply<T> = oneshot::Sender<Result<T>>;

pub enum Op {
    /// An operator's action and its audit entry, recorded together.
    Audited {
        op: Box<Op>,
        entry: Box<crate::audit::AuditEntry>,
    },
    /// An entry on its own: an action that failed (and stored nothing), or one of many
    /// steps that has finished.
    Audit {
        entry: Box<crate::audit::AuditEntry>,
        reply: Reply<()>,
    },
    /// Operational events due by time: dead-letter windows ended, backlog alerts.
    OpsTick {
        backlogs: Vec<crate::ops::Backlog>,
        limits: crate::ops::Limits,
        now: Millis,
        reply: Reply<usize>,
    },
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
        Op::Audited { op, .. } => finisher_for_failed(*op, msg),
        Op::Audit { reply, .. } => finisher(reply, Err(e())),
        Op::Publish { reply, .. } => finisher(reply, Err(e())),
        Op::OpsTick { reply, .. } => finisher(reply, Err(e())),
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
        Op::Audited { op, entry } => apply_audited(conn, *op, *entry),
        Op::Audit { entry, reply } => done(reply, insert_audit(conn, &entry)),
        Op::Publish { events, reply, .. } => done(reply, publish(conn, &events)),
        Op::OpsTick {
            backlogs,
            limits,
            now,
            reply,
        } => done(reply, operational::tick(conn, &backlogs, limits, now)),
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
