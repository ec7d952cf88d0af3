//! Turning what producers send into events: the CLI, the API and inbound webhooks all go
//! through here, so they accept and refuse the same things.

use crate::store::NewEvent;
use crate::{catalog, ids, model};
use anyhow::{Result, anyhow, bail};
use serde_json::Value;

/// The range of RFC 3339 timestamps, from the year 0 to the year 9999, with a day either
/// side for their UTC offsets (epoch milliseconds).
pub const TIMESTAMP_MIN: i64 = -62_167_305_600_000;
pub const TIMESTAMP_MAX: i64 = 253_402_387_199_999;

/// Builds an event from a producer's fields, checking what a producer can get wrong.
pub fn new_event(
    event_type: &str,
    location: Option<String>,
    id: Option<String>,
    timestamp: Option<i64>,
    data: Option<Value>,
) -> Result<NewEvent> {
    let canon = catalog::resolve(event_type)?;
    if crate::ops::is_operational(canon) {
        bail!("{canon} is an operational event type: hookctl emits those itself");
    }
    let data = match data {
        Some(d) if d.is_object() => d,
        Some(_) => bail!("event data must be a JSON object"),
        None => catalog::sample(canon).unwrap_or_else(|| Value::Object(Default::default())),
    };
    if let Some(t) = timestamp
        && !(TIMESTAMP_MIN..=TIMESTAMP_MAX).contains(&t)
    {
        bail!("timestamp {t} is out of range (epoch milliseconds of the years 0 to 9999)");
    }
    let id = match id {
        Some(i) if !i.chars().any(|c| c.is_ascii_graphic()) => {
            bail!("event id has no visible character")
        }
        Some(i) if i.chars().count() > 200 => bail!("event id is longer than 200 characters"),
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
    // Text fields: a value of another kind is a mistake to report, not to ignore.
    let s = |k: &str| -> Result<Option<String>> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(v)) => Ok(Some(v.clone())),
            Some(_) => bail!("{k} must be text"),
        }
    };
    let timestamp = match obj.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_i64().ok_or_else(|| {
            anyhow!("timestamp {n} is out of range (epoch milliseconds of the years 0 to 9999)")
        })?),
        Some(Value::String(t)) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| anyhow!("timestamp: {e}"))?
                .timestamp_millis(),
        ),
        Some(_) => bail!("timestamp must be RFC 3339 text or epoch milliseconds"),
    };
    let (camel, snake) = (s("locationId")?, s("location_id")?);
    let location = camel.or(snake);
    new_event(t, location, s("id")?, timestamp, data)
}
