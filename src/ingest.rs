//! Turning what producers send into events: the CLI, the API and inbound webhooks all go
//! through here, so they accept and refuse the same things.

use crate::store::NewEvent;
use crate::{catalog, ids, model};
use anyhow::{Result, anyhow, bail};
use serde_json::Value;

/// Builds an event from a producer's fields, checking what a producer can get wrong.
pub fn new_event(
    event_type: &str,
    location: Option<String>,
    id: Option<String>,
    timestamp: Option<i64>,
    data: Option<Value>,
) -> Result<NewEvent> {
    let canon = catalog::resolve(event_type)?;
    let data = match data {
        Some(d) if d.is_object() => d,
        Some(_) => bail!("event data must be a JSON object"),
        None => catalog::sample(canon).unwrap_or_else(|| Value::Object(Default::default())),
    };
    let id = match id {
        Some(i) if i.trim().is_empty() => bail!("event id is empty"),
        Some(i) if i.len() > 200 => bail!("event id is longer than 200 characters"),
        Some(i) => i,
        None => ids::event_id(),
    };
    Ok(NewEvent {
        id,
        event_type: canon.to_string(),
        location_id: location,
        timestamp: timestamp.unwrap_or_else(model::now_ms),
        data,
        received_at: None,
    })
}

/// An event given as JSON: `{type, id?, locationId?, timestamp?, data?}`; `timestamp` is
/// RFC 3339 text or epoch milliseconds.
pub fn event_from_json(v: Value) -> Result<NewEvent> {
    // Taken by value: `data` moves into the event instead of being copied, since the API
    // runs this for every event it is sent.
    let Value::Object(mut obj) = v else {
        bail!("an event must be a JSON object");
    };
    let data = obj.remove("data");
    let t = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("no \"type\""))?;
    let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    let timestamp = match obj.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(t)) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| anyhow!("timestamp: {e}"))?
                .timestamp_millis(),
        ),
        Some(_) => bail!("timestamp must be RFC 3339 text or epoch milliseconds"),
    };
    new_event(
        t,
        s("locationId").or_else(|| s("location_id")),
        s("id"),
        timestamp,
        data,
    )
}
