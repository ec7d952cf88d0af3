//! The HTTP API: publish events, manage webhooks, inbound webhooks, health,
//! metrics and its own OpenAPI description. Every route is in `ROUTES`, which both the
//! router's tests and `/openapi.json` are made from.

mod audit;
mod auth;
mod body;
mod events;
mod inbound;
mod incident;
mod metrics;
mod openapi;
mod webhooks;

use crate::netguard::Policy;
use crate::store::Store;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ipnet::IpNet;
use std::sync::Arc;

pub use openapi::ROUTES;

#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn Store>,
    pub policy: Arc<Policy>,
    /// Largest request body accepted.
    pub body_cap: usize,
    /// Where inbound webhooks may come from; empty: anywhere.
    pub inbound_allow: Vec<IpNet>,
    pub bind_address: Option<std::net::IpAddr>,
    pub known: Arc<auth::Known>,
}

impl ApiState {
    pub fn new(store: Arc<dyn Store>, cfg: &crate::config::Config) -> ApiState {
        ApiState {
            store,
            policy: Arc::new(Policy::new(cfg.allow_networks.clone())),
            body_cap: cfg.api_body_cap,
            inbound_allow: cfg.inbound_allow_networks.clone(),
            bind_address: cfg.outbound_bind_address,
            known: Arc::default(),
        }
    }
}

/// Every error is `{error, detail}` with its status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error,
            detail: detail.into(),
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }
    /// A `since` duration as a request gives it (`2h`), or a 400 saying why not.
    pub fn since(given: Option<&str>) -> Result<Option<std::time::Duration>, ApiError> {
        given
            .map(|d| {
                crate::subscription::parse_duration(d)
                    .map_err(|e| ApiError::bad_request(format!("since: {e}")))
            })
            .transpose()
    }
    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }
    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        tracing::warn!("API request failed: {e:#}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{e:#}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({"error": self.error, "detail": self.detail})),
        )
            .into_response()
    }
}

pub type ApiResult = Result<Response, ApiError>;

async fn healthz(axum::extract::State(s): axum::extract::State<ApiState>) -> ApiResult {
    s.store.change_counter().await?;
    Ok(Json(serde_json::json!({"status": "ok"})).into_response())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route (see /openapi.json)")
}

pub fn router(state: ApiState) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/hooks/in/{token}", post(inbound::receive))
        .route("/v2/events", post(events::publish))
        .route("/v2/events/{id}", get(events::show))
        .route("/v2/audit", get(audit::list))
        .route("/v2/incident", get(incident::show))
        .route("/v2/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/v2/webhooks/{id}",
            get(webhooks::show)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route("/v2/webhooks/{id}/pause", post(webhooks::pause))
        .route("/v2/webhooks/{id}/resume", post(webhooks::resume))
        .route("/v2/webhooks/{id}/redeliver", post(webhooks::redeliver))
        .route("/v2/webhooks/{id}/test", post(webhooks::test))
        .fallback(not_found)
        .with_state(state)
}

/// Serves the API on a bound listener (with peer addresses, for the inbound allowlist).
pub async fn serve(listener: tokio::net::TcpListener, state: ApiState) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await
}
