//! The audit trail: an action's entry goes in with the action, in its savepoint, so the
//! trail never shows an action that was undone nor misses one that was kept.

use super::*;
use crate::audit::{AuditEntry, action};

pub(super) fn insert_audit(conn: &Connection, e: &AuditEntry) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit (at, actor_kind, actor, attached, action, subscription_id, \
         event_id, filter, count, ok, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        e.at,
        e.actor.kind.as_str(),
        e.actor.name,
        e.actor.attached,
        e.action,
        e.subscription_id,
        e.event_id,
        e.filter,
        e.count,
        e.ok,
        e.detail,
    ])?;
    Ok(())
}

/// Entries older than `before`, up to `limit` of them: retention's share of the trail.
pub(super) fn prune_audit(conn: &Connection, before: Millis, limit: u32) -> Result<u64> {
    let n = conn
        .prepare_cached(
            "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ? ORDER BY at LIMIT ?)",
        )?
        .execute(params![before, limit])?;
    Ok(n as u64)
}

/// Runs an operation with its audit entry: the entry records how the operation ended, in
/// the same savepoint, and is undone with it.
pub(super) fn apply_audited(conn: &Connection, op: Op, entry: AuditEntry) -> (Finish, bool) {
    fn audited<T: Send + 'static>(
        conn: &Connection,
        reply: Reply<T>,
        r: Result<T>,
        entry: AuditEntry,
        judge: impl FnOnce(&T, AuditEntry) -> AuditEntry,
    ) -> (Finish, bool) {
        let r = r.and_then(|v| {
            insert_audit(conn, &judge(&v, entry))?;
            Ok(v)
        });
        let ok = r.is_ok();
        (finisher(reply, r), ok)
    }
    let kept = |_: &_, e: AuditEntry| e;
    match op {
        Op::SetState { id, state, reply } => {
            let r = set_state(conn, &id, state);
            audited(conn, reply, r, entry, |found: &bool, e| {
                if *found {
                    e
                } else {
                    e.failed("no such subscription")
                }
            })
        }
        Op::AddSubscription { sub, reply } => {
            let r = add_subscription(conn, &sub);
            audited(conn, reply, r, entry, kept)
        }
        Op::UpdateSubscription { sub, reply } => {
            let r = update_subscription(conn, &sub);
            audited(conn, reply, r, entry, kept)
        }
        Op::DeleteSubscription {
            id,
            force,
            cancelled,
            reply,
        } => {
            let r = delete_subscription(conn, &id, force, cancelled);
            audited(conn, reply, r, entry, |out: &DeleteOutcome, e| {
                if out.deleted {
                    e.count(out.unfinished)
                } else {
                    let n = out.unfinished;
                    e.failed(format!("{n} unfinished deliveries (--force cancels them)"))
                }
            })
        }
        Op::RotateSecret {
            id,
            secret,
            grace_until,
            reply,
        } => {
            let r = rotate_secret(conn, &id, &secret, grace_until);
            audited(conn, reply, r, entry, kept)
        }
        Op::AddToken { token, hash, reply } => {
            let r = add_token(conn, &token, &hash);
            audited(conn, reply, r, entry, kept)
        }
        Op::RevokeToken { id, reply } => {
            let r = revoke_token(conn, &id);
            audited(conn, reply, r, entry, |found: &bool, e| {
                if *found {
                    e
                } else {
                    e.failed("no such live token")
                }
            })
        }
        Op::Redeliver {
            target,
            now,
            page,
            reply,
        } => {
            let r = redeliver(conn, &target, false, now, page);
            audited(conn, reply, r, entry, |done: &Vec<Redelivered>, e| {
                let e = e.count(done.len() as i64);
                if done.is_empty() && e.action == action::REDELIVER {
                    e.failed("nothing to redeliver")
                } else {
                    e
                }
            })
        }
        other => {
            // Not an operator action: its entry has nothing to describe.
            tracing::error!(
                action = entry.action,
                "an audit entry came with an unaudited operation"
            );
            apply(conn, other)
        }
    }
}
