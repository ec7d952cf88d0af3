//! `hookctl sub …`

use super::args::*;
use super::output::{self, cell, print_json};
use super::{Ctx, Exit};
use crate::audit::Actor;
use crate::model::*;
use crate::netguard::Policy;
use crate::store::Store;
use crate::{catalog, ids, subscription};
use anyhow::{Context, Result, anyhow, bail};

pub async fn run(ctx: &Ctx, cmd: SubCommand) -> Result<Exit> {
    match cmd {
        SubCommand::Add(a) => add(ctx, *a).await,
        SubCommand::List => list(ctx).await,
        SubCommand::Show { id } => show(ctx, &id).await,
        SubCommand::Pause { id } => set_state(ctx, &id, SubState::Paused).await,
        SubCommand::Resume { id } => set_state(ctx, &id, SubState::Active).await,
        SubCommand::Rm { id, force } => remove(ctx, &id, force).await,
        SubCommand::RotateSecret { id, grace, secret } => rotate(ctx, &id, grace, secret).await,
        SubCommand::Test {
            id,
            event_type,
            dry_run,
        } => test(ctx, &id, event_type.as_deref(), dry_run).await,
    }
}

/// A subscription by id, id prefix or name, or a clear error.
pub async fn find(store: &dyn Store, key: &str) -> Result<Subscription> {
    store
        .find_subscription(key)
        .await?
        .ok_or_else(|| anyhow!("no subscription '{key}' (see `hookctl sub list`)"))
}

/// The name clap shows for a value, which the subscription rules parse back.
fn value_name(v: impl clap::ValueEnum) -> Option<String> {
    v.to_possible_value().map(|p| p.get_name().to_string())
}

async fn add(ctx: &Ctx, a: SubAddArgs) -> Result<Exit> {
    // Everything is checked before the database is touched: a refusal writes nothing.
    let template = match (&a.template, &a.template_text) {
        (Some(path), _) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("--template {}", path.display()))?,
        ),
        (None, Some(text)) => Some(text.clone()),
        (None, None) => None,
    };
    let changes = subscription::Changes {
        url: Some(a.url),
        name: a.name,
        events: Some(if a.all { vec!["all".into()] } else { a.events }),
        location_id: a.location,
        secret: a.secret,
        headers: Some(
            a.headers
                .iter()
                .map(|h| subscription::parse_header(h))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        method: value_name(a.method),
        format: value_name(a.format),
        payload: value_name(a.payload),
        template,
        retry_schedule: a
            .retry_schedule
            .as_deref()
            .map(subscription::schedule_items),
        timeout_ms: a.timeout.map(|t| t.as_millis() as u64),
        rate: a.rate,
        signature_scheme: value_name(a.signature_scheme),
        signature_header: Some(a.signature_header),
    };
    let policy = Policy::new(ctx.cfg.allow_networks.clone());
    let sub = subscription::create(&policy, changes)?;
    let mut sub = sub;
    if a.verify {
        sub.state = SubState::Pending;
    }
    let store = ctx.open_store().await?;
    store
        .add_subscription(sub.clone(), Some(&Actor::cli()))
        .await?;
    if a.verify {
        store
            .set_verify_token(&sub.id, Some(format!("vt_{}", &ids::secret()[6..])))
            .await?;
    }
    if ctx.json {
        print_json(&output::subscription(&sub, true))?;
    } else {
        println!("added {} ({}) → {}", sub.id, sub.name, sub.url);
        println!(
            "events: {}",
            sub.events
                .as_ref()
                .map(|e| e.join(", "))
                .unwrap_or_else(|| "all".into())
        );
        println!("signing secret (shown once; keep it):");
        println!("{}", sub.secret);
    }
    Ok(0)
}

async fn list(ctx: &Ctx) -> Result<Exit> {
    let store = ctx.open_store().await?;
    let subs = store.subscriptions().await?;
    if ctx.json {
        print_json(&serde_json::Value::Array(
            subs.iter()
                .map(|s| output::subscription(s, false))
                .collect(),
        ))?;
        return Ok(0);
    }
    if subs.is_empty() {
        println!("no subscriptions (add one with `hookctl sub add --url URL --all`)");
        return Ok(0);
    }
    println!(
        "{} {} {} {} URL",
        cell("ID", 30),
        cell("NAME", 16),
        cell("STATE", 9),
        cell("EVENTS", 24)
    );
    for s in &subs {
        let events = s
            .events
            .as_ref()
            .map(|e| e.join(","))
            .unwrap_or_else(|| "all".into());
        println!(
            "{} {} {} {} {}",
            cell(&s.id, 30),
            cell(&s.name, 16),
            cell(s.state.as_str(), 9),
            cell(&events, 24),
            s.url
        );
    }
    Ok(0)
}

async fn show(ctx: &Ctx, key: &str) -> Result<Exit> {
    let store = ctx.open_store().await?;
    let sub = find(store.as_ref(), key).await?;
    let stats = store
        .subscription_stats()
        .await?
        .into_iter()
        .find(|s| s.subscription_id == sub.id)
        .unwrap_or_default();
    if ctx.json {
        let mut v = output::subscription(&sub, false);
        v["deliveries"] = output::stats(&stats);
        v["history"] = serde_json::to_value(
            store
                .subscription_log(&sub.id, 50)
                .await?
                .into_iter()
                .map(|l| serde_json::json!({"at": rfc3339(l.at), "change": l.change, "reason": l.reason}))
                .collect::<Vec<_>>(),
        )?;
        print_json(&v)?;
        return Ok(0);
    }
    let v = output::subscription(&sub, false);
    println!("{} ({})", sub.id, sub.name);
    println!("  url        {} {}", sub.method.upper(), sub.url);
    println!("  state      {}", sub.state);
    println!(
        "  events     {}",
        sub.events
            .as_ref()
            .map(|e| e.join(", "))
            .unwrap_or_else(|| "all".into())
    );
    if let Some(l) = &sub.location_id {
        println!("  location   {l}");
    }
    println!("  body       {} / {}", sub.format, sub.payload);
    println!(
        "  signature  {} in {} (secret {})",
        sub.signature_scheme,
        sub.signature_header,
        v["secret"].as_str().unwrap_or("")
    );
    for h in v["headers"].as_array().into_iter().flatten() {
        println!(
            "  header     {}: {}",
            h["name"].as_str().unwrap_or(""),
            h["value"].as_str().unwrap_or("")
        );
    }
    println!(
        "  retries    {} then dead; timeout {}",
        if sub.retry_schedule_ms.is_empty() {
            "none".to_string()
        } else {
            sub.retry_schedule_ms
                .iter()
                .map(|m| output::duration_text(*m))
                .collect::<Vec<_>>()
                .join(", ")
        },
        output::duration_text(sub.timeout_ms)
    );
    println!(
        "  deliveries {} pending, {} retrying, {} delivered, {} dead, {} cancelled",
        stats.pending, stats.retrying, stats.delivered, stats.dead, stats.cancelled
    );
    println!(
        "  health     circuit {}{}, {} consecutive failures",
        if sub.circuit_open { "OPEN" } else { "closed" },
        sub.circuit_changed_at
            .map(|t| format!(" since {}", rfc3339(t)))
            .unwrap_or_default(),
        sub.consecutive_failures
    );
    if let Some(reason) = &sub.state_reason {
        println!("  reason     {reason}");
    }
    if let Some(until) = sub.grace_secret(now_ms()).and(sub.previous_secret_until) {
        println!(
            "  rotation   old secret still signs the main header until {}",
            rfc3339(until)
        );
    }
    if let Some(at) = stats.last_attempt_at {
        println!(
            "  last       {} at {}",
            stats
                .last_status_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "no response".into()),
            rfc3339(at)
        );
    }
    let log = store.subscription_log(&sub.id, 10).await?;
    if !log.is_empty() {
        println!("  history");
        for l in &log {
            println!(
                "    {} {}{}",
                rfc3339(l.at),
                l.change,
                l.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(0)
}

async fn set_state(ctx: &Ctx, key: &str, state: SubState) -> Result<Exit> {
    let store = ctx.open_store().await?;
    let sub = find(store.as_ref(), key).await?;
    let changed = store
        .set_subscription_state(&sub.id, state, Some(&Actor::cli()))
        .await
        .context("changing the subscription's state")?;
    if !changed {
        bail!(
            "subscription {} disappeared before it could be changed",
            sub.id
        );
    }
    let mut after = sub.clone();
    after.state = state;
    if ctx.json {
        print_json(&output::subscription(&after, false))?;
    } else {
        let verb = match state {
            SubState::Paused => "paused: new deliveries are held",
            _ => "active: held deliveries are released",
        };
        println!("{} {verb}", sub.id);
    }
    Ok(0)
}

async fn remove(ctx: &Ctx, key: &str, force: bool) -> Result<Exit> {
    let store = ctx.open_store().await?;
    let sub = find(store.as_ref(), key).await?;
    let out = store
        .delete_subscription(&sub.id, force, Some(&Actor::cli()))
        .await?;
    if !out.deleted {
        bail!(
            "{} has {} unfinished deliveries; pause it and redeliver later, or use --force to cancel them",
            sub.id,
            out.unfinished
        );
    }
    if ctx.json {
        print_json(
            &serde_json::json!({"id": sub.id, "deleted": true, "cancelled": out.unfinished}),
        )?;
    } else if out.unfinished > 0 {
        println!(
            "removed {} ({} unfinished deliveries cancelled)",
            sub.id, out.unfinished
        );
    } else {
        println!("removed {}", sub.id);
    }
    Ok(0)
}

async fn rotate(
    ctx: &Ctx,
    key: &str,
    grace: std::time::Duration,
    secret: Option<String>,
) -> Result<Exit> {
    let secret = match secret {
        Some(s) if s.trim().is_empty() => bail!("--secret is empty"),
        Some(s) => s,
        None => ids::secret(),
    };
    let store = ctx.open_store().await?;
    let sub = find(store.as_ref(), key).await?;
    let until = now_ms() + grace.as_millis() as i64;
    store
        .rotate_secret(&sub.id, secret.clone(), until, Some(&Actor::cli()))
        .await?;
    if ctx.json {
        print_json(
            &serde_json::json!({"id": sub.id, "secret": secret, "previous_valid_until": rfc3339(until)}),
        )?;
    } else {
        println!(
            "{}: until {} the {} header keeps the old secret's signature and {}-next carries the new one",
            sub.id,
            rfc3339(until),
            sub.signature_header,
            sub.signature_header
        );
        println!("new signing secret (shown once; keep it):");
        println!("{secret}");
    }
    Ok(0)
}

async fn test(ctx: &Ctx, key: &str, event_type: Option<&str>, dry_run: bool) -> Result<Exit> {
    let store = ctx.open_store().await?;
    let sub = find(store.as_ref(), key).await?;
    let t = match event_type {
        Some(t) => catalog::resolve(t)?.to_string(),
        None => sub
            .events
            .as_ref()
            .and_then(|e| e.first().cloned())
            .unwrap_or_else(|| "ContactCreate".into()),
    };
    let policy = std::sync::Arc::new(Policy::new(ctx.cfg.allow_networks.clone()));
    let store: std::sync::Arc<dyn Store> = store;
    let out = crate::engine::testsend::send(
        &store,
        &sub,
        &t,
        dry_run,
        policy,
        ctx.cfg.outbound_bind_address,
    )
    .await?;
    if ctx.json {
        print_json(&out.to_json())?;
        return Ok(0);
    }
    let req = &out.request;
    println!("{} {}", req.method.upper(), req.url);
    for (k, v) in req.headers_for_record() {
        println!("{k}: {v}");
    }
    println!();
    println!("{}", String::from_utf8_lossy(&req.body));
    match &out.response {
        None => println!("(dry run: nothing sent)"),
        Some(Ok(r)) => {
            println!();
            println!(
                "← {} in {:.1} ms",
                r.status,
                r.latency.as_secs_f64() * 1000.0
            );
            println!(
                "{}",
                String::from_utf8_lossy(&r.body[..r.body.len().min(1024)])
            );
        }
        Some(Err(f)) => {
            println!();
            println!(
                "← failed [{}] {} after {:.1} ms",
                f.class,
                f.message,
                f.latency.as_secs_f64() * 1000.0
            );
        }
    }
    Ok(0)
}
