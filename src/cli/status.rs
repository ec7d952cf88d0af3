//! `hookctl status`: one screen that says whether deliveries are flowing, for people and
//! scripts (exit 0 healthy, 1 degraded, 2 error).

use super::output::{cell, print_json};
use super::{Ctx, Exit};
use crate::model::*;
use anyhow::Result;
use serde_json::json;

pub async fn run(ctx: &Ctx) -> Result<Exit> {
    let store = ctx.open_store().await?;
    let engines = store.engines().await?;
    let engine_pid = engines.first().map(|e| e.pid);
    let (queue, stats) = store.overview().await?;
    let subs = store.subscriptions().await?;

    let mut problems: Vec<String> = Vec::new();
    if queue.dead > 0 {
        problems.push(format!("{} dead letters", queue.dead));
    }
    for s in &subs {
        if s.circuit_open && s.state == SubState::Active {
            problems.push(format!("circuit open on {} ({})", s.id, s.name));
        }
        if s.state == SubState::Disabled {
            problems.push(format!(
                "{} ({}) disabled{}",
                s.id,
                s.name,
                s.state_reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ));
        }
    }
    if engine_pid.is_none() && queue.pending + queue.retrying > 0 {
        problems.push(format!(
            "no engine is running and {} deliveries wait",
            queue.pending + queue.retrying
        ));
    }
    let healthy = problems.is_empty();

    if ctx.json {
        let endpoints: Vec<_> = subs
            .iter()
            .map(|s| {
                let st = stats
                    .iter()
                    .find(|x| x.subscription_id == s.id)
                    .cloned()
                    .unwrap_or_default();
                json!({
                    "id": s.id,
                    "name": s.name,
                    "state": s.state,
                    "circuit": if s.circuit_open { "open" } else { "closed" },
                    "consecutive_failures": s.consecutive_failures,
                    "pending": st.pending,
                    "retrying": st.retrying,
                    "dead": st.dead,
                    "last_status_code": st.last_status_code,
                })
            })
            .collect();
        print_json(&json!({
            "healthy": healthy,
            "problems": problems,
            "db": crate::store::shown(&ctx.cfg.db),
            "engine": {"running": engine_pid.is_some(), "pid": engine_pid, "workers": engines},
            "queue": queue,
            "retention_days": ctx.cfg.retention_days,
            "subscriptions": endpoints,
        }))?;
    } else {
        println!("hookctl status — {}", crate::store::shown(&ctx.cfg.db));
        match engines.as_slice() {
            [] => println!("engine    not running"),
            [one] if one.heartbeat_at.is_none() => println!("engine    running (pid {})", one.pid),
            many => {
                let n = many.len();
                println!(
                    "engine    running: {n} worker{}",
                    if n == 1 { "" } else { "s" }
                );
                let now = now_ms();
                for e in many {
                    println!(
                        "  {}  pid {}  on {}  heartbeat {}{}",
                        e.worker,
                        e.pid,
                        e.host,
                        e.heartbeat_at
                            .map(|t| format!("{:.1} s ago", (now - t).max(0) as f64 / 1000.0))
                            .unwrap_or_else(|| "-".into()),
                        e.endpoint_share
                            .map(|n| format!("  up to {n} per endpoint"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        println!(
            "queue     {} pending, {} retrying, {} in flight, {} dead, {} delivered, {} cancelled",
            queue.pending,
            queue.retrying,
            queue.in_flight,
            queue.dead,
            queue.delivered,
            queue.cancelled
        );
        println!(
            "events    {} stored{}; kept {} days",
            queue.events,
            queue
                .oldest_event_at
                .map(|t| format!(", oldest {}", rfc3339(t)))
                .unwrap_or_default(),
            ctx.cfg.retention_days
        );
        if !subs.is_empty() {
            println!("endpoints");
            for s in &subs {
                let st = stats
                    .iter()
                    .find(|x| x.subscription_id == s.id)
                    .cloned()
                    .unwrap_or_default();
                println!(
                    "  {} {} {} circuit {:<6} {:>3} failing  {:>5} waiting  {:>5} dead  last {}",
                    cell(&s.id, 16),
                    cell(&s.name, 14),
                    cell(s.state.as_str(), 8),
                    if s.circuit_open { "open" } else { "closed" },
                    s.consecutive_failures,
                    st.pending + st.retrying,
                    st.dead,
                    st.last_status_code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into())
                );
            }
        }
        if healthy {
            println!("healthy");
        } else {
            println!("degraded: {}", problems.join("; "));
        }
    }
    Ok(if healthy { 0 } else { 1 })
}
