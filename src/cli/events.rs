//! `hookctl event …` and `hookctl redeliver`.

use super::args::*;
use super::output::{self, cell, print_json};
use super::{Ctx, Exit, subs};
use crate::audit::Actor;
use crate::model::*;
use crate::store::{EventFilter, RedeliverTarget};
use anyhow::{Result, anyhow};

pub async fn run(ctx: &Ctx, cmd: EventCommand) -> Result<Exit> {
    match cmd {
        EventCommand::List(a) => list(ctx, a).await,
        EventCommand::Show { id } => show(ctx, &id).await,
        EventCommand::Purge(a) => purge(ctx, a).await,
        EventCommand::Export(a) => super::replay::export(ctx, a).await,
    }
}

async fn list(ctx: &Ctx, a: EventListArgs) -> Result<Exit> {
    let event_type = a
        .event_type
        .as_deref()
        .map(crate::catalog::resolve)
        .transpose()?
        .map(str::to_string);
    let store = ctx.open_store().await?;
    let subscription_id = match &a.sub {
        Some(key) => Some(subs::find(store.as_ref(), key).await?.id),
        None => None,
    };
    let filter = EventFilter {
        status: a.status.map(StatusArg::model),
        subscription_id,
        event_type,
        location_id: a.location,
        since: a.since.map(|d| now_ms() - d.as_millis() as i64),
        limit: a.limit,
        ..Default::default()
    };
    let rows = store.list_events(&filter).await?;
    if ctx.json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id,
                    "type": r.event_type,
                    "location_id": r.location_id,
                    "timestamp": rfc3339(r.timestamp),
                    "deliveries": r.deliveries,
                })
            })
            .collect();
        print_json(&serde_json::Value::Array(v))?;
        return Ok(0);
    }
    if rows.is_empty() {
        println!("no events match");
        return Ok(0);
    }
    println!(
        "{} {} {} DELIVERIES",
        cell("ID", 30),
        cell("TYPE", 24),
        cell("TIME", 24)
    );
    for r in &rows {
        let ds = r
            .deliveries
            .iter()
            .map(|d| format!("{}:{}", short(&d.subscription_id), d.status))
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "{} {} {} {}",
            cell(&r.id, 30),
            cell(&r.event_type, 24),
            cell(&rfc3339(r.timestamp), 24),
            if ds.is_empty() {
                "(no subscriber)".to_string()
            } else {
                ds
            }
        );
    }
    Ok(0)
}

/// Enough of an id to tell subscriptions apart in a table.
fn short(id: &str) -> &str {
    let end = id
        .char_indices()
        .nth(12)
        .map(|(i, _)| i)
        .unwrap_or(id.len());
    &id[..end]
}

async fn show(ctx: &Ctx, id: &str) -> Result<Exit> {
    let store = ctx.open_store().await?;
    let detail = store
        .event_detail(id)
        .await?
        .ok_or_else(|| anyhow!("no event with id '{id}'"))?;
    if ctx.json {
        print_json(&output::event_detail(&detail))?;
        return Ok(0);
    }
    let e = &detail.event;
    println!("{} {}", e.id, e.event_type);
    println!("  location  {}", e.location_id.as_deref().unwrap_or("-"));
    println!("  time      {}", rfc3339(e.timestamp));
    println!("  data");
    let pretty = serde_json::to_string_pretty(&e.data)?;
    for line in pretty.lines() {
        println!("    {line}");
    }
    if detail.deliveries.is_empty() {
        println!("  no deliveries (no subscription matched)");
    }
    for d in &detail.deliveries {
        println!();
        println!(
            "  delivery {} → {} {} [{}]",
            d.id,
            d.subscription_id,
            d.url.as_deref().unwrap_or("(subscription removed)"),
            d.status
        );
        if let Some(next) = d.next_at {
            println!("    next attempt at {}", rfc3339(next));
        }
        if let Some(by) = d.superseded_by {
            println!("    redelivered as delivery {by}");
        }
        for a in &d.attempts {
            let what = match (a.status_code, &a.error) {
                (Some(code), None) => format!("{code}"),
                (Some(code), Some(err)) => format!("{code} {err}"),
                (None, Some(err)) => err.clone(),
                (None, None) => "-".into(),
            };
            // Latencies are kept in whole milliseconds: 0 is under one.
            let latency = match a.latency_ms {
                0 => "<1".to_string(),
                ms => ms.to_string(),
            };
            println!(
                "    #{} {} {:>6} ms  {}{}",
                a.n,
                rfc3339(a.at),
                latency,
                a.error_class.map(|c| format!("[{c}] ")).unwrap_or_default(),
                what
            );
            let sent: Vec<String> = a
                .request_headers
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "content-type" | "user-agent"))
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            if !sent.is_empty() {
                println!("       sent {}", sent.join(" | "));
            }
        }
    }
    Ok(0)
}

pub async fn redeliver(ctx: &Ctx, a: RedeliverArgs) -> Result<Exit> {
    if let Some(path) = &a.from {
        return super::replay::redeliver_from(ctx, &a, path).await;
    }
    let store = ctx.open_store().await?;
    let sub_id = match &a.sub {
        Some(key) => Some(subs::find(store.as_ref(), key).await?.id),
        None => None,
    };
    let target = match (&a.event_id, sub_id) {
        (Some(event_id), sub) => RedeliverTarget::Event {
            event_id: event_id.clone(),
            subscription_id: sub,
        },
        (None, Some(sub)) => RedeliverTarget::Bulk {
            subscription_id: sub,
            statuses: vec![match a.status.unwrap_or(RedeliverStatusArg::Dead) {
                RedeliverStatusArg::Dead => DeliveryStatus::Dead,
                RedeliverStatusArg::Retrying => DeliveryStatus::Retrying,
            }],
            since: a.since.map(|d| now_ms() - d.as_millis() as i64),
        },
        (None, None) => return Err(anyhow!("give an EVENT_ID or --sub ID")),
    };
    let done = store
        .redeliver(target, a.dry_run, now_ms(), Some(&Actor::cli()))
        .await?;
    if ctx.json {
        print_json(&serde_json::json!({
            "dry_run": a.dry_run,
            "count": done.len(),
            "deliveries": done,
        }))?;
    } else if a.dry_run {
        println!(
            "would redeliver {} deliveries (dry run: nothing sent)",
            done.len()
        );
    } else {
        println!("redelivering {} deliveries", done.len());
        for d in done.iter().take(20) {
            println!(
                "  {} → {} as delivery {}",
                d.event_id,
                d.subscription_id,
                d.delivery_id.map(|i| i.to_string()).unwrap_or_default()
            );
        }
        if done.len() > 20 {
            println!("  … and {} more", done.len() - 20);
        }
    }
    Ok(0)
}

async fn purge(ctx: &Ctx, a: PurgeArgs) -> Result<Exit> {
    use std::io::IsTerminal;
    let store = ctx.open_store().await?;
    let subscription_id = match &a.sub {
        Some(key) => Some(subs::find(store.as_ref(), key).await?.id),
        None => None,
    };
    let filter = crate::store::PurgeFilter {
        status: vec![match a.status {
            PurgeStatusArg::Dead => DeliveryStatus::Dead,
            PurgeStatusArg::Delivered => DeliveryStatus::Delivered,
            PurgeStatusArg::Cancelled => DeliveryStatus::Cancelled,
        }],
        subscription_id,
        before: a.before.map(|d| now_ms() - d.as_millis() as i64),
    };
    let count = store.purge(filter.clone(), true, None).await?;
    let what = format!("{} {:?} deliveries", count.deliveries, a.status).to_lowercase();
    if a.dry_run || count.deliveries == 0 {
        if ctx.json {
            print_json(&serde_json::json!({"dry_run": true, "deliveries": count.deliveries}))?;
        } else {
            println!("would purge {what}");
        }
        return Ok(0);
    }
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!("purging {what} needs confirmation: run it in a terminal, or add --yes");
        }
        eprint!("purge {what} (and events left without deliveries)? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("nothing purged");
            return Ok(0);
        }
    }
    let done = store.purge(filter, false, Some(&Actor::cli())).await?;
    if ctx.json {
        print_json(&serde_json::to_value(&done)?)?;
    } else {
        println!(
            "purged {} deliveries and {} events",
            done.deliveries, done.events
        );
    }
    Ok(0)
}
