//! Subscription verification: a pending subscription's URL gets a signed confirmation
//! request carrying a token; the subscription becomes active when the endpoint answers 2xx
//! with that token in its body.

use super::http::Sender;
use super::request::Request;
use crate::model::*;
use crate::signing;
use crate::store::Store;
use std::time::Duration;

pub async fn confirm(
    store: &dyn Store,
    sender: &Sender,
    sub: &Subscription,
) -> anyhow::Result<bool> {
    let Some(token) = store.verify_token(&sub.id).await? else {
        return Ok(false);
    };
    let body = serde_json::to_vec(&serde_json::json!({
        "type": "SubscriptionVerification",
        "subscriptionId": sub.id,
        "token": token,
    }))?;
    let now = now_ms();
    let req = Request {
        method: Method::Post,
        url: sub.url.clone(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            (
                sub.signature_header.clone(),
                signing::sign_wl(&sub.secret, &body),
            ),
            ("webhook-id".into(), format!("verify_{}", sub.id)),
            ("x-wl-timestamp".into(), (now / 1000).to_string()),
        ],
        body,
    };
    match sender
        .send(&req, Duration::from_millis(sub.timeout_ms))
        .await
    {
        Ok(r)
            if (200..300).contains(&r.status)
                && String::from_utf8_lossy(&r.body).contains(&token) =>
        {
            store
                .set_subscription_state(&sub.id, SubState::Active, None)
                .await?;
            store.set_verify_token(&sub.id, None).await?;
            tracing::info!(subscription = %sub.id, "verified: the endpoint echoed its token");
            Ok(true)
        }
        Ok(r) => {
            tracing::info!(subscription = %sub.id, status = r.status, "not verified: the answer did not carry the token");
            Ok(false)
        }
        Err(f) => {
            tracing::info!(subscription = %sub.id, "not verified: [{}] {}", f.class, f.message);
            Ok(false)
        }
    }
}
