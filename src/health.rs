//! Endpoint health, the circuit breaker's policy: what a batch of outcomes says about
//! each endpoint. Every store backend applies these summaries the same way, so the rule
//! (a render failure says nothing about the endpoint, a 410 disables it, a success closes
//! the circuit, `threshold` consecutive failures open it) lives here once.

use crate::model::{DeliveryStatus, ErrorClass};
use crate::store::Outcome;

/// What one batch of outcomes says about one endpoint.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EndpointHealth {
    pub subscription_id: String,
    /// A delivery succeeded in the batch: the failure count starts again from the
    /// failures after it.
    pub succeeded: bool,
    /// Failures after the batch's last success (all of them if none succeeded).
    pub failures_since: i64,
    /// The endpoint answered 410 Gone: disable the subscription.
    pub gone: bool,
    pub last_error: Option<String>,
}

/// Subscription log reasons, the same words whichever backend writes them.
pub const CLOSED_REASON: &str = "a delivery succeeded";
pub const GONE_REASON: &str = "the endpoint answered 410 Gone";

impl EndpointHealth {
    /// Healthy and staying so: nothing to write unless the store shows past failures or
    /// an open circuit.
    pub fn is_steady(&self) -> bool {
        self.succeeded && self.failures_since == 0 && !self.gone
    }

    /// The batch ends in a success: an open circuit closes.
    pub fn closes(&self) -> bool {
        self.succeeded && self.failures_since == 0
    }

    /// Why the circuit opened, for the subscription log.
    pub fn open_reason(&self, threshold: u32) -> String {
        format!(
            "{threshold} consecutive failures; last: {}",
            self.last_error.as_deref().unwrap_or("?")
        )
    }
}

/// The consecutive failures that open a circuit (a threshold of 0 means 1).
pub fn opening_failures(threshold: u32) -> i64 {
    i64::from(threshold.max(1))
}

/// Endpoint health from a batch of outcomes in the order they finished, one entry per
/// endpoint in the order each first appears.
pub fn summarise(outcomes: &[Outcome]) -> Vec<EndpointHealth> {
    let mut by_sub: Vec<EndpointHealth> = Vec::new();
    for o in outcomes {
        let i = match by_sub
            .iter()
            .position(|h| h.subscription_id == o.subscription_id)
        {
            Some(i) => i,
            None => {
                by_sub.push(EndpointHealth {
                    subscription_id: o.subscription_id.clone(),
                    ..EndpointHealth::default()
                });
                by_sub.len() - 1
            }
        };
        let h = &mut by_sub[i];
        if o.status == DeliveryStatus::Delivered {
            h.succeeded = true;
            h.failures_since = 0;
        } else if o.attempt.error_class != Some(ErrorClass::Render) {
            // A template that cannot render says nothing about the endpoint's health.
            h.failures_since += 1;
            h.last_error = o.attempt.error.clone();
        }
        h.gone |= o.gone;
    }
    by_sub
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attempt;

    fn outcome(
        sub: &str,
        status: DeliveryStatus,
        class: Option<ErrorClass>,
        gone: bool,
    ) -> Outcome {
        Outcome {
            delivery_id: 1,
            subscription_id: sub.into(),
            probe: false,
            probes: 0,
            gone,
            attempt: Attempt {
                n: 1,
                at: 0,
                status_code: None,
                error_class: class,
                error: class.map(|c| format!("{c:?}")),
                latency_ms: 1,
                request_headers: Vec::new(),
                response_headers: Vec::new(),
                response_body: None,
            },
            status,
            next_at: None,
            body: None,
            kept_headers: None,
        }
    }

    #[test]
    fn failures_count_from_the_last_success_and_render_failures_do_not_count() {
        use DeliveryStatus::*;
        let batch = [
            outcome("a", Retrying, Some(ErrorClass::Timeout), false),
            outcome("b", Delivered, None, false),
            outcome("a", Delivered, None, false),
            outcome("a", Retrying, Some(ErrorClass::Status), false),
            outcome("a", Dead, Some(ErrorClass::Render), false),
            outcome("b", Retrying, Some(ErrorClass::Status), true),
        ];
        let h = summarise(&batch);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].subscription_id, "a");
        assert!(h[0].succeeded && !h[0].closes() && !h[0].gone);
        assert_eq!(h[0].failures_since, 1);
        assert_eq!(h[0].last_error.as_deref(), Some("Status"));
        assert_eq!(h[1].subscription_id, "b");
        assert!(h[1].gone && !h[1].is_steady());
        assert_eq!(h[0].open_reason(3), "3 consecutive failures; last: Status");
        assert_eq!(opening_failures(0), 1);
    }
}
