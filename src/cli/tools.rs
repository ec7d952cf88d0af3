//! `hookctl sink`, `verify`, `catalog`: tools for integrators.

use super::args::{CatalogArgs, SinkArgs, VerifyArgs};
use super::output::{cell, print_json};
use super::{Ctx, Exit};
use crate::catalog;
use crate::signing;
use crate::sink::{self, SinkConfig, SinkRequest};
use anyhow::{Context, Result, anyhow, bail};
use std::io::{Read, Write};
use std::sync::Arc;

pub async fn sink(ctx: &Ctx, a: SinkArgs) -> Result<Exit> {
    if !(0.0..=1.0).contains(&a.fail_rate) {
        bail!("--fail-rate must be between 0 and 1");
    }
    if let Some(code) = a.status
        && !(100..=599).contains(&code)
    {
        bail!("--status {code} is not an HTTP status");
    }
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    let addr = listener.local_addr()?;
    eprintln!("hookctl sink: listening on http://{addr}");
    let json = ctx.json;
    let print = move |r: SinkRequest| {
        let mut out = std::io::stdout().lock();
        let line = if json {
            serde_json::to_string(&r).unwrap_or_default()
        } else {
            let ty = serde_json::from_str::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
                .unwrap_or_default();
            format!(
                "{} {} {} {} id={} attempt={} {} → {}",
                chrono::Utc::now().format("%H:%M:%S%.3f"),
                r.method,
                r.path,
                ty,
                r.header("webhook-id").unwrap_or("-"),
                r.header("x-wl-attempt").unwrap_or("-"),
                match r.verified {
                    Some(true) => "signature ok",
                    Some(false) => "SIGNATURE INVALID",
                    None => "unverified",
                },
                r.answered
            )
        };
        // A closed stdout ends the sink: nobody is reading what it reports.
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            std::process::exit(0);
        }
    };
    let cfg = SinkConfig {
        secret: a.secret,
        fail_rate: a.fail_rate,
        delay: a.delay,
        status: a.status,
        retry_after: a.retry_after,
    };
    tokio::select! {
        r = sink::serve(listener, cfg, Arc::new(print)) => r?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(0)
}

pub async fn verify(ctx: &Ctx, a: VerifyArgs) -> Result<Exit> {
    let mut body = Vec::new();
    if a.body == "-" {
        std::io::stdin().read_to_end(&mut body)?;
    } else {
        body = std::fs::read(&a.body).with_context(|| format!("--body {}", a.body))?;
    }
    let sig = a.signature.trim();
    let (valid, scheme, reason) = if sig.starts_with("v1,") {
        let id = a.id.as_deref().ok_or_else(|| {
            anyhow!("a Standard Webhooks signature needs --id (the webhook-id header)")
        })?;
        let ts = a.timestamp.ok_or_else(|| {
            anyhow!(
                "a Standard Webhooks signature needs --timestamp (the webhook-timestamp header)"
            )
        })?;
        let now = chrono::Utc::now().timestamp();
        match signing::verify_standard(
            &a.secret,
            id,
            ts,
            &body,
            sig,
            now,
            a.tolerance.as_secs() as i64,
        ) {
            Ok(()) => (true, "standard", None),
            Err(e) => (false, "standard", Some(e.to_string())),
        }
    } else {
        let ok = signing::verify_wl(&a.secret, &body, sig);
        (
            ok,
            "wl",
            (!ok).then(|| "signature does not match the body".to_string()),
        )
    };
    if ctx.json {
        print_json(&serde_json::json!({"valid": valid, "scheme": scheme, "reason": reason}))?;
    } else if valid {
        println!("valid ({scheme} signature)");
    } else {
        println!("invalid: {}", reason.unwrap_or_default());
    }
    Ok(if valid { 0 } else { 1 })
}

pub async fn catalog(ctx: &Ctx, a: CatalogArgs) -> Result<Exit> {
    if let Some(t) = a.event_type {
        let canon = catalog::resolve(&t)?;
        let sample = catalog::sample(canon).unwrap_or_default();
        if ctx.json {
            print_json(&serde_json::json!({"type": canon, "sample": sample}))?;
        } else {
            println!("{canon}");
            println!("{}", serde_json::to_string_pretty(&sample)?);
        }
        return Ok(0);
    }
    if ctx.json {
        let v: Vec<_> = catalog::all()
            .map(|t| {
                serde_json::json!({
                    "type": t.name,
                    "group": t.group,
                    "description": t.description,
                    "aliases": catalog::ALIASES.iter().filter(|(_, c)| *c == t.name).map(|(a, _)| a).collect::<Vec<_>>(),
                    "sample": catalog::sample(t.name),
                })
            })
            .collect();
        print_json(&serde_json::Value::Array(v))?;
        return Ok(0);
    }
    let mut group = "";
    for t in catalog::all() {
        if t.group != group {
            group = t.group;
            println!("{group}");
        }
        println!("  {} {}", cell(t.name, 32), t.description);
    }
    println!();
    println!(
        "aliases: {}",
        catalog::ALIASES
            .iter()
            .map(|(a, c)| format!("{a}→{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("`hookctl catalog TYPE` shows a sample payload");
    Ok(0)
}

pub fn completions(shell: super::args::Shell) -> Result<Exit> {
    use clap::CommandFactory;
    use clap_complete::Shell as S;
    let shell = match shell {
        super::args::Shell::Bash => S::Bash,
        super::args::Shell::Zsh => S::Zsh,
        super::args::Shell::Fish => S::Fish,
    };
    let mut cmd = super::Cli::command();
    clap_complete::generate(shell, &mut cmd, "hookctl", &mut std::io::stdout().lock());
    Ok(0)
}

pub fn man() -> Result<Exit> {
    use clap::CommandFactory;
    let cmd = super::Cli::command();
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render(&mut out)?;
    // A section per command, so that the page documents every flag, not only the top level.
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("hookctl {}", sub.get_name());
        let page = clap_mangen::Man::new(sub.clone());
        out.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        page.render_description_section(&mut out)?;
        page.render_options_section(&mut out)?;
        if sub.has_subcommands() {
            page.render_subcommands_section(&mut out)?;
        }
    }
    std::io::stdout().lock().write_all(&out)?;
    Ok(0)
}
