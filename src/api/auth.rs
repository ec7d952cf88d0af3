//! Bearer tokens with scopes and an optional location. Only a hash of a token is stored.

use super::{ApiError, ApiState};
use crate::store::ApiToken;
use axum::http::{HeaderMap, StatusCode};
use std::collections::HashMap;
use std::sync::Mutex;

pub use crate::ids::secret_hash as hash;

/// Tokens seen valid, by the hash of their secret. Only publishing uses them: a publish
/// checks its token again inside the transaction that stores it (`Store::publish_as`), so
/// a token revoked by any process is refused at the next publish all the same. Only valid
/// tokens are kept, so the map holds no more entries than there are live tokens.
#[derive(Default)]
pub struct Known(Mutex<HashMap<String, ApiToken>>);

impl Known {
    fn get(&self, hash: &str) -> Option<ApiToken> {
        self.0.lock().ok()?.get(hash).cloned()
    }

    fn keep(&self, hash: String, token: ApiToken) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(hash, token);
        }
    }

    pub fn forget(&self, hash: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(hash);
        }
    }
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

/// The refusal of a publish whose token was revoked while the API knew it.
pub fn revoked() -> ApiError {
    unauthorized("unknown or revoked token")
}

/// The hash of the request's bearer secret.
fn bearer_hash(headers: &HeaderMap) -> Result<String, ApiError> {
    let value = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("missing Authorization: Bearer <token>"))?;
    let secret = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| unauthorized("the Authorization header must be 'Bearer <token>'"))?;
    Ok(hash(secret.trim()))
}

async fn lookup(state: &ApiState, hash: &str) -> Result<ApiToken, ApiError> {
    state.store.token_by_hash(hash).await?.ok_or_else(revoked)
}

fn scoped(token: ApiToken, scopes: &[&str]) -> Result<ApiToken, ApiError> {
    if !scopes.iter().any(|s| token.scopes.iter().any(|t| t == s)) {
        return Err(ApiError::forbidden(format!(
            "this token lacks the scope {}",
            scopes.join(" or ")
        )));
    }
    Ok(token)
}

/// The token of the request, if it carries one with `scope` (any of them).
pub async fn require(
    state: &ApiState,
    headers: &HeaderMap,
    scopes: &[&str],
) -> Result<ApiToken, ApiError> {
    let hash = bearer_hash(headers)?;
    scoped(lookup(state, &hash).await?, scopes)
}

/// As [`require`], from the tokens already known when it is one of them; the caller must
/// publish with `Store::publish_as` and [`Known::forget`] the hash (returned too) when
/// that finds the token revoked.
pub async fn require_to_publish(
    state: &ApiState,
    headers: &HeaderMap,
    scopes: &[&str],
) -> Result<(ApiToken, String), ApiError> {
    let hash = bearer_hash(headers)?;
    let token = match state.known.get(&hash) {
        Some(token) => token,
        None => {
            let token = lookup(state, &hash).await?;
            state.known.keep(hash.clone(), token.clone());
            token
        }
    };
    Ok((scoped(token, scopes)?, hash))
}

/// Whether a token may see something of `location` (a location-bound token sees only its
/// own location's data; a global one sees everything).
pub fn sees(token: &ApiToken, location: Option<&str>) -> bool {
    match &token.location_id {
        None => true,
        Some(mine) => location == Some(mine.as_str()),
    }
}
