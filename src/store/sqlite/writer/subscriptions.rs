//! Subscriptions and what belongs to them or to the API: their settings, state and
//! history, custom values, tokens, inbound webhooks.

use super::super::rows;
use super::*;
use anyhow::{Result, anyhow};
use rusqlite::{Connection, OptionalExtension, params};

pub(super) fn add_subscription(conn: &Connection, s: &Subscription) -> Result<()> {
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

pub(super) fn log(conn: &Connection, id: &str, change: &str, reason: Option<&str>) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO subscription_log (subscription_id, at, change, reason) VALUES (?, ?, ?, ?)",
    )?
    .execute(params![id, now_ms(), change, reason])?;
    Ok(())
}

pub(super) fn update_subscription(conn: &Connection, s: &Subscription) -> Result<()> {
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

pub(super) fn set_state(conn: &Connection, id: &str, state: SubState) -> Result<bool> {
    let before: Option<(String, String)> = conn
        .prepare_cached("SELECT state, circuit FROM subscriptions WHERE id = ?")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
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
    if let Some((was, circuit)) = before {
        let news = crate::ops::on_state_change(id, &was, &circuit, state);
        super::operational::tell(conn, &news, now_ms())?;
    }
    Ok(r > 0)
}

pub(super) fn delete_subscription(
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
pub(super) fn cancel_unfinished(conn: &Connection, id: &str, limit: Option<u32>) -> Result<u64> {
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

pub(super) fn rotate_secret(
    conn: &Connection,
    id: &str,
    secret: &str,
    grace_until: Millis,
) -> Result<()> {
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

pub(super) fn set_value(
    conn: &Connection,
    name: &str,
    location: &str,
    value: Option<&str>,
) -> Result<bool> {
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

pub(super) fn add_token(conn: &Connection, t: &ApiToken, hash: &str) -> Result<()> {
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

pub(super) fn revoke_token(conn: &Connection, id: &str) -> Result<bool> {
    let r = conn
        .prepare_cached("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")?
        .execute(params![now_ms(), id])?;
    Ok(r > 0)
}

pub(super) fn add_inbound(conn: &Connection, i: &Inbound, hash: &str) -> Result<()> {
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

pub(super) fn remove_inbound(conn: &Connection, id: &str) -> Result<bool> {
    let r = conn
        .prepare_cached("DELETE FROM inbound WHERE id = ?")?
        .execute(params![id])?;
    Ok(r > 0)
}

pub(super) fn set_verify_token(conn: &Connection, id: &str, token: Option<&str>) -> Result<()> {
    conn.prepare_cached("UPDATE subscriptions SET verify_token = ? WHERE id = ?")?
        .execute(params![token, id])?;
    Ok(())
}
