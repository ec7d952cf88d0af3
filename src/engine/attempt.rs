//! One delivery attempt from lease to outcome: render (or reuse) the payload, sign, send,
//! and decide what happens next.

use super::http::{Failure, Response, Sender};
use super::request::{self, RenderError};
use super::retry;
use crate::model::*;
use crate::payload::Shape;
use crate::store::{CustomValue, Job, KeptHeaders, Outcome, SentBody, header_text, values_for};
use std::time::Duration;

/// Response bytes kept on record per attempt.
const KEPT_BODY: usize = 1024;

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// How an attempt was started.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// The endpoint's circuit is open and this attempt tests whether it is back: a failure
    /// does not spend the delivery's retry schedule.
    pub probe: bool,
    pub probe_interval_ms: i64,
}

pub async fn run(
    sender: &Sender,
    sub: &Subscription,
    job: Job,
    mode: Mode,
    values: &[CustomValue],
) -> Outcome {
    let n = job.attempts + 1;
    let at = now_ms();
    let (payload, fresh) = match job.body {
        Some(b) => (b, false),
        None => match request::render_payload(
            sub,
            &job.event,
            &values_for(values, job.event.location_id.as_deref()),
        ) {
            Ok(b) => (b, true),
            Err(RenderError(msg)) => {
                // Rendering is deterministic: retrying the same input cannot help.
                return Outcome {
                    delivery_id: job.delivery_id,
                    subscription_id: sub.id.clone(),
                    probe: mode.probe,
                    probes: job.probes,
                    gone: false,
                    attempt: Attempt {
                        n,
                        at,
                        status_code: None,
                        error_class: Some(ErrorClass::Render),
                        error: Some(msg),
                        latency_ms: 0,
                        request_headers: Vec::new(),
                        response_headers: Vec::new(),
                        response_body: None,
                    },
                    status: DeliveryStatus::Dead,
                    next_at: None,
                    body: None,
                    kept_headers: None,
                };
            }
        },
    };
    let req = request::build(sub, &job.event, &payload, n, at);
    // The headers as the store keeps them, made here while they are in this core's cache
    // (see `header_text`); the attempt's lists stay empty.
    let kept_request = header_text::masked_text(&req.headers);
    let result = sender
        .send(&req, Duration::from_millis(sub.timeout_ms.max(1)))
        .await;
    let mut attempt = Attempt {
        n,
        at,
        status_code: None,
        error_class: None,
        error: None,
        latency_ms: 0,
        request_headers: Vec::new(),
        response_headers: Vec::new(),
        response_body: None,
    };
    let mut kept_response: Option<String> = None;
    let mut retry_after: Option<i64> = None;
    let mut gone = false;
    let delivered = match result {
        Ok(Response {
            status,
            headers,
            mut body,
            latency,
        }) => {
            attempt.status_code = Some(status);
            attempt.latency_ms = latency.as_millis() as u64;
            body.truncate(KEPT_BODY);
            attempt.response_body = Some(body);
            let ok = (200..300).contains(&status);
            gone = status == 410;
            if !ok {
                attempt.error_class = Some(ErrorClass::Status);
                attempt.error = Some(match status {
                    300..=399 => format!(
                        "HTTP {status} redirect to {} (redirects are not followed)",
                        header(&headers, "location").unwrap_or("?")
                    ),
                    _ => format!("HTTP {status}"),
                });
                if retry::honours_retry_after(status) {
                    retry_after = header(&headers, "retry-after")
                        .and_then(|v| retry::parse_retry_after(v, now_ms()));
                }
            }
            kept_response = header_text::response_text(&headers);
            ok
        }
        Err(Failure {
            class,
            message,
            latency,
        }) => {
            attempt.error_class = Some(class);
            attempt.error = Some(message);
            attempt.latency_ms = latency.as_millis() as u64;
            false
        }
    };
    let mut probes = job.probes;
    let done = now_ms();
    let (status, next_at) = if delivered {
        (DeliveryStatus::Delivered, None)
    } else if mode.probe || gone {
        // A failed probe, or an endpoint that says it is gone (the subscription is disabled
        // and this delivery held with it): the delivery waits and keeps its retries.
        probes += 1;
        (
            DeliveryStatus::Retrying,
            Some(done + mode.probe_interval_ms),
        )
    } else {
        // Position in the schedule counts only attempts that spent it.
        let spent = n - probes;
        match retry::delay(&sub.retry_schedule_ms, spent, &mut rand::rng()) {
            Some(delay) => {
                let wait = retry_after.map_or(delay, |ra| ra.max(delay));
                (DeliveryStatus::Retrying, Some(done + wait))
            }
            None => (DeliveryStatus::Dead, None),
        }
    };
    Outcome {
        delivery_id: job.delivery_id,
        subscription_id: sub.id.clone(),
        probe: mode.probe,
        probes,
        gone,
        attempt,
        status,
        next_at,
        body: fresh.then(|| match sub.template {
            Some(_) => SentBody::Bytes(payload),
            None => SentBody::Made(Shape::of(sub)),
        }),
        kept_headers: Some(KeptHeaders {
            request: kept_request,
            response: kept_response,
        }),
    }
}
