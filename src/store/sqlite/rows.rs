//! Row ⇄ model conversions shared by the writer and the readers.

use crate::model::*;
use crate::store::header_text;
use anyhow::{Context, Result};
use rusqlite::Row;

pub const SUBSCRIPTION_COLUMNS: &str = "id, name, url, events, location_id, secret, method, headers, format, payload, template, retry_schedule, timeout_ms, rate_per_sec, signature_scheme, signature_header, state, state_reason, previous_secret, previous_secret_until, consecutive_failures, circuit, circuit_changed_at, created_at, updated_at";

fn parse<T: std::str::FromStr<Err = String>>(row: &Row<'_>, col: &str) -> Result<T> {
    let s: String = row.get(col)?;
    s.parse()
        .map_err(|e: String| anyhow::anyhow!("column {col}: {e}"))
}

pub fn subscription(row: &Row<'_>) -> Result<Subscription> {
    let events: Option<String> = row.get("events")?;
    let headers: String = row.get("headers")?;
    let schedule: String = row.get("retry_schedule")?;
    let timeout: i64 = row.get("timeout_ms")?;
    Ok(Subscription {
        id: row.get("id")?,
        name: row.get("name")?,
        url: row.get("url")?,
        events: events
            .map(|e| serde_json::from_str(&e))
            .transpose()
            .context("column events")?,
        location_id: row.get("location_id")?,
        secret: row.get("secret")?,
        method: parse(row, "method")?,
        headers: serde_json::from_str(&headers).context("column headers")?,
        format: parse(row, "format")?,
        payload: parse(row, "payload")?,
        template: row.get("template")?,
        retry_schedule_ms: serde_json::from_str(&schedule).context("column retry_schedule")?,
        timeout_ms: timeout.max(0) as u64,
        rate_per_sec: row.get("rate_per_sec")?,
        signature_scheme: parse(row, "signature_scheme")?,
        signature_header: row.get("signature_header")?,
        state: parse(row, "state")?,
        state_reason: row.get("state_reason")?,
        previous_secret: row.get("previous_secret")?,
        previous_secret_until: row.get("previous_secret_until")?,
        consecutive_failures: {
            let n: i64 = row.get("consecutive_failures")?;
            n.max(0) as u32
        },
        circuit_open: {
            let c: String = row.get("circuit")?;
            c == "open"
        },
        circuit_changed_at: row.get("circuit_changed_at")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

/// An event's columns but its data, which callers read as text and parse last.
pub struct EventFields {
    pub id: String,
    pub event_type: String,
    pub location_id: Option<String>,
    pub timestamp: Millis,
}

pub fn event_fields(row: &Row<'_>) -> rusqlite::Result<EventFields> {
    Ok(EventFields {
        id: row.get("id")?,
        event_type: row.get("type")?,
        location_id: row.get("location_id")?,
        timestamp: row.get("timestamp")?,
    })
}

pub fn event_from(f: EventFields, data: &str) -> Result<Event> {
    Ok(Event {
        id: f.id,
        event_type: f.event_type,
        location_id: f.location_id,
        timestamp: f.timestamp,
        data: EventData::stored(data),
    })
}

pub fn headers_to_json(h: &[(String, String)]) -> String {
    serde_json::to_string(h).unwrap_or_else(|_| "[]".to_string())
}

pub fn attempt(row: &Row<'_>) -> Result<Attempt> {
    let code: Option<i64> = row.get("status_code")?;
    let class: Option<String> = row.get("error_class")?;
    let latency: i64 = row.get("latency_ms")?;
    let n: i64 = row.get("n")?;
    Ok(Attempt {
        n: n as u32,
        at: row.get("at")?,
        status_code: code.and_then(|c| u16::try_from(c).ok()),
        error_class: class
            .map(|c| c.parse())
            .transpose()
            .map_err(anyhow::Error::msg)?,
        error: row.get("error")?,
        latency_ms: latency.max(0) as u64,
        request_headers: header_text::from_text(row.get("request_headers")?),
        response_headers: header_text::from_text(row.get("response_headers")?),
        response_body: row.get("response_body")?,
    })
}
