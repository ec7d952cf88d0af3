//! Request bodies: JSON only, up to the cap, with the parse error in the answer.

use super::ApiError;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

pub async fn json(headers: &HeaderMap, body: Body, cap: usize) -> Result<Value, ApiError> {
    bytes(headers, body, cap).await.map(|(_, v)| v)
}

/// Raw bytes (inbound webhooks verify signatures over them), same limits.
pub async fn bytes(
    headers: &HeaderMap,
    body: Body,
    cap: usize,
) -> Result<(axum::body::Bytes, Value), ApiError> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" && !mime.ends_with("+json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send Content-Type: application/json (got '{ct}')"),
        ));
    }
    let bytes = axum::body::to_bytes(body, cap).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is over the {cap}-byte limit"),
        )
    })?;
    let v = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    Ok((bytes, v))
}
