//! `hookctl emit`: publish one event, or many from NDJSON.

use super::args::EmitArgs;
use super::output::print_json;
use super::{Ctx, Exit};
use crate::ingest::{event_from_json, new_event};
use crate::store::{NewEvent, Published, Store};
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

fn parse_line(line: &str, n: usize) -> Result<NewEvent> {
    let v: Value = serde_json::from_str(line).map_err(|e| anyhow!("line {n}: not JSON: {e}"))?;
    event_from_json(v).map_err(|e| anyhow!("line {n}: {e}"))
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
