//! `GET /v2/audit`: the operator actions, newest first (scope `audit:read`).

use super::{ApiError, ApiResult, ApiState, auth};
use crate::audit::AuditFilter;
use crate::model::now_ms;
use crate::shapes;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::Value;

/// The most entries one request returns.
pub const LIMIT_MAX: u32 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    since: Option<String>,
    subscription_id: Option<String>,
    limit: Option<u32>,
}

pub async fn list(
    State(s): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let token = auth::require(&s, &headers, &["audit:read"]).await?;
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let since = ApiError::since(q.since.as_deref())?.map(|d| crate::model::before(now_ms(), d));
    let limit = q.limit.unwrap_or(200);
    if !(1..=LIMIT_MAX).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit: between 1 and {LIMIT_MAX}"
        )));
    }
    let entries = s
        .store
        .audit_log(&AuditFilter {
            since,
            subscription_id: q.subscription_id,
            limit,
        })
        .await?;
    // A location-bound token sees the actions on its location's subscriptions only.
    let visible: Option<Vec<String>> = match &token.location_id {
        None => None,
        Some(_) => Some(
            s.store
                .subscriptions()
                .await?
                .into_iter()
                .filter(|x| auth::sees(&token, x.location_id.as_deref()))
                .map(|x| x.id)
                .collect(),
        ),
    };
    let out: Vec<Value> = entries
        .iter()
        .filter(|e| match (&visible, &e.subscription_id) {
            (None, _) => true,
            (Some(ids), Some(sub)) => ids.contains(sub),
            (Some(_), None) => false,
        })
        .map(shapes::audit_entry)
        .collect();
    Ok(Json(Value::Array(out)).into_response())
}
