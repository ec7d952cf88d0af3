//! `hookctl emit`: publish one event, or many from NDJSON.

use super::args::EmitArgs;
use super::output::print_json;
use super::{Ctx, Exit};
use crate::store::{NewEvent, Published, Store};
use crate::{catalog, ids, model};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use std::io::BufRead;

/// Events per commit when publishing a stream.
const BATCH: usize = 500;

fn read_data(arg: &str) -> Result<Value> {
    let text = if let Some(path) = arg.strip_prefix('@') {
        std::fs::read_to_string(path).with_context(|| format!("--data @{path}"))?
    } else {
        arg.to_string()
    };
    let v: Value =
        serde_json::from_str(&text).map_err(|e| anyhow!("--data is not valid JSON: {e}"))?;
    if !v.is_object() {
        bail!("--data must be a JSON object (the event's fields)");
    }
    Ok(v)
}

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

fn parse_line(line: &str, n: usize) -> Result<NewEvent> {
    let v: Value = serde_json::from_str(line).map_err(|e| anyhow!("line {n}: not JSON: {e}"))?;
    let t = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("line {n}: no \"type\""))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let timestamp = match v.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(t)) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| anyhow!("line {n}: timestamp: {e}"))?
                .timestamp_millis(),
        ),
        Some(_) => bail!("line {n}: timestamp must be RFC 3339 text or epoch milliseconds"),
    };
    new_event(
        t,
        s("locationId"),
        s("id"),
        timestamp,
        v.get("data").cloned(),
    )
    .map_err(|e| anyhow!("line {n}: {e}"))
}

pub async fn run(ctx: &Ctx, a: EmitArgs) -> Result<Exit> {
    if let Some(src) = &a.ndjson {
        return run_ndjson(ctx, src).await;
    }
    let data = a.data.as_deref().map(read_data).transpose()?;
    let t = a.event_type.as_deref().unwrap_or_default();
    let event = new_event(t, a.location, a.id, None, data)?;
    let store = ctx.open_store().await?;
    let published = store.publish(vec![event.clone()]).await?;
    let p = published
        .first()
        .ok_or_else(|| anyhow!("the store acknowledged nothing"))?;
    if ctx.json {
        print_json(&serde_json::to_value(p)?)?;
    } else if p.duplicate {
        println!(
            "{} was already published: accepted once, nothing new sent",
            p.id
        );
    } else {
        println!(
            "{} {} → {} deliveries",
            p.id, event.event_type, p.deliveries
        );
    }
    Ok(0)
}

async fn run_ndjson(ctx: &Ctx, src: &str) -> Result<Exit> {
    let reader: Box<dyn BufRead> = if src == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(src).with_context(|| format!("--ndjson {src}"))?,
        ))
    };
    // Every line is checked before anything is stored: bad input stores nothing.
    let mut events = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading {src}"))?;
        if line.trim().is_empty() {
            continue;
        }
        events.push(parse_line(&line, i + 1)?);
    }
    let store = ctx.open_store().await?;
    let mut all: Vec<Published> = Vec::with_capacity(events.len());
    for chunk in events.chunks(BATCH) {
        all.extend(store.publish(chunk.to_vec()).await?);
    }
    let fresh = all.iter().filter(|p| !p.duplicate).count();
    let deliveries: usize = all.iter().map(|p| p.deliveries).sum();
    if ctx.json {
        print_json(&serde_json::json!({
            "published": fresh,
            "duplicates": all.len() - fresh,
            "deliveries": deliveries,
        }))?;
    } else {
        println!(
            "published {fresh} events ({} duplicates) → {deliveries} deliveries",
            all.len() - fresh
        );
    }
    Ok(0)
}
