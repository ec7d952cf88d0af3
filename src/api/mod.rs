//! The HTTP API served by `hookctl serve` (and later the embedded console).

use crate::store::Store;
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use std::sync::Arc;

#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn Store>,
}

async fn healthz(State(s): State<ApiState>) -> (axum::http::StatusCode, Json<serde_json::Value>) {
    match s.store.change_counter().await {
        Ok(_) => (
            axum::http::StatusCode::OK,
            Json(serde_json::json!({"status": "ok"})),
        ),
        Err(e) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "error", "detail": e.to_string()})),
        ),
    }
}

pub fn router(state: ApiState) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(healthz))
        .with_state(state)
}
