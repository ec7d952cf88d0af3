//! The API's description, made from the route table below (OpenAPI 3.0).

use super::ApiResult;
use axum::Json;
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};

pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Scopes that grant access; empty: no token needed.
    pub scopes: &'static [&'static str],
    pub body: Option<&'static str>,
    pub ok: u16,
}

pub const ROUTES: &[Route] = &[
    Route {
        method: "get",
        path: "/healthz",
        summary: "Liveness: the store answers",
        scopes: &[],
        body: None,
        ok: 200,
    },
    Route {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics",
        scopes: &[],
        body: None,
        ok: 200,
    },
    Route {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        scopes: &[],
        body: None,
        ok: 200,
    },
    Route {
        method: "post",
        path: "/hooks/in/{token}",
        summary: "Inbound webhook: a JSON body becomes an event (authorised by its token, optional HMAC and source allowlist)",
        scopes: &[],
        body: Some("InboundBody"),
        ok: 202,
    },
    Route {
        method: "post",
        path: "/v2/events",
        summary: "Publish an event or an array of events (Idempotency-Key honoured); answered after commit",
        scopes: &["events:write"],
        body: Some("EventIn"),
        ok: 202,
    },
    Route {
        method: "get",
        path: "/v2/events/{id}",
        summary: "An event with its deliveries and attempts",
        scopes: &["events:read", "webhooks:read"],
        body: None,
        ok: 200,
    },
    Route {
        method: "get",
        path: "/v2/webhooks",
        summary: "List webhooks",
        scopes: &["webhooks:read"],
        body: None,
        ok: 200,
    },
    Route {
        method: "post",
        path: "/v2/webhooks",
        summary: "Create a webhook (pending until its endpoint echoes the confirmation token); the secret is returned once",
        scopes: &["webhooks:write"],
        body: Some("WebhookIn"),
        ok: 201,
    },
    Route {
        method: "get",
        path: "/v2/webhooks/{id}",
        summary: "One webhook",
        scopes: &["webhooks:read"],
        body: None,
        ok: 200,
    },
    Route {
        method: "patch",
        path: "/v2/webhooks/{id}",
        summary: "Change a webhook's settings",
        scopes: &["webhooks:write"],
        body: Some("WebhookIn"),
        ok: 200,
    },
    Route {
        method: "delete",
        path: "/v2/webhooks/{id}",
        summary: "Delete a webhook (?force=true cancels unfinished deliveries)",
        scopes: &["webhooks:write"],
        body: None,
        ok: 200,
    },
    Route {
        method: "post",
        path: "/v2/webhooks/{id}/pause",
        summary: "Hold new deliveries",
        scopes: &["webhooks:write"],
        body: None,
        ok: 200,
    },
    Route {
        method: "post",
        path: "/v2/webhooks/{id}/resume",
        summary: "Release held deliveries",
        scopes: &["webhooks:write"],
        body: None,
        ok: 200,
    },
    Route {
        method: "post",
        path: "/v2/webhooks/{id}/redeliver",
        summary: "Redeliver one event or in bulk by status and age (dry_run counts)",
        scopes: &["webhooks:write"],
        body: Some("RedeliverIn"),
        ok: 200,
    },
    Route {
        method: "post",
        path: "/v2/webhooks/{id}/test",
        summary: "Render (and unless dry_run send once) a sample event",
        scopes: &["webhooks:write"],
        body: Some("TestIn"),
        ok: 200,
    },
];

fn schemas() -> Value {
    let string = json!({"type": "string"});
    json!({
        "Error": {"type": "object", "required": ["error", "detail"], "properties": {"error": string, "detail": string}},
        "EventIn": {"type": "object", "required": ["type"], "properties": {
            "type": {"type": "string", "description": "Catalog event type or alias"},
            "id": {"type": "string", "description": "Producer's id; generated when absent"},
            "locationId": string,
            "timestamp": {"type": "string", "format": "date-time"},
            "data": {"type": "object"}
        }},
        "WebhookIn": {"type": "object", "properties": {
            "url": string, "name": string,
            "events": {"type": "array", "items": string, "description": "Types, or [\"*\"] for all"},
            "location_id": string, "secret": string,
            "headers": {"type": "array", "items": {"type": "object", "properties": {"name": string, "value": string}}},
            "method": {"type": "string", "enum": ["POST", "PUT", "GET", "DELETE"]},
            "format": {"type": "string", "enum": ["json", "form"]},
            "payload": {"type": "string", "enum": ["flat", "envelope"]},
            "template": string,
            "retry_schedule": {"type": "array", "items": string},
            "timeout_ms": {"type": "integer"},
            "rate": {"type": "string", "example": "50/s"},
            "signature_scheme": {"type": "string", "enum": ["wl", "standard"]},
            "signature_header": string
        }},
        "RedeliverIn": {"type": "object", "properties": {"event_id": string, "status": {"type": "string", "enum": ["dead", "retrying"]}, "since": string, "dry_run": {"type": "boolean"}}},
        "TestIn": {"type": "object", "properties": {"type": string, "dry_run": {"type": "boolean"}}},
        "InboundBody": {"type": "object"}
    })
}

pub fn spec() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in ROUTES {
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{}_{}", r.method, r.path.trim_matches('/').replace(['/', '{', '}', '.'], "_")),
            "responses": {
                r.ok.to_string(): {"description": "OK"},
                "default": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if let Some(body) = r.body {
            op["requestBody"] = json!({"required": false, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}});
        }
        if r.scopes.is_empty() {
            op["security"] = json!([]);
        } else {
            op["description"] = Value::String(format!(
                "Needs a bearer token with {}.",
                r.scopes.join(" or ")
            ));
        }
        paths
            .entry(r.path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|m| m.insert(r.method.to_string(), op));
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
