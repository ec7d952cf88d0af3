//! Read queries on PostgreSQL: the SQLite backend's, in PostgreSQL's dialect. Each runs
//! on a pooled connection and never waits for a writer.

use super::rows;
use crate::model::*;
use crate::store::*;
use anyhow::Result;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use std::collections::HashMap;
use std::sync::Arc;

pub async fn subscriptions(c: &mut PgConnection) -> Result<Vec<Subscription>> {
    let sql = format!(
        "SELECT {} FROM subscriptions ORDER BY created_at, id",
        rows::SUBSCRIPTION_COLUMNS
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *c)
        .await?
        .iter()
        .map(rows::subscription)
        .collect()
}

pub async fn find_subscription(pool: &PgPool, key: &str) -> Result<Option<Subscription>> {
    let sql = format!(
        "SELECT {} FROM subscriptions WHERE id = $1 OR left(id, length($1)) = $1 OR name = $1 LIMIT 10",
        rows::SUBSCRIPTION_COLUMNS
    );
    let subs: Vec<Subscription> = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(key)
        .fetch_all(pool)
        .await?
        .iter()
        .map(rows::subscription)
        .collect::<Result<_>>()?;
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

/// Deliveries by state in all and per endpoint, leaving out final deliveries replaced by
/// a redelivery; with the totals, in one snapshot so that they agree.
pub async fn overview(pool: &PgPool) -> Result<(QueueCounts, Vec<SubscriptionStats>)> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query(
        "SELECT subscription_id, status, count(*) AS n FROM deliveries \
         WHERE superseded_by IS NULL OR status IN ('pending', 'retrying') \
         GROUP BY subscription_id, status",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut counts = QueueCounts::default();
    let mut by_sub: HashMap<String, SubscriptionStats> = HashMap::new();
    for r in rows {
        let sub: String = r.try_get("subscription_id")?;
        let n: i64 = r.try_get("n")?;
        let s = by_sub
            .entry(sub.clone())
            .or_insert_with(|| SubscriptionStats {
                subscription_id: sub,
                ..Default::default()
            });
        let (total, mine) = match rows::status(&r, "status") {
            Ok(DeliveryStatus::Pending) => (&mut counts.pending, &mut s.pending),
            Ok(DeliveryStatus::Retrying) => (&mut counts.retrying, &mut s.retrying),
            Ok(DeliveryStatus::Delivered) => (&mut counts.delivered, &mut s.delivered),
            Ok(DeliveryStatus::Dead) => (&mut counts.dead, &mut s.dead),
            Ok(DeliveryStatus::Cancelled) => (&mut counts.cancelled, &mut s.cancelled),
            Err(_) => continue,
        };
        *total += n;
        *mine += n;
    }
    counts.in_flight = sqlx::query_scalar(
        "SELECT count(*) FROM deliveries WHERE lease_until IS NOT NULL \
           AND (superseded_by IS NULL OR status IN ('pending', 'retrying'))",
    )
    .fetch_one(&mut *tx)
    .await?;
    let (events, oldest): (i64, Option<i64>) =
        sqlx::query_as("SELECT count(*), min(received_at) FROM events")
            .fetch_one(&mut *tx)
            .await?;
    counts.events = events;
    counts.oldest_event_at = oldest;
    // Each endpoint's newest attempted delivery, and that delivery's last attempt.
    let last = sqlx::query(
        "SELECT DISTINCT ON (d.subscription_id) d.subscription_id, a.status_code, a.at \
         FROM deliveries d JOIN attempts a ON a.delivery_id = d.id \
         WHERE d.attempts > 0 ORDER BY d.subscription_id, d.id DESC, a.n DESC",
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in last {
        let sub: String = r.try_get("subscription_id")?;
        if let Some(s) = by_sub.get_mut(&sub) {
            s.last_status_code = rows::status_code(&r, "status_code")?;
            s.last_attempt_at = Some(r.try_get("at")?);
        }
    }
    tx.commit().await?;
    let mut stats: Vec<_> = by_sub.into_values().collect();
    stats.sort_by(|a, b| a.subscription_id.cmp(&b.subscription_id));
    Ok((counts, stats))
}

pub async fn list_events(pool: &PgPool, f: &EventFilter) -> Result<Vec<EventRow>> {
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "SELECT e.seq, e.id, e.type, e.location_id, e.timestamp, e.received_at FROM events e WHERE true",
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
            .push(" OR e.type LIKE ")
            .push_bind(pattern)
            .push(")");
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
        delivery_filter(&mut q, f);
        q.push(")");
    }
    q.push(" ORDER BY e.seq DESC LIMIT ")
        .push_bind(i64::from(f.limit));
    let mut events: Vec<EventRow> = q
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(EventRow {
                seq: r.try_get("seq")?,
                id: r.try_get("id")?,
                event_type: r.try_get("type")?,
                location_id: r.try_get("location_id")?,
                timestamp: r.try_get("timestamp")?,
                received_at: r.try_get("received_at")?,
                deliveries: Vec::new(),
            })
        })
        .collect::<Result<_>>()?;
    let index: HashMap<i64, usize> = events.iter().enumerate().map(|(i, e)| (e.seq, i)).collect();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "SELECT d.id, d.event_seq, d.subscription_id, d.status FROM deliveries d WHERE d.event_seq = ANY(",
    );
    q.push_bind(seqs).push(")");
    delivery_filter(&mut q, f);
    q.push(" ORDER BY d.id");
    for r in q.build().fetch_all(pool).await? {
        let seq: i64 = r.try_get("event_seq")?;
        if let Some(&i) = index.get(&seq) {
            events[i].deliveries.push(DeliveryBrief {
                id: r.try_get("id")?,
                subscription_id: r.try_get("subscription_id")?,
                status: rows::status(&r, "status")?,
            });
        }
    }
    Ok(events)
}

fn delivery_filter(q: &mut sqlx::QueryBuilder<sqlx::Postgres>, f: &EventFilter) {
    if let Some(s) = f.status {
        q.push(" AND d.status = ").push_bind(s.as_str().to_string());
    }
    if let Some(sub) = &f.subscription_id {
        q.push(" AND d.subscription_id = ").push_bind(sub.clone());
    }
}

pub async fn event_detail(pool: &PgPool, id: &str) -> Result<Option<EventDetail>> {
    let Some(r) =
        sqlx::query("SELECT seq, id, type, location_id, timestamp, data FROM events WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
    else {
        return Ok(None);
    };
    let seq: i64 = r.try_get("seq")?;
    let event = rows::event(&r)?;
    let mut deliveries = sqlx::query(
        "SELECT d.id, d.subscription_id, s.url, d.status, d.next_at, d.superseded_by, d.body_shape, \
           b.body, d.created_at \
         FROM deliveries d LEFT JOIN subscriptions s ON s.id = d.subscription_id \
         LEFT JOIN delivery_bodies db ON db.delivery_id = d.id \
         LEFT JOIN bodies b ON b.id = db.body_id \
         WHERE d.event_seq = $1 ORDER BY d.id",
    )
    .bind(seq)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        Ok(DeliveryDetail {
            id: r.try_get("id")?,
            subscription_id: r.try_get("subscription_id")?,
            url: r.try_get("url")?,
            status: rows::status(r, "status")?,
            next_at: r.try_get("next_at")?,
            superseded_by: r.try_get("superseded_by")?,
            body: sent_body(r.try_get("body_shape")?, r.try_get("body")?, &event),
            created_at: r.try_get("created_at")?,
            attempts: Vec::new(),
        })
    })
    .collect::<Result<Vec<_>>>()?;
    let attempts = sqlx::query(
        "SELECT a.* FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
         WHERE d.event_seq = $1 ORDER BY a.delivery_id, a.n",
    )
    .bind(seq)
    .fetch_all(pool)
    .await?;
    for r in attempts {
        let delivery_id: i64 = r.try_get("delivery_id")?;
        if let Some(d) = deliveries.iter_mut().find(|d| d.id == delivery_id) {
            d.attempts.push(rows::attempt(&r)?);
        }
    }
    Ok(Some(EventDetail { event, deliveries }))
}

/// Events by sequence number, for claimed deliveries.
pub async fn events_by_seq(pool: &PgPool, seqs: &[i64]) -> Result<HashMap<i64, Arc<Event>>> {
    let rows = sqlx::query(
        "SELECT seq, id, type, location_id, timestamp, data FROM events WHERE seq = ANY($1)",
    )
    .bind(seqs)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("seq")?, Arc::new(rows::event(r)?))))
        .collect()
}

/// The first bodies of deliveries attempted before, by delivery id, for their next attempt.
pub async fn bodies(pool: &PgPool, wanted: &[(i64, Arc<Event>)]) -> Result<HashMap<i64, Vec<u8>>> {
    let ids: Vec<i64> = wanted.iter().map(|(id, _)| *id).collect();
    let rows = sqlx::query(
        "SELECT d.id, d.body_shape, b.body FROM deliveries d \
         LEFT JOIN delivery_bodies db ON db.delivery_id = d.id \
         LEFT JOIN bodies b ON b.id = db.body_id WHERE d.id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let events: HashMap<i64, &Arc<Event>> = wanted.iter().map(|(id, e)| (*id, e)).collect();
    let mut out = HashMap::new();
    for r in rows {
        let id: i64 = r.try_get("id")?;
        let Some(event) = events.get(&id) else {
            continue;
        };
        if let Some(b) = sent_body(r.try_get("body_shape")?, r.try_get("body")?, event) {
            out.insert(id, b);
        }
    }
    Ok(out)
}

fn sent_body(shape: Option<String>, bytes: Option<Vec<u8>>, event: &Event) -> Option<Vec<u8>> {
    SentBody::from_kept(shape.as_deref(), bytes)?.into_bytes(event)
}

/// When the earliest delivery of an active, circuit-closed endpoint is due: a waiting
/// one's time, or a lease's expiry (a stopped worker's deliveries come back then).
pub async fn next_due(pool: &PgPool) -> Result<Option<Millis>> {
    Ok(sqlx::query_scalar(
        "SELECT min(t) FROM ( \
           SELECT (SELECT min(d.next_at) FROM deliveries d \
                   WHERE d.subscription_id = s.id AND d.status IN ('pending', 'retrying') \
                     AND d.lease_until IS NULL) AS t \
           FROM subscriptions s WHERE s.state = 'active' AND s.circuit = 'closed' \
           UNION ALL \
           SELECT min(lease_until) FROM deliveries WHERE lease_until IS NOT NULL) AS due",
    )
    .fetch_one(pool)
    .await?)
}

/// Each subscription's waiting deliveries and when the oldest of them was made.
pub async fn backlogs(c: &mut PgConnection) -> Result<Vec<crate::ops::Backlog>> {
    let rows = sqlx::query(
        "SELECT s.id, count(d.id) AS waiting, min(d.created_at) AS oldest \
         FROM subscriptions s LEFT JOIN deliveries d \
           ON d.subscription_id = s.id AND d.status IN ('pending', 'retrying') \
         GROUP BY s.id",
    )
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(crate::ops::Backlog {
                subscription_id: r.try_get("id")?,
                waiting: r.try_get("waiting")?,
                oldest_waiting_at: r.try_get("oldest")?,
            })
        })
        .collect()
}

pub async fn export(
    pool: &PgPool,
    f: &ExportFilter,
    after: i64,
    limit: u32,
) -> Result<Vec<ExportedDelivery>> {
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "SELECT d.id AS delivery_id, d.subscription_id, d.status, d.created_at, d.updated_at, \
           e.id, e.type, e.location_id, e.timestamp, e.data \
         FROM deliveries d JOIN events e ON e.seq = d.event_seq \
         WHERE d.superseded_by IS NULL AND d.id > ",
    );
    q.push_bind(after);
    if let Some(st) = f.status {
        q.push(" AND d.status = ")
            .push_bind(st.as_str().to_string());
    }
    if let Some(sub) = &f.subscription_id {
        q.push(" AND d.subscription_id = ").push_bind(sub.clone());
    }
    if let Some(t) = f.since {
        q.push(" AND d.updated_at >= ").push_bind(t);
    }
    if let Some(t) = f.until {
        q.push(" AND d.updated_at < ").push_bind(t);
    }
    q.push(" ORDER BY d.id LIMIT ").push_bind(i64::from(limit));
    let mut out: Vec<ExportedDelivery> = q
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ExportedDelivery {
                delivery_id: r.try_get("delivery_id")?,
                subscription_id: r.try_get("subscription_id")?,
                status: rows::status(r, "status")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
                event: rows::event(r)?,
                attempts: Vec::new(),
            })
        })
        .collect::<Result<_>>()?;
    let ids: Vec<i64> = out.iter().map(|d| d.delivery_id).collect();
    let attempts =
        sqlx::query("SELECT * FROM attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, n")
            .bind(&ids)
            .fetch_all(pool)
            .await?;
    let index: HashMap<i64, usize> = out
        .iter()
        .enumerate()
        .map(|(i, d)| (d.delivery_id, i))
        .collect();
    for r in attempts {
        let id: i64 = r.try_get("delivery_id")?;
        if let Some(&i) = index.get(&id) {
            out[i].attempts.push(rows::attempt(&r)?);
        }
    }
    Ok(out)
}

/// Endpoints in trouble since `since` (see [`crate::store::Store::incident`]).
pub async fn incident(
    pool: &PgPool,
    since: Millis,
) -> Result<Vec<crate::incident::EndpointIncident>> {
    use crate::incident::EndpointIncident;
    let mut c = pool.acquire().await?;
    let mut failures: HashMap<String, Vec<(String, i64, Millis, Millis)>> = HashMap::new();
    let rows = sqlx::query(
        "SELECT d.subscription_id, a.error_class, a.status_code, count(*) AS n, min(a.at) AS first, \
           max(a.at) AS last \
         FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
         WHERE a.at >= $1 AND a.error_class IS NOT NULL \
         GROUP BY d.subscription_id, a.error_class, a.status_code",
    )
    .bind(since)
    .fetch_all(&mut *c)
    .await?;
    for r in rows {
        let class: String = r.try_get("error_class")?;
        let kind = match rows::status_code(&r, "status_code")? {
            Some(code) if class == "status" => format!("status {code}"),
            _ => class,
        };
        failures
            .entry(r.try_get("subscription_id")?)
            .or_default()
            .push((
                kind,
                r.try_get("n")?,
                r.try_get("first")?,
                r.try_get("last")?,
            ));
    }
    let dead_since: HashMap<String, i64> = sqlx::query_as(
        "SELECT subscription_id, count(*) FROM deliveries \
         WHERE status = 'dead' AND updated_at >= $1 AND superseded_by IS NULL GROUP BY 1",
    )
    .bind(since)
    .fetch_all(&mut *c)
    .await?
    .into_iter()
    .collect();
    let alerts: Vec<(String, String)> =
        sqlx::query_as("SELECT subscription_id, kind FROM ops_alerts ORDER BY raised_at")
            .fetch_all(&mut *c)
            .await?;
    let backlogs: HashMap<String, crate::ops::Backlog> = backlogs(&mut c)
        .await?
        .into_iter()
        .map(|b| (b.subscription_id.clone(), b))
        .collect();
    let mut out = Vec::new();
    for sub in subscriptions(&mut c).await? {
        let alerts: Vec<String> = alerts
            .iter()
            .filter(|(id, _)| *id == sub.id)
            .map(|(_, k)| k.clone())
            .collect();
        let mut errors = failures.remove(&sub.id).unwrap_or_default();
        if errors.is_empty()
            && !sub.circuit_open
            && sub.state != SubState::Disabled
            && sub.consecutive_failures == 0
            && !dead_since.contains_key(&sub.id)
            && alerts.is_empty()
        {
            continue;
        }
        errors.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let first_failure_at = errors.iter().map(|e| e.2).min();
        let last_failure_at = errors.iter().map(|e| e.3).max();
        let last_success_at: Option<Millis> = sqlx::query_scalar(
            "SELECT max(at) FROM attempts WHERE delivery_id = \
               (SELECT max(id) FROM deliveries WHERE subscription_id = $1 AND status = 'delivered') \
               AND error_class IS NULL",
        )
        .bind(&sub.id)
        .fetch_one(&mut *c)
        .await?;
        let failing_since: Option<Millis> =
            match (last_failure_at, last_success_at) {
                (Some(f), Some(s)) if s >= f => None,
                (Some(_), s) => sqlx::query_scalar(
                    "SELECT min(a.at) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
                     WHERE a.at >= $1 AND a.at > $2 AND a.error_class IS NOT NULL \
                       AND d.subscription_id = $3",
                )
                .bind(since)
                .bind(s.unwrap_or(Millis::MIN))
                .bind(&sub.id)
                .fetch_one(&mut *c)
                .await?,
                (None, _) => None,
            };
        let locations: Vec<Option<String>> = sqlx::query_scalar(
            "SELECT DISTINCT e.location_id FROM attempts a \
             JOIN deliveries d ON d.id = a.delivery_id JOIN events e ON e.seq = d.event_seq \
             WHERE a.at >= $1 AND a.error_class IS NOT NULL AND d.subscription_id = $2 \
             ORDER BY 1 LIMIT 50",
        )
        .bind(since)
        .bind(&sub.id)
        .fetch_all(&mut *c)
        .await?;
        let dead: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM deliveries \
             WHERE subscription_id = $1 AND status = 'dead' AND superseded_by IS NULL",
        )
        .bind(&sub.id)
        .fetch_one(&mut *c)
        .await?;
        let backlog = backlogs.get(&sub.id);
        out.push(EndpointIncident {
            subscription_id: sub.id.clone(),
            name: sub.name.clone(),
            url: sub.url.clone(),
            location_id: sub.location_id.clone(),
            state: sub.state,
            circuit_open: sub.circuit_open,
            circuit_changed_at: sub.circuit_changed_at,
            consecutive_failures: sub.consecutive_failures,
            first_failure_at,
            failing_since,
            last_failure_at,
            last_success_at,
            errors: errors.into_iter().map(|(k, n, _, _)| (k, n)).collect(),
            waiting: backlog.map_or(0, |b| b.waiting),
            oldest_waiting_at: backlog.and_then(|b| b.oldest_waiting_at),
            dead,
            locations,
            alerts,
            actions: Vec::new(),
        });
    }
    out.sort_by_key(|e| (!e.is_current(), e.started_at().unwrap_or(Millis::MAX)));
    Ok(out)
}

pub async fn subscription_log(pool: &PgPool, id: &str, limit: u32) -> Result<Vec<LogEntry>> {
    sqlx::query(
        "SELECT at, change, reason FROM subscription_log WHERE subscription_id = $1 \
         ORDER BY at DESC, ctid DESC LIMIT $2",
    )
    .bind(id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        Ok(LogEntry {
            at: r.try_get("at")?,
            change: r.try_get("change")?,
            reason: r.try_get("reason")?,
        })
    })
    .collect()
}

pub async fn audit_log(pool: &PgPool, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
    use crate::audit::{Actor, ActorKind};
    sqlx::query(
        "SELECT * FROM audit WHERE at >= $1 AND ($2::text IS NULL OR subscription_id = $2) \
         ORDER BY at DESC, id DESC LIMIT $3",
    )
    .bind(f.since.unwrap_or(i64::MIN))
    .bind(&f.subscription_id)
    .bind(i64::from(f.limit))
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        let kind: String = r.try_get("actor_kind")?;
        Ok(AuditEntry {
            id: r.try_get("id")?,
            at: r.try_get("at")?,
            actor: Actor {
                kind: ActorKind::parse(&kind)
                    .ok_or_else(|| anyhow::anyhow!("unknown actor kind {kind:?}"))?,
                name: r.try_get("actor")?,
                attached: r.try_get("attached")?,
            },
            action: r.try_get("action")?,
            subscription_id: r.try_get("subscription_id")?,
            event_id: r.try_get("event_id")?,
            filter: r.try_get("filter")?,
            count: r.try_get("count")?,
            ok: r.try_get("ok")?,
            detail: r.try_get("detail")?,
        })
    })
    .collect()
}

pub async fn retry_queue(pool: &PgPool, limit: u32) -> Result<Vec<RetryItem>> {
    sqlx::query(
        "SELECT d.id, e.id AS event_id, e.type, d.subscription_id, d.attempts, d.probes, d.next_at, \
                a.error_class, a.error, a.status_code \
         FROM deliveries d JOIN events e ON e.seq = d.event_seq \
         LEFT JOIN attempts a ON a.delivery_id = d.id AND a.n = d.attempts \
         WHERE d.status = 'retrying' ORDER BY d.next_at, d.id LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        Ok(RetryItem {
            delivery_id: r.try_get("id")?,
            event_id: r.try_get("event_id")?,
            event_type: r.try_get("type")?,
            subscription_id: r.try_get("subscription_id")?,
            attempts: rows::count(r, "attempts")?,
            probes: rows::count(r, "probes")?,
            next_at: r.try_get("next_at")?,
            last_error_class: rows::error_class(r, "error_class")?,
            last_error: r.try_get("error")?,
            last_status_code: rows::status_code(r, "status_code")?,
        })
    })
    .collect()
}

pub async fn dead_letters(pool: &PgPool, limit: u32) -> Result<Vec<DeadItem>> {
    sqlx::query(
        "SELECT d.id, e.id AS event_id, e.type, d.subscription_id, d.attempts, \
                a.at, a.error_class, a.error, a.status_code \
         FROM deliveries d JOIN events e ON e.seq = d.event_seq \
         LEFT JOIN attempts a ON a.delivery_id = d.id AND a.n = d.attempts \
         WHERE d.status = 'dead' AND d.superseded_by IS NULL \
         ORDER BY d.subscription_id, a.error_class NULLS FIRST, a.status_code NULLS FIRST, \
           a.at DESC, d.id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        let at: Option<i64> = r.try_get("at")?;
        Ok(DeadItem {
            delivery_id: r.try_get("id")?,
            event_id: r.try_get("event_id")?,
            event_type: r.try_get("type")?,
            subscription_id: r.try_get("subscription_id")?,
            attempts: rows::count(r, "attempts")?,
            died_at: at.unwrap_or(0),
            error_class: rows::error_class(r, "error_class")?,
            error: r.try_get("error")?,
            status_code: rows::status_code(r, "status_code")?,
        })
    })
    .collect()
}

pub async fn attempt_samples(
    pool: &PgPool,
    since: Millis,
    limit: u32,
) -> Result<HashMap<String, Vec<AttemptSample>>> {
    let rows = sqlx::query(
        "SELECT d.subscription_id, a.at, a.latency_ms, a.error_class \
         FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
         WHERE a.at >= $1 ORDER BY a.at DESC LIMIT $2",
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

fn token(r: &PgRow) -> Result<ApiToken> {
    let scopes: String = r.try_get("scopes")?;
    Ok(ApiToken {
        id: r.try_get("id")?,
        scopes: serde_json::from_str(&scopes)?,
        location_id: r.try_get("location_id")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

pub async fn tokens(pool: &PgPool, hash: Option<&str>) -> Result<Vec<ApiToken>> {
    let rows = match hash {
        Some(h) => {
            sqlx::query(
                "SELECT id, scopes, location_id, created_at, revoked_at FROM tokens \
                 WHERE hash = $1 AND revoked_at IS NULL",
            )
            .bind(h)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query(
                "SELECT id, scopes, location_id, created_at, revoked_at FROM tokens ORDER BY created_at",
            )
            .fetch_all(pool)
            .await?
        }
    };
    rows.iter().map(token).collect()
}

fn inbound(r: &PgRow) -> Result<Inbound> {
    let map: String = r.try_get("map")?;
    Ok(Inbound {
        id: r.try_get("id")?,
        event_type: r.try_get("type")?,
        location_id: r.try_get("location_id")?,
        map: serde_json::from_str(&map)?,
        secret: r.try_get("secret")?,
        created_at: r.try_get("created_at")?,
    })
}

pub async fn inbounds(pool: &PgPool, hash: Option<&str>) -> Result<Vec<Inbound>> {
    let rows = match hash {
        Some(h) => {
            sqlx::query(
                "SELECT id, type, location_id, map, secret, created_at FROM inbound WHERE hash = $1",
            )
            .bind(h)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query(
                "SELECT id, type, location_id, map, secret, created_at FROM inbound ORDER BY created_at",
            )
            .fetch_all(pool)
            .await?
        }
    };
    rows.iter().map(inbound).collect()
}
