//! Evidence out and back in: `hookctl event export` streams deliveries as JSON lines, and
//! `hookctl redeliver --from` sends exactly the pairs such a file lists.

use super::args::{ExportArgs, RedeliverArgs};
use super::output::print_json;
use super::{Ctx, Exit, subs};
use crate::audit::{Actor, AuditEntry, action};
use crate::model::{Attempt, now_ms, rfc3339};
use crate::store::{ExportFilter, ExportedDelivery, RedeliverTarget};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use std::io::{BufRead, Write};

/// Deliveries read per page: memory stays that of one page, however many there are.
const EXPORT_PAGE: u32 = 500;
/// Pairs sent to the store per call.
const REPLAY_STEP: usize = 1_000;
/// Response body characters an exported attempt keeps.
const EXCERPT: usize = 200;

pub async fn export(ctx: &Ctx, a: ExportArgs) -> Result<Exit> {
    let store = ctx.open_store().await?;
    let now = now_ms();
    let ago = |d| crate::model::before(now, d);
    let filter = ExportFilter {
        status: a.status.map(|s| s.model()),
        subscription_id: match &a.sub {
            Some(key) => Some(subs::find(store.as_ref(), key).await?.id),
            None => None,
        },
        since: a.since.map(ago),
        until: a.until.map(ago),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut after, mut n) = (0i64, 0u64);
    loop {
        let page = store.export(&filter, after, EXPORT_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.delivery_id;
        for d in &page {
            serde_json::to_writer(&mut out, &line(d))?;
            out.write_all(b"\n")?;
        }
        n += page.len() as u64;
        if page.len() < EXPORT_PAGE as usize {
            break;
        }
    }
    out.flush()?;
    drop(out);
    eprintln!("exported {n} deliveries");
    Ok(0)
}

/// One exported delivery: what a post-mortem needs, and what `redeliver --from` reads.
fn line(d: &ExportedDelivery) -> Value {
    json!({
        "event": {
            "id": d.event.id,
            "type": d.event.event_type,
            "location_id": d.event.location_id,
            "timestamp": rfc3339(d.event.timestamp),
            "data": d.event.data,
        },
        "subscription_id": d.subscription_id,
        "delivery_id": d.delivery_id,
        "status": d.status,
        "created_at": rfc3339(d.created_at),
        "updated_at": rfc3339(d.updated_at),
        "attempts": d.attempts.iter().map(attempt).collect::<Vec<_>>(),
    })
}

fn attempt(a: &Attempt) -> Value {
    let excerpt = a.response_body.as_ref().map(|b| {
        let text = String::from_utf8_lossy(b);
        match text.char_indices().nth(EXCERPT) {
            Some((i, _)) => format!("{}…", &text[..i]),
            None => text.into_owned(),
        }
    });
    json!({
        "n": a.n,
        "at": rfc3339(a.at),
        "status_code": a.status_code,
        "latency_ms": a.latency_ms,
        "error_class": a.error_class,
        "error": a.error,
        "request_headers": a.request_headers.iter()
            .map(|(k, v)| (k.clone(), Value::String(crate::ids::mask_header_value(k, v))))
            .collect::<serde_json::Map<_, _>>(),
        "response_excerpt": excerpt,
    })
}

/// The pair a line names: `{"event": {"id"}, "subscription_id"}` as `event export`
/// writes it, or `{"event_id", "subscription_id"}`.
fn pair(text: &str) -> Result<(String, String)> {
    let v: Value = serde_json::from_str(text).map_err(|e| anyhow!("not JSON ({e})"))?;
    let event = v["event"]["id"]
        .as_str()
        .or_else(|| v["event_id"].as_str())
        .ok_or_else(|| anyhow!("no event id (\"event\": {{\"id\": …}} or \"event_id\")"))?;
    let sub = v["subscription_id"]
        .as_str()
        .ok_or_else(|| anyhow!("no \"subscription_id\""))?;
    if event.is_empty() || sub.is_empty() {
        bail!("an empty event or subscription id");
    }
    Ok((event.to_string(), sub.to_string()))
}

fn open(path: &str) -> Result<Box<dyn BufRead>> {
    Ok(if path == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot read {path}"))?,
        ))
    })
}

/// Each non-blank line of `path` as its pair; a bad line is an error naming its number.
fn listed_pairs(path: &str) -> Result<impl Iterator<Item = Result<(String, String)>>> {
    let mut reader = open(path)?;
    let path = path.to_string();
    let mut n = 0u64;
    Ok(std::iter::from_fn(move || {
        let mut buf = String::new();
        loop {
            buf.clear();
            match reader.read_line(&mut buf) {
                Ok(0) => return None,
                Ok(_) => n += 1,
                Err(e) => return Some(Err(anyhow!("{path}: line {}: {e}", n + 1))),
            }
            if buf.trim().is_empty() {
                continue;
            }
            return Some(pair(buf.trim()).map_err(|e| {
                let cut = if buf.ends_with('\n') {
                    ""
                } else {
                    " (the file ends mid-line)"
                };
                anyhow!("{path}: line {n}: {e}{cut}; nothing was redelivered")
            }));
        }
    }))
}

/// Every pair of the file, checked before anything is sent. The file is read twice
/// (checked, then sent) so that memory stays small; stdin, which cannot be read again, is
/// kept.
struct Listed {
    kept: Option<Vec<(String, String)>>,
    lines: u64,
}

fn check(path: &str) -> Result<Listed> {
    let mut kept = (path == "-").then(Vec::new);
    let mut lines = 0u64;
    for p in listed_pairs(path)? {
        let p = p?;
        lines += 1;
        if let Some(k) = kept.as_mut() {
            k.push(p);
        }
    }
    Ok(Listed { kept, lines })
}

pub async fn redeliver_from(ctx: &Ctx, a: &RedeliverArgs, path: &str) -> Result<Exit> {
    let listed = check(path)?;
    let store = ctx.open_store().await?;
    let by = Actor::cli();
    let now = now_ms();
    let pairs: Box<dyn Iterator<Item = Result<(String, String)>>> = match listed.kept {
        Some(kept) => Box::new(kept.into_iter().map(Ok)),
        None => Box::new(listed_pairs(path)?),
    };
    // A pair listed twice is sent once.
    let mut seen: std::collections::HashSet<u64> = std::collections::HashSet::new();
    let hasher =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    let mut step: Vec<(String, String)> = Vec::with_capacity(REPLAY_STEP);
    let mut sent = 0u64;
    let mut outcome: Result<()> = Ok(());
    let mut pairs = pairs.peekable();
    while let Some(p) = pairs.next() {
        let p = p?;
        if seen.insert(std::hash::BuildHasher::hash_one(&hasher, &p)) {
            step.push(p);
        }
        if step.is_empty() || (step.len() < REPLAY_STEP && pairs.peek().is_some()) {
            continue;
        }
        let chunk = std::mem::take(&mut step);
        match store
            .redeliver(RedeliverTarget::Pairs(chunk), a.dry_run, now, None)
            .await
        {
            Ok(done) => sent += done.len() as u64,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    if !a.dry_run {
        let mut entry = AuditEntry::new(&by, action::BULK_REDELIVER)
            .filter(format!("from={path} listed={}", listed.lines))
            .count(sent as i64);
        if let Err(e) = &outcome {
            entry = entry.failed(e);
        }
        store.audit(entry).await?;
    }
    outcome?;
    let skipped = listed.lines - sent;
    if ctx.json {
        print_json(&json!({
            "dry_run": a.dry_run,
            "listed": listed.lines,
            "count": sent,
            "skipped": skipped,
        }))?;
    } else {
        println!(
            "{} {sent} of {} listed pairs{}{}",
            if a.dry_run {
                "would redeliver"
            } else {
                "redelivering"
            },
            listed.lines,
            if skipped > 0 {
                format!("; {skipped} skipped (listed twice, delivered since, or no longer stored)")
            } else {
                String::new()
            },
            if a.dry_run {
                " (dry run: nothing sent)"
            } else {
                ""
            },
        );
    }
    Ok(0)
}
