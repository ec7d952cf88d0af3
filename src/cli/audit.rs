//! `hookctl audit`: the operator actions recorded with the changes they made; `hookctl
//! incident`: the endpoints in trouble, with the actions taken about them.

use super::args::{AuditArgs, IncidentArgs};
use super::output::{cell, print_json};
use super::{Ctx, Exit};
use crate::audit::AuditFilter;
use crate::model::{now_ms, rfc3339};
use crate::shapes;
use anyhow::Result;

pub async fn run(ctx: &Ctx, a: AuditArgs) -> Result<Exit> {
    let store = ctx.open_store().await?;
    let subscription_id = match &a.sub {
        Some(key) => Some(super::subs::find(store.as_ref(), key).await?.id),
        None => None,
    };
    let filter = AuditFilter {
        since: a.since.map(|d| now_ms() - d.as_millis() as i64),
        subscription_id,
        limit: a.limit,
    };
    let entries = store.audit_log(&filter).await?;
    if ctx.json {
        print_json(&serde_json::Value::Array(
            entries.iter().map(shapes::audit_entry).collect(),
        ))?;
        return Ok(0);
    }
    if entries.is_empty() {
        println!(
            "no operator actions recorded{}",
            if a.since.is_some() || a.sub.is_some() {
                " that match"
            } else {
                ""
            }
        );
        return Ok(0);
    }
    println!(
        "{} {} {} {} {} OUTCOME",
        cell("TIME", 24),
        cell("WHO", 26),
        cell("ACTION", 15),
        cell("TARGET", 30),
        cell("COUNT", 6),
    );
    for e in &entries {
        let target = match (&e.subscription_id, &e.event_id) {
            (Some(s), Some(ev)) => format!("{s} {ev}"),
            (Some(s), None) => s.clone(),
            (None, Some(ev)) => ev.clone(),
            (None, None) => e.filter.clone().unwrap_or_else(|| "-".into()),
        };
        let outcome = match (e.ok, &e.detail) {
            (true, _) => "ok".to_string(),
            (false, Some(d)) => format!("failed: {d}"),
            (false, None) => "failed".to_string(),
        };
        let filter = match (
            &e.filter,
            e.subscription_id.is_some() || e.event_id.is_some(),
        ) {
            (Some(f), true) => format!(" ({f})"),
            _ => String::new(),
        };
        println!(
            "{} {} {} {} {} {outcome}{filter}",
            cell(&rfc3339(e.at), 24),
            cell(&e.actor.describe(), 26),
            cell(&e.action, 15),
            cell(&target, 30),
            cell(
                &e.count.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
                6
            ),
        );
    }
    Ok(0)
}

pub async fn incident(ctx: &Ctx, a: IncidentArgs) -> Result<Exit> {
    let store = ctx.open_store().await?;
    let now = now_ms();
    let since = crate::model::before(now, a.since);
    let found = crate::incident::summary(store.as_ref(), since).await?;
    if ctx.json {
        print_json(&crate::incident::json(&found, since, now))?;
    } else {
        print!("{}", crate::incident::text(&found, since, now));
    }
    Ok(if found.is_empty() { 0 } else { 1 })
}
