//! The delivery lifecycle: claims, recorded outcomes and endpoint health, released
//! leases, redeliveries.

use super::super::sql::{MultiRowInsert, Sql, insert_in_chunks, multi_row_insert};
use super::*;
use crate::health;
use anyhow::{Result, anyhow};
use rusqlite::{Connection, OptionalExtension, Statement, params};
use std::collections::HashMap;
use std::sync::LazyLock;

/// A leased delivery; its event is read afterwards on the read pool, outside the write
/// transaction (events never change, and a leased delivery's event is never pruned).
pub use crate::store::Leased;

pub(super) fn claim(
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
pub(super) static ATTEMPTS: LazyLock<MultiRowInsert> = LazyLock::new(|| {
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
pub(super) fn bind_attempt(q: &mut Statement<'_>, at: usize, o: &Outcome) -> rusqlite::Result<()> {
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

pub(super) fn record(
    conn: &Connection,
    outcomes: &[Outcome],
    circuit_threshold: u32,
) -> Result<()> {
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
    let news = update_health(conn, outcomes, circuit_threshold)?;
    operational::tell(conn, &news, now)?;
    let deaths = crate::ops::deaths(outcomes);
    if !deaths.is_empty() {
        operational::dead_letters(conn, &deaths, now)?;
    }
    Ok(())
}

/// Attempts, their latency histogram and final outcomes, for /metrics.
pub(super) fn count_outcomes(conn: &Connection, outcomes: &[Outcome]) -> Result<()> {
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

/// Applies the batch's endpoint health (`crate::health` decides what it says); returns the
/// changes operational events tell of.
pub(super) fn update_health(
    conn: &Connection,
    outcomes: &[Outcome],
    threshold: u32,
) -> Result<Vec<(String, crate::ops::News)>> {
    use crate::ops::News;
    let now = now_ms();
    let mut news = Vec::new();
    for h in health::summarise(outcomes) {
        let sub = h.subscription_id.as_str();
        if h.is_steady() {
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
        if h.closes() {
            let r = conn
                .prepare_cached(
                    "UPDATE subscriptions SET circuit = 'closed', circuit_changed_at = ? \
                 WHERE id = ? AND circuit = 'open'",
                )?
                .execute(params![now, sub])?;
            if r > 0 {
                log(conn, sub, "circuit closed", Some(health::CLOSED_REASON))?;
                news.push((
                    sub.to_string(),
                    News::CircuitClosed {
                        reason: health::CLOSED_REASON.into(),
                    },
                ));
            }
        }
        let r = conn
            .prepare_cached(
                "UPDATE subscriptions SET circuit = 'open', circuit_changed_at = ? \
                 WHERE id = ? AND circuit = 'closed' AND consecutive_failures >= ?",
            )?
            .execute(params![now, sub, health::opening_failures(threshold)])?;
        if r > 0 {
            log(conn, sub, "circuit opened", Some(&h.open_reason(threshold)))?;
            let failures: i64 = conn
                .prepare_cached("SELECT consecutive_failures FROM subscriptions WHERE id = ?")?
                .query_row([sub], |r| r.get(0))?;
            news.push((
                sub.to_string(),
                News::CircuitOpened {
                    failures,
                    last_error: h.last_error.clone(),
                },
            ));
        }
        if h.gone {
            let r = conn
                .prepare_cached(
                    "UPDATE subscriptions SET state = 'disabled', state_reason = ?, updated_at = ? \
                 WHERE id = ? AND state != 'disabled'",
                )?
                .execute(params![health::GONE_REASON, now, sub])?;
            if r > 0 {
                log(conn, sub, "disabled", Some(health::GONE_REASON))?;
                news.push((
                    sub.to_string(),
                    News::Disabled {
                        reason: health::GONE_REASON.into(),
                    },
                ));
            }
        }
    }
    Ok(news)
}

pub(super) fn release(conn: &Connection, which: &Release) -> Result<u64> {
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

/// A listed pair's event and latest delivery: (event seq, delivery, status, leased).
type ListedPair = (i64, Option<i64>, Option<String>, Option<bool>);

/// Also plans, with `dry_run`, on a read connection.
pub(crate) fn redeliver(
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
        RedeliverTarget::Pairs(pairs) => {
            let mut q = conn.prepare_cached(
                "SELECT e.seq, d.id, d.status, d.lease_until IS NOT NULL AS leased \
                 FROM events e LEFT JOIN deliveries d \
                   ON d.event_seq = e.seq AND d.subscription_id = ?2 AND d.superseded_by IS NULL \
                 WHERE e.id = ?1 ORDER BY d.id DESC LIMIT 1",
            )?;
            let mut sub_exists = conn.prepare_cached("SELECT 1 FROM subscriptions WHERE id = ?")?;
            let mut seen = std::collections::HashSet::new();
            for (event_id, sub) in pairs {
                if !seen.insert((event_id, sub)) {
                    continue;
                }
                let row: Option<ListedPair> = q
                    .query_row(params![event_id, sub], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .optional()?;
                let Some((seq, id, status, leased)) = row else {
                    continue;
                };
                if status.as_deref() == Some("delivered") || !sub_exists.exists([sub])? {
                    continue;
                }
                let leased = id.is_some() && leased.unwrap_or(false);
                plan.push((seq, event_id.clone(), sub.clone(), id, status, leased));
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
