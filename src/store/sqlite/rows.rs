//! Row ⇄ model conversions shared by the writer and the readers.

use crate::model::*;
use anyhow::{Context, Result};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

pub const SUBSCRIPTION_COLUMNS: &str = "id, name, url, events, location_id, secret, method, headers, format, payload, template, retry_schedule, timeout_ms, rate_per_sec, signature_scheme, signature_header, state, state_reason, previous_secret, previous_secret_until, consecutive_failures, circuit, circuit_changed_at, created_at, updated_at";

fn parse<T: std::str::FromStr<Err = String>>(row: &SqliteRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    s.parse()
        .map_err(|e: String| anyhow::anyhow!("column {col}: {e}"))
}

pub fn subscription(row: &SqliteRow) -> Result<Subscription> {
    let events: Option<String> = row.try_get("events")?;
    let headers: String = row.try_get("headers")?;
    let schedule: String = row.try_get("retry_schedule")?;
    let timeout: i64 = row.try_get("timeout_ms")?;
    Ok(Subscription {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        url: row.try_get("url")?,
        events: events
            .map(|e| serde_json::from_str(&e))
            .transpose()
            .context("column events")?,
        location_id: row.try_get("location_id")?,
        secret: row.try_get("secret")?,
        method: parse(row, "method")?,
        headers: serde_json::from_str(&headers).context("column headers")?,
        format: parse(row, "format")?,
        payload: parse(row, "payload")?,
        template: row.try_get("template")?,
        retry_schedule_ms: serde_json::from_str(&schedule).context("column retry_schedule")?,
        timeout_ms: timeout.max(0) as u64,
        rate_per_sec: row.try_get("rate_per_sec")?,
        signature_scheme: parse(row, "signature_scheme")?,
        signature_header: row.try_get("signature_header")?,
        state: parse(row, "state")?,
        state_reason: row.try_get("state_reason")?,
        previous_secret: row.try_get("previous_secret")?,
        previous_secret_until: row.try_get("previous_secret_until")?,
        consecutive_failures: {
            let n: i64 = row.try_get("consecutive_failures")?;
            n.max(0) as u32
        },
        circuit_open: {
            let c: String = row.try_get("circuit")?;
            c == "open"
        },
        circuit_changed_at: row.try_get("circuit_changed_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub fn event(row: &SqliteRow) -> Result<Event> {
    let data: String = row.try_get("data")?;
    Ok(Event {
        id: row.try_get("id")?,
        event_type: row.try_get("type")?,
        location_id: row.try_get("location_id")?,
        timestamp: row.try_get("timestamp")?,
        data: serde_json::from_str(&data).context("column data")?,
    })
}

pub fn headers_to_json(h: &[(String, String)]) -> String {
    serde_json::to_string(h).unwrap_or_else(|_| "[]".to_string())
}

fn headers_from_json(s: Option<String>) -> Vec<(String, String)> {
    s.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

pub fn attempt(row: &SqliteRow) -> Result<Attempt> {
    let code: Option<i64> = row.try_get("status_code")?;
    let class: Option<String> = row.try_get("error_class")?;
    let latency: i64 = row.try_get("latency_ms")?;
    let n: i64 = row.try_get("n")?;
    Ok(Attempt {
        n: n as u32,
        at: row.try_get("at")?,
        status_code: code.and_then(|c| u16::try_from(c).ok()),
        error_class: class
            .map(|c| c.parse())
            .transpose()
            .map_err(anyhow::Error::msg)?,
        error: row.try_get("error")?,
        latency_ms: latency.max(0) as u64,
        request_headers: headers_from_json(row.try_get("request_headers")?),
        response_headers: headers_from_json(row.try_get("response_headers")?),
        response_body: row.try_get("response_body")?,
    })
}
