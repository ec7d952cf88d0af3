//! Incident tooling: operational events at an ops endpoint, the incident summary.

mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

/// The operational events the sink received, as (type, body) pairs.
fn ops_received(sink: &Sink) -> Vec<(String, Value)> {
    sink.requests()
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
            (body["type"].as_str().unwrap_or_default().to_string(), body)
        })
        .collect()
}

fn received_about(sink: &Sink, event_type: &str, sub: &str) -> Option<Value> {
    ops_received(sink)
        .into_iter()
        .find(|(t, b)| t == event_type && b["subscriptionId"] == sub)
        .map(|(_, b)| b)
}

/// Operational events stored about `sub`, whoever they were delivered to.
fn stored_about(env: &Env, sub: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for t in [
        "hookctl.circuit.opened",
        "hookctl.circuit.closed",
        "hookctl.delivery.dead_lettered",
        "hookctl.subscription.disabled",
        "hookctl.backlog.alert",
    ] {
        for e in env
            .json(&["event", "list", "--type", t])
            .as_array()
            .unwrap()
        {
            let shown = env.json(&["event", "show", e["id"].as_str().unwrap()]);
            if shown["data"]["subscriptionId"] == sub {
                out.push(shown);
            }
        }
    }
    out
}

#[test]
fn an_outage_is_told_to_the_ops_endpoint_and_summed_up_by_incident() {
    let env = Env::new();
    let failing = Sink::start(&env, &["--status", "500"]);
    let addr = failing.addr.clone();
    let ops = Sink::start(&env, &[]);
    let ops_down = Sink::start(&env, &["--status", "500"]);
    let _serve = Serve::start_with(
        &env,
        &[
            ("HOOKCTL_CIRCUIT_THRESHOLD", "3"),
            ("HOOKCTL_CIRCUIT_PROBE_INTERVAL", "1s"),
        ],
    );
    let f = env.sub_add(&[
        "--url",
        &failing.url("/crm"),
        "--name",
        "crm",
        "--events",
        "ContactCreate",
        "--retry-schedule",
        "1s",
        "--secret",
        SECRET,
    ]);
    let o = env.sub_add(&[
        "--url",
        &ops.url("/ops"),
        "--events",
        "hookctl.*",
        "--secret",
        SECRET,
    ]);
    let od = env.sub_add(&[
        "--url",
        &ops_down.url("/ops-down"),
        "--events",
        "hookctl.*",
        "--retry-schedule",
        "1s",
    ]);
    // A subscription to every type does not take operational events.
    let everything = Sink::start(&env, &[]);
    env.sub_add(&["--url", &everything.url("/all"), "--all"]);

    for i in 0..3 {
        env.ok(&["emit", "ContactCreate", "--location", &format!("loc{i}")]);
    }
    wait_until("the circuit-opened event at the ops endpoint", LONG, || {
        received_about(&ops, "hookctl.circuit.opened", &f).is_some()
    });
    let opened = received_about(&ops, "hookctl.circuit.opened", &f).unwrap();
    assert_eq!(opened["consecutiveFailures"], 3, "{opened}");
    assert_eq!(opened["subscriptionName"], "crm");
    // Held behind the open circuit longer than the schedule, the deliveries go dead: one
    // coalesced event with the count.
    wait_until("the dead-letter event at the ops endpoint", LONG, || {
        received_about(&ops, "hookctl.delivery.dead_lettered", &f).is_some()
    });
    let dead = received_about(&ops, "hookctl.delivery.dead_lettered", &f).unwrap();
    assert!(dead["count"].as_i64().unwrap() >= 1, "{dead}");
    assert!(
        ops.requests().iter().all(|r| r["verified"] == true),
        "operational events are signed"
    );

    // The endpoint recovers; a new event is held, probed through, and the circuit closes.
    failing.stop();
    let back = Sink::start_on(&env, &addr, &[]);
    env.ok(&["emit", "ContactCreate", "--location", "loc9"]);
    wait_until("the circuit-closed event", LONG, || {
        received_about(&ops, "hookctl.circuit.closed", &f).is_some()
    });
    back.wait_count(1, LONG);
    env.ok(&["sub", "pause", &f]);

    // The failing ops endpoint is told of nothing about itself, though its circuit opened
    // and its deliveries died.
    wait_until("the failing ops endpoint's circuit to open", LONG, || {
        env.json(&["sub", "show", &od])["circuit"] == "open"
    });
    wait_until("the failing ops endpoint's deliveries to die", LONG, || {
        env.json(&["event", "list", "--sub", &od, "--status", "dead"])
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    assert_eq!(stored_about(&env, &od), Vec::<Value>::new());
    assert_eq!(stored_about(&env, &o), Vec::<Value>::new());
    assert!(
        everything
            .requests()
            .iter()
            .all(|r| !r["body"].as_str().unwrap().contains("hookctl.")),
        "an `all` subscription got an operational event"
    );

    // The summary names the endpoint, when it began, how it failed, what is left, and
    // the pause.
    let out = env.run(&["--json", "incident", "--since", "1h"]);
    assert_eq!(out.status.code(), Some(1));
    let inc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = inc["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subscription_id"] == f.as_str())
        .unwrap_or_else(|| panic!("{f} not in {inc}"))
        .clone();
    assert!(e["first_failure_at"].is_string(), "{e}");
    assert!(e["last_success_at"].is_string(), "{e}");
    let status_500 = e["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "status 500")
        .unwrap_or_else(|| panic!("no status 500 in {e}"));
    assert!(status_500["count"].as_i64().unwrap() >= 3, "{e}");
    assert!(e["dead"].as_i64().unwrap() >= 1, "{e}");
    assert_eq!(e["waiting"], 0, "{e}");
    assert_eq!(e["state"], "paused");
    let locations = e["locations"].to_string();
    assert!(
        locations.contains("loc0") && locations.contains("loc2"),
        "{e}"
    );
    let actions = e["actions"].as_array().unwrap();
    assert!(
        actions
            .iter()
            .any(|a| a["action"] == "pause" && a["actor"]["kind"] == "cli"),
        "{e}"
    );
    let text = env.run(&["incident"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("crm") && text.contains("status 500 ×") && text.contains("pause"),
        "{text}"
    );
}

#[test]
fn a_growing_backlog_raises_an_alert_once_and_clears_it() {
    let env = Env::new();
    let target = Sink::start(&env, &[]);
    let ops = Sink::start(&env, &[]);
    let _serve = Serve::start_with(&env, &[("HOOKCTL_BACKLOG_ALERT", "5")]);
    let t = env.sub_add(&["--url", &target.url("/t"), "--events", "InvoicePaid"]);
    env.sub_add(&[
        "--url",
        &ops.url("/ops"),
        "--events",
        "hookctl.backlog.alert,hookctl.backlog.cleared",
        "--secret",
        SECRET,
    ]);
    env.ok(&["sub", "pause", &t]);
    let file = env.path("paid.ndjson");
    let lines: String = (0..8)
        .map(|i| format!("{{\"type\": \"InvoicePaid\", \"data\": {{\"n\": {i}}}}}\n"))
        .collect();
    std::fs::write(&file, lines).unwrap();
    env.ok(&["emit", "--ndjson", path_str(&file)]);
    wait_until("the backlog alert", LONG, || {
        received_about(&ops, "hookctl.backlog.alert", &t).is_some()
    });
    let alert = received_about(&ops, "hookctl.backlog.alert", &t).unwrap();
    assert_eq!(alert["alert"], "backlog");
    assert!(alert["waiting"].as_i64().unwrap() >= 5, "{alert}");
    let inc = env.json_any(&["incident"]).1;
    assert!(
        inc["headline"].as_str().unwrap().contains("backlog alert"),
        "{inc}"
    );
    env.ok(&["sub", "resume", &t]);
    wait_until("the backlog to clear", LONG, || {
        received_about(&ops, "hookctl.backlog.cleared", &t).is_some()
    });
    let alerts = ops_received(&ops)
        .iter()
        .filter(|(ty, _)| ty == "hookctl.backlog.alert")
        .count();
    assert_eq!(alerts, 1, "one alert for one crossing");
}

#[test]
fn operational_types_are_refused_from_producers() {
    let env = Env::new();
    let out = env.run(&["emit", "hookctl.circuit.opened"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("operational"), "{err}");
    let out = env.run(&["incident", "--since", "yesterday-ish"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.contains("--since") && first.contains("not a duration"),
        "{err}"
    );
    let out = env.run(&["incident"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no endpoint in trouble"));
}
