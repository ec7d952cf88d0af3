//! Test mode: the exact request a sample event makes for a subscription, sent once unless
//! it is a dry run. Shared by `hookctl sub test`, the console's `t` and the API.

use super::http::{Failure, Response, Sender};
use super::request::{self, Request};
use crate::model::*;
use crate::netguard::Policy;
use crate::store::Store;
use crate::{catalog, ids};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The subscription's template cannot make a body for the sample event: a fault of the
/// subscription's settings, not of the request that asked for the test.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RenderFailed(pub String);

pub struct TestSend {
    pub request: Request,
    /// `None` on a dry run.
    pub response: Option<Result<Response, Failure>>,
}

impl TestSend {
    /// The request with credential headers masked, and what came back.
    pub fn to_json(&self) -> Value {
        let r = &self.request;
        let response = match &self.response {
            None => Value::Null,
            Some(Ok(resp)) => json!({
                "status": resp.status,
                "latency_ms": resp.latency.as_millis() as u64,
                "body": String::from_utf8_lossy(&resp.body[..resp.body.len().min(1024)]),
            }),
            Some(Err(f)) => {
                json!({"error_class": f.class, "error": f.message, "latency_ms": f.latency.as_millis() as u64})
            }
        };
        json!({
            "request": {
                "method": r.method.upper(),
                "url": r.url,
                "headers": r.headers_for_record().into_iter().map(|(k, v)| (k, Value::String(v))).collect::<serde_json::Map<_, _>>(),
                "body": String::from_utf8_lossy(&r.body),
            },
            "sent": self.response.is_some(),
            "response": response,
        })
    }
}

/// Renders a sample `event_type` event for `sub` and, unless `dry_run`, sends it once.
pub async fn send(
    store: &Arc<dyn Store>,
    sub: &Subscription,
    event_type: &str,
    dry_run: bool,
    policy: Arc<Policy>,
    bind: Option<std::net::IpAddr>,
) -> anyhow::Result<TestSend> {
    let event = Event {
        id: format!("evt_test_{}", &ids::event_id()[4..]),
        event_type: event_type.to_string(),
        location_id: sub
            .location_id
            .clone()
            .or_else(|| Some(catalog::SAMPLE_LOCATION.into())),
        timestamp: now_ms(),
        data: catalog::sample(event_type).unwrap_or_default().into(),
    };
    let values = crate::store::values_for(&store.values().await?, event.location_id.as_deref());
    let payload = request::render_payload(sub, &event, &values)
        .map_err(|e| RenderFailed(format!("rendering {event_type} for {}: {e}", sub.name)))?;
    let request = request::build(sub, &event, &payload, 1, now_ms());
    let response = if dry_run {
        None
    } else {
        let sender = Sender::new(policy, 64 * 1024, 1, bind)?;
        Some(
            sender
                .send(&request, Duration::from_millis(sub.timeout_ms))
                .await,
        )
    };
    Ok(TestSend { request, response })
}

/// The same, as JSON.
pub async fn run(
    store: &Arc<dyn Store>,
    sub: &Subscription,
    event_type: &str,
    dry_run: bool,
    policy: Arc<Policy>,
    bind: Option<std::net::IpAddr>,
) -> anyhow::Result<Value> {
    Ok(send(store, sub, event_type, dry_run, policy, bind)
        .await?
        .to_json())
}
