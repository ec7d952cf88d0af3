//! `hookctl token …` and `hookctl inbound …`: who may use the API, and the URLs external
//! systems post to. Secrets are printed once; only hashes are kept.

use super::args::{InboundCommand, TokenCommand};
use super::output::{cell, print_json};
use super::{Ctx, Exit};
use crate::audit::Actor;
use crate::model::*;
use crate::store::{ApiToken, Inbound};
use crate::{catalog, ids};
use anyhow::{Result, anyhow, bail};

const SCOPES: &[&str] = &[
    "events:write",
    "events:read",
    "webhooks:read",
    "webhooks:write",
    "audit:read",
];

use crate::ids::secret_hash as hash;

/// A random secret with a recognisable prefix (`hk_…` tokens, `in_…` inbound URLs).
fn secret(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &ids::secret()[6..]
            .replace(['+', '/', '='], "")
            .to_ascii_lowercase()
    )
}

pub async fn token(ctx: &Ctx, cmd: TokenCommand) -> Result<Exit> {
    let store = ctx.open_store().await?;
    match cmd {
        TokenCommand::Create { scopes, location } => {
            let mut clean: Vec<String> = Vec::new();
            for s in scopes.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
                if !SCOPES.contains(&s) {
                    bail!("unknown scope '{s}' (one of {})", SCOPES.join(", "));
                }
                if !clean.iter().any(|c| c == s) {
                    clean.push(s.to_string());
                }
            }
            let secret = secret("hk_");
            let t = ApiToken {
                id: format!("tok_{}", &ids::subscription_id()[4..]),
                scopes: clean,
                location_id: location,
                created_at: now_ms(),
                revoked_at: None,
            };
            store
                .add_token(t.clone(), hash(&secret), Some(&Actor::cli()))
                .await?;
            if ctx.json {
                print_json(
                    &serde_json::json!({"id": t.id, "scopes": t.scopes, "location_id": t.location_id, "token": secret}),
                )?;
            } else {
                println!(
                    "token {} ({}{}); shown once:",
                    t.id,
                    t.scopes.join(","),
                    t.location_id
                        .as_ref()
                        .map(|l| format!(", location {l}"))
                        .unwrap_or_default()
                );
                println!("{secret}");
            }
        }
        TokenCommand::List => {
            let all = store.tokens().await?;
            if ctx.json {
                print_json(&serde_json::to_value(&all)?)?;
            } else {
                println!(
                    "{} {} {} STATE",
                    cell("ID", 20),
                    cell("SCOPES", 52),
                    cell("LOCATION", 22)
                );
                for t in &all {
                    println!(
                        "{} {} {} {}",
                        cell(&t.id, 20),
                        cell(&t.scopes.join(","), 52),
                        cell(t.location_id.as_deref().unwrap_or("(all)"), 22),
                        if t.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        }
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            if !store.revoke_token(&id, Some(&Actor::cli())).await? {
                bail!("no active token '{id}'");
            }
            if ctx.json {
                print_json(&serde_json::json!({"id": id, "revoked": true}))?;
            } else {
                println!("{id} revoked");
            }
        }
    }
    Ok(0)
}

pub async fn inbound(ctx: &Ctx, cmd: InboundCommand) -> Result<Exit> {
    let store = ctx.open_store().await?;
    match cmd {
        InboundCommand::Add {
            event_type,
            location,
            map,
            secret: hmac,
        } => {
            let t = catalog::resolve(&event_type)?;
            let mut pairs = Vec::new();
            for m in &map {
                let (field, pointer) = m
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--map '{m}' is not FIELD=JSON_POINTER"))?;
                if field.is_empty() || !(pointer.is_empty() || pointer.starts_with('/')) {
                    bail!("--map '{m}': a field name, then a JSON pointer such as /contact/email");
                }
                pairs.push((field.to_string(), pointer.to_string()));
            }
            let url_token = secret("in_");
            let i = Inbound {
                id: format!("inb_{}", &ids::subscription_id()[4..]),
                event_type: t.to_string(),
                location_id: location,
                map: pairs,
                secret: hmac,
                created_at: now_ms(),
            };
            store.add_inbound(i.clone(), hash(&url_token)).await?;
            let path = format!("/hooks/in/{url_token}");
            if ctx.json {
                print_json(
                    &serde_json::json!({"id": i.id, "type": i.event_type, "location_id": i.location_id, "path": path, "url": format!("http://{}{path}", ctx.cfg.listen)}),
                )?;
            } else {
                println!(
                    "inbound {} → {} events; POST JSON to (shown once):",
                    i.id, i.event_type
                );
                println!("http://{}{path}", ctx.cfg.listen);
            }
        }
        InboundCommand::List => {
            let all = store.inbounds().await?;
            if ctx.json {
                print_json(&serde_json::to_value(&all)?)?;
            } else {
                for i in &all {
                    println!(
                        "{} {} {} map {}",
                        cell(&i.id, 20),
                        cell(&i.event_type, 24),
                        cell(i.location_id.as_deref().unwrap_or("-"), 20),
                        i.map
                            .iter()
                            .map(|(f, p)| format!("{f}={p}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    );
                }
            }
        }
        InboundCommand::Rm { id } => {
            if !store.remove_inbound(&id).await? {
                bail!("no inbound webhook '{id}'");
            }
            println!("{id} removed");
        }
    }
    Ok(0)
}
