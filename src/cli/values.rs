//! `hookctl values`: custom values for merge tags.

use super::args::ValuesCommand;
use super::output::{cell, print_json};
use super::{Ctx, Exit};
use crate::ids;
use anyhow::{Result, bail};

/// Values whose names say they are credentials are shown masked.
fn shown(name: &str, value: &str) -> String {
    let n = name.to_ascii_lowercase();
    if ["key", "token", "secret", "password", "credential"]
        .iter()
        .any(|w| n.contains(w))
    {
        ids::mask(value)
    } else {
        value.to_string()
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        bail!(
            "'{name}' is not a value name: letters, digits and _, not starting with a digit (used as {{{{custom_values.NAME}}}})"
        );
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, cmd: ValuesCommand) -> Result<Exit> {
    let store = ctx.open_store().await?;
    match cmd {
        ValuesCommand::Set {
            name,
            value,
            location,
        } => {
            check_name(&name)?;
            store.set_value(&name, location.as_deref(), &value).await?;
            if ctx.json {
                print_json(
                    &serde_json::json!({"name": name, "location_id": location, "value": shown(&name, &value)}),
                )?;
            } else {
                println!(
                    "{name} set{}",
                    location
                        .map(|l| format!(" for location {l}"))
                        .unwrap_or_else(|| " globally".into())
                );
            }
        }
        ValuesCommand::Rm { name, location } => {
            if !store.remove_value(&name, location.as_deref()).await? {
                bail!(
                    "no value '{name}'{}",
                    location
                        .map(|l| format!(" for location {l}"))
                        .unwrap_or_default()
                );
            }
            if ctx.json {
                print_json(&serde_json::json!({"name": name, "removed": true}))?;
            } else {
                println!("{name} removed");
            }
        }
        ValuesCommand::List => {
            let all = store.values().await?;
            if ctx.json {
                let v: Vec<_> = all
                    .iter()
                    .map(|v| serde_json::json!({"name": v.name, "location_id": v.location_id, "value": shown(&v.name, &v.value)}))
                    .collect();
                print_json(&serde_json::Value::Array(v))?;
            } else if all.is_empty() {
                println!("no custom values (hookctl values set NAME VALUE [--location ID])");
            } else {
                println!("{} {} VALUE", cell("NAME", 24), cell("LOCATION", 24));
                for v in &all {
                    println!(
                        "{} {} {}",
                        cell(&v.name, 24),
                        cell(v.location_id.as_deref().unwrap_or("(global)"), 24),
                        shown(&v.name, &v.value)
                    );
                }
            }
        }
    }
    Ok(0)
}
