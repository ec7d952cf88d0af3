//! Issue 6's acceptance over real HTTP on 127.0.0.1: publish, webhooks, verification,
//! isolation between locations, inbound webhooks, errors, metrics, OpenAPI.

mod common;
use common::*;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

struct Api {
    base: String,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Api {
    fn new(serve: &Serve) -> Api {
        hookctl::engine::http::init_tls();
        Api {
            base: format!("http://{}", serve.addr),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    /// Sends a request; returns the status and the JSON body (Null if none).
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        self.rt.block_on(async {
            let mut r = self
                .client
                .request(method.parse().unwrap(), format!("{}{path}", self.base));
            if let Some(t) = token {
                r = r.header("authorization", format!("Bearer {t}"));
            }
            if let Some(b) = body {
                r = r
                    .header("content-type", "application/json")
                    .body(b.to_string());
            }
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            let resp = r.send().await.expect("request");
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }

    fn raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        self.rt.block_on(async {
            let mut r = self
                .client
                .post(format!("{}{path}", self.base))
                .header("content-type", content_type)
                .body(body);
            if let Some(t) = token {
                r = r.header("authorization", format!("Bearer {t}"));
            }
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            let resp = r.send().await.expect("request");
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }
}

fn token(env: &Env, scopes: &str, location: Option<&str>) -> String {
    let mut args = vec!["token", "create", "--scopes", scopes];
    if let Some(l) = location {
        args.extend(["--location", l]);
    }
    env.json(&args)["token"].as_str().unwrap().to_string()
}

fn counts(env: &Env) -> (usize, usize) {
    (
        env.json(&["event", "list", "--limit", "100000"])
            .as_array()
            .unwrap()
            .len(),
        env.json(&["sub", "list"]).as_array().unwrap().len(),
    )
}

/// Concurrent requests are stored together by the writer (one publish for many requests):
/// each must still get exactly its own answer, and an id raced by two requests is stored
/// once, reported new to exactly one of them.
#[test]
fn concurrent_publishers_each_get_their_own_answer() {
    let env = Env::new();
    let serve = Serve::start(&env);
    let api = Api::new(&serve);
    let t = token(&env, "events:write", None);
    let rounds: Vec<(u16, Value)> = api.rt.block_on(async {
        let mut calls = Vec::new();
        for i in 0..96 {
            // Batches of one to three own ids; every fourth request also races its twin
            // for a shared id.
            let mut batch: Vec<Value> = (0..(i % 3 + 1))
                .map(|k| json!({"type": "ContactCreate", "id": format!("own-{i}-{k}")}))
                .collect();
            if i % 4 == 0 {
                batch.push(json!({"type": "ContactCreate", "id": format!("raced-{}", i / 8)}));
            }
            let req = api
                .client
                .post(format!("{}/v2/events", api.base))
                .header("authorization", format!("Bearer {t}"))
                .header("content-type", "application/json")
                .body(Value::Array(batch).to_string());
            calls.push(async move {
                let resp = req.send().await.expect("request");
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::Null))
            });
        }
        futures_util::future::join_all(calls).await
    });
    let mut new_raced: std::collections::HashMap<String, usize> = Default::default();
    for (i, (status, body)) in rounds.iter().enumerate() {
        assert_eq!(*status, 202, "{body}");
        let events = body["events"].as_array().expect("events");
        let mut want: Vec<String> = (0..(i % 3 + 1)).map(|k| format!("own-{i}-{k}")).collect();
        if i % 4 == 0 {
            want.push(format!("raced-{}", i / 8));
        }
        let got: Vec<String> = events
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, want, "request {i} got someone else's answer");
        for e in events {
            let id = e["id"].as_str().unwrap();
            if id.starts_with("raced-") {
                *new_raced.entry(id.to_string()).or_default() +=
                    usize::from(e["duplicate"] == false);
            } else {
                assert_eq!(e["duplicate"], false, "{e}");
            }
        }
    }
    assert_eq!(new_raced.len(), 12);
    assert!(new_raced.values().all(|n| *n == 1), "{new_raced:?}");
    let own: usize = (0..96).map(|i| i % 3 + 1).sum();
    assert_eq!(counts(&env).0, own + 12);
}

#[test]
fn publish_a_thousand_through_the_api_idempotently() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let serve = Serve::start(&env);
    let api = Api::new(&serve);
    env.sub_add(&["--url", &sink.url("/x"), "--all", "--secret", SECRET]);
    let t = token(&env, "events:write", None);
    // Ten batches of fifty, under idempotency keys, ids generated.
    for b in 0..10 {
        let batch: Vec<Value> = (0..50).map(|i| json!({"type": "ContactCreate", "locationId": "loc1", "data": {"n": b * 50 + i}})).collect();
        let (st, body) = api.call(
            "POST",
            "/v2/events",
            Some(&t),
            Some(Value::Array(batch)),
            &[("idempotency-key", &format!("batch-{b}"))],
        );
        assert_eq!(st, 202, "{body}");
        assert_eq!(body["events"].as_array().unwrap().len(), 50);
    }
    // Five hundred singles with their own ids.
    for i in 0..500 {
        let (st, body) = api.call(
            "POST",
            "/v2/events",
            Some(&t),
            Some(json!({"type": "InvoicePaid", "id": format!("single-{i}")})),
            &[],
        );
        assert_eq!(st, 202, "{body}");
        assert_eq!(body["duplicate"], false);
    }
    sink.wait_count(1000, LONG);
    // The same again: accepted, nothing new.
    let batch: Vec<Value> = (0..50)
        .map(|i| json!({"type": "ContactCreate", "locationId": "loc1", "data": {"n": i}}))
        .collect();
    let (_, body) = api.call(
        "POST",
        "/v2/events",
        Some(&t),
        Some(Value::Array(batch)),
        &[("idempotency-key", "batch-0")],
    );
    assert!(
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["duplicate"] == true),
        "{body}"
    );
    let (_, body) = api.call(
        "POST",
        "/v2/events",
        Some(&t),
        Some(json!({"type": "InvoicePaid", "id": "single-7"})),
        &[],
    );
    assert_eq!(body["duplicate"], true);
    assert_eq!(counts(&env).0, 1000);
    wait_until("all delivered", LONG, || {
        delivery_statuses(&env)
            .iter()
            .filter(|s| *s == "delivered")
            .count()
            == 1000
    });
    let ids: HashSet<String> = sink
        .requests()
        .iter()
        .map(|r| r["headers"]["webhook-id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1000);
    assert!(sink.requests().iter().all(|r| r["verified"] == true));
}

#[test]
fn webhook_crud_round_trips_and_verification() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let silent = Sink::start(&env, &["--status", "200"]);
    let serve = Serve::start_with(&env, &[("HOOKCTL_VERIFY_INTERVAL", "200ms")]);
    let api = Api::new(&serve);
    let t = token(&env, "webhooks:read,webhooks:write", None);
    let create = json!({
        "url": sink.url("/hook"), "name": "crm", "events": ["ContactCreate", "Payment received"],
        "location_id": "loc1", "headers": [{"name": "X-Team", "value": "growth"}],
        "method": "PUT", "format": "json", "payload": "envelope",
        "template": "{\"email\": \"{{contact.email}}\"}", "retry_schedule": ["1s", "1m"], "timeout_ms": 3000,
        "rate": "10/s", "signature_scheme": "standard", "signature_header": "X-Sig"
    });
    let (st, made) = api.call("POST", "/v2/webhooks", Some(&t), Some(create), &[]);
    assert_eq!(st, 201, "{made}");
    assert!(
        made["secret"].as_str().unwrap().starts_with("whsec_"),
        "the secret is shown once"
    );
    assert_eq!(made["state"], "pending");
    let id = made["id"].as_str().unwrap().to_string();
    let (st, got) = api.call("GET", &format!("/v2/webhooks/{id}"), Some(&t), None, &[]);
    assert_eq!(st, 200);
    for (k, want) in [
        ("name", json!("crm")),
        ("url", json!(sink.url("/hook"))),
        ("events", json!(["ContactCreate", "InvoicePaid"])),
        ("location_id", json!("loc1")),
        ("headers", json!([{"name": "X-Team", "value": "growth"}])),
        ("method", json!("PUT")),
        ("format", json!("json")),
        ("payload", json!("envelope")),
        ("template", json!("{\"email\": \"{{contact.email}}\"}")),
        ("retry_schedule", json!(["1s", "1m"])),
        ("timeout_ms", json!(3000)),
        ("rate", json!("10/s")),
        ("signature_scheme", json!("standard")),
        ("signature_header", json!("x-sig")),
    ] {
        assert_eq!(got[k], want, "{k}: {got}");
    }
    assert!(
        !got["secret"]
            .as_str()
            .unwrap()
            .contains(&made["secret"].as_str().unwrap()[8..])
    );
    let (st, patched) = api.call(
        "PATCH",
        &format!("/v2/webhooks/{id}"),
        Some(&t),
        Some(json!({"name": "crm-2", "events": ["*"], "method": "POST"})),
        &[],
    );
    assert_eq!(st, 200, "{patched}");
    assert_eq!(patched["name"], "crm-2");
    assert_eq!(patched["events"], json!(["*"]));
    assert_eq!(
        patched["template"],
        json!("{\"email\": \"{{contact.email}}\"}"),
        "untouched fields stay"
    );
    // The sink echoes the token: verified.
    wait_until("verification", LONG, || {
        api.call("GET", &format!("/v2/webhooks/{id}"), Some(&t), None, &[])
            .1["state"]
            == "active"
    });
    // An endpoint that answers 200 without the token stays pending, however often asked.
    let (_, quiet) = api.call(
        "POST",
        "/v2/webhooks",
        Some(&t),
        Some(json!({"url": silent.url("/q"), "events": ["*"]})),
        &[],
    );
    let quiet_id = quiet["id"].as_str().unwrap().to_string();
    wait_until("two confirmation requests", LONG, || silent.count() >= 2);
    assert!(silent.requests().iter().all(|r| {
        r["body"]
            .as_str()
            .unwrap()
            .contains("SubscriptionVerification")
    }));
    assert_eq!(
        api.call(
            "GET",
            &format!("/v2/webhooks/{quiet_id}"),
            Some(&t),
            None,
            &[]
        )
        .1["state"],
        "pending"
    );
    // Test mode through the API: the exact request, sent once unless dry_run.
    let before = sink.count();
    let (st, dry) = api.call(
        "POST",
        &format!("/v2/webhooks/{id}/test"),
        Some(&t),
        Some(json!({"type": "ContactCreate", "dry_run": true})),
        &[],
    );
    assert_eq!(st, 200, "{dry}");
    assert_eq!(dry["sent"], false);
    assert!(
        dry["request"]["headers"]["webhook-signature"]
            .as_str()
            .unwrap()
            .starts_with("v1,"),
        "{dry}"
    );
    assert_eq!(dry["request"]["body"], "{\"email\": \"jane@example.com\"}");
    let (_, sent) = api.call(
        "POST",
        &format!("/v2/webhooks/{id}/test"),
        Some(&t),
        None,
        &[],
    );
    assert_eq!(sent["response"]["status"], 200, "{sent}");
    wait_until("the test request", LONG, || sink.count() == before + 1);
    let (st, _) = api.call("DELETE", &format!("/v2/webhooks/{id}"), Some(&t), None, &[]);
    assert_eq!(st, 200);
    assert_eq!(
        api.call("GET", &format!("/v2/webhooks/{id}"), Some(&t), None, &[])
            .0,
        404
    );
}

#[test]
fn locations_are_isolated_and_scopes_enforced() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let serve = Serve::start(&env);
    let api = Api::new(&serve);
    let all = "events:write,events:read,webhooks:read,webhooks:write";
    let a = token(&env, all, Some("loc-a"));
    let b = token(&env, all, Some("loc-b"));
    let read_only = token(&env, "webhooks:read,events:read", None);
    let (st, hook) = api.call(
        "POST",
        "/v2/webhooks",
        Some(&a),
        Some(json!({"url": sink.url("/a"), "events": ["*"]})),
        &[],
    );
    assert_eq!(st, 201);
    assert_eq!(hook["location_id"], "loc-a");
    let id = hook["id"].as_str().unwrap().to_string();
    let (_, ev) = api.call(
        "POST",
        "/v2/events",
        Some(&a),
        Some(json!({"type": "ContactCreate"})),
        &[],
    );
    let event = ev["id"].as_str().unwrap().to_string();
    assert_eq!(
        api.call("GET", &format!("/v2/events/{event}"), Some(&a), None, &[])
            .0,
        200
    );
    let before = counts(&env);
    let tries: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/v2/webhooks/{id}"), None),
        (
            "PATCH",
            format!("/v2/webhooks/{id}"),
            Some(json!({"name": "mine now"})),
        ),
        ("POST", format!("/v2/webhooks/{id}/pause"), None),
        ("POST", format!("/v2/webhooks/{id}/resume"), None),
        (
            "POST",
            format!("/v2/webhooks/{id}/redeliver"),
            Some(json!({"event_id": event})),
        ),
        (
            "POST",
            format!("/v2/webhooks/{id}/test"),
            Some(json!({"dry_run": true})),
        ),
        ("DELETE", format!("/v2/webhooks/{id}"), None),
        ("GET", format!("/v2/events/{event}"), None),
    ];
    for (m, path, body) in &tries {
        let (st, err) = api.call(m, path, Some(&b), body.clone(), &[]);
        assert_eq!(st, 404, "{m} {path} with B's token: {err}");
        assert!(err["error"].is_string() && err["detail"].is_string());
    }
    let (_, listed) = api.call("GET", "/v2/webhooks", Some(&b), None, &[]);
    assert_eq!(listed, json!([]));
    let (st, _) = api.call(
        "POST",
        "/v2/events",
        Some(&b),
        Some(json!({"type": "ContactCreate", "locationId": "loc-a"})),
        &[],
    );
    assert_eq!(st, 403);
    let (st, _) = api.call(
        "POST",
        "/v2/webhooks",
        Some(&b),
        Some(json!({"url": sink.url("/b"), "events": ["*"], "location_id": "loc-a"})),
        &[],
    );
    assert_eq!(st, 403);
    for (m, path, body) in [
        (
            "POST",
            "/v2/webhooks".to_string(),
            Some(json!({"url": sink.url("/r"), "events": ["*"]})),
        ),
        (
            "POST",
            "/v2/events".to_string(),
            Some(json!({"type": "ContactCreate"})),
        ),
        ("POST", format!("/v2/webhooks/{id}/pause"), None),
    ] {
        let (st, err) = api.call(m, &path, Some(&read_only), body, &[]);
        assert_eq!(st, 403, "{m} {path} read-only: {err}");
    }
    assert_eq!(counts(&env), before);
    // Pending, or active once the engine's confirmation request was answered; never
    // paused by the read-only token.
    let subs = env.json(&["sub", "list"]);
    assert_eq!(subs.as_array().map(Vec::len), Some(1), "{subs}");
    assert_ne!(
        subs[0]["state"], "paused",
        "nothing B or the read-only token tried took effect"
    );
}

#[test]
fn inbound_webhooks_map_fields_and_refuse_what_they_must() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let serve = Serve::start(&env);
    let api = Api::new(&serve);
    env.sub_add(&["--url", &sink.url("/x"), "--all"]);
    let made = env.json(&[
        "inbound",
        "add",
        "--type",
        "ContactCreate",
        "--location",
        "loc1",
        "--map",
        "email=/contact/email",
        "--map",
        "firstName=/contact/first",
        "--secret",
        "in-secret",
    ]);
    let path = made["path"].as_str().unwrap().to_string();
    let body =
        json!({"contact": {"email": "zoe@example.com", "first": "Zoë"}, "noise": 1}).to_string();
    let sig = hookctl::signing::sign_wl("in-secret", body.as_bytes());
    let (st, ev) = api.raw(
        &path,
        None,
        "application/json",
        body.clone().into_bytes(),
        &[("x-hookctl-signature", &sig)],
    );
    assert_eq!(st, 202, "{ev}");
    sink.wait_count(1, LONG);
    let got: Value = serde_json::from_str(sink.requests()[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        got,
        json!({"type": "ContactCreate", "locationId": "loc1", "email": "zoe@example.com", "firstName": "Zoë"})
    );
    let before = counts(&env);
    let (st, _) = api.raw(
        &path,
        None,
        "application/json",
        body.clone().into_bytes(),
        &[("x-hookctl-signature", "00ff")],
    );
    assert_eq!(st, 401);
    let (st, _) = api.raw(
        "/hooks/in/in_nosuchtoken",
        None,
        "application/json",
        body.clone().into_bytes(),
        &[],
    );
    assert_eq!(st, 404);
    assert_eq!(counts(&env), before);
    drop(serve);
    // A source allowlist that does not include 127.0.0.1 refuses (nothing is sent anywhere else).
    let strict = Serve::start_with(&env, &[("HOOKCTL_INBOUND_ALLOW_NETWORKS", "10.0.0.0/8")]);
    let api = Api::new(&strict);
    let (st, err) = api.raw(
        &path,
        None,
        "application/json",
        body.into_bytes(),
        &[("x-hookctl-signature", &sig)],
    );
    assert_eq!(st, 403, "{err}");
    assert_eq!(counts(&env), before);
}

#[test]
fn every_error_is_json_and_stores_nothing() {
    let env = Env::new();
    let serve = Serve::start_with(&env, &[("HOOKCTL_API_BODY_CAP", "2000")]);
    let api = Api::new(&serve);
    let t = token(&env, "events:write,webhooks:write,webhooks:read", None);
    env.ok(&["emit", "TaskCreate"]);
    let before = counts(&env);
    let big = json!({"type": "ContactCreate", "data": {"pad": "x".repeat(5000)}})
        .to_string()
        .into_bytes();
    let cases: Vec<(u16, (u16, Value))> = vec![
        (413, api.raw("/v2/events", Some(&t), "application/json", big, &[])),
        (400, api.raw("/v2/events", Some(&t), "application/json", b"{\"type\": ".to_vec(), &[])),
        (415, api.raw("/v2/events", Some(&t), "text/plain", b"{}".to_vec(), &[])),
        (401, api.raw("/v2/events", None, "application/json", b"{\"type\":\"ContactCreate\"}".to_vec(), &[])),
        (401, api.raw("/v2/events", Some("hk_wrong"), "application/json", b"{\"type\":\"ContactCreate\"}".to_vec(), &[])),
        (400, api.raw("/v2/events", Some(&t), "application/json", b"{\"type\":\"ContactCreat\"}".to_vec(), &[])),
        (400, api.raw("/v2/events", Some(&t), "application/json", b"[{\"type\":\"ContactCreate\"},{\"type\":\"Nope\"}]".to_vec(), &[])),
        (400, api.call("POST", "/v2/webhooks", Some(&t), Some(json!({"url": "ftp://x", "events": ["*"]})), &[])),
        (400, api.call("POST", "/v2/webhooks", Some(&t), Some(json!({"url": "http://127.0.0.1:9/", "events": ["*"], "bogus": 1})), &[])),
        (400, api.call("POST", "/v2/webhooks", Some(&t), Some(json!({"url": "http://127.0.0.1:9/", "events": ["*"], "template": "{{contcat.x}}"})), &[])),
        (404, api.call("GET", "/v2/webhooks/sub_nothing", Some(&t), None, &[])),
        (404, api.call("GET", "/v2/nothing", Some(&t), None, &[])),
    ];
    for (want, (got, body)) in cases {
        assert_eq!(got, want, "{body}");
        assert!(
            body["error"].is_string() && body["detail"].is_string(),
            "not a JSON error: {body}"
        );
    }
    let (_, malformed) = api.raw(
        "/v2/events",
        Some(&t),
        "application/json",
        b"{\"type\": ".to_vec(),
        &[],
    );
    assert!(
        malformed["detail"].as_str().unwrap().contains("EOF"),
        "{malformed}"
    );
    assert_eq!(counts(&env), before, "a failed request stored something");
}

fn prometheus(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line: {l}"));
            (
                name.to_string(),
                value
                    .parse::<f64>()
                    .unwrap_or_else(|_| panic!("bad value: {l}")),
            )
        })
        .collect()
}

#[test]
fn metrics_match_the_store_and_openapi_lists_every_route() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let dead = Sink::start(&env, &["--status", "500"]);
    let serve = Serve::start(&env);
    let api = Api::new(&serve);
    env.sub_add(&["--url", &sink.url("/ok"), "--all"]);
    env.sub_add(&[
        "--url",
        &dead.url("/dead"),
        "--events",
        "NoteCreate",
        "--retry-schedule",
        "none",
    ]);
    for i in 0..30 {
        env.ok(&[
            "emit",
            if i % 3 == 0 {
                "NoteCreate"
            } else {
                "TaskCreate"
            },
        ]);
    }
    wait_until("everything final", LONG, || {
        let s = delivery_statuses(&env);
        s.len() == 40 && s.iter().all(|s| s == "delivered" || s == "dead")
    });
    let text = api.rt.block_on(async {
        api.client
            .get(format!("{}/metrics", api.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    let m = prometheus(&text);
    let get = |name: &str| {
        m.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    };
    assert_eq!(get("hookctl_events_published_total"), 30.0);
    assert_eq!(get("hookctl_deliveries_total{outcome=\"delivered\"}"), 30.0);
    assert_eq!(get("hookctl_deliveries_total{outcome=\"dead\"}"), 10.0);
    assert_eq!(get("hookctl_attempts_total"), 40.0);
    assert_eq!(get("hookctl_attempt_latency_seconds_count"), 40.0);
    assert_eq!(
        get("hookctl_attempt_latency_seconds_bucket{le=\"+Inf\"}"),
        40.0
    );
    assert_eq!(
        get("hookctl_attempt_failures_total{class=\"status\"}"),
        10.0
    );
    assert_eq!(get("hookctl_queue_depth{state=\"dead\"}"), 10.0);
    assert_eq!(get("hookctl_endpoints{state=\"active\"}"), 2.0);

    let (st, doc) = api.call("GET", "/openapi.json", None, None, &[]);
    assert_eq!(st, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let mut documented = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            documented += 1;
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            // The router knows it: whatever the answer, it is not the unknown-route one.
            let concrete = path.replace("{id}", "x").replace("{token}", "x");
            let (_, body) = api.call(&method.to_uppercase(), &concrete, None, None, &[]);
            assert!(
                !body.to_string().contains("no such route"),
                "{method} {path} is documented but not routed"
            );
        }
    }
    assert_eq!(documented, hookctl::api::ROUTES.len());
}

/// The API keeps tokens it has looked up, but a token revoked by another process (the
/// CLI beside a running server) is refused at the very next request.
#[test]
fn a_revoked_token_is_refused_at_the_next_request() {
    let env = Env::new();
    let serve = Serve::start(&env);
    let api = Api::new(&serve);
    let made = env.json(&["token", "create", "--scopes", "events:write"]);
    let (id, secret) = (
        made["id"].as_str().unwrap(),
        made["token"].as_str().unwrap(),
    );
    let publish = || {
        api.call(
            "POST",
            "/v2/events",
            Some(secret),
            Some(json!({"type": "ContactCreate"})),
            &[],
        )
    };
    for _ in 0..3 {
        let (st, body) = publish();
        assert_eq!(st, 202, "{body}");
    }
    env.ok(&["token", "revoke", id]);
    let (st, body) = publish();
    assert_eq!(st, 401, "{body}");
    assert_eq!(counts(&env).0, 3);
}

/// The check behind the API's kept tokens, at the store: a publish made with a revoked
/// token stores nothing and says why, even in the same transaction as publishes that are
/// kept, and whichever connection revoked it.
#[test]
fn a_publish_with_a_revoked_token_stores_nothing() {
    use hookctl::store::OpenSettings;
    use hookctl::store::{NewEvent, TokenRevoked};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let store = hookctl::store::open(&db, &OpenSettings::default())
            .await
            .unwrap();
        add_publish_tokens(&*store, &["tok_live", "tok_gone"]).await;
        // Revoked through a second store on the same file, as the CLI beside a server does.
        let other = hookctl::store::open(&db, &OpenSettings::default())
            .await
            .unwrap();
        assert!(other.revoke_token("tok_gone", None).await.unwrap());
        let event = |id: &str| NewEvent {
            id: id.into(),
            event_type: "ContactCreate".into(),
            location_id: None,
            timestamp: 1,
            data: json!({}),
            received_at: None,
        };
        let mut sends = Vec::new();
        for i in 0..40 {
            let (store, token) = (store.clone(), ["tok_live", "tok_gone"][i % 2]);
            let e = event(&format!("evt_{i}"));
            sends.push(tokio::spawn(async move {
                store.publish_as(vec![e], token.into()).await
            }));
        }
        for (i, send) in sends.into_iter().enumerate() {
            match send.await.unwrap() {
                Ok(published) if i % 2 == 0 => assert_eq!(published[0].id, format!("evt_{i}")),
                Err(e) if i % 2 == 1 => assert!(e.is::<TokenRevoked>(), "{e:#}"),
                other => panic!("publish {i}: {other:?}"),
            }
            let stored = store.event_detail(&format!("evt_{i}")).await.unwrap();
            assert_eq!(stored.is_some(), i % 2 == 0, "evt_{i}");
        }
        let unknown = store
            .publish_as(vec![event("evt_x")], "tok_never".into())
            .await;
        assert!(unknown.is_err_and(|e| e.is::<TokenRevoked>()));
    });
}

/// Who did what: a pause from the CLI and a redelivery through the API with a token are
/// recorded with their actor, target and count; a failed action is recorded as failed; the
/// trail is readable by `hookctl audit --json` and `GET /v2/audit` (scope `audit:read`).
#[test]
fn operator_actions_are_recorded_with_who_and_how_they_ended() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let serve = Serve::start(&env);
    let api = Api::new(&serve);
    let sub = env.sub_add(&["--url", &sink.url("/a"), "--all"]);
    env.ok(&["emit", "ContactCreate", "--id", "evt-audited"]);
    sink.wait_count(1, LONG);
    env.ok(&["sub", "pause", &sub]);
    let writer = token(&env, "webhooks:write", None);
    let writer_id = env.json(&["token", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, body) = api.call(
        "POST",
        &format!("/v2/webhooks/{sub}/redeliver"),
        Some(&writer),
        Some(json!({"event_id": "evt-audited"})),
        &[],
    );
    assert_eq!(st, 200, "{body}");
    // A redelivery of an event the subscription never had: refused, and recorded so.
    let (st, _) = api.call(
        "POST",
        &format!("/v2/webhooks/{sub}/redeliver"),
        Some(&writer),
        Some(json!({"event_id": "evt-unknown"})),
        &[],
    );
    assert!(st >= 400, "{st}");
    let trail = env.json(&["audit"]);
    let entries = trail.as_array().unwrap();
    let find = |action: &str, ok: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action && e["outcome"] == ok)
            .unwrap_or_else(|| panic!("no {ok} {action} in {trail:#}"))
            .clone()
    };
    let pause = find("pause", "ok");
    assert_eq!(pause["actor"]["kind"], "cli");
    assert!(
        pause["actor"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
    );
    assert_eq!(pause["subscription_id"], sub.as_str());
    let redeliver = find("redeliver", "ok");
    assert_eq!(redeliver["actor"]["kind"], "api");
    assert_eq!(redeliver["actor"]["name"], writer_id.as_str());
    assert_eq!(redeliver["event_id"], "evt-audited");
    assert_eq!(redeliver["subscription_id"], sub.as_str());
    assert_eq!(redeliver["count"], 1);
    let failed = find("redeliver", "failed");
    assert_eq!(failed["event_id"], "evt-unknown");
    assert!(failed["detail"].is_string(), "{failed}");
    let created = find("sub-add", "ok");
    assert_eq!(created["subscription_id"], sub.as_str());
    assert_eq!(find("token-create", "ok")["actor"]["kind"], "cli");
    // Filtered by subscription: token creation (no subscription) drops out.
    let by_sub = env.json(&["audit", "--sub", &sub]);
    assert!(
        by_sub
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["subscription_id"] == sub.as_str()),
        "{by_sub:#}"
    );
    // The API: audit:read is a scope of its own; the same entries, newest first.
    let (st, _) = api.call("GET", "/v2/audit", Some(&writer), None, &[]);
    assert_eq!(st, 403);
    let reader = token(&env, "audit:read", None);
    let (st, listed) = api.call("GET", "/v2/audit?since=1h", Some(&reader), None, &[]);
    assert_eq!(st, 200, "{listed}");
    assert!(listed.as_array().unwrap().len() >= entries.len());
    assert_eq!(listed[0]["action"], "token-create");
    let (st, err) = api.call("GET", "/v2/audit?since=soon", Some(&reader), None, &[]);
    assert_eq!(st, 400, "{err}");
    // No secret in the trail.
    let text = env.ok(&["audit"]);
    assert!(!text.contains(&writer) && !text.contains(&reader), "{text}");
    assert!(
        text.contains("pause") && text.contains("api tok_"),
        "{text}"
    );
}

/// `GET /v2/incident` (scope webhooks:read): the endpoints in trouble, the same summary as
/// `hookctl incident --json`; a location-bound token sees its location's endpoints only.
#[test]
fn the_incident_summary_is_served_with_location_isolation() {
    let env = Env::new();
    let failing = Sink::start(&env, &["--status", "503"]);
    let serve = Serve::start(&env);
    let api = Api::new(&serve);
    let a = env.sub_add(&[
        "--url",
        &failing.url("/a"),
        "--events",
        "ContactCreate",
        "--location",
        "locA",
        "--retry-schedule",
        "",
    ]);
    let b = env.sub_add(&[
        "--url",
        &failing.url("/b"),
        "--events",
        "ContactCreate",
        "--location",
        "locB",
        "--retry-schedule",
        "",
    ]);
    env.ok(&["emit", "ContactCreate", "--location", "locA"]);
    env.ok(&["emit", "ContactCreate", "--location", "locB"]);
    wait_until("both deliveries dead", LONG, || {
        env.json(&["event", "list", "--status", "dead"])
            .as_array()
            .unwrap()
            .len()
            == 2
    });
    let reader = token(&env, "webhooks:read", None);
    let (st, all) = api.call("GET", "/v2/incident?since=30m", Some(&reader), None, &[]);
    assert_eq!(st, 200, "{all}");
    let ids = |v: &Value| -> Vec<String> {
        v["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["subscription_id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut both = ids(&all);
    both.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(both, want);
    let e = &all["endpoints"][0];
    assert_eq!(e["errors"][0]["kind"], "status 503", "{e}");
    assert_eq!(e["dead"], 1);
    assert_eq!(e["current"], true);
    assert!(all["headline"].as_str().unwrap().starts_with("incident: "));
    let cli = env.json_any(&["incident", "--since", "30m"]).1;
    assert_eq!(ids(&cli).len(), 2);

    let only_a = token(&env, "webhooks:read", Some("locA"));
    let (st, mine) = api.call("GET", "/v2/incident", Some(&only_a), None, &[]);
    assert_eq!(st, 200, "{mine}");
    assert_eq!(ids(&mine), vec![a]);
    let events_only = token(&env, "events:read", None);
    let (st, _) = api.call("GET", "/v2/incident", Some(&events_only), None, &[]);
    assert_eq!(st, 403);
    let (st, err) = api.call("GET", "/v2/incident?since=lately", Some(&reader), None, &[]);
    assert_eq!(st, 400, "{err}");
}
