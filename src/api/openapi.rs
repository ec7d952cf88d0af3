//! The API's contract (OpenAPI 3.0), made from the route table below, which the router
//! is tested against: every route, its parameters and body, and every answer it can give.
//! The request schemas state the subscription rules and the event rules as far as JSON
//! Schema can; what it cannot say (a host that resolves to a private network) is a 400.

use super::ApiResult;
use crate::catalog;
use axum::Json;
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};

/// What a successful answer carries.
#[derive(Clone, Copy)]
pub enum Answer {
    /// JSON with this schema (a name under `components/schemas`).
    Json(&'static str),
    /// Prometheus text.
    Text,
    /// This document.
    Document,
}

pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Scopes that grant access; empty: no token needed.
    pub scopes: &'static [&'static str],
    /// The request body's schema, and whether it must be sent.
    pub body: Option<(&'static str, bool)>,
    pub ok: u16,
    pub answer: Answer,
    /// Every error status the route can answer, each with the error schema.
    pub errors: &'static [u16],
    /// Query parameters: (name, schema).
    pub query: &'static [(&'static str, &'static str)],
    /// Operations that take the id this one returns: (link, operation, request body).
    pub links: &'static [(&'static str, &'static str, Option<&'static str>)],
}

/// The errors of a route that reads a token, finds a webhook by id and takes a JSON body.
const WITH_BODY: &[u16] = &[400, 401, 403, 404, 413, 415, 500];
const BY_ID: &[u16] = &[401, 403, 404, 500];

/// What a created webhook's id is good for: (link, operation, request body).
const WEBHOOK_LINKS: &[(&str, &str, Option<&str>)] = &[
    ("GetWebhook", "get_webhook", None),
    ("UpdateWebhook", "update_webhook", None),
    ("DeleteWebhook", "delete_webhook", None),
    ("PauseWebhook", "pause_webhook", None),
    ("ResumeWebhook", "resume_webhook", None),
    ("TestWebhook", "test_webhook", Some(r#"{"dry_run": true}"#)),
];

pub const ROUTES: &[Route] = &[
    Route {
        method: "get",
        path: "/healthz",
        summary: "Liveness: the store answers",
        scopes: &[],
        body: None,
        ok: 200,
        answer: Answer::Json("Health"),
        errors: &[500],
        query: &[],
        links: &[],
    },
    Route {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics",
        scopes: &[],
        body: None,
        ok: 200,
        answer: Answer::Text,
        errors: &[500],
        query: &[],
        links: &[],
    },
    Route {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        scopes: &[],
        body: None,
        ok: 200,
        answer: Answer::Document,
        errors: &[],
        query: &[],
        links: &[],
    },
    Route {
        method: "post",
        path: "/hooks/in/{token}",
        summary: "Inbound webhook: a JSON body becomes an event (authorised by its token, optional HMAC and source allowlist)",
        scopes: &[],
        body: Some(("InboundBody", true)),
        ok: 202,
        answer: Answer::Json("Published"),
        errors: &[400, 401, 403, 404, 413, 415, 500],
        query: &[],
        links: &[],
    },
    Route {
        method: "post",
        path: "/v2/events",
        summary: "Publish an event or an array of events (Idempotency-Key honoured); answered after commit",
        scopes: &["events:write"],
        body: Some(("EventsIn", true)),
        ok: 202,
        answer: Answer::Json("PublishedAny"),
        errors: &[400, 401, 403, 413, 415, 500],
        query: &[],
        links: &[("GetEvent", "get_event", None)],
    },
    Route {
        method: "get",
        path: "/v2/events/{id}",
        summary: "An event with its deliveries and attempts",
        scopes: &["events:read", "webhooks:read"],
        body: None,
        ok: 200,
        answer: Answer::Json("EventDetail"),
        errors: BY_ID,
        query: &[],
        links: &[],
    },
    Route {
        method: "get",
        path: "/v2/audit",
        summary: "Operator actions, newest first: who paused, redelivered, changed or purged what, and how it ended",
        scopes: &["audit:read"],
        body: None,
        ok: 200,
        answer: Answer::Json("AuditList"),
        errors: &[400, 401, 403, 500],
        query: &[
            ("since", "duration"),
            ("subscription_id", "string"),
            ("limit", "limit"),
        ],
        links: &[],
    },
    Route {
        method: "get",
        path: "/v2/incident",
        summary: "Endpoints in trouble within the window (default 1h): since when, how, what waits and died, where, and the operator actions taken",
        scopes: &["webhooks:read"],
        body: None,
        ok: 200,
        answer: Answer::Json("Incident"),
        errors: &[400, 401, 403, 500],
        query: &[("since", "duration")],
        links: &[],
    },
    Route {
        method: "get",
        path: "/v2/webhooks",
        summary: "List webhooks",
        scopes: &["webhooks:read"],
        body: None,
        ok: 200,
        answer: Answer::Json("WebhookList"),
        errors: &[401, 403, 500],
        query: &[],
        links: &[],
    },
    Route {
        method: "post",
        path: "/v2/webhooks",
        summary: "Create a webhook (pending until its endpoint echoes the confirmation token); the secret is returned once",
        scopes: &["webhooks:write"],
        body: Some(("WebhookCreate", true)),
        ok: 201,
        answer: Answer::Json("Webhook"),
        errors: &[400, 401, 403, 413, 415, 500],
        query: &[],
        links: WEBHOOK_LINKS,
    },
    Route {
        method: "get",
        path: "/v2/webhooks/{id}",
        summary: "One webhook",
        scopes: &["webhooks:read"],
        body: None,
        ok: 200,
        answer: Answer::Json("Webhook"),
        errors: BY_ID,
        query: &[],
        links: &[],
    },
    Route {
        method: "patch",
        path: "/v2/webhooks/{id}",
        summary: "Change a webhook's settings (its secret is changed by rotation only)",
        scopes: &["webhooks:write"],
        body: Some(("WebhookPatch", true)),
        ok: 200,
        answer: Answer::Json("Webhook"),
        errors: WITH_BODY,
        query: &[],
        links: &[],
    },
    Route {
        method: "delete",
        path: "/v2/webhooks/{id}",
        summary: "Delete a webhook; refused while deliveries are unfinished unless force=true cancels them",
        scopes: &["webhooks:write"],
        body: None,
        ok: 200,
        answer: Answer::Json("Deleted"),
        errors: &[400, 401, 403, 404, 409, 500],
        query: &[("force", "boolean")],
        links: &[],
    },
    Route {
        method: "post",
        path: "/v2/webhooks/{id}/pause",
        summary: "Hold new deliveries",
        scopes: &["webhooks:write"],
        body: None,
        ok: 200,
        answer: Answer::Json("Webhook"),
        errors: BY_ID,
        query: &[],
        links: &[],
    },
    Route {
        method: "post",
        path: "/v2/webhooks/{id}/resume",
        summary: "Release held deliveries",
        scopes: &["webhooks:write"],
        body: None,
        ok: 200,
        answer: Answer::Json("Webhook"),
        errors: BY_ID,
        query: &[],
        links: &[],
    },
    Route {
        method: "post",
        path: "/v2/webhooks/{id}/redeliver",
        summary: "Redeliver one event or in bulk by status and age (dry_run counts)",
        scopes: &["webhooks:write"],
        body: Some(("RedeliverIn", false)),
        ok: 200,
        answer: Answer::Json("Redelivered"),
        errors: WITH_BODY,
        query: &[],
        links: &[],
    },
    Route {
        method: "post",
        path: "/v2/webhooks/{id}/test",
        summary: "Render (and unless dry_run send once) a sample event",
        scopes: &["webhooks:write"],
        body: Some(("TestIn", false)),
        ok: 200,
        answer: Answer::Json("TestResult"),
        errors: WITH_BODY,
        query: &[],
        links: &[],
    },
];

/// The operation's id: a name for the link targets, otherwise made from the route.
fn operation_id(r: &Route) -> String {
    let named = match (r.method, r.path) {
        ("get", "/v2/events/{id}") => "get_event",
        ("get", "/v2/webhooks/{id}") => "get_webhook",
        ("patch", "/v2/webhooks/{id}") => "update_webhook",
        ("delete", "/v2/webhooks/{id}") => "delete_webhook",
        ("post", "/v2/webhooks/{id}/pause") => "pause_webhook",
        ("post", "/v2/webhooks/{id}/resume") => "resume_webhook",
        ("post", "/v2/webhooks/{id}/redeliver") => "redeliver_webhook",
        ("post", "/v2/webhooks/{id}/test") => "test_webhook",
        _ => "",
    };
    if !named.is_empty() {
        return named.to_string();
    }
    format!(
        "{}_{}",
        r.method,
        r.path.trim_matches('/').replace(['/', '{', '}', '.'], "_")
    )
}

fn reason(code: u16) -> &'static str {
    match code {
        400 => "Malformed JSON, an invalid field or parameter",
        401 => "No token, or an unknown or revoked one (inbound: a bad signature)",
        403 => "The token lacks the scope, or another location's data was asked for",
        404 => "No such resource (or another location's)",
        409 => "Deliveries are unfinished",
        413 => "The body is over api_body_cap",
        415 => "The body is not application/json",
        500 => "The store failed",
        _ => "Error",
    }
}

/// Every event type name a producer may publish: the catalog's and the guide's aliases.
fn event_type_names() -> Vec<&'static str> {
    catalog::TYPES
        .iter()
        .map(|t| t.name)
        .chain(catalog::ALIASES.iter().map(|(a, _)| *a))
        .collect()
}

/// What a subscription may take: those, hookctl's operational types, and `hookctl.*`.
fn subscribable_type_names() -> Vec<&'static str> {
    let mut names = event_type_names();
    names.extend(crate::ops::TYPES.iter().map(|t| t.name));
    names.push("hookctl.*");
    names
}

fn schemas() -> Value {
    let string = json!({"type": "string"});
    let header_name = json!({"type": "string", "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"});
    let types = event_type_names();
    let subscribable = subscribable_type_names();
    let testable: Vec<&str> = subscribable
        .iter()
        .copied()
        .filter(|t| *t != "hookctl.*")
        .collect();
    let url = json!({
        "type": "string",
        "format": "uri",
        "description": "https://, or http:// to an allowlisted network; a host name, or an IP address (a loopback, private, link-local, CGNAT or multicast one is refused unless allowlisted); no credentials, no fragment",
        "pattern": "^(?!.*xn--)https?://([A-Za-z0-9-]+\\.)*[A-Za-z][A-Za-z0-9-]*(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?([/?]([A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"
    });
    let events = json!({
        "description": "Event types (catalog names or aliases), or [\"*\"] for all but hookctl's operational ones, which go only where named (\"hookctl.*\" names them all)",
        "oneOf": [
            {"type": "array", "items": {"type": "string", "enum": ["*"]}, "minItems": 1, "maxItems": 1},
            {"type": "array", "items": {"type": "string", "enum": subscribable}, "minItems": 1}
        ]
    });
    let mut webhook_fields = json!({
        "url": url,
        "name": {"type": "string", "maxLength": crate::subscription::NAME_MAX, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$", "description": "Defaults to the URL's host"},
        "events": events,
        "location_id": {"type": "string", "description": "Only events of this location; empty: all"},
        "headers": {"type": "array", "items": {
            "type": "object", "additionalProperties": false, "required": ["name", "value"],
            "properties": {"name": header_name, "value": {"type": "string", "pattern": "^[\\t -~]*$"}}
        }},
        "method": {"type": "string", "enum": ["POST", "PUT", "GET", "DELETE"]},
        "format": {"type": "string", "enum": ["json", "form"]},
        "payload": {"type": "string", "enum": ["flat", "envelope"]},
        "template": {"type": "string", "description": "A body with merge tags ({{contact.email}}); empty removes it. Checked when set: a syntax error is a 400"},
        "retry_schedule": {"type": "array", "items": {"type": "string", "pattern": crate::subscription::DURATION_PATTERN}, "description": "Delays after the first attempt; empty: no retries"},
        "timeout_ms": {"type": "integer", "minimum": 1, "maximum": crate::subscription::TIMEOUT_MAX_MS},
        "rate": {"type": "string", "pattern": "^([1-9][0-9]{0,5}/(s|m|h))?$", "example": "50/s", "description": "Requests per second, minute or hour; empty removes the limit"},
        "signature_scheme": {"type": "string", "enum": ["wl", "standard"]},
        "signature_header": header_name
    });
    let patch_fields = webhook_fields.clone();
    webhook_fields["secret"] = json!({"type": "string", "pattern": "[!-~]", "description": "Generated when absent; returned once"});
    let webhook = json!({
        "type": "object",
        "required": ["id", "name", "url", "state", "events", "method", "format", "payload", "headers", "retry_schedule", "timeout_ms", "signature_scheme", "signature_header", "secret", "circuit", "created_at", "updated_at"],
        "properties": {
            "id": string, "name": string, "url": string,
            "state": {"type": "string", "enum": ["pending", "active", "paused", "disabled"]},
            "events": {"type": "array", "items": string},
            "location_id": {"type": "string", "nullable": true},
            "method": {"type": "string", "enum": ["POST", "PUT", "GET", "DELETE"]},
            "format": {"type": "string", "enum": ["json", "form"]},
            "payload": {"type": "string", "enum": ["flat", "envelope"]},
            "headers": {"type": "array", "items": {"type": "object", "properties": {"name": string, "value": {"type": "string", "description": "Credentials masked"}}}},
            "retry_schedule": {"type": "array", "items": string},
            "timeout_ms": {"type": "integer"},
            "template": {"type": "string", "nullable": true},
            "rate": {"type": "string", "nullable": true},
            "signature_scheme": {"type": "string", "enum": ["wl", "standard"]},
            "signature_header": string,
            "secret": {"type": "string", "description": "In full only in the answer to the create; masked elsewhere"},
            "circuit": {"type": "string", "enum": ["open", "closed"]},
            "consecutive_failures": {"type": "integer"},
            "state_reason": {"type": "string", "nullable": true},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"}
        }
    });
    let published = json!({
        "type": "object", "required": ["id", "duplicate", "deliveries"],
        "properties": {"id": string, "duplicate": {"type": "boolean"}, "deliveries": {"type": "integer", "minimum": 0}}
    });
    let event_in = json!({
        "type": "object", "required": ["type"],
        "properties": {
            "type": {"type": "string", "enum": types},
            "id": {"type": "string", "nullable": true, "minLength": 1, "maxLength": 200, "pattern": "[!-~]", "description": "The producer's id; generated when absent (from Idempotency-Key when given). An id stored before is accepted once"},
            "locationId": {"type": "string", "nullable": true},
            "location_id": {"type": "string", "nullable": true, "description": "The same as locationId"},
            "timestamp": {"anyOf": [
                {"type": "string", "format": "date-time", "nullable": true},
                {"type": "integer", "minimum": crate::ingest::TIMESTAMP_MIN, "maximum": crate::ingest::TIMESTAMP_MAX, "nullable": true, "description": "Epoch milliseconds"}
            ]},
            "data": {"type": "object", "description": "The event's payload; the catalog's sample when absent"}
        }
    });
    let incident = json!({"type": "object", "required": ["since", "at", "headline", "endpoints"], "properties": {
        "since": {"type": "string", "format": "date-time"}, "at": {"type": "string", "format": "date-time"},
        "headline": {"type": "string", "nullable": true},
        "endpoints": {"type": "array", "items": {"type": "object", "required": ["subscription_id", "name", "url", "state", "circuit", "current", "errors", "waiting", "dead", "locations", "alerts", "actions"], "properties": {
            "subscription_id": string, "name": string, "url": string,
            "location_id": {"type": "string", "nullable": true},
            "state": {"type": "string", "enum": ["pending", "active", "paused", "disabled"]},
            "circuit": {"type": "string", "enum": ["open", "closed"]},
            "circuit_changed_at": {"type": "string", "format": "date-time", "nullable": true},
            "consecutive_failures": {"type": "integer", "minimum": 0},
            "current": {"type": "boolean", "description": "Something is wrong now, not only earlier in the window"},
            "first_failure_at": {"type": "string", "format": "date-time", "nullable": true},
            "failing_since": {"type": "string", "format": "date-time", "nullable": true},
            "last_failure_at": {"type": "string", "format": "date-time", "nullable": true},
            "last_success_at": {"type": "string", "format": "date-time", "nullable": true},
            "errors": {"type": "array", "items": {"type": "object", "required": ["kind", "count"], "properties": {"kind": string, "count": {"type": "integer", "minimum": 1}}}},
            "waiting": {"type": "integer", "minimum": 0},
            "oldest_waiting_at": {"type": "string", "format": "date-time", "nullable": true},
            "oldest_waiting_seconds": {"type": "integer", "nullable": true},
            "dead": {"type": "integer", "minimum": 0},
            "locations": {"type": "array", "items": {"type": "string", "nullable": true}},
            "alerts": {"type": "array", "items": {"type": "string", "enum": ["backlog", "age"]}},
            "actions": {"$ref": "#/components/schemas/AuditList"}
        }}}
    }});
    json!({
        "Error": {"type": "object", "required": ["error", "detail"], "properties": {"error": string, "detail": string}},
        "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok"]}}},
        "EventIn": event_in,
        "EventsIn": {"oneOf": [
            {"$ref": "#/components/schemas/EventIn"},
            {"type": "array", "items": {"$ref": "#/components/schemas/EventIn"}, "minItems": 1}
        ]},
        "Published": published,
        "PublishedAny": {"oneOf": [
            {"$ref": "#/components/schemas/Published"},
            {"type": "object", "required": ["events"], "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/Published"}}}}
        ]},
        "EventDetail": {"type": "object", "required": ["event", "deliveries"], "properties": {
            "event": {"type": "object", "required": ["id", "type", "timestamp", "data"], "properties": {
                "id": string, "type": string, "location_id": {"type": "string", "nullable": true},
                "timestamp": {"type": "string", "format": "date-time"}, "data": {"type": "object"}
            }},
            "deliveries": {"type": "array", "items": {"type": "object"}}
        }},
        "WebhookCreate": {"type": "object", "additionalProperties": false, "required": ["url", "events"], "properties": webhook_fields},
        "WebhookPatch": {"type": "object", "additionalProperties": false, "properties": patch_fields},
        "Webhook": webhook,
        "WebhookList": {"type": "array", "items": {"$ref": "#/components/schemas/Webhook"}},
        "AuditList": {"type": "array", "items": {"type": "object", "required": ["id", "at", "actor", "action", "outcome"], "properties": {
            "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
            "actor": {"type": "object", "required": ["kind", "name", "attached"], "properties": {
                "kind": {"type": "string", "enum": ["cli", "console", "api"]}, "name": string, "attached": {"type": "boolean"}}},
            "action": string,
            "subscription_id": {"type": "string", "nullable": true}, "event_id": {"type": "string", "nullable": true},
            "filter": {"type": "string", "nullable": true}, "count": {"type": "integer", "nullable": true},
            "outcome": {"type": "string", "enum": ["ok", "failed"]}, "detail": {"type": "string", "nullable": true}
        }}},
        "Incident": incident,
        "Deleted": {"type": "object", "required": ["id", "deleted", "cancelled"], "properties": {"id": string, "deleted": {"type": "boolean"}, "cancelled": {"type": "integer", "minimum": 0}}},
        "RedeliverIn": {"description": "One event by its id, or in bulk by status (dead by default) and age", "anyOf": [
            {"type": "object", "additionalProperties": false, "properties": {
                "event_id": string,
                "dry_run": {"type": "boolean"}
            }},
            {"type": "object", "additionalProperties": false, "properties": {
                "status": {"type": "string", "enum": ["dead", "retrying"]},
                "since": {"type": "string", "pattern": crate::subscription::DURATION_PATTERN, "example": "2h"},
                "dry_run": {"type": "boolean"}
            }}
        ]},
        "Redelivered": {"type": "object", "required": ["dry_run", "count", "deliveries"], "properties": {
            "dry_run": {"type": "boolean"}, "count": {"type": "integer", "minimum": 0}, "deliveries": {"type": "array", "items": {"type": "object"}}
        }},
        "TestIn": {"type": "object", "additionalProperties": false, "properties": {"type": {"type": "string", "enum": testable}, "dry_run": {"type": "boolean"}}},
        "TestResult": {"type": "object", "required": ["sent", "request", "response"], "properties": {
            "sent": {"type": "boolean"},
            "request": {"type": "object", "nullable": true, "description": "null when the template could not render the sample event"},
            "response": {"type": "object", "nullable": true, "description": "null for a dry run"},
            "render_error": {"type": "string", "description": "Why the template could not render the sample event (a delivery of it would fail with error class render)"}
        }},
        "InboundBody": {"type": "object"}
    })
}

fn error_response(code: u16) -> Value {
    json!({"description": reason(code), "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok_response(r: &Route) -> Value {
    let content = match r.answer {
        Answer::Json(schema) => {
            json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}})
        }
        Answer::Text => json!({"text/plain": {"schema": {"type": "string"}}}),
        Answer::Document => json!({"application/json": {"schema": {"type": "object"}}}),
    };
    let mut ok = json!({"description": "OK", "content": content});
    if !r.links.is_empty() {
        let links: Map<String, Value> = r
            .links
            .iter()
            .map(|(name, op, body)| {
                let mut link =
                    json!({"operationId": op, "parameters": {"id": "$response.body#/id"}});
                if let Some(b) = body.and_then(|b| serde_json::from_str::<Value>(b).ok()) {
                    link["requestBody"] = b;
                }
                (name.to_string(), link)
            })
            .collect();
        ok["links"] = Value::Object(links);
    }
    ok
}

fn operation(r: &Route) -> Value {
    let mut responses = Map::new();
    responses.insert(r.ok.to_string(), ok_response(r));
    for code in r.errors {
        responses.insert(code.to_string(), error_response(*code));
    }
    let mut op = json!({
        "summary": r.summary,
        "operationId": operation_id(r),
        "responses": responses,
    });
    let mut params: Vec<Value> = r
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    for (name, ty) in r.query {
        let schema = match *ty {
            "duration" => {
                json!({"type": "string", "pattern": crate::subscription::DURATION_PATTERN})
            }
            "limit" => json!({"type": "integer", "minimum": 1, "maximum": super::audit::LIMIT_MAX}),
            t => json!({"type": t}),
        };
        params.push(json!({"name": name, "in": "query", "required": false, "schema": schema}));
    }
    if r.path == "/v2/events" {
        params.push(
            json!({"name": "Idempotency-Key", "in": "header", "required": false,
            "description": "A retried request with the same key stores nothing new",
            "schema": {"type": "string", "pattern": "^[\\t -~]*[!-~][\\t -~]*$"}}),
        );
    }
    if !params.is_empty() {
        op["parameters"] = Value::Array(params);
    }
    if let Some((body, required)) = r.body {
        op["requestBody"] = json!({"required": required, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}});
    }
    if r.scopes.is_empty() {
        op["security"] = json!([]);
    } else {
        op["description"] = Value::String(format!(
            "Needs a bearer token with {}.",
            r.scopes.join(" or ")
        ));
    }
    op
}

pub fn spec() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in ROUTES {
        if let Some(m) = paths
            .entry(r.path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
        {
            m.insert(r.method.to_string(), operation(r));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "hookctl", "version": env!("CARGO_PKG_VERSION"), "description": "Webhook delivery engine"},
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        },
        "security": [{"bearer": []}]
    })
}

pub async fn document() -> ApiResult {
    Ok(Json(spec()).into_response())
}
