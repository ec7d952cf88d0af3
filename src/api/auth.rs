//! Bearer tokens with scopes and an optional location. Only a hash of a token is stored.

use super::{ApiError, ApiState};
use crate::store::ApiToken;
use axum::http::{HeaderMap, StatusCode};

pub use crate::ids::secret_hash as hash;

/// The token of the request, if it carries one with `scope` (any of them).
pub async fn require(
    state: &ApiState,
    headers: &HeaderMap,
    scopes: &[&str],
) -> Result<ApiToken, ApiError> {
    let unauthorized = |d: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", d);
    let value = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("missing Authorization: Bearer <token>"))?;
    let secret = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| unauthorized("the Authorization header must be 'Bearer <token>'"))?;
    let token = state
        .store
        .token_by_hash(&hash(secret.trim()))
        .await?
        .ok_or_else(|| unauthorized("unknown or revoked token"))?;
    if !scopes.iter().any(|s| token.scopes.iter().any(|t| t == s)) {
        return Err(ApiError::forbidden(format!(
            "this token lacks the scope {}",
            scopes.join(" or ")
        )));
    }
    Ok(token)
}

/// Whether a token may see something of `location` (a location-bound token sees only its
/// own location's data; a global one sees everything).
pub fn sees(token: &ApiToken, location: Option<&str>) -> bool {
    match &token.location_id {
        None => true,
        Some(mine) => location == Some(mine.as_str()),
    }
}
