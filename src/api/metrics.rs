//! `GET /metrics` in the Prometheus text format. Counters come from the store's own
//! counters table (so every process reports the same numbers, restarts included), gauges
//! from its current contents.

use super::{ApiResult, ApiState};
use crate::model::SubState;
use crate::store::LATENCY_BUCKETS_MS;
use axum::extract::State;
use axum::response::IntoResponse;
use std::collections::HashMap;
use std::fmt::Write;

pub async fn metrics(State(s): State<ApiState>) -> ApiResult {
    let counters: HashMap<String, i64> = s.store.counters().await?.into_iter().collect();
    let c = |name: &str| counters.get(name).copied().unwrap_or(0);
    let q = s.store.queue_counts().await?;
    let subs = s.store.subscriptions().await?;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in lines {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    metric(
        "hookctl_events_published_total",
        "counter",
        "Events accepted (a repeated id counts once).",
        vec![(String::new(), c("events_published").to_string())],
    );
    metric(
        "hookctl_deliveries_total",
        "counter",
        "Deliveries that reached a final outcome.",
        vec![
            (
                "{outcome=\"delivered\"}".into(),
                c("deliveries_delivered").to_string(),
            ),
            (
                "{outcome=\"dead\"}".into(),
                c("deliveries_dead").to_string(),
            ),
        ],
    );
    let mut failures: Vec<(String, String)> = counters
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("attempts_failed_")
                .map(|class| (format!("{{class=\"{class}\"}}"), v.to_string()))
        })
        .collect();
    failures.sort();
    metric(
        "hookctl_attempts_total",
        "counter",
        "Delivery attempts made.",
        vec![(String::new(), c("attempts").to_string())],
    );
    metric(
        "hookctl_attempt_failures_total",
        "counter",
        "Failed attempts by error class.",
        failures,
    );
    let mut buckets = Vec::new();
    let mut cumulative = 0;
    for b in LATENCY_BUCKETS_MS {
        cumulative += c(&format!("latency_bucket_{b}"));
        buckets.push((
            format!("_bucket{{le=\"{}\"}}", *b as f64 / 1000.0),
            cumulative.to_string(),
        ));
    }
    cumulative += c("latency_bucket_inf");
    buckets.push(("_bucket{le=\"+Inf\"}".into(), cumulative.to_string()));
    buckets.push((
        "_sum".into(),
        format!("{}", c("latency_sum_ms") as f64 / 1000.0),
    ));
    buckets.push(("_count".into(), cumulative.to_string()));
    // The suffixes belong to the metric name, not its labels.
    let _ = writeln!(
        out,
        "# HELP hookctl_attempt_latency_seconds Time from sending an attempt to its outcome."
    );
    let _ = writeln!(out, "# TYPE hookctl_attempt_latency_seconds histogram");
    for (suffix, value) in buckets {
        let _ = writeln!(out, "hookctl_attempt_latency_seconds{suffix} {value}");
    }
    let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in lines {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    metric(
        "hookctl_queue_depth",
        "gauge",
        "Deliveries by state now (dead: not redelivered since).",
        vec![
            ("{state=\"pending\"}".into(), q.pending.to_string()),
            ("{state=\"retrying\"}".into(), q.retrying.to_string()),
            ("{state=\"in_flight\"}".into(), q.in_flight.to_string()),
            ("{state=\"dead\"}".into(), q.dead.to_string()),
        ],
    );
    let count = |st: SubState| subs.iter().filter(|x| x.state == st).count().to_string();
    metric(
        "hookctl_endpoints",
        "gauge",
        "Subscriptions by state.",
        vec![
            ("{state=\"active\"}".into(), count(SubState::Active)),
            ("{state=\"paused\"}".into(), count(SubState::Paused)),
            ("{state=\"disabled\"}".into(), count(SubState::Disabled)),
            ("{state=\"pending\"}".into(), count(SubState::Pending)),
        ],
    );
    metric(
        "hookctl_endpoints_circuit_open",
        "gauge",
        "Active endpoints whose circuit is open.",
        vec![(
            String::new(),
            subs.iter()
                .filter(|x| x.circuit_open && x.state == SubState::Active)
                .count()
                .to_string(),
        )],
    );
    Ok(([("content-type", "text/plain; version=0.0.4")], out).into_response())
}
