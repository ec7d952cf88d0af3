//! Attempt outcomes on PostgreSQL: the attempts, each delivery's next state, the first
//! body as kept, the counters, and endpoint health as `crate::health` decides it — in one
//! transaction per batch.

use crate::health;
use crate::model::{DeliveryStatus, now_ms};
use crate::store::{KeptHeaders, LATENCY_BUCKETS_MS, Outcome, SentBody, header_text};
use anyhow::Result;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;

/// Commits a batch of outcomes with the operational events they cause; returns the
/// health changes those tell of.
pub async fn record(
    pool: &PgPool,
    outcomes: &[Outcome],
    circuit_threshold: u32,
) -> Result<Vec<(String, crate::ops::News)>> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    insert_attempts(&mut tx, outcomes).await?;
    // One statement for every delivery of the batch. A delivery cancelled while in flight
    // keeps its final state; the attempt stays.
    let ids: Vec<i64> = outcomes.iter().map(|o| o.delivery_id).collect();
    let statuses: Vec<&str> = outcomes.iter().map(|o| o.status.as_str()).collect();
    let next: Vec<Option<i64>> = outcomes.iter().map(|o| o.next_at).collect();
    let attempts: Vec<i64> = outcomes.iter().map(|o| i64::from(o.attempt.n)).collect();
    let probes: Vec<i64> = outcomes.iter().map(|o| i64::from(o.probes)).collect();
    let shapes: Vec<Option<&str>> = outcomes
        .iter()
        .map(|o| match &o.body {
            Some(SentBody::Made(s)) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    let seqs: Vec<(i64, i64)> = sqlx::query_as(
        "UPDATE deliveries d SET \
           status = CASE WHEN d.status IN ('pending', 'retrying') THEN t.status ELSE d.status END, \
           next_at = CASE WHEN d.status IN ('pending', 'retrying') THEN t.next_at ELSE NULL END, \
           attempts = t.attempts, probes = t.probes, lease_until = NULL, lease_owner = NULL, \
           updated_at = $7, body_shape = coalesce(t.shape, d.body_shape) \
         FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[]) \
           AS t(id, status, next_at, attempts, probes, shape) \
         WHERE d.id = t.id RETURNING d.id, d.event_seq",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(&next)
    .bind(&attempts)
    .bind(&probes)
    .bind(&shapes)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let seq_of: HashMap<i64, i64> = seqs.into_iter().collect();
    for o in outcomes {
        let Some(SentBody::Bytes(b)) = &o.body else {
            continue;
        };
        let Some(&seq) = seq_of.get(&o.delivery_id) else {
            continue;
        };
        // Kept once per event and distinct bytes: a fan-out mostly sends the same.
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM bodies WHERE event_seq = $1 AND body = $2")
                .bind(seq)
                .bind(b)
                .fetch_optional(&mut *tx)
                .await?;
        let id = match found {
            Some(id) => id,
            None => {
                sqlx::query_scalar(
                    "INSERT INTO bodies (event_seq, body) VALUES ($1, $2) RETURNING id",
                )
                .bind(seq)
                .bind(b)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        sqlx::query(
            "INSERT INTO delivery_bodies (delivery_id, body_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(o.delivery_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    count_outcomes(&mut tx, outcomes).await?;
    let news = update_health(&mut tx, outcomes, circuit_threshold, now).await?;
    super::operational::tell(&mut tx, &news, now).await?;
    let deaths = crate::ops::deaths(outcomes);
    if !deaths.is_empty() {
        super::operational::dead_letters(&mut tx, &deaths, now).await?;
    }
    // Endpoint health that changed is read again by every engine at once.
    let channel = if news.is_empty() {
        super::workers::WORK
    } else {
        super::workers::CONFIG
    };
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(channel)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(news)
}

async fn insert_attempts(tx: &mut PgConnection, outcomes: &[Outcome]) -> Result<()> {
    let mut delivery = Vec::with_capacity(outcomes.len());
    let (mut n, mut at, mut code, mut class, mut error, mut latency) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let (mut request, mut response, mut body) = (Vec::new(), Vec::new(), Vec::new());
    for o in outcomes {
        let a = &o.attempt;
        let kept = match &o.kept_headers {
            Some(k) => k.clone(),
            None => KeptHeaders {
                request: header_text::to_text(&a.request_headers),
                response: header_text::response_text(&a.response_headers),
            },
        };
        delivery.push(o.delivery_id);
        n.push(i64::from(a.n));
        at.push(a.at);
        code.push(a.status_code.map(i64::from));
        class.push(a.error_class.map(|c| c.as_str()));
        error.push(a.error.clone());
        latency.push(i64::try_from(a.latency_ms).unwrap_or(i64::MAX));
        request.push(kept.request);
        response.push(kept.response);
        body.push(a.response_body.clone());
    }
    // The same attempt recorded again replaces the first record.
    sqlx::query(
        "INSERT INTO attempts (delivery_id, n, at, status_code, error_class, error, latency_ms, \
           request_headers, response_headers, response_body) \
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], \
           $6::text[], $7::bigint[], $8::text[], $9::text[], $10::bytea[]) \
         ON CONFLICT (delivery_id, n) DO UPDATE SET at = excluded.at, \
           status_code = excluded.status_code, error_class = excluded.error_class, \
           error = excluded.error, latency_ms = excluded.latency_ms, \
           request_headers = excluded.request_headers, \
           response_headers = excluded.response_headers, response_body = excluded.response_body",
    )
    .bind(&delivery)
    .bind(&n)
    .bind(&at)
    .bind(&code)
    .bind(&class)
    .bind(&error)
    .bind(&latency)
    .bind(&request)
    .bind(&response)
    .bind(&body)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Attempts, their latency histogram and final outcomes, for /metrics (the names the
/// SQLite backend bumps).
async fn count_outcomes(tx: &mut PgConnection, outcomes: &[Outcome]) -> Result<()> {
    let mut deltas: HashMap<String, i64> = HashMap::new();
    for o in outcomes {
        let a = &o.attempt;
        *deltas.entry("attempts".into()).or_default() += 1;
        *deltas.entry("latency_sum_ms".into()).or_default() +=
            i64::try_from(a.latency_ms).unwrap_or(i64::MAX);
        if let Some(class) = a.error_class {
            *deltas
                .entry(format!("attempts_failed_{}", class.as_str()))
                .or_default() += 1;
        }
        let bucket = match LATENCY_BUCKETS_MS.iter().find(|b| a.latency_ms <= **b) {
            Some(b) => format!("latency_bucket_{b}"),
            None => "latency_bucket_inf".into(),
        };
        *deltas.entry(bucket).or_default() += 1;
        match o.status {
            DeliveryStatus::Delivered => {
                *deltas.entry("deliveries_delivered".into()).or_default() += 1
            }
            DeliveryStatus::Dead => *deltas.entry("deliveries_dead".into()).or_default() += 1,
            _ => {}
        }
    }
    let deltas: Vec<(&str, i64)> = deltas.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    super::maintenance::bump(tx, &deltas).await
}

async fn log(tx: &mut PgConnection, sub: &str, change: &str, reason: &str, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO subscription_log (subscription_id, at, change, reason) VALUES ($1, $2, $3, $4)",
    )
    .bind(sub)
    .bind(now)
    .bind(change)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Applies the batch's endpoint health as `crate::health` summarises it.
async fn update_health(
    tx: &mut PgConnection,
    outcomes: &[Outcome],
    threshold: u32,
    now: i64,
) -> Result<Vec<(String, crate::ops::News)>> {
    use crate::ops::News;
    let mut news = Vec::new();
    // Endpoints' rows are locked in one order by every worker.
    let mut summaries = health::summarise(outcomes);
    summaries.sort_by(|a, b| a.subscription_id.cmp(&b.subscription_id));
    for h in summaries {
        let sub = h.subscription_id.as_str();
        // Locks the subscription's row: workers recording for one endpoint at once apply
        // their batches one after the other.
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT consecutive_failures, circuit FROM subscriptions WHERE id = $1 FOR UPDATE",
        )
        .bind(sub)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((failures, circuit)) = row else {
            continue;
        };
        if h.is_steady() && failures == 0 && circuit == "closed" {
            continue;
        }
        let failures = if h.succeeded {
            h.failures_since
        } else {
            failures + h.failures_since
        };
        sqlx::query("UPDATE subscriptions SET consecutive_failures = $1 WHERE id = $2")
            .bind(failures)
            .bind(sub)
            .execute(&mut *tx)
            .await?;
        let mut open = circuit == "open";
        if h.closes() && open {
            sqlx::query(
                "UPDATE subscriptions SET circuit = 'closed', circuit_changed_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(sub)
            .execute(&mut *tx)
            .await?;
            log(tx, sub, "circuit closed", health::CLOSED_REASON, now).await?;
            news.push((
                sub.to_string(),
                News::CircuitClosed {
                    reason: health::CLOSED_REASON.into(),
                },
            ));
            open = false;
        }
        if !open && failures >= health::opening_failures(threshold) {
            sqlx::query(
                "UPDATE subscriptions SET circuit = 'open', circuit_changed_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(sub)
            .execute(&mut *tx)
            .await?;
            log(tx, sub, "circuit opened", &h.open_reason(threshold), now).await?;
            news.push((
                sub.to_string(),
                News::CircuitOpened {
                    failures,
                    last_error: h.last_error.clone(),
                },
            ));
        }
        if h.gone {
            let r = sqlx::query(
                "UPDATE subscriptions SET state = 'disabled', state_reason = $1, updated_at = $2 \
                 WHERE id = $3 AND state != 'disabled'",
            )
            .bind(health::GONE_REASON)
            .bind(now)
            .bind(sub)
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() > 0 {
                log(tx, sub, "disabled", health::GONE_REASON, now).await?;
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
