//! Work of many steps under a running engine: forced removals, purges and bulk
//! redeliveries, each step its own short transaction so that publishes and deliveries keep
//! flowing between them. Owned, so that it runs to its end when its caller stops waiting.

use super::writer::Op;
use super::{ReadPool, call};
use crate::store::*;
use anyhow::Result;
use rusqlite::Connection;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Deliveries (by id) or events (by sequence) looked at per step of a purge.
const PURGE_STEP: i64 = 5_000;
/// Deliveries replaced per transaction of a bulk redelivery.
const REDELIVER_PAGE: u32 = 2_000;
/// Unfinished deliveries cancelled per transaction when a subscription is removed by force.
const CANCEL_STEP: u32 = 5_000;

/// The first and last key a `SELECT MIN(k), MAX(k) FROM t` finds (0, 0 in an empty table).
fn key_span(c: &Connection, sql: &str) -> Result<(i64, i64)> {
    Ok(c.query_row(sql, [], |r| {
        Ok((
            r.get::<_, Option<i64>>(0)?.unwrap_or(0),
            r.get::<_, Option<i64>>(1)?.unwrap_or(0),
        ))
    })?)
}

/// The ranges `(after, upto]` of [`PURGE_STEP`] keys that cover `first..=last`.
fn steps((first, last): (i64, i64)) -> impl Iterator<Item = (i64, i64)> {
    (first - 1..last)
        .step_by(PURGE_STEP as usize)
        .map(|after| (after, after + PURGE_STEP))
}

/// What work of many steps needs of the store, owned, so that it can outlive its caller.
#[derive(Clone)]
pub(super) struct Detached {
    pub(super) ops: mpsc::Sender<Op>,
    pub(super) read: Arc<ReadPool>,
}

impl Detached {
    pub(super) async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Op,
    ) -> Result<T> {
        call(&self.ops, make).await
    }

    /// Records a finished many-step action's entry, if an operator did it.
    pub(super) async fn audit(&self, entry: Option<crate::audit::AuditEntry>) {
        let Some(entry) = entry else { return };
        let r = self
            .call(|reply| Op::Audit {
                entry: Box::new(entry),
                reply,
            })
            .await;
        if let Err(e) = r {
            tracing::warn!("cannot record an action in the audit trail: {e:#}");
        }
    }

    pub(super) async fn delete_subscription(
        self,
        id: String,
        force: bool,
        entry: Option<crate::audit::AuditEntry>,
    ) -> Result<DeleteOutcome> {
        let failed = entry.clone();
        let r = self.delete_in_steps(id, force, entry).await;
        if let Err(e) = &r {
            self.audit(failed.map(|f| f.failed(e))).await;
        }
        r
    }

    async fn delete_in_steps(
        &self,
        id: String,
        force: bool,
        entry: Option<crate::audit::AuditEntry>,
    ) -> Result<DeleteOutcome> {
        // By force, the backlog is cancelled in steps first, each its own transaction, as in
        // a purge (see there): in one, 990,000 unfinished deliveries held the write lock 5 s
        // and a publish waited for all of it. The removal itself cancels what is left (work
        // published meanwhile) in the same transaction, and counts every step. Steps stop
        // once they have cancelled what was there at the start, so producers that keep
        // adding work cannot keep them going.
        let mut cancelled = 0i64;
        if force {
            let sub = id.clone();
            let (at_start, active): (i64, bool) = self
                .read
                .run(move |c| {
                    Ok(c.query_row(
                        "SELECT (SELECT COUNT(*) FROM deliveries \
                           WHERE subscription_id = ?1 AND status IN ('pending', 'retrying')), \
                         EXISTS (SELECT 1 FROM subscriptions WHERE id = ?1 AND state = 'active')",
                        [sub],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?)
                })
                .await?;
            // Several steps take seconds: paused first, so that no engine sends what the
            // next step is about to cancel.
            if active && at_start > i64::from(CANCEL_STEP) {
                let id = id.clone();
                self.call(|reply| Op::SetState {
                    id,
                    state: SubState::Paused,
                    reply,
                })
                .await?;
            }
            while cancelled < at_start {
                let started = std::time::Instant::now();
                let id = id.clone();
                let n = self
                    .call(|reply| Op::CancelUnfinished {
                        id,
                        limit: CANCEL_STEP,
                        reply,
                    })
                    .await?;
                cancelled += n as i64;
                if n < u64::from(CANCEL_STEP) {
                    break;
                }
                crate::store::leave_the_lock_free(started.elapsed()).await;
            }
        }
        self.call(|reply| {
            let op = Op::DeleteSubscription {
                id,
                force,
                cancelled,
                reply,
            };
            match entry {
                Some(entry) => Op::Audited {
                    op: Box::new(op),
                    entry: Box::new(entry),
                },
                None => op,
            }
        })
        .await
    }

    pub(super) async fn purge(self, filter: PurgeFilter) -> Result<PurgeCount> {
        // In steps over ranges of ids, each its own transaction: in one, a million
        // deliveries held the write lock for 13 s, and an engine serving the same file
        // failed its publishes after its busy timeout (10 s).
        let (ids, seqs) = self
            .read
            .run(|c| {
                Ok((
                    key_span(c, "SELECT MIN(id), MAX(id) FROM deliveries")?,
                    key_span(c, "SELECT MIN(seq), MAX(seq) FROM events")?,
                ))
            })
            .await?;
        let mut count = PurgeCount::default();
        for ids in steps(ids) {
            let started = std::time::Instant::now();
            let filter = filter.clone();
            count.deliveries += self
                .call(|reply| Op::Purge { filter, ids, reply })
                .await?
                .deliveries;
            crate::store::leave_the_lock_free(started.elapsed()).await;
        }
        for seqs in steps(seqs) {
            let started = std::time::Instant::now();
            count.events += self.call(|reply| Op::DeleteOrphans { seqs, reply }).await?;
            crate::store::leave_the_lock_free(started.elapsed()).await;
        }
        Ok(count)
    }

    pub(super) async fn redeliver_bulk(
        self,
        target: RedeliverTarget,
        now: Millis,
    ) -> Result<Vec<Redelivered>> {
        // In pages, each its own transaction, as a purge (see there): in one, 250,000 dead
        // letters held the writer 4 s. The deliveries are those that exist now: the ones
        // this makes are never taken again.
        let (_, last_id) = self
            .read
            .run(|c| key_span(c, "SELECT MIN(id), MAX(id) FROM deliveries"))
            .await?;
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let started = std::time::Instant::now();
            let target = target.clone();
            let page = self
                .call(|reply| Op::Redeliver {
                    target,
                    now,
                    page: Some((after, last_id, REDELIVER_PAGE)),
                    reply,
                })
                .await?;
            let full = page.len() >= REDELIVER_PAGE as usize;
            match page.iter().filter_map(|r| r.previous).max() {
                Some(last) if full => after = last,
                _ => {
                    out.extend(page);
                    return Ok(out);
                }
            }
            out.extend(page);
            crate::store::leave_the_lock_free(started.elapsed()).await;
        }
    }
}
