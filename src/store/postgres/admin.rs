//! Subscriptions and what belongs to them or to the API on PostgreSQL: settings, state and
//! history, custom values, tokens, inbound webhooks, the audit trail. Each function runs in
//! the caller's transaction.

use crate::audit::AuditEntry;
use crate::model::*;
use crate::store::{ApiToken, DeleteOutcome, Inbound};
use anyhow::{Result, anyhow};
use sqlx::PgConnection;

fn headers_json(h: &[(String, String)]) -> String {
    serde_json::to_string(h).unwrap_or_else(|_| "[]".to_string())
}

pub async fn log(c: &mut PgConnection, id: &str, change: &str, reason: Option<&str>) -> Result<()> {
    sqlx::query(
        "INSERT INTO subscription_log (subscription_id, at, change, reason) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(now_ms())
    .bind(change)
    .bind(reason)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub async fn add_subscription(c: &mut PgConnection, s: &Subscription) -> Result<()> {
    let events = s.events.as_ref().map(serde_json::to_string).transpose()?;
    sqlx::query(
        "INSERT INTO subscriptions (id, name, url, events, location_id, secret, method, \
         headers, format, payload, template, retry_schedule, timeout_ms, rate_per_sec, \
         signature_scheme, signature_header, state, created_at, updated_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)",
    )
    .bind(&s.id)
    .bind(&s.name)
    .bind(&s.url)
    .bind(events)
    .bind(&s.location_id)
    .bind(&s.secret)
    .bind(s.method.as_str())
    .bind(headers_json(&s.headers))
    .bind(s.format.as_str())
    .bind(s.payload.as_str())
    .bind(&s.template)
    .bind(serde_json::to_string(&s.retry_schedule_ms)?)
    .bind(i64::try_from(s.timeout_ms).unwrap_or(i64::MAX))
    .bind(s.rate_per_sec)
    .bind(s.signature_scheme.as_str())
    .bind(&s.signature_header)
    .bind(s.state.as_str())
    .bind(s.created_at)
    .bind(s.updated_at)
    .execute(&mut *c)
    .await
    .map_err(|e| match e.as_database_error().and_then(|d| d.code()) {
        Some(code) if code == "23505" => anyhow!("a subscription with id '{}' exists", s.id),
        _ => e.into(),
    })?;
    Ok(())
}

pub async fn update_subscription(c: &mut PgConnection, s: &Subscription) -> Result<()> {
    let events = s.events.as_ref().map(serde_json::to_string).transpose()?;
    let r = sqlx::query(
        "UPDATE subscriptions SET name = $1, url = $2, events = $3, location_id = $4, method = $5, \
         headers = $6, format = $7, payload = $8, template = $9, retry_schedule = $10, \
         timeout_ms = $11, rate_per_sec = $12, signature_scheme = $13, signature_header = $14, \
         updated_at = $15 WHERE id = $16",
    )
    .bind(&s.name)
    .bind(&s.url)
    .bind(events)
    .bind(&s.location_id)
    .bind(s.method.as_str())
    .bind(headers_json(&s.headers))
    .bind(s.format.as_str())
    .bind(s.payload.as_str())
    .bind(&s.template)
    .bind(serde_json::to_string(&s.retry_schedule_ms)?)
    .bind(i64::try_from(s.timeout_ms).unwrap_or(i64::MAX))
    .bind(s.rate_per_sec)
    .bind(s.signature_scheme.as_str())
    .bind(&s.signature_header)
    .bind(now_ms())
    .bind(&s.id)
    .execute(&mut *c)
    .await?;
    if r.rows_affected() == 0 {
        return Err(anyhow!("no subscription with id '{}'", s.id));
    }
    log(c, &s.id, "edited", Some("operator")).await
}

pub async fn set_state(c: &mut PgConnection, id: &str, state: SubState) -> Result<bool> {
    let before: Option<(String, String)> =
        sqlx::query_as("SELECT state, circuit FROM subscriptions WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *c)
            .await?;
    // Resuming also closes the circuit: the operator says the endpoint is back.
    let r = sqlx::query(
        "UPDATE subscriptions SET state = $1, state_reason = NULL, updated_at = $2, \
           consecutive_failures = CASE WHEN $1 = 'active' THEN 0 ELSE consecutive_failures END, \
           circuit = CASE WHEN $1 = 'active' THEN 'closed' ELSE circuit END \
         WHERE id = $3",
    )
    .bind(state.as_str())
    .bind(now_ms())
    .bind(id)
    .execute(&mut *c)
    .await?;
    let found = r.rows_affected() > 0;
    if found {
        log(c, id, state.as_str(), Some("operator")).await?;
    }
    if let Some((was, circuit)) = before {
        let news = crate::ops::on_state_change(id, &was, &circuit, state);
        super::operational::tell(c, &news, now_ms()).await?;
    }
    Ok(found)
}

pub async fn unfinished(c: &mut PgConnection, id: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM deliveries WHERE subscription_id = $1 AND status IN ('pending', 'retrying')",
    )
    .bind(id)
    .fetch_one(&mut *c)
    .await?)
}

/// Cancels a subscription's unfinished deliveries, at most `limit` of them (all without).
pub async fn cancel_unfinished(c: &mut PgConnection, id: &str, limit: Option<u32>) -> Result<u64> {
    let r = sqlx::query(
        "UPDATE deliveries SET status = 'cancelled', next_at = NULL, updated_at = $1 \
         WHERE id IN (SELECT id FROM deliveries WHERE subscription_id = $2 \
             AND status IN ('pending', 'retrying') LIMIT $3)",
    )
    .bind(now_ms())
    .bind(id)
    .bind(limit.map(i64::from))
    .execute(&mut *c)
    .await?;
    Ok(r.rows_affected())
}

pub async fn delete_subscription(
    c: &mut PgConnection,
    id: &str,
    force: bool,
    cancelled: i64,
) -> Result<DeleteOutcome> {
    let left = if force {
        cancel_unfinished(c, id, None).await? as i64
    } else {
        let left = unfinished(c, id).await?;
        if left > 0 {
            return Ok(DeleteOutcome {
                deleted: false,
                unfinished: left,
            });
        }
        0
    };
    let unfinished = cancelled + left;
    let r = sqlx::query("DELETE FROM subscriptions WHERE id = $1")
        .bind(id)
        .execute(&mut *c)
        .await?;
    let deleted = r.rows_affected() > 0;
    if deleted {
        let reason = format!("{unfinished} unfinished deliveries cancelled");
        log(c, id, "deleted", Some(&reason)).await?;
    }
    Ok(DeleteOutcome {
        deleted,
        unfinished,
    })
}

pub async fn rotate_secret(
    c: &mut PgConnection,
    id: &str,
    secret: &str,
    grace_until: Millis,
) -> Result<()> {
    let r = sqlx::query(
        "UPDATE subscriptions SET previous_secret = secret, previous_secret_until = $1, \
         secret = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(grace_until)
    .bind(secret)
    .bind(now_ms())
    .bind(id)
    .execute(&mut *c)
    .await?;
    if r.rows_affected() == 0 {
        return Err(anyhow!("no subscription with id '{id}'"));
    }
    let reason = format!("old secret valid until {}", rfc3339(grace_until));
    log(c, id, "secret rotated", Some(&reason)).await
}

pub async fn set_value(
    c: &mut PgConnection,
    name: &str,
    location: &str,
    value: Option<&str>,
) -> Result<bool> {
    let r = match value {
        Some(v) => {
            sqlx::query(
                "INSERT INTO custom_values (name, location_id, value, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name, location_id) \
                 DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(location)
            .bind(v)
            .bind(now_ms())
            .execute(&mut *c)
            .await?
        }
        None => {
            sqlx::query("DELETE FROM custom_values WHERE name = $1 AND location_id = $2")
                .bind(name)
                .bind(location)
                .execute(&mut *c)
                .await?
        }
    };
    Ok(r.rows_affected() > 0)
}

pub async fn add_token(c: &mut PgConnection, t: &ApiToken, hash: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO tokens (id, hash, scopes, location_id, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&t.id)
    .bind(hash)
    .bind(serde_json::to_string(&t.scopes)?)
    .bind(&t.location_id)
    .bind(t.created_at)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub async fn revoke_token(c: &mut PgConnection, id: &str) -> Result<bool> {
    let r = sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now_ms())
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(r.rows_affected() > 0)
}

pub async fn token_live(c: &mut PgConnection, id: &str) -> Result<bool> {
    // Shares the row with a revocation in progress: that one waits, or this sees it.
    let found: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM tokens WHERE id = $1 AND revoked_at IS NULL FOR SHARE")
            .bind(id)
            .fetch_optional(&mut *c)
            .await?;
    Ok(found.is_some())
}

pub async fn add_inbound(c: &mut PgConnection, i: &Inbound, hash: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO inbound (id, hash, type, location_id, map, secret, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&i.id)
    .bind(hash)
    .bind(&i.event_type)
    .bind(&i.location_id)
    .bind(serde_json::to_string(&i.map)?)
    .bind(&i.secret)
    .bind(i.created_at)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub async fn remove_inbound(c: &mut PgConnection, id: &str) -> Result<bool> {
    let r = sqlx::query("DELETE FROM inbound WHERE id = $1")
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(r.rows_affected() > 0)
}

pub async fn set_verify_token(c: &mut PgConnection, id: &str, token: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE subscriptions SET verify_token = $1 WHERE id = $2")
        .bind(token)
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

pub async fn insert_audit(c: &mut PgConnection, e: &AuditEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit (at, actor_kind, actor, attached, action, subscription_id, \
         event_id, filter, count, ok, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(e.at)
    .bind(e.actor.kind.as_str())
    .bind(&e.actor.name)
    .bind(e.actor.attached)
    .bind(&e.action)
    .bind(&e.subscription_id)
    .bind(&e.event_id)
    .bind(&e.filter)
    .bind(e.count)
    .bind(e.ok)
    .bind(&e.detail)
    .execute(&mut *c)
    .await?;
    Ok(())
}
