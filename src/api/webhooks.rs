//! `/v2/webhooks`: create, list, show, update, delete, pause, resume, redeliver, test.
//! Webhooks made here start `pending` until their endpoint echoes a confirmation token.

use super::{ApiError, ApiResult, ApiState, auth, body};
use crate::model::*;
use crate::shapes;
use crate::store::{Actor, ApiToken, RedeliverTarget};
use crate::{catalog, ids, subscription};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderIn {
    name: String,
    value: String,
}

/// The fields a client may set; absent ones keep their value (or the default).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookIn {
    url: Option<String>,
    name: Option<String>,
    /// Event types, or `["*"]` for all.
    events: Option<Vec<String>>,
    location_id: Option<String>,
    secret: Option<String>,
    headers: Option<Vec<HeaderIn>>,
    method: Option<String>,
    format: Option<String>,
    payload: Option<String>,
    template: Option<String>,
    retry_schedule: Option<Vec<String>>,
    timeout_ms: Option<u64>,
    rate: Option<String>,
    signature_scheme: Option<String>,
    signature_header: Option<String>,
}

impl From<subscription::Refused> for ApiError {
    fn from(r: subscription::Refused) -> ApiError {
        ApiError::bad_request(r.to_string())
    }
}

/// A request's fields as the subscription rules take them, with the token's location: a
/// token bound to one may only manage that location's webhooks.
fn changes(token: &ApiToken, input: WebhookIn) -> Result<subscription::Changes, ApiError> {
    let location_id = match (&token.location_id, input.location_id) {
        (Some(mine), Some(theirs)) if *mine != theirs => {
            return Err(ApiError::forbidden(format!(
                "this token may only manage location {mine}"
            )));
        }
        (Some(mine), _) => Some(mine.clone()),
        (None, l) => l,
    };
    Ok(subscription::Changes {
        url: input.url,
        name: input.name,
        events: input.events,
        location_id,
        secret: input.secret,
        headers: input
            .headers
            .map(|h| h.into_iter().map(|h| (h.name, h.value)).collect()),
        method: input.method,
        format: input.format,
        payload: input.payload,
        template: input.template,
        retry_schedule: input.retry_schedule,
        timeout_ms: input.timeout_ms,
        rate: input.rate,
        signature_scheme: input.signature_scheme,
        signature_header: input.signature_header,
    })
}

/// A request body as its type: unknown fields and nulls are refused (a field is either
/// given a value or left out), with the field named.
fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    let Value::Object(fields) = &v else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    if let Some((k, _)) = fields.iter().find(|(_, v)| v.is_null()) {
        return Err(ApiError::bad_request(format!(
            "{k}: null is not a value (leave the field out to keep it)"
        )));
    }
    serde_json::from_value(v).map_err(|e| ApiError::bad_request(format!("{e}")))
}

/// What a redelivery asks for: one event, or in bulk by state and age.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeliverIn {
    event_id: Option<String>,
    status: Option<String>,
    since: Option<String>,
    dry_run: Option<bool>,
}

/// What a test send asks for.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestIn {
    #[serde(rename = "type")]
    event_type: Option<String>,
    dry_run: Option<bool>,
}

/// A webhook the token may see, or 404 (never 403: another location's ids are not confirmed).
async fn visible(s: &ApiState, token: &ApiToken, id: &str) -> Result<Subscription, ApiError> {
    match s.store.find_subscription(id).await {
        Ok(Some(sub)) if sub.id == id && auth::sees(token, sub.location_id.as_deref()) => Ok(sub),
        Ok(_) | Err(_) => Err(ApiError::not_found(format!("no webhook {id}"))),
    }
}

async fn optional_json(s: &ApiState, headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    let empty = headers.get("content-length").and_then(|v| v.to_str().ok()) == Some("0")
        || !headers.contains_key("content-type");
    if empty {
        // A body without a content type is refused only if there is one.
        let bytes = axum::body::to_bytes(body, s.body_cap).await.map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "body over the limit",
            )
        })?;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(json!({}));
        }
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json",
        ));
    }
    body::json(headers, body, s.body_cap).await
}

pub async fn list(State(s): State<ApiState>, headers: HeaderMap) -> ApiResult {
    let token = auth::require(&s, &headers, &["webhooks:read"]).await?;
    let subs = s.store.subscriptions().await?;
    let v: Vec<Value> = subs
        .iter()
        .filter(|x| auth::sees(&token, x.location_id.as_deref()))
        .map(|x| shapes::subscription(x, false))
        .collect();
    Ok(Json(Value::Array(v)).into_response())
}

pub async fn create(State(s): State<ApiState>, headers: HeaderMap, body: Body) -> ApiResult {
    let token = auth::require(&s, &headers, &["webhooks:write"]).await?;
    let input: WebhookIn = decode(body::json(&headers, body, s.body_cap).await?)?;
    let mut sub = subscription::create(&s.policy, changes(&token, input)?)?;
    // Made through the API: pending until the endpoint confirms it.
    sub.state = SubState::Pending;
    s.store
        .add_subscription(sub.clone(), Some(&Actor::token(&token.id)))
        .await?;
    s.store
        .set_verify_token(&sub.id, Some(format!("vt_{}", &ids::secret()[6..])))
        .await?;
    Ok((StatusCode::CREATED, Json(shapes::subscription(&sub, true))).into_response())
}

pub async fn show(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let token = auth::require(&s, &headers, &["webhooks:read"]).await?;
    let sub = visible(&s, &token, &id).await?;
    Ok(Json(shapes::subscription(&sub, false)).into_response())
}

pub async fn update(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult {
    let token = auth::require(&s, &headers, &["webhooks:write"]).await?;
    let sub = visible(&s, &token, &id).await?;
    let input: WebhookIn = decode(body::json(&headers, body, s.body_cap).await?)?;
    if input.secret.is_some() {
        return Err(ApiError::bad_request(
            "secret cannot be set by an update: rotate it (hookctl sub rotate-secret)",
        ));
    }
    let updated = subscription::apply(&s.policy, changes(&token, input)?, sub)?;
    s.store
        .update_subscription(updated.clone(), Some(&Actor::token(&token.id)))
        .await?;
    Ok(Json(shapes::subscription(&updated, false)).into_response())
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    #[serde(default)]
    force: bool,
}

pub async fn delete(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<DeleteQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    // Answered in the API's own error shape, not axum's plain-text rejection.
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let token = auth::require(&s, &headers, &["webhooks:write"]).await?;
    let sub = visible(&s, &token, &id).await?;
    let out = s
        .store
        .delete_subscription(&sub.id, q.force, Some(&Actor::token(&token.id)))
        .await?;
    if !out.deleted {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "{} unfinished deliveries; delete with ?force=true to cancel them",
                out.unfinished
            ),
        ));
    }
    Ok(Json(json!({"id": sub.id, "deleted": true, "cancelled": out.unfinished})).into_response())
}

async fn set_state(s: ApiState, headers: HeaderMap, id: String, state: SubState) -> ApiResult {
    let token = auth::require(&s, &headers, &["webhooks:write"]).await?;
    let mut sub = visible(&s, &token, &id).await?;
    s.store
        .set_subscription_state(&sub.id, state, Some(&Actor::token(&token.id)))
        .await?;
    sub.state = state;
    Ok(Json(shapes::subscription(&sub, false)).into_response())
}

pub async fn pause(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    set_state(s, headers, id, SubState::Paused).await
}

pub async fn resume(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    set_state(s, headers, id, SubState::Active).await
}

pub async fn redeliver(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult {
    let token = auth::require(&s, &headers, &["webhooks:write"]).await?;
    let sub = visible(&s, &token, &id).await?;
    let input: RedeliverIn = decode(optional_json(&s, &headers, body).await?)?;
    let dry_run = input.dry_run.unwrap_or(false);
    let target = match input.event_id {
        Some(_) if input.status.is_some() || input.since.is_some() => {
            return Err(ApiError::bad_request(
                "event_id redelivers one event; status and since are for redelivering in bulk",
            ));
        }
        Some(event_id) => RedeliverTarget::Event {
            event_id,
            subscription_id: Some(sub.id.clone()),
        },
        None => {
            let status = match input.status.as_deref() {
                None | Some("dead") => DeliveryStatus::Dead,
                Some("retrying") => DeliveryStatus::Retrying,
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "status '{other}': dead or retrying"
                    )));
                }
            };
            let since =
                ApiError::since(input.since.as_deref())?.map(|d| crate::model::before(now_ms(), d));
            RedeliverTarget::Bulk {
                subscription_id: sub.id.clone(),
                statuses: vec![status],
                since,
            }
        }
    };
    let done = s
        .store
        .redeliver(target, dry_run, now_ms(), Some(&Actor::token(&token.id)))
        .await
        .map_err(|e| ApiError::not_found(format!("{e:#}")))?;
    Ok(Json(json!({"dry_run": dry_run, "count": done.len(), "deliveries": done})).into_response())
}

pub async fn test(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult {
    let token = auth::require(&s, &headers, &["webhooks:write"]).await?;
    let sub = visible(&s, &token, &id).await?;
    let input: TestIn = decode(optional_json(&s, &headers, body).await?)?;
    let t = match input.event_type.as_deref() {
        Some(t) => catalog::resolve(t)
            .map_err(|e| ApiError::bad_request(format!("type: {e}")))?
            .to_string(),
        None => sub
            .events
            .as_ref()
            .and_then(|e| e.first().cloned())
            .unwrap_or_else(|| "ContactCreate".into()),
    };
    let dry_run = input.dry_run.unwrap_or(false);
    let out = crate::engine::testsend::run(
        &s.store,
        &sub,
        &t,
        dry_run,
        s.policy.clone(),
        s.bind_address,
    )
    .await
    .or_else(|e| match e.downcast_ref::<crate::engine::testsend::RenderFailed>() {
        // The test ran and found what a delivery would: reported, not an error of the call.
        Some(r) => Ok(json!({"sent": false, "request": null, "response": null, "render_error": r.to_string()})),
        None => Err(ApiError::from(e)),
    })?;
    Ok(Json(out).into_response())
}
