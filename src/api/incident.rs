//! `GET /v2/incident`: the endpoints in trouble within a window (scope `webhooks:read`).

use super::{ApiError, ApiResult, ApiState, auth};
use crate::incident;
use crate::model::now_ms;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    since: Option<String>,
}

pub async fn show(
    State(s): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<IncidentQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let token = auth::require(&s, &headers, &["webhooks:read"]).await?;
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let window = ApiError::since(q.since.as_deref())?.unwrap_or(incident::DEFAULT_WINDOW);
    let now = now_ms();
    let since = crate::model::before(now, window);
    let mut found = incident::summary(s.store.as_ref(), since).await?;
    // A location-bound token sees its location's endpoints only.
    found.retain(|e| auth::sees(&token, e.location_id.as_deref()));
    Ok(Json(incident::json(&found, since, now)).into_response())
}
