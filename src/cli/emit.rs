//! `hookctl emit`: publish one event, or many from NDJSON.

use super::args::EmitArgs;
use super::output::print_json;
use super::{Ctx, Exit};
use crate::ingest::{event_from_json, new_event};
use crate::store::{NewEvent, Published};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use std::io::BufRead;

/// Events per commit when publishing a stream.
const BATCH: usize = 500;
/// Parsed batches waiting for their commit: enough to keep the writer busy while the
/// reader parses, few enough that memory stays flat on any input.
const READ_AHEAD: usize = 4;

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

/// What a stream of lines has published so far.
#[derive(Default)]
struct Tally {
    lines: usize,
    fresh: usize,
    duplicates: usize,
    deliveries: usize,
}

impl Tally {
    fn add(&mut self, published: &[Published], lines: usize) {
        let fresh = published.iter().filter(|p| !p.duplicate).count();
        self.fresh += fresh;
        self.duplicates += published.len() - fresh;
        self.deliveries += published.iter().map(|p| p.deliveries).sum::<usize>();
        self.lines = lines;
    }
}

/// One batch of parsed lines, or the line that stopped the stream.
enum Batch {
    Events {
        events: Vec<NewEvent>,
        /// The number of the batch's last line.
        last_line: usize,
    },
    Bad(anyhow::Error),
}

/// Reads and parses on a thread of its own, a batch at a time, so that parsing the next
/// batch overlaps committing this one and memory holds a few batches whatever the size
/// of the input.
fn spawn_reader(
    reader: Box<dyn BufRead + Send>,
    src: String,
) -> tokio::sync::mpsc::Receiver<Batch> {
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    std::thread::spawn(move || {
        let mut events = Vec::with_capacity(BATCH);
        let mut last_line = 0;
        for (i, line) in reader.lines().enumerate() {
            let n = i + 1;
            let parsed = line
                .with_context(|| format!("line {n}: reading {src}"))
                .and_then(|l| {
                    if l.trim().is_empty() {
                        Ok(None)
                    } else {
                        parse_line(&l, n).map(Some)
                    }
                });
            match parsed {
                Ok(Some(e)) => events.push(e),
                Ok(None) => {}
                Err(e) => {
                    if !events.is_empty() {
                        let full = std::mem::take(&mut events);
                        if tx
                            .blocking_send(Batch::Events {
                                events: full,
                                last_line,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                    let _ = tx.blocking_send(Batch::Bad(e));
                    return;
                }
            }
            last_line = n;
            if events.len() == BATCH {
                let full = std::mem::replace(&mut events, Vec::with_capacity(BATCH));
                if tx
                    .blocking_send(Batch::Events {
                        events: full,
                        last_line,
                    })
                    .is_err()
                {
                    return;
                }
            }
        }
        if !events.is_empty() {
            let _ = tx.blocking_send(Batch::Events { events, last_line });
        }
    });
    rx
}

async fn run_ndjson(ctx: &Ctx, src: &str) -> Result<Exit> {
    let reader: Box<dyn BufRead + Send> = if src == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(src).with_context(|| format!("--ndjson {src}"))?,
        ))
    };
    let store = ctx.open_store().await?;
    let mut batches = spawn_reader(reader, src.to_string());
    let mut done = Tally::default();
    while let Some(batch) = batches.recv().await {
        match batch {
            Batch::Events { events, last_line } => {
                let published = store
                    .publish(events)
                    .await
                    .with_context(|| stopped_after(&done, src, "storing the next batch failed"))?;
                done.add(&published, last_line);
            }
            Batch::Bad(e) => {
                bail!(
                    "{e}; {}",
                    stopped_after(&done, src, "nothing from this line on was stored")
                );
            }
        }
    }
    if ctx.json {
        print_json(&serde_json::json!({
            "published": done.fresh,
            "duplicates": done.duplicates,
            "deliveries": done.deliveries,
        }))?;
    } else {
        println!(
            "published {} events ({} duplicates) → {} deliveries",
            done.fresh, done.duplicates, done.deliveries
        );
    }
    Ok(0)
}

/// Where a stream stopped, and how to go on without publishing anything twice.
fn stopped_after(done: &Tally, src: &str, what: &str) -> String {
    if done.lines == 0 {
        return format!("{what}; nothing before it was stored either");
    }
    let next = done.lines + 1;
    let file = if src == "-" { "FILE" } else { src };
    format!(
        "{what}; lines 1-{} are published ({} events, {} duplicates, {} deliveries): \
         resume from line {next} (tail -n +{next} {file} | hookctl emit --ndjson -)",
        done.lines, done.fresh, done.duplicates, done.deliveries,
    )
}
