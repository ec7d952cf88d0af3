//! Row ⇄ model conversions shared by the writer and the readers.

use crate::model::*;
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

/// An attempt's headers as stored: a line `name: value` each, as on the wire. Under load
/// the writer's cost follows the bytes it writes (the WAL, then the checkpoint), and
/// JSON's quotes and brackets were a sixth of these; a name in this form cannot start with
/// `[`, which tells it apart from JSON, kept for headers no line can hold exactly (and in
/// rows written before).
pub fn attempt_headers(h: &[(String, String)]) -> String {
    // Runs on the writer thread for every header of every attempt: each test folds over
    // every byte without an early exit, which the compiler turns into wide compares
    // (byte by byte with a branch each took twice as long: 135 against 70 ns for an
    // attempt's six headers, warm). Bytes, not chars: a two-char pattern decodes every
    // char.
    let fits = h.iter().all(|(k, v)| {
        let name_ok = k.bytes().fold(true, |ok, b| {
            ok & b.is_ascii_graphic() & (b != b':') & (b != b'[')
        });
        let one_line = !v
            .bytes()
            .fold(false, |bad, b| bad | (b == b'\r') | (b == b'\n'));
        !k.is_empty() && name_ok && one_line
    });
    if !fits {
        return headers_to_json(h);
    }
    let mut out = String::with_capacity(h.iter().map(|(k, v)| k.len() + v.len() + 3).sum());
    for (k, v) in h {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
    }
    out
}

fn attempt_headers_from(s: Option<String>) -> Vec<(String, String)> {
    match s {
        Some(s) if s.starts_with('[') => serde_json::from_str(&s).unwrap_or_default(),
        Some(s) => s
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        None => Vec::new(),
    }
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
        request_headers: attempt_headers_from(row.get("request_headers")?),
        response_headers: attempt_headers_from(row.get("response_headers")?),
        response_body: row.get("response_body")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn attempt_headers_read_back_as_they_were_sent() {
        let sent = h(&[
            ("content-type", "application/json"),
            ("x-wl-signature", "ab12"),
            ("authorization", "Bearer tok_…f00d"),
            ("x-empty", ""),
            ("x-spaced", "  a: b  "),
        ]);
        let stored = attempt_headers(&sent);
        assert!(!stored.starts_with('['), "{stored}");
        assert_eq!(attempt_headers_from(Some(stored)), sent);
        assert_eq!(attempt_headers_from(Some(String::new())), vec![]);
    }

    #[test]
    fn headers_no_line_can_hold_are_stored_as_json_and_old_rows_still_read() {
        for odd in [
            h(&[("x-a", "two\nlines")]),
            h(&[("x-a", "cr\r")]),
            h(&[("bad:name", "v")]),
            h(&[("[x", "v")]),
            h(&[("", "v")]),
        ] {
            let stored = attempt_headers(&odd);
            assert!(stored.starts_with('['), "{stored}");
            assert_eq!(attempt_headers_from(Some(stored)), odd);
        }
        let before = headers_to_json(&h(&[("date", "Tue, 25 Nov 2026 10:00:00 GMT")]));
        assert_eq!(
            attempt_headers_from(Some(before)),
            h(&[("date", "Tue, 25 Nov 2026 10:00:00 GMT")])
        );
    }
}
