//! The incident summary: per endpoint in trouble within a window — since when it fails,
//! how, what waits, what died, where, and what operators did about it. One summary for
//! `hookctl incident`, `GET /v2/incident` and the console's header line.

use crate::audit::{AuditEntry, AuditFilter};
use crate::model::{Millis, SubState, rfc3339};
use crate::store::Store;
use anyhow::Result;
use serde_json::{Value, json};

/// The window when none is given.
pub const DEFAULT_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

/// An endpoint's trouble as a store finds it (`actions` is filled above the store).
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointIncident {
    pub subscription_id: String,
    pub name: String,
    pub url: String,
    pub location_id: Option<String>,
    pub state: SubState,
    pub circuit_open: bool,
    pub circuit_changed_at: Option<Millis>,
    pub consecutive_failures: u32,
    /// The first failed attempt within the window.
    pub first_failure_at: Option<Millis>,
    /// Failing now: the first failure after the last success.
    pub failing_since: Option<Millis>,
    pub last_failure_at: Option<Millis>,
    /// When the newest delivery that arrived arrived (at any time).
    pub last_success_at: Option<Millis>,
    /// Failed attempts within the window by kind (`status 500`, `timeout`), most first.
    pub errors: Vec<(String, i64)>,
    pub waiting: i64,
    pub oldest_waiting_at: Option<Millis>,
    /// Dead and not redelivered since.
    pub dead: i64,
    /// Locations of the events whose attempts failed within the window.
    pub locations: Vec<Option<String>>,
    /// Backlog alerts raised and not cleared (`backlog`, `age`).
    pub alerts: Vec<String>,
    pub actions: Vec<AuditEntry>,
}

impl EndpointIncident {
    /// Something is wrong now, not only earlier in the window.
    pub fn is_current(&self) -> bool {
        self.circuit_open
            || self.state == SubState::Disabled
            || self.failing_since.is_some()
            || !self.alerts.is_empty()
    }

    /// When the trouble started: the first failure in the window, else when the circuit
    /// opened or the endpoint changed state.
    pub fn started_at(&self) -> Option<Millis> {
        self.first_failure_at.or(self.circuit_changed_at)
    }

    fn condition(&self) -> String {
        let mut c = Vec::new();
        if self.state == SubState::Disabled {
            c.push("disabled".to_string());
        } else if self.state == SubState::Paused {
            c.push("paused".to_string());
        }
        if self.circuit_open {
            c.push("circuit open".to_string());
        }
        match (self.failing_since, self.last_failure_at) {
            (Some(t), _) => c.push(format!("failing since {}", hms(t))),
            (None, Some(_)) => c.push(format!(
                "recovered{}",
                self.last_success_at
                    .map(|t| format!(" at {}", hms(t)))
                    .unwrap_or_default()
            )),
            (None, None) => {}
        }
        for a in &self.alerts {
            c.push(format!("{a} alert"));
        }
        c.join(", ")
    }
}

fn hms(t: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(t)
        .map(|d| d.format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "?".into())
}

/// The summary since `since`, with each endpoint's operator actions within the window, or
/// since its circuit opened when that was earlier.
pub async fn summary(store: &dyn Store, since: Millis) -> Result<Vec<EndpointIncident>> {
    let mut found = store.incident(since).await?;
    for e in &mut found {
        let from = match e.circuit_changed_at {
            Some(t) if e.circuit_open => t.min(since),
            _ => since,
        };
        e.actions = store
            .audit_log(&AuditFilter {
                since: Some(from),
                subscription_id: Some(e.subscription_id.clone()),
                limit: 50,
            })
            .await?;
    }
    Ok(found)
}

/// One line for the console's header and the top of `hookctl incident`: the endpoint in
/// trouble longest, then how many more, then figures (a narrow header cuts from the end).
pub fn headline(found: &[EndpointIncident]) -> Option<String> {
    let current: Vec<&EndpointIncident> = found.iter().filter(|e| e.is_current()).collect();
    let first = current.first()?;
    let more = match current.len() {
        1 => String::new(),
        n => format!(" (+{} more)", n - 1),
    };
    Some(format!(
        "incident: {} {}{more} · {} waiting, {} dead{}",
        first.name,
        first.condition(),
        first.waiting,
        first.dead,
        first
            .errors
            .first()
            .map(|(k, n)| format!(" · {k} ×{n}"))
            .unwrap_or_default(),
    ))
}

/// The endpoint the headline names.
pub fn headline_subscription(found: &[EndpointIncident]) -> Option<&str> {
    found
        .iter()
        .find(|e| e.is_current())
        .map(|e| e.subscription_id.as_str())
}

/// The text `hookctl incident` prints.
pub fn text(found: &[EndpointIncident], since: Millis, now: Millis) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if found.is_empty() {
        let _ = writeln!(out, "no endpoint in trouble since {}", rfc3339(since));
        return out;
    }
    if let Some(h) = headline(found) {
        let _ = writeln!(out, "{h}");
    }
    for e in found {
        let _ = writeln!(out);
        let _ = writeln!(out, "{} {} — {}", e.subscription_id, e.name, e.url);
        let _ = writeln!(out, "  {}", e.condition());
        if let Some(t) = e.first_failure_at {
            let _ = writeln!(out, "  first failure  {}", rfc3339(t));
        }
        let _ = writeln!(
            out,
            "  last success   {}",
            e.last_success_at
                .map(rfc3339)
                .unwrap_or_else(|| "never".into())
        );
        if !e.errors.is_empty() {
            let errors: Vec<String> = e.errors.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
            let _ = writeln!(out, "  errors         {}", errors.join(", "));
        }
        let _ = writeln!(
            out,
            "  waiting        {}{}",
            e.waiting,
            e.oldest_waiting_at
                .map(|t| format!(", oldest {} old", age(now - t)))
                .unwrap_or_default()
        );
        let _ = writeln!(out, "  dead           {}", e.dead);
        if !e.locations.is_empty() {
            let locs: Vec<&str> = e
                .locations
                .iter()
                .map(|l| l.as_deref().unwrap_or("(none)"))
                .collect();
            let _ = writeln!(out, "  locations      {}", locs.join(", "));
        }
        if e.actions.is_empty() {
            let _ = writeln!(out, "  actions        none");
        }
        for (i, a) in e.actions.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {} {} {} by {}{}{}",
                if i == 0 {
                    "actions       "
                } else {
                    "              "
                },
                hms(a.at),
                a.action,
                a.actor.describe(),
                a.count.map(|n| format!(", {n}")).unwrap_or_default(),
                if a.ok { "" } else { " (failed)" },
            );
        }
    }
    out
}

fn age(ms: Millis) -> String {
    let s = (ms / 1000).max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The JSON form (CLI `--json` and the API).
pub fn json(found: &[EndpointIncident], since: Millis, now: Millis) -> Value {
    let t = |v: Option<Millis>| v.map(rfc3339);
    json!({
        "since": rfc3339(since),
        "at": rfc3339(now),
        "headline": headline(found),
        "endpoints": found.iter().map(|e| json!({
            "subscription_id": e.subscription_id,
            "name": e.name,
            "url": e.url,
            "location_id": e.location_id,
            "state": e.state,
            "circuit": if e.circuit_open { "open" } else { "closed" },
            "circuit_changed_at": t(e.circuit_changed_at),
            "consecutive_failures": e.consecutive_failures,
            "current": e.is_current(),
            "first_failure_at": t(e.first_failure_at),
            "failing_since": t(e.failing_since),
            "last_failure_at": t(e.last_failure_at),
            "last_success_at": t(e.last_success_at),
            "errors": e.errors.iter().map(|(k, n)| json!({"kind": k, "count": n})).collect::<Vec<_>>(),
            "waiting": e.waiting,
            "oldest_waiting_at": t(e.oldest_waiting_at),
            "oldest_waiting_seconds": e.oldest_waiting_at.map(|o| ((now - o) / 1000).max(0)),
            "dead": e.dead,
            "locations": e.locations,
            "alerts": e.alerts,
            "actions": e.actions.iter().map(crate::shapes::audit_entry).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
