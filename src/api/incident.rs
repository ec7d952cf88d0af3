//! `GET /v2/incident`: the endpoints in trouble within a window (scope `webhooks:read`).

use super::{ApiError, ApiResult, ApiState, auth};
use crate::model::now_ms;
use crate::{incident, subscription};
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
    let window = match &q.since {
        Some(d) => subscription::parse_duration(d)
            .map_err(|e| ApiError::bad_request(format!("since: {e}")))?,
        None => incident::DEFAULT_WINDOW,
    };
    let now = now_ms();
    let since = now.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
    let mut found = incident::summary(s.store.as_ref(), since).await?;
    // A location-bound token sees its location's endpoints only.
    found.retain(|e| auth::sees(&token, e.location_id.as_deref()));
    Ok(Json(incident::json(&found, since, now)).into_response())
}
