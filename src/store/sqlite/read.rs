//! Read queries, on the read-only pool: never in the writer's way.

use super::rows;
use crate::model::*;
use crate::store::*;
use anyhow::Result;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use std::collections::HashMap;

pub async fn subscriptions(pool: &SqlitePool) -> Result<Vec<Subscription>> {
    let sql = format!(
        "SELECT {} FROM subscriptions ORDER BY created_at, id",
        rows::SUBSCRIPTION_COLUMNS
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?;
    rows.iter().map(rows::subscription).collect()
}

pub async fn find_subscription(pool: &SqlitePool, key: &str) -> Result<Option<Subscription>> {
    // LIKE would treat '_' in ids as a wildcard; compare the prefix exactly instead.
    let sql = format!(
        "SELECT {} FROM subscriptions WHERE id = ?1 OR substr(id, 1, length(?1)) = ?1 OR name = ?1 LIMIT 10",
        rows::SUBSCRIPTION_COLUMNS
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(key)
        .fetch_all(pool)
        .await?;
    let subs: Vec<Subscription> = rows.iter().map(rows::subscription).collect::<Result<_>>()?;
    if let Some(exact) = subs.iter().find(|s| s.id == key) {
        return Ok(Some(exact.clone()));
    }
    match subs.len() {
        0 => Ok(None),
        1 => Ok(subs.into_iter().next()),
        _ => Err(AmbiguousId {
            prefix: key.to_string(),
            matches: subs.into_iter().map(|s| s.id).collect(),
        }
        .into()),
    }
}

pub async fn subscription_stats(pool: &SqlitePool) -> Result<Vec<SubscriptionStats>> {
    let rows = sqlx::query(
        "SELECT subscription_id, status, COUNT(*) AS n FROM deliveries \
         WHERE superseded_by IS NULL OR status IN ('pending', 'retrying') \
         GROUP BY subscription_id, status",
    )
    .fetch_all(pool)
    .await?;
    let mut by_sub: HashMap<String, SubscriptionStats> = HashMap::new();
    for r in rows {
        let sub: String = r.try_get("subscription_id")?;
        let status: String = r.try_get("status")?;
        let n: i64 = r.try_get("n")?;
        let s = by_sub
            .entry(sub.clone())
            .or_insert_with(|| SubscriptionStats {
                subscription_id: sub,
                ..Default::default()
            });
        match status.parse::<DeliveryStatus>() {
            Ok(DeliveryStatus::Pending) => s.pending += n,
            Ok(DeliveryStatus::Retrying) => s.retrying += n,
            Ok(DeliveryStatus::Delivered) => s.delivered += n,
            Ok(DeliveryStatus::Dead) => s.dead += n,
            Ok(DeliveryStatus::Cancelled) => s.cancelled += n,
            Err(_) => {}
        }
    }
    let last = sqlx::query(
        "SELECT d.subscription_id, a.status_code, a.at FROM attempts a \
         JOIN deliveries d ON d.id = a.delivery_id \
         WHERE d.id IN (SELECT MAX(id) FROM deliveries WHERE attempts > 0 GROUP BY subscription_id) \
         ORDER BY a.n",
    )
    .fetch_all(pool)
    .await?;
    for r in last {
        let sub: String = r.try_get("subscription_id")?;
        let code: Option<i64> = r.try_get("status_code")?;
        let s = by_sub
            .entry(sub.clone())
            .or_insert_with(|| SubscriptionStats {
                subscription_id: sub,
                ..Default::default()
            });
        s.last_status_code = code.and_then(|c| u16::try_from(c).ok());
        s.last_attempt_at = Some(r.try_get("at")?);
    }
    let mut out: Vec<_> = by_sub.into_values().collect();
    out.sort_by(|a, b| a.subscription_id.cmp(&b.subscription_id));
    Ok(out)
}

pub async fn list_events(pool: &SqlitePool, f: &EventFilter) -> Result<Vec<EventRow>> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
        "SELECT e.seq, e.id, e.type, e.location_id, e.timestamp, e.received_at FROM events e WHERE 1 = 1",
    );
    if let Some(t) = &f.text {
        let pattern = format!(
            "%{}%",
            t.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        q.push(" AND (e.id LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\'");
        q.push(" OR e.type LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\')");
    }
    if let Some(b) = f.before_seq {
        q.push(" AND e.seq <= ").push_bind(b);
    }
    if let Some(a) = f.after_seq {
        q.push(" AND e.seq > ").push_bind(a);
    }
    if let Some(t) = &f.event_type {
        q.push(" AND e.type = ").push_bind(t.clone());
    }
    if let Some(l) = &f.location_id {
        q.push(" AND e.location_id = ").push_bind(l.clone());
    }
    if let Some(since) = f.since {
        q.push(" AND e.received_at >= ").push_bind(since);
    }
    if f.status.is_some() || f.subscription_id.is_some() {
        q.push(" AND EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq");
        push_delivery_filter(&mut q, f);
        q.push(")");
    }
    q.push(" ORDER BY e.seq DESC LIMIT ")
        .push_bind(i64::from(f.limit));
    let rows = q.build().fetch_all(pool).await?;
    let mut events: Vec<(i64, EventRow)> = Vec::with_capacity(rows.len());
    for r in &rows {
        events.push((
            r.try_get("seq")?,
            EventRow {
                seq: r.try_get("seq")?,
                id: r.try_get("id")?,
                event_type: r.try_get("type")?,
                location_id: r.try_get("location_id")?,
                timestamp: r.try_get("timestamp")?,
                received_at: r.try_get("received_at")?,
                deliveries: Vec::new(),
            },
        ));
    }
    let index: HashMap<i64, usize> = events
        .iter()
        .enumerate()
        .map(|(i, (seq, _))| (*seq, i))
        .collect();
    let seqs: Vec<i64> = events.iter().map(|(s, _)| *s).collect();
    for chunk in seqs.chunks(200) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT d.id, d.event_seq, d.subscription_id, d.status FROM deliveries d WHERE d.event_seq IN (",
        );
        let mut sep = q.separated(", ");
        for s in chunk {
            sep.push_bind(*s);
        }
        q.push(")");
        push_delivery_filter(&mut q, f);
        q.push(" ORDER BY d.id");
        let rows = q.build().fetch_all(pool).await?;
        let mut found: Vec<(i64, DeliveryBrief)> = Vec::with_capacity(rows.len());
        for r in rows {
            let status: String = r.try_get("status")?;
            found.push((
                r.try_get("event_seq")?,
                DeliveryBrief {
                    id: r.try_get("id")?,
                    subscription_id: r.try_get("subscription_id")?,
                    status: status.parse().map_err(anyhow::Error::msg)?,
                },
            ));
        }
        for (seq, d) in found {
            if let Some(&i) = index.get(&seq) {
                events[i].1.deliveries.push(d);
            }
        }
    }
    Ok(events.into_iter().map(|(_, e)| e).collect())
}

fn push_delivery_filter(q: &mut QueryBuilder<Sqlite>, f: &EventFilter) {
    if let Some(s) = f.status {
        q.push(" AND d.status = ").push_bind(s.as_str());
    }
    if let Some(sub) = &f.subscription_id {
        q.push(" AND d.subscription_id = ").push_bind(sub.clone());
    }
}

pub async fn event_detail(pool: &SqlitePool, id: &str) -> Result<Option<EventDetail>> {
    let Some(row) =
        sqlx::query("SELECT seq, id, type, location_id, timestamp, data FROM events WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?
    else {
        return Ok(None);
    };
    let seq: i64 = row.try_get("seq")?;
    let event = rows::event(&row)?;
    let drows = sqlx::query(
        "SELECT d.id, d.subscription_id, s.url, d.status, d.next_at, d.superseded_by, b.body, d.created_at \
         FROM deliveries d LEFT JOIN subscriptions s ON s.id = d.subscription_id \
         LEFT JOIN delivery_bodies b ON b.delivery_id = d.id \
         WHERE d.event_seq = ? ORDER BY d.id",
    )
    .bind(seq)
    .fetch_all(pool)
    .await?;
    let mut deliveries = Vec::with_capacity(drows.len());
    for r in drows {
        let status: String = r.try_get("status")?;
        deliveries.push(DeliveryDetail {
            id: r.try_get("id")?,
            subscription_id: r.try_get("subscription_id")?,
            url: r.try_get("url")?,
            status: status.parse().map_err(anyhow::Error::msg)?,
            next_at: r.try_get("next_at")?,
            superseded_by: r.try_get("superseded_by")?,
            body: r.try_get("body")?,
            created_at: r.try_get("created_at")?,
            attempts: Vec::new(),
        });
    }
    let arows = sqlx::query(
        "SELECT a.* FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
         WHERE d.event_seq = ? ORDER BY a.delivery_id, a.n",
    )
    .bind(seq)
    .fetch_all(pool)
    .await?;
    for r in arows {
        let delivery_id: i64 = r.try_get("delivery_id")?;
        if let Some(d) = deliveries.iter_mut().find(|d| d.id == delivery_id) {
            d.attempts.push(rows::attempt(&r)?);
        }
    }
    Ok(Some(EventDetail { event, deliveries }))
}

/// The rows of `select` (which ends in `IN (`) for every key, 500 keys per query.
async fn rows_for_keys(pool: &SqlitePool, select: &str, keys: &[i64]) -> Result<Vec<SqliteRow>> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(500) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(select);
        let mut sep = q.separated(", ");
        for k in chunk {
            sep.push_bind(*k);
        }
        q.push(")");
        out.extend(q.build().fetch_all(pool).await?);
    }
    Ok(out)
}

/// Events by sequence number, for claimed deliveries.
pub async fn events_by_seq(pool: &SqlitePool, seqs: &[i64]) -> Result<HashMap<i64, Event>> {
    let select = "SELECT seq, id, type, location_id, timestamp, data FROM events WHERE seq IN (";
    rows_for_keys(pool, select, seqs)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("seq")?, rows::event(row)?)))
        .collect()
}

/// The bodies kept for these deliveries (those attempted before), by delivery id.
pub async fn bodies(pool: &SqlitePool, ids: &[i64]) -> Result<HashMap<i64, Vec<u8>>> {
    let select = "SELECT delivery_id, body FROM delivery_bodies WHERE delivery_id IN (";
    rows_for_keys(pool, select, ids)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("delivery_id")?, row.try_get("body")?)))
        .collect()
}

pub async fn next_due(pool: &SqlitePool) -> Result<Option<Millis>> {
    let (at,): (Option<i64>,) = sqlx::query_as(
        // Per endpoint, so each is one step down the claim index (due order within an
        // endpoint) instead of a walk over the whole backlog.
        "SELECT MIN((SELECT MIN(d.next_at) FROM deliveries d \
                     WHERE d.subscription_id = s.id AND d.status IN ('pending', 'retrying') \
                       AND d.lease_until IS NULL)) \
         FROM subscriptions s WHERE s.state = 'active' AND s.circuit = 'closed'",
    )
    .fetch_one(pool)
    .await?;
    Ok(at)
}

pub async fn queue_counts(pool: &SqlitePool) -> Result<QueueCounts> {
    let mut c = QueueCounts::default();
    let rows = sqlx::query(
        // Grouped by endpoint too, which follows an index instead of sorting every row.
        "SELECT status, COUNT(*) AS n, SUM(lease_until IS NOT NULL) AS leased FROM deliveries \
         WHERE superseded_by IS NULL OR status IN ('pending', 'retrying') \
         GROUP BY subscription_id, status",
    )
    .fetch_all(pool)
    .await?;
    for r in rows {
        let status: String = r.try_get("status")?;
        let n: i64 = r.try_get("n")?;
        let leased: Option<i64> = r.try_get("leased")?;
        c.in_flight += leased.unwrap_or(0);
        match status.parse::<DeliveryStatus>() {
            Ok(DeliveryStatus::Pending) => c.pending += n,
            Ok(DeliveryStatus::Retrying) => c.retrying += n,
            Ok(DeliveryStatus::Delivered) => c.delivered += n,
            Ok(DeliveryStatus::Dead) => c.dead += n,
            Ok(DeliveryStatus::Cancelled) => c.cancelled += n,
            Err(_) => {}
        }
    }
    let (events, oldest): (i64, Option<i64>) =
        sqlx::query_as("SELECT COUNT(*), MIN(received_at) FROM events")
            .fetch_one(pool)
            .await?;
    c.events = events;
    c.oldest_event_at = oldest;
    Ok(c)
}

pub async fn subscription_log(pool: &SqlitePool, id: &str, limit: u32) -> Result<Vec<LogEntry>> {
    let rows = sqlx::query(
        "SELECT at, change, reason FROM subscription_log WHERE subscription_id = ? ORDER BY at DESC, rowid DESC LIMIT ?",
    )
    .bind(id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(LogEntry {
                at: r.try_get("at")?,
                change: r.try_get("change")?,
                reason: r.try_get("reason")?,
            })
        })
        .collect()
}

fn error_class(r: &sqlx::sqlite::SqliteRow, col: &str) -> Result<Option<ErrorClass>> {
    let c: Option<String> = r.try_get(col)?;
    c.map(|c| c.parse()).transpose().map_err(anyhow::Error::msg)
}

fn status_code(r: &sqlx::sqlite::SqliteRow, col: &str) -> Result<Option<u16>> {
    let c: Option<i64> = r.try_get(col)?;
    Ok(c.and_then(|c| u16::try_from(c).ok()))
}

pub async fn retry_queue(pool: &SqlitePool, limit: u32) -> Result<Vec<RetryItem>> {
    let rows = sqlx::query(
        "SELECT d.id, e.id AS event_id, e.type, d.subscription_id, d.attempts, d.probes, d.next_at, \
                a.error_class, a.error, a.status_code \
         FROM deliveries d JOIN events e ON e.seq = d.event_seq \
         LEFT JOIN attempts a ON a.delivery_id = d.id AND a.n = d.attempts \
         WHERE d.status = 'retrying' ORDER BY d.next_at, d.id LIMIT ?",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let attempts: i64 = r.try_get("attempts")?;
            let probes: i64 = r.try_get("probes")?;
            Ok(RetryItem {
                delivery_id: r.try_get("id")?,
                event_id: r.try_get("event_id")?,
                event_type: r.try_get("type")?,
                subscription_id: r.try_get("subscription_id")?,
                attempts: attempts as u32,
                probes: probes as u32,
                next_at: r.try_get("next_at")?,
                last_error_class: error_class(r, "error_class")?,
                last_error: r.try_get("error")?,
                last_status_code: status_code(r, "status_code")?,
            })
        })
        .collect()
}

pub async fn dead_letters(pool: &SqlitePool, limit: u32) -> Result<Vec<DeadItem>> {
    let rows = sqlx::query(
        "SELECT d.id, e.id AS event_id, e.type, d.subscription_id, d.attempts, \
                a.at, a.error_class, a.error, a.status_code \
         FROM deliveries d JOIN events e ON e.seq = d.event_seq \
         LEFT JOIN attempts a ON a.delivery_id = d.id AND a.n = d.attempts \
         WHERE d.status = 'dead' AND d.superseded_by IS NULL \
         ORDER BY d.subscription_id, a.error_class, a.status_code, a.at DESC, d.id DESC LIMIT ?",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let attempts: i64 = r.try_get("attempts")?;
            let at: Option<i64> = r.try_get("at")?;
            Ok(DeadItem {
                delivery_id: r.try_get("id")?,
                event_id: r.try_get("event_id")?,
                event_type: r.try_get("type")?,
                subscription_id: r.try_get("subscription_id")?,
                attempts: attempts as u32,
                died_at: at.unwrap_or(0),
                error_class: error_class(r, "error_class")?,
                error: r.try_get("error")?,
                status_code: status_code(r, "status_code")?,
            })
        })
        .collect()
}

pub async fn attempt_samples(
    pool: &SqlitePool,
    since: Millis,
    limit: u32,
) -> Result<HashMap<String, Vec<AttemptSample>>> {
    let rows = sqlx::query(
        "SELECT d.subscription_id, a.at, a.latency_ms, a.status_code, a.error_class \
         FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
         WHERE a.at >= ? ORDER BY a.at DESC LIMIT ?",
    )
    .bind(since)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    let mut out: HashMap<String, Vec<AttemptSample>> = HashMap::new();
    for r in rows {
        let class: Option<String> = r.try_get("error_class")?;
        let latency: i64 = r.try_get("latency_ms")?;
        out.entry(r.try_get("subscription_id")?)
            .or_default()
            .push(AttemptSample {
                at: r.try_get("at")?,
                latency_ms: latency.max(0) as u64,
                ok: class.is_none(),
            });
    }
    Ok(out)
}

pub async fn tokens(pool: &SqlitePool, hash: Option<&str>) -> Result<Vec<ApiToken>> {
    let rows = sqlx::query(
        "SELECT id, scopes, location_id, created_at, revoked_at FROM tokens \
         WHERE (?1 IS NULL OR (hash = ?1 AND revoked_at IS NULL)) ORDER BY created_at",
    )
    .bind(hash)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let scopes: String = r.try_get("scopes")?;
            Ok(ApiToken {
                id: r.try_get("id")?,
                scopes: serde_json::from_str(&scopes)?,
                location_id: r.try_get("location_id")?,
                created_at: r.try_get("created_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect()
}

pub async fn inbounds(pool: &SqlitePool, hash: Option<&str>) -> Result<Vec<Inbound>> {
    let rows = sqlx::query(
        "SELECT id, type, location_id, map, secret, created_at FROM inbound WHERE (?1 IS NULL OR hash = ?1) ORDER BY created_at",
    )
    .bind(hash)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let map: String = r.try_get("map")?;
            Ok(Inbound {
                id: r.try_get("id")?,
                event_type: r.try_get("type")?,
                location_id: r.try_get("location_id")?,
                map: serde_json::from_str(&map)?,
                secret: r.try_get("secret")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}
