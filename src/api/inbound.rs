//! `POST /hooks/in/{token}`: an external system's JSON becomes an event of the inbound
//! endpoint's type, with its fields mapped by JSON pointer, and fans out like any other.

use super::{ApiError, ApiResult, ApiState, auth, body};
use crate::ingest::new_event;
use crate::signing;
use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};
use std::net::SocketAddr;

pub async fn receive(
    State(s): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    // The same answer for an unknown token and a refused source: nothing to probe.
    let Some(inbound) = s.store.inbound_by_hash(&auth::hash(&token)).await? else {
        return Err(ApiError::not_found("no such inbound webhook"));
    };
    if !s.inbound_allow.is_empty() && !s.inbound_allow.iter().any(|n| n.contains(&peer.ip())) {
        return Err(ApiError::forbidden(format!(
            "{} is not in inbound_allow_networks",
            peer.ip()
        )));
    }
    let (raw, v) = body::bytes(&headers, body, s.body_cap).await?;
    if let Some(secret) = &inbound.secret {
        let sig = headers
            .get("x-hookctl-signature")
            .or_else(|| headers.get("x-wl-signature"))
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !signing::verify_wl(secret, &raw, sig) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or invalid x-hookctl-signature (hex HMAC-SHA256 of the body)",
            ));
        }
    }
    let data = if inbound.map.is_empty() {
        v.clone()
    } else {
        let mut m = Map::new();
        for (field, pointer) in &inbound.map {
            m.insert(
                field.clone(),
                v.pointer(pointer).cloned().unwrap_or(Value::Null),
            );
        }
        Value::Object(m)
    };
    if !data.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let id = headers
        .get("idempotency-key")
        .and_then(|k| k.to_str().ok())
        .map(|k| format!("in_{}_{}", inbound.id, k));
    let event = new_event(
        &inbound.event_type,
        inbound.location_id.clone(),
        id,
        None,
        Some(data),
    )
    .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
    let published = s.store.publish(vec![event]).await?;
    Ok((StatusCode::ACCEPTED, Json(json!(published[0]))).into_response())
}
