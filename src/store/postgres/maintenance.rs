//! Leases returned, redeliveries, purges, retention and held deliveries expired, and the
//! periodic operational events, on PostgreSQL. Each runs in the caller's transaction.

use super::admin::log;
use crate::model::*;
use crate::ops::{self, Alert, News, Window};
use crate::store::*;
use anyhow::{Result, anyhow};
use sqlx::{PgConnection, Row};
use std::collections::HashSet;

/// Adds to monotonic counters, in a random one of each name's shards.
pub async fn bump(c: &mut PgConnection, deltas: &[(&str, i64)]) -> Result<()> {
    let (names, values): (Vec<&str>, Vec<i64>) =
        deltas.iter().filter(|(_, d)| *d != 0).copied().unzip();
    if names.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO counters (name, shard, value) \
         SELECT n, $3, v FROM UNNEST($1::text[], $2::bigint[]) AS t(n, v) ORDER BY n \
         ON CONFLICT (name, shard) DO UPDATE SET value = counters.value + excluded.value",
    )
    .bind(&names)
    .bind(&values)
    .bind(super::work::counter_shard())
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Returns leases to the queue. `All` means this worker's, as it stops (its registration
/// goes too): other workers' leases are theirs until they expire.
pub async fn release(c: &mut PgConnection, which: &Release, worker: &str) -> Result<u64> {
    let r =
        match which {
            Release::All => {
                sqlx::query("DELETE FROM workers WHERE id = $1")
                    .bind(worker)
                    .execute(&mut *c)
                    .await?;
                sqlx::query(
                    "UPDATE deliveries SET lease_until = NULL, lease_owner = NULL \
                 WHERE lease_until IS NOT NULL AND lease_owner = $1",
                )
                .bind(worker)
                .execute(&mut *c)
                .await?
            }
            Release::ExpiredBefore(t) => {
                sqlx::query(
                    "UPDATE deliveries SET lease_until = NULL, lease_owner = NULL \
                 WHERE lease_until IS NOT NULL AND lease_until < $1",
                )
                .bind(t)
                .execute(&mut *c)
                .await?
            }
            Release::Ids(ids) => sqlx::query(
                "UPDATE deliveries SET lease_until = NULL, lease_owner = NULL WHERE id = ANY($1)",
            )
            .bind(ids)
            .execute(&mut *c)
            .await?,
        };
    Ok(r.rows_affected())
}

/// The deliveries a redelivery replaces: (event seq, event id, subscription, delivery,
/// status, leased).
type Replaced = (i64, String, String, Option<i64>, Option<String>, bool);

/// Also plans, with `dry_run`. `page` is (after id, up to id, limit) for bulk steps.
pub async fn redeliver(
    c: &mut PgConnection,
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
            let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM events WHERE id = $1")
                .bind(event_id)
                .fetch_optional(&mut *c)
                .await?;
            let Some(seq) = seq else {
                return Err(anyhow!("no event with id '{event_id}'"));
            };
            let rows = sqlx::query(
                "SELECT id, subscription_id, status, lease_until IS NOT NULL AS leased FROM deliveries \
                 WHERE event_seq = $1 AND superseded_by IS NULL \
                   AND ($2::text IS NULL OR subscription_id = $2) ORDER BY id",
            )
            .bind(seq)
            .bind(subscription_id)
            .fetch_all(&mut *c)
            .await?;
            let none = rows.is_empty();
            for r in rows {
                plan.push((
                    seq,
                    event_id.clone(),
                    r.try_get("subscription_id")?,
                    Some(r.try_get("id")?),
                    Some(r.try_get("status")?),
                    r.try_get("leased")?,
                ));
            }
            if let (Some(sub), true) = (subscription_id, none) {
                let exists: Option<String> =
                    sqlx::query_scalar("SELECT id FROM subscriptions WHERE id = $1")
                        .bind(sub)
                        .fetch_optional(&mut *c)
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
            let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
            let (after, upto, limit) = page.unwrap_or((0, i64::MAX, u32::MAX));
            let rows = sqlx::query(
                "SELECT d.id, d.event_seq, e.id AS event_id, d.status, \
                   d.lease_until IS NOT NULL AS leased \
                 FROM deliveries d JOIN events e ON e.seq = d.event_seq \
                 WHERE d.superseded_by IS NULL AND d.subscription_id = $1 \
                   AND d.status = ANY($2) AND ($3::bigint IS NULL OR d.updated_at >= $3) \
                   AND d.id > $4 AND d.id <= $5 ORDER BY d.id LIMIT $6",
            )
            .bind(subscription_id)
            .bind(&statuses)
            .bind(since)
            .bind(after)
            .bind(upto)
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?;
            for r in rows {
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
        RedeliverTarget::Pairs(pairs) => {
            let mut seen = HashSet::new();
            for (event_id, sub) in pairs {
                if !seen.insert((event_id, sub)) {
                    continue;
                }
                let row = sqlx::query(
                    "SELECT e.seq, d.id, d.status, d.lease_until IS NOT NULL AS leased, \
                       EXISTS (SELECT 1 FROM subscriptions WHERE id = $2) AS sub_exists \
                     FROM events e LEFT JOIN deliveries d \
                       ON d.event_seq = e.seq AND d.subscription_id = $2 AND d.superseded_by IS NULL \
                     WHERE e.id = $1 ORDER BY d.id DESC NULLS LAST LIMIT 1",
                )
                .bind(event_id)
                .bind(sub)
                .fetch_optional(&mut *c)
                .await?;
                let Some(r) = row else { continue };
                let id: Option<i64> = r.try_get("id")?;
                let status: Option<String> = r.try_get("status")?;
                let exists: bool = r.try_get("sub_exists")?;
                if status.as_deref() == Some("delivered") || !exists {
                    continue;
                }
                let leased: Option<bool> = r.try_get("leased")?;
                let leased = id.is_some() && leased.unwrap_or(false);
                plan.push((
                    r.try_get("seq")?,
                    event_id.clone(),
                    sub.clone(),
                    id,
                    status,
                    leased,
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
    let seqs: Vec<i64> = plan.iter().map(|p| p.0).collect();
    let subs: Vec<&str> = plan.iter().map(|p| p.2.as_str()).collect();
    let new_ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO deliveries (event_seq, subscription_id, status, attempts, next_at, created_at, updated_at) \
         SELECT s, sub, 'pending', 0, $3, $3, $3 FROM UNNEST($1::bigint[], $2::text[]) WITH ORDINALITY AS t(s, sub, o) \
         ORDER BY o RETURNING id",
    )
    .bind(&seqs)
    .bind(&subs)
    .bind(now)
    .fetch_all(&mut *c)
    .await?;
    let mut out = Vec::with_capacity(plan.len());
    let (mut prev_ids, mut replaced_by, mut cancels) = (Vec::new(), Vec::new(), Vec::new());
    for ((_, event_id, subscription_id, previous, status, leased), new_id) in
        plan.into_iter().zip(new_ids)
    {
        if let Some(prev) = previous {
            // An unfinished delivery not in flight is cancelled, so the event is not sent
            // twice; one in flight finishes and keeps its own outcome.
            let unfinished = matches!(status.as_deref(), Some("pending" | "retrying"));
            prev_ids.push(prev);
            replaced_by.push(new_id);
            cancels.push(unfinished && !leased);
        }
        out.push(Redelivered {
            event_id,
            subscription_id,
            previous,
            delivery_id: Some(new_id),
        });
    }
    if !prev_ids.is_empty() {
        sqlx::query(
            "UPDATE deliveries d SET superseded_by = t.new_id, updated_at = $4, \
               status = CASE WHEN t.cancel THEN 'cancelled' ELSE d.status END, \
               next_at = CASE WHEN t.cancel THEN NULL ELSE d.next_at END \
             FROM UNNEST($1::bigint[], $2::bigint[], $3::boolean[]) AS t(prev, new_id, cancel) \
             WHERE d.id = t.prev",
        )
        .bind(&prev_ids)
        .bind(&replaced_by)
        .bind(&cancels)
        .bind(now)
        .execute(&mut *c)
        .await?;
    }
    Ok(out)
}

/// Deletes (or counts, with `dry_run`) final deliveries matching the filter among ids
/// `(after, upto]`.
pub async fn purge(
    c: &mut PgConnection,
    f: &PurgeFilter,
    dry_run: bool,
    (after, upto): (i64, i64),
) -> Result<u64> {
    let statuses: Vec<&str> = f
        .status
        .iter()
        .filter(|s| s.is_final())
        .map(|s| s.as_str())
        .collect();
    let filter = "status = ANY($1) AND ($2::text IS NULL OR subscription_id = $2) \
                  AND ($3::bigint IS NULL OR updated_at < $3) AND id > $4 AND id <= $5";
    let q = if dry_run {
        format!("SELECT count(*) FROM deliveries WHERE {filter}")
    } else {
        format!(
            "WITH gone AS (DELETE FROM deliveries WHERE {filter} RETURNING 1) SELECT count(*) FROM gone"
        )
    };
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(q))
        .bind(&statuses)
        .bind(&f.subscription_id)
        .bind(f.before)
        .bind(after)
        .bind(upto)
        .fetch_one(&mut *c)
        .await?;
    Ok(n as u64)
}

/// Deletes events of sequence numbers `(after, upto]` left without deliveries.
pub async fn delete_orphan_events(c: &mut PgConnection, (after, upto): (i64, i64)) -> Result<u64> {
    let r = sqlx::query(
        "DELETE FROM events WHERE seq > $1 AND seq <= $2 AND NOT EXISTS \
         (SELECT 1 FROM deliveries d WHERE d.event_seq = events.seq)",
    )
    .bind(after)
    .bind(upto)
    .execute(&mut *c)
    .await?;
    Ok(r.rows_affected())
}

pub async fn expire_held(
    c: &mut PgConnection,
    sub: &str,
    before: Millis,
    reason: &str,
) -> Result<u64> {
    let now = now_ms();
    let ids: Vec<i64> = sqlx::query_scalar(
        "UPDATE deliveries SET status = 'dead', attempts = attempts + 1, next_at = NULL, updated_at = $3 \
         WHERE subscription_id = $1 AND status IN ('pending', 'retrying') AND lease_until IS NULL \
           AND created_at < $2 RETURNING id",
    )
    .bind(sub)
    .bind(before)
    .bind(now)
    .fetch_all(&mut *c)
    .await?;
    let n = ids.len() as u64;
    if n == 0 {
        return Ok(0);
    }
    sqlx::query(
        "INSERT INTO attempts (delivery_id, n, at, error_class, error, latency_ms) \
         SELECT d.id, d.attempts, $2, 'circuit_open', $3, 0 FROM deliveries d WHERE d.id = ANY($1) \
         ON CONFLICT (delivery_id, n) DO UPDATE SET at = excluded.at, error_class = excluded.error_class, \
           error = excluded.error, latency_ms = 0, status_code = NULL",
    )
    .bind(&ids)
    .bind(now)
    .bind(reason)
    .execute(&mut *c)
    .await?;
    let n_i = n as i64;
    bump(
        c,
        &[
            ("deliveries_dead", n_i),
            ("attempts", n_i),
            ("attempts_failed_circuit_open", n_i),
        ],
    )
    .await?;
    log(
        c,
        sub,
        "expired held deliveries",
        Some(&format!("{n}: {reason}")),
    )
    .await?;
    super::operational::dead_letters(c, &[(sub.to_string(), n_i, Some(reason.to_string()))], now)
        .await?;
    Ok(n)
}

pub async fn prune(
    c: &mut PgConnection,
    before: Millis,
    from: Millis,
    limit: u32,
) -> Result<Pruned> {
    let doomed: Vec<(i64, Millis)> = sqlx::query_as(
        "SELECT seq, received_at FROM events \
         WHERE received_at >= $1 AND received_at < $2 AND NOT EXISTS \
         (SELECT 1 FROM deliveries d \
          WHERE d.event_seq = events.seq AND d.status IN ('pending', 'retrying')) \
         ORDER BY received_at LIMIT $3",
    )
    .bind(from)
    .bind(before)
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await?;
    let seqs: Vec<i64> = doomed.iter().map(|d| d.0).collect();
    sqlx::query("DELETE FROM events WHERE seq = ANY($1)")
        .bind(&seqs)
        .execute(&mut *c)
        .await?;
    // The audit trail is kept as long as the events it is about.
    sqlx::query(
        "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < $1 ORDER BY at LIMIT $2)",
    )
    .bind(before)
    .bind(i64::from(limit))
    .execute(&mut *c)
    .await?;
    Ok(Pruned {
        events: doomed.len() as u64,
        next_from: match doomed.last() {
            Some((_, at)) if doomed.len() as u64 >= u64::from(limit) => Some(*at),
            _ => None,
        },
    })
}

/// Dead-letter windows that ended with deaths untold, and backlog alerts raised or
/// cleared; one worker at a time (the caller holds the operational lock).
pub async fn ops_tick(c: &mut PgConnection, limits: ops::Limits, now: Millis) -> Result<usize> {
    let mut news: Vec<(String, News)> = Vec::new();
    let ended = sqlx::query(
        "SELECT subscription_id, opened_at, pending, pending_since, last_error \
         FROM ops_dead_windows WHERE opened_at <= $1",
    )
    .bind(now - ops::DEAD_WINDOW_MS)
    .fetch_all(&mut *c)
    .await?;
    for r in ended {
        let id: String = r.try_get("subscription_id")?;
        let w = Window {
            opened_at: r.try_get("opened_at")?,
            pending: r.try_get("pending")?,
            pending_since: r.try_get("pending_since")?,
        };
        let last_error: Option<String> = r.try_get("last_error")?;
        match ops::window_ends(w, now) {
            (told, Some(next)) => {
                sqlx::query(
                    "UPDATE ops_dead_windows SET opened_at = $2, pending = $3, pending_since = $4 \
                     WHERE subscription_id = $1",
                )
                .bind(&id)
                .bind(next.opened_at)
                .bind(next.pending)
                .bind(next.pending_since)
                .execute(&mut *c)
                .await?;
                if let Some((count, first_at)) = told {
                    news.push((
                        id,
                        News::DeadLettered {
                            count,
                            first_at,
                            last_error,
                        },
                    ));
                }
            }
            (_, None) => {
                sqlx::query("DELETE FROM ops_dead_windows WHERE subscription_id = $1")
                    .bind(&id)
                    .execute(&mut *c)
                    .await?;
            }
        }
    }
    let raised: Vec<(String, String)> =
        sqlx::query_as("SELECT subscription_id, kind FROM ops_alerts")
            .fetch_all(&mut *c)
            .await?;
    for b in super::read::backlogs(c).await? {
        let was = |alert: Alert| {
            raised
                .iter()
                .any(|(s, k)| *s == b.subscription_id && k == alert.as_str())
        };
        for (alert, is, told) in ops::alert_changes(&limits, &b, was, now) {
            if is {
                sqlx::query(
                    "INSERT INTO ops_alerts (subscription_id, kind, raised_at) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&b.subscription_id)
                .bind(alert.as_str())
                .bind(now)
                .execute(&mut *c)
                .await?;
            } else {
                sqlx::query("DELETE FROM ops_alerts WHERE subscription_id = $1 AND kind = $2")
                    .bind(&b.subscription_id)
                    .bind(alert.as_str())
                    .execute(&mut *c)
                    .await?;
            }
            news.push((b.subscription_id.clone(), told));
        }
    }
    sqlx::query(
        "DELETE FROM ops_alerts WHERE subscription_id NOT IN (SELECT id FROM subscriptions)",
    )
    .execute(&mut *c)
    .await?;
    sqlx::query(
        "DELETE FROM ops_dead_windows WHERE subscription_id NOT IN (SELECT id FROM subscriptions)",
    )
    .execute(&mut *c)
    .await?;
    super::operational::tell(c, &news, now).await
}
