//! Row ⇄ model conversions for PostgreSQL rows (the columns are SQLite's, by name).

use crate::model::*;
use crate::store::header_text;
use anyhow::{Context, Result, anyhow};
use sqlx::Row;
use sqlx::postgres::PgRow;

pub use crate::store::sqlite::SUBSCRIPTION_COLUMNS;

fn parse<T: std::str::FromStr<Err = String>>(row: &PgRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    s.parse().map_err(|e: String| anyhow!("column {col}: {e}"))
}

pub fn subscription(row: &PgRow) -> Result<Subscription> {
    let events: Option<String> = row.try_get("events")?;
    let headers: String = row.try_get("headers")?;
    let schedule: String = row.try_get("retry_schedule")?;
    let timeout: i64 = row.try_get("timeout_ms")?;
    let failures: i64 = row.try_get("consecutive_failures")?;
    let circuit: String = row.try_get("circuit")?;
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
        consecutive_failures: u32::try_from(failures.max(0)).unwrap_or(u32::MAX),
        circuit_open: circuit == "open",
        circuit_changed_at: row.try_get("circuit_changed_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// An event from `id, type, location_id, timestamp, data` columns.
pub fn event(row: &PgRow) -> Result<Event> {
    let data: String = row.try_get("data")?;
    Ok(Event {
        id: row.try_get("id")?,
        event_type: row.try_get("type")?,
        location_id: row.try_get("location_id")?,
        timestamp: row.try_get("timestamp")?,
        data: EventData::stored(&data),
    })
}

pub fn status(row: &PgRow, col: &str) -> Result<DeliveryStatus> {
    parse(row, col)
}

pub fn error_class(row: &PgRow, col: &str) -> Result<Option<ErrorClass>> {
    let c: Option<String> = row.try_get(col)?;
    c.map(|c| c.parse()).transpose().map_err(anyhow::Error::msg)
}

pub fn status_code(row: &PgRow, col: &str) -> Result<Option<u16>> {
    let c: Option<i64> = row.try_get(col)?;
    Ok(c.and_then(|c| u16::try_from(c).ok()))
}

pub fn count(row: &PgRow, col: &str) -> Result<u32> {
    let n: i64 = row.try_get(col)?;
    Ok(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
}

pub fn attempt(row: &PgRow) -> Result<Attempt> {
    let latency: i64 = row.try_get("latency_ms")?;
    Ok(Attempt {
        n: count(row, "n")?,
        at: row.try_get("at")?,
        status_code: status_code(row, "status_code")?,
        error_class: error_class(row, "error_class")?,
        error: row.try_get("error")?,
        latency_ms: latency.max(0) as u64,
        request_headers: header_text::from_text(row.try_get("request_headers")?),
        response_headers: header_text::from_text(row.try_get("response_headers")?),
        response_body: row.try_get("response_body")?,
    })
}
