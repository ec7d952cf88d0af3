//! The JSON forms of subscriptions, events and attempts (stable snake_case field names),
//! shared by the command line's `--json` and the HTTP API.

use crate::ids;
use crate::model::*;
use crate::store::{DeliveryDetail, EventDetail, SubscriptionStats};
use serde_json::{Value, json};

pub fn duration_text(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
}

/// A subscription as JSON; the secret in full only when `reveal` (the creating command).
pub fn subscription(s: &Subscription, reveal: bool) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "url": s.url,
        "state": s.state,
        "events": s.events.clone().unwrap_or_else(|| vec!["*".to_string()]),
        "location_id": s.location_id,
        "method": s.method.upper(),
        "format": s.format,
        "payload": s.payload,
        "headers": s.headers.iter().map(|(k, v)| json!({"name": k, "value": ids::mask_header_value(k, v)})).collect::<Vec<_>>(),
        "retry_schedule": s.retry_schedule_ms.iter().map(|ms| duration_text(*ms)).collect::<Vec<_>>(),
        "timeout_ms": s.timeout_ms,
        "template": s.template,
        "rate": s.rate_per_sec.map(|r| format!("{r}/s")),
        "signature_scheme": s.signature_scheme,
        "signature_header": s.signature_header,
        "secret": if reveal { s.secret.clone() } else { ids::mask(&s.secret) },
        "circuit": if s.circuit_open { "open" } else { "closed" },
        "consecutive_failures": s.consecutive_failures,
        "state_reason": s.state_reason,
        "created_at": rfc3339(s.created_at),
        "updated_at": rfc3339(s.updated_at),
    })
}

pub fn stats(st: &SubscriptionStats) -> Value {
    json!({
        "pending": st.pending,
        "retrying": st.retrying,
        "delivered": st.delivered,
        "dead": st.dead,
        "cancelled": st.cancelled,
        "last_status_code": st.last_status_code,
        "last_attempt_at": st.last_attempt_at.map(rfc3339),
    })
}

pub fn attempt(a: &Attempt) -> Value {
    json!({
        "n": a.n,
        "at": rfc3339(a.at),
        "status_code": a.status_code,
        "error_class": a.error_class,
        "error": a.error,
        "latency_ms": a.latency_ms,
        "request_headers": a.request_headers.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
    })
}

fn delivery(d: &DeliveryDetail) -> Value {
    json!({
        "id": d.id,
        "subscription_id": d.subscription_id,
        "url": d.url,
        "status": d.status,
        "next_attempt_at": d.next_at.map(rfc3339),
        "superseded_by": d.superseded_by,
        "attempts": d.attempts.iter().map(attempt).collect::<Vec<_>>(),
    })
}

pub fn event_detail(e: &EventDetail) -> Value {
    json!({
        "event": {
            "id": e.event.id,
            "type": e.event.event_type,
            "location_id": e.event.location_id,
            "timestamp": rfc3339(e.event.timestamp),
            "data": e.event.data,
        },
        "deliveries": e.deliveries.iter().map(delivery).collect::<Vec<_>>(),
    })
}

/// One audit entry, as `hookctl audit --json` and `GET /v2/audit` give it.
pub fn audit_entry(e: &crate::audit::AuditEntry) -> Value {
    json!({
        "id": e.id,
        "at": rfc3339(e.at),
        "actor": {
            "kind": e.actor.kind,
            "name": e.actor.name,
            "attached": e.actor.attached,
        },
        "action": e.action,
        "subscription_id": e.subscription_id,
        "event_id": e.event_id,
        "filter": e.filter,
        "count": e.count,
        "outcome": if e.ok { "ok" } else { "failed" },
        "detail": e.detail,
    })
}
