//! The audit trail's vocabulary: who acts (an OS user at the CLI or the console, an API
//! token), on what, and how it ended. Stores record an entry in the same transaction as
//! the action it describes; the names here are the ones every surface shows.

use crate::model::{Millis, rfc3339};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    Cli,
    Console,
    Api,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Cli => "cli",
            ActorKind::Console => "console",
            ActorKind::Api => "api",
        }
    }

    pub fn parse(s: &str) -> Option<ActorKind> {
        Some(match s {
            "cli" => ActorKind::Cli,
            "console" => ActorKind::Console,
            "api" => ActorKind::Api,
            _ => return None,
        })
    }
}

/// Who an action is done by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub kind: ActorKind,
    /// The OS user (CLI, console) or the API token's id (never its secret).
    pub name: String,
    /// A console attached to an engine another process runs.
    pub attached: bool,
}

impl Actor {
    pub fn cli() -> Actor {
        Actor {
            kind: ActorKind::Cli,
            name: os_user(),
            attached: false,
        }
    }

    pub fn console(attached: bool) -> Actor {
        Actor {
            kind: ActorKind::Console,
            name: os_user(),
            attached,
        }
    }

    pub fn token(id: &str) -> Actor {
        Actor {
            kind: ActorKind::Api,
            name: id.to_string(),
            attached: false,
        }
    }

    /// "cli alice", "console bob", "attached bob" (a console attached to another process's
    /// engine), "api tok_3f…": for narrow columns.
    pub fn short(&self) -> String {
        let kind = match self.kind {
            ActorKind::Console if self.attached => "attached",
            k => k.as_str(),
        };
        format!("{kind} {}", self.name)
    }

    /// "cli root", "console alice (attached)", "api tok_3f…".
    pub fn describe(&self) -> String {
        let attached = if self.attached { " (attached)" } else { "" };
        format!("{} {}{attached}", self.kind.as_str(), self.name)
    }
}

/// The user this process runs as: `$USER`, else `$LOGNAME` (login shells, cron), else the
/// numeric uid (services started with neither).
fn os_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(var)
            && !v.trim().is_empty()
        {
            return v;
        }
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(|u| format!("uid {u}")))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The actions the trail records, by the names it shows.
pub mod action {
    pub const PAUSE: &str = "pause";
    pub const RESUME: &str = "resume";
    pub const REDELIVER: &str = "redeliver";
    pub const BULK_REDELIVER: &str = "bulk-redeliver";
    pub const SUB_ADD: &str = "sub-add";
    pub const SUB_EDIT: &str = "sub-edit";
    pub const SUB_DELETE: &str = "sub-delete";
    pub const ROTATE_SECRET: &str = "rotate-secret";
    pub const TOKEN_CREATE: &str = "token-create";
    pub const TOKEN_REVOKE: &str = "token-revoke";
    pub const PURGE: &str = "purge";
}

/// One recorded action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Millis,
    pub actor: Actor,
    pub action: String,
    pub subscription_id: Option<String>,
    pub event_id: Option<String>,
    /// What a bulk action selected (`status=dead since=2h`).
    pub filter: Option<String>,
    /// Rows the action touched, where it has a count.
    pub count: Option<i64>,
    pub ok: bool,
    /// Why it failed, or what else is worth saying.
    pub detail: Option<String>,
}

impl AuditEntry {
    /// An entry about to be recorded: the store gives it its id and its outcome.
    pub fn new(by: &Actor, action: &str) -> AuditEntry {
        AuditEntry {
            id: 0,
            at: crate::model::now_ms(),
            actor: by.clone(),
            action: action.to_string(),
            subscription_id: None,
            event_id: None,
            filter: None,
            count: None,
            ok: true,
            detail: None,
        }
    }

    pub fn on_sub(mut self, id: &str) -> AuditEntry {
        self.subscription_id = Some(id.to_string());
        self
    }

    pub fn event(mut self, id: &str) -> AuditEntry {
        self.event_id = Some(id.to_string());
        self
    }

    pub fn filter(mut self, f: impl Into<String>) -> AuditEntry {
        let f = f.into();
        self.filter = (!f.is_empty()).then_some(f);
        self
    }

    pub fn count(mut self, n: i64) -> AuditEntry {
        self.count = Some(n);
        self
    }

    /// The action failed: recorded with why (the action itself stored nothing).
    pub fn failed(mut self, why: impl std::fmt::Display) -> AuditEntry {
        self.ok = false;
        self.detail = Some(format!("{why:#}"));
        self
    }
}

/// Which entries to read, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    pub since: Option<Millis>,
    pub subscription_id: Option<String>,
    pub limit: u32,
}

fn statuses(s: &[crate::model::DeliveryStatus]) -> String {
    s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

/// The entries for each audited store operation, so that every backend names and
/// describes an action the same way.
pub mod entry {
    use super::*;
    use crate::model::SubState;
    use crate::store::{PurgeFilter, RedeliverTarget};

    pub fn state(by: &Actor, id: &str, state: SubState) -> AuditEntry {
        let name = match state {
            SubState::Paused => action::PAUSE.to_string(),
            SubState::Active => action::RESUME.to_string(),
            other => format!("set-{}", other.as_str()),
        };
        AuditEntry::new(by, &name).on_sub(id)
    }

    pub fn redeliver(by: &Actor, target: &RedeliverTarget) -> AuditEntry {
        match target {
            RedeliverTarget::Event {
                event_id,
                subscription_id,
            } => {
                let e = AuditEntry::new(by, action::REDELIVER).event(event_id);
                match subscription_id {
                    Some(s) => e.on_sub(s),
                    None => e,
                }
            }
            RedeliverTarget::Bulk {
                subscription_id,
                statuses: st,
                since,
            } => {
                let mut f = format!("status={}", statuses(st));
                if let Some(t) = since {
                    f.push_str(&format!(" since={}", rfc3339(*t)));
                }
                AuditEntry::new(by, action::BULK_REDELIVER)
                    .on_sub(subscription_id)
                    .filter(f)
            }
            RedeliverTarget::Pairs(pairs) => AuditEntry::new(by, action::BULK_REDELIVER)
                .filter(format!("listed pairs={}", pairs.len())),
        }
    }

    pub fn purge(by: &Actor, filter: &PurgeFilter) -> AuditEntry {
        let mut f = Vec::new();
        if !filter.status.is_empty() {
            f.push(format!("status={}", statuses(&filter.status)));
        }
        if let Some(t) = filter.before {
            f.push(format!("before={}", rfc3339(t)));
        }
        let e = AuditEntry::new(by, action::PURGE).filter(f.join(" "));
        match &filter.subscription_id {
            Some(s) => e.on_sub(s),
            None => e,
        }
    }

    pub fn delete(by: &Actor, id: &str, force: bool) -> AuditEntry {
        AuditEntry::new(by, action::SUB_DELETE)
            .on_sub(id)
            .filter(if force { "force" } else { "" })
    }
}
