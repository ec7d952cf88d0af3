//! The local receiver: accepts any request, verifies its signature when given the secret,
//! reports it, and can misbehave on purpose (fail a fraction, delay, fixed status).

use crate::signing;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, Clone, Default)]
pub struct SinkConfig {
    pub secret: Option<String>,
    pub fail_rate: f64,
    pub delay: Option<Duration>,
    pub status: Option<u16>,
    pub retry_after: Option<u64>,
}

/// One received request, as `sink --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct SinkRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// `None` when the sink has no secret to check with.
    pub verified: Option<bool>,
    /// The sender's address.
    pub remote: String,
    /// The sender's port: one per connection, so reuse shows.
    pub remote_port: u16,
    /// Requests the sink held unanswered when this one came, itself among them: what an
    /// endpoint's in-flight limit is checked against, whenever the line is read.
    pub open: usize,
    /// The status the sink answered with.
    #[serde(skip)]
    pub answered: u16,
}

impl SinkRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

pub type OnRequest = Arc<dyn Fn(SinkRequest) + Send + Sync>;

struct SinkState {
    cfg: SinkConfig,
    on_request: OnRequest,
    /// Requests arrived and not answered yet.
    open: std::sync::atomic::AtomicUsize,
}

/// Counts a request open until its handler ends, however it ends.
struct Open<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Checks every signature form hookctl sends; valid when any present one matches.
pub fn verify(secret: &str, headers: &BTreeMap<String, String>, body: &[u8]) -> bool {
    for name in ["x-wl-signature", "x-hmac-signature"] {
        if let Some(sig) = headers.get(name)
            && signing::verify_wl(secret, body, sig)
        {
            return true;
        }
    }
    if let (Some(id), Some(ts), Some(sig)) = (
        headers.get("webhook-id"),
        headers.get("webhook-timestamp"),
        headers.get("webhook-signature"),
    ) && let Ok(ts) = ts.parse::<i64>()
    {
        let now = chrono::Utc::now().timestamp();
        return signing::verify_standard(secret, id, ts, body, sig, now, 300).is_ok();
    }
    false
}

async fn handle(
    State(state): State<Arc<SinkState>>,
    axum::extract::ConnectInfo(remote): axum::extract::ConnectInfo<std::net::SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let open = state.open.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1;
    let _open = Open(&state.open);
    let headers: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let query = uri.query().unwrap_or("").to_string();
    // GET and DELETE deliveries carry their fields (and signature input) in the query.
    let signed: &[u8] = if body.is_empty() {
        query.as_bytes()
    } else {
        &body
    };
    let verified = state
        .cfg
        .secret
        .as_deref()
        .map(|s| verify(s, &headers, signed));
    if let Some(d) = state.cfg.delay {
        tokio::time::sleep(d).await;
    }
    // Subscription verification: echo the token (unless told to answer something else).
    let echo = state
        .cfg
        .status
        .is_none()
        .then(|| {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .filter(|v| v["type"] == "SubscriptionVerification")
                .and_then(|v| v["token"].as_str().map(str::to_string))
        })
        .flatten();
    let status = if echo.is_some() {
        200
    } else if let Some(code) = state.cfg.status {
        code
    } else if state.cfg.fail_rate > 0.0
        && rand::rng().random_bool(state.cfg.fail_rate.clamp(0.0, 1.0))
    {
        500
    } else {
        200
    };
    (state.on_request)(SinkRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        verified,
        remote: remote.ip().to_string(),
        remote_port: remote.port(),
        open,
        answered: status,
    });
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (
        code,
        [("content-type", "application/json")],
        match &echo {
            Some(token) => serde_json::json!({ "token": token }).to_string(),
            None => format!("{{\"status\":{status}}}"),
        },
    )
        .into_response();
    if let Some(secs) = state.cfg.retry_after
        && !code.is_success()
        && let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert("retry-after", v);
    }
    resp
}

pub fn router(cfg: SinkConfig, on_request: OnRequest) -> axum::Router {
    axum::Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(Arc::new(SinkState {
            cfg,
            on_request,
            open: Default::default(),
        }))
}

/// Serves until the task is dropped or the listener fails.
pub async fn serve(
    listener: TcpListener,
    cfg: SinkConfig,
    on_request: OnRequest,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(cfg, on_request).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await
}
