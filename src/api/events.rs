//! `POST /v2/events` and `GET /v2/events/{id}`.

use super::{ApiError, ApiResult, ApiState, auth, body};
use crate::ingest::event_from_json;
use crate::shapes;
use crate::store::TokenRevoked;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// An event id derived from the producer's `Idempotency-Key`, so that a retried request
/// makes the same events (accepted once).
fn idempotent_id(token: &str, key: &str, index: usize) -> String {
    let h = hex::encode(Sha256::digest(
        format!("{token}\0{key}\0{index}").as_bytes(),
    ));
    format!("evt_idem_{}", &h[..24])
}

pub async fn publish(State(s): State<ApiState>, req: axum::extract::Request) -> ApiResult {
    // Taken whole: the `HeaderMap` extractor would copy every header of every request.
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let (token, hash) = auth::require_to_publish(&s, &headers, &["events:write"]).await?;
    let v = body::json(&headers, body, s.body_cap).await?;
    let (items, batch) = match v {
        Value::Array(items) => (items, true),
        v @ Value::Object(_) => (vec![v], false),
        _ => {
            return Err(ApiError::bad_request(
                "send an event object or an array of them",
            ));
        }
    };
    if items.is_empty() {
        return Err(ApiError::bad_request("the array is empty"));
    }
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(k) => match k.to_str() {
            Ok(k) if !k.trim().is_empty() => Some(k.to_string()),
            _ => {
                return Err(ApiError::bad_request(
                    "Idempotency-Key: visible ASCII characters, not empty",
                ));
            }
        },
    };
    // Everything is checked before anything is stored.
    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let named = item.get("id").is_some();
        let mut e = event_from_json(item).map_err(|e| {
            ApiError::bad_request(if batch {
                format!("event {i}: {e:#}")
            } else {
                format!("{e:#}")
            })
        })?;
        match (&token.location_id, &e.location_id) {
            (Some(mine), None) => e.location_id = Some(mine.clone()),
            (Some(mine), Some(theirs)) if mine != theirs => {
                return Err(ApiError::forbidden(format!(
                    "this token may only publish events of location {mine}"
                )));
            }
            _ => {}
        }
        if !named && let Some(k) = &key {
            e.id = idempotent_id(&token.id, k, i);
        }
        events.push(e);
    }
    let published = match s.store.publish_as(events, token.id).await {
        Err(e) if e.is::<TokenRevoked>() => {
            s.known.forget(&hash);
            return Err(auth::revoked());
        }
        r => r?,
    };
    // Serialised straight from the results, not through a `Value` first.
    Ok(if batch {
        (StatusCode::ACCEPTED, Json(json!({"events": published}))).into_response()
    } else {
        (StatusCode::ACCEPTED, Json(&published[0])).into_response()
    })
}

pub async fn show(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let token = auth::require(&s, &headers, &["events:read", "webhooks:read"]).await?;
    let Some(mut detail) = s.store.event_detail(&id).await? else {
        return Err(ApiError::not_found(format!("no event {id}")));
    };
    if !auth::sees(&token, detail.event.location_id.as_deref()) {
        return Err(ApiError::not_found(format!("no event {id}")));
    }
    if token.location_id.is_some() {
        // Deliveries to subscriptions outside the token's location are not its business.
        let subs = s.store.subscriptions().await?;
        detail.deliveries.retain(|d| {
            subs.iter()
                .any(|x| x.id == d.subscription_id && auth::sees(&token, x.location_id.as_deref()))
        });
    }
    Ok(Json(shapes::event_detail(&detail)).into_response())
}
