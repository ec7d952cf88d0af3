//! Issue 7's acceptance: templates and custom values, test mode, Standard Webhooks checked
//! by an implementation written here from the spec, secret rotation, rate limits, the
//! outbound source address.

mod common;
use base64::Engine as _;
use common::*;
use hmac::{KeyInit, Mac};
use serde_json::Value;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(60);

fn body_of(sink: &Sink, path: &str, n: usize) -> String {
    sink.requests()
        .iter()
        .filter(|r| r["path"] == path)
        .nth(n)
        .unwrap()["body"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn templates_render_byte_for_byte_with_escaping_and_form_bodies() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let _serve = Serve::start(&env);
    let tpl = env.path("contact.json");
    std::fs::write(&tpl, "{\"email\": \"{{contact.email}}\", \"name\": \"{{contact.full_name}}\", \"event\": \"{{event.id}}\", \"type\": \"{{event.type}}\", \"location\": \"{{location.id}}\"}").unwrap();
    env.sub_add(&[
        "--url",
        &sink.url("/contact"),
        "--events",
        "ContactCreate",
        "--template",
        path_str(&tpl),
    ]);
    env.sub_add(&[
        "--url", &sink.url("/opp"), "--events", "OpportunityCreate",
        "--template-text", "{\"deal\": \"{{opportunity.name}}\", \"value\": {{opportunity.monetary_value}}, \"stage\": \"{{opportunity.pipelineStageId}}\"}",
    ]);
    env.sub_add(&[
        "--url",
        &sink.url("/form"),
        "--events",
        "ContactCreate",
        "--format",
        "form",
        "--secret",
        SECRET,
    ]);

    let data =
        r#"{"email": "jane\"q\"@example.com", "firstName": "Zoë", "lastName": "Smith\nJr ✓"}"#;
    env.ok(&[
        "emit",
        "ContactCreate",
        "--id",
        "evt_tpl_1",
        "--location",
        "loc1",
        "--data",
        data,
    ]);
    env.ok(&[
        "emit",
        "OpportunityCreate",
        "--id",
        "evt_tpl_2",
        "--location",
        "loc1",
    ]);
    wait_until("three requests", LONG, || sink.count() >= 3);

    let want = "{\"email\": \"jane\\\"q\\\"@example.com\", \"name\": \"Zoë Smith\\nJr ✓\", \"event\": \"evt_tpl_1\", \"type\": \"ContactCreate\", \"location\": \"loc1\"}";
    assert_eq!(body_of(&sink, "/contact", 0), want);
    let parsed: Value = serde_json::from_str(want).unwrap();
    assert_eq!(parsed["name"], "Zoë Smith\nJr ✓");
    assert_eq!(
        body_of(&sink, "/opp", 0),
        "{\"deal\": \"Acme Corp - annual plan\", \"value\": 4800, \"stage\": \"stgK8jH6gF4dS2aP0oI9\"}"
    );
    let form = sink
        .requests()
        .into_iter()
        .find(|r| r["path"] == "/form")
        .unwrap();
    assert_eq!(
        form["headers"]["content-type"],
        "application/x-www-form-urlencoded"
    );
    let body = form["body"].as_str().unwrap();
    assert!(
        body.starts_with(
            "type=ContactCreate&locationId=loc1&email=jane%22q%22%40example.com&firstName=Zo%C3%AB"
        ),
        "{body}"
    );
    assert_eq!(form["verified"], true, "form bodies are signed as sent");
}

#[test]
fn broken_templates_are_refused_and_missing_fields_fail_visibly() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let _serve = Serve::start(&env);
    for (tpl, want) in [
        (
            "{\"a\": \"{{contcat.email}}\"}",
            "line 1, column 10: unknown namespace 'contcat'",
        ),
        ("{\n  \"a\": \"{{ contact.email }\"\n}", "line 2, column"),
        ("{\"a\": \"{% if %}\"}", "line 1, column"),
    ] {
        let out = env.run(&[
            "sub",
            "add",
            "--url",
            &sink.url("/x"),
            "--all",
            "--template-text",
            tpl,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{tpl}: {err}");
        assert!(err.contains(want), "{tpl}: '{err}' lacks '{want}'");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert_eq!(env.json(&["sub", "list"]).as_array().unwrap().len(), 0);

    env.sub_add(&[
        "--url",
        &sink.url("/x"),
        "--all",
        "--template-text",
        "{\"nick\": \"{{contact.nickname}}\"}",
    ]);
    let id = env.json(&["emit", "ContactCreate"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut shown = Value::Null;
    wait_until("a render failure on record", LONG, || {
        shown = env.json(&["event", "show", &id]);
        shown["deliveries"][0]["status"] == "dead"
    });
    let a = &shown["deliveries"][0]["attempts"][0];
    assert_eq!(a["error_class"], "render");
    assert!(
        a["error"].as_str().unwrap().contains("contact.nickname"),
        "{a}"
    );
    assert_eq!(sink.count(), 0, "nothing may be sent for a failed render");
}

#[test]
fn sub_test_dry_run_sends_nothing_and_a_real_test_sends_one() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let sub = env.sub_add(&[
        "--url",
        &sink.url("/t"),
        "--events",
        "InvoicePaid",
        "--secret",
        SECRET,
    ]);
    let dry = env.ok(&["sub", "test", &sub, "--dry-run"]);
    assert!(
        dry.starts_with(&format!("POST {}", sink.url("/t"))),
        "{dry}"
    );
    assert!(
        dry.contains("x-wl-signature: ") && dry.contains("\"type\":\"InvoicePaid\""),
        "{dry}"
    );
    assert!(dry.contains("nothing sent"));
    let json = env.json(&["sub", "test", &sub, "--type", "ContactCreate", "--dry-run"]);
    assert_eq!(json["sent"], false);
    assert!(
        json["request"]["body"]
            .as_str()
            .unwrap()
            .contains("ContactCreate")
    );
    assert_eq!(sink.count(), 0);
    let sent = env.json(&["sub", "test", &sub]);
    assert_eq!(sent["response"]["status"], 200);
    sink.wait_count(1, LONG);
    assert_eq!(sink.requests()[0]["verified"], true);
    // Exactly one: anything else would have been printed by now behind a second request.
    env.json(&["sub", "test", &sub, "--dry-run"]);
    assert_eq!(sink.count(), 1);
}

/// Standard Webhooks v1 from the specification, not from hookctl's code.
fn spec_verify(secret: &str, id: &str, ts: &str, body: &str, header: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

fn hex_hmac(secret: &str, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[test]
fn standard_webhooks_verify_independently_and_tampering_fails() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let _serve = Serve::start(&env);
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    env.sub_add(&[
        "--url",
        &sink.url("/std"),
        "--all",
        "--secret",
        secret,
        "--signature-scheme",
        "standard",
    ]);
    env.ok(&["emit", "ContactCreate"]);
    sink.wait_count(1, LONG);
    let r = &sink.requests()[0];
    let h = &r["headers"];
    let (id, ts, sig) = (
        h["webhook-id"].as_str().unwrap(),
        h["webhook-timestamp"].as_str().unwrap(),
        h["webhook-signature"].as_str().unwrap(),
    );
    let body = r["body"].as_str().unwrap();
    assert!(spec_verify(secret, id, ts, body, sig));
    let skew = chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap();
    assert!(skew.abs() < 60, "timestamp {skew} s off");
    assert!(!spec_verify(secret, "msg_other", ts, body, sig));
    assert!(!spec_verify(
        secret,
        id,
        &(ts.parse::<i64>().unwrap() + 1).to_string(),
        body,
        sig
    ));
    let mut tampered = body.to_string();
    tampered.push(' ');
    assert!(!spec_verify(secret, id, ts, &tampered, sig));
    // hookctl verify agrees, on both the good and a tampered body.
    let file = env.path("b");
    std::fs::write(&file, body).unwrap();
    let ok = env.run(&[
        "verify",
        "--secret",
        secret,
        "--signature",
        sig,
        "--id",
        id,
        "--timestamp",
        ts,
        "--body",
        path_str(&file),
    ]);
    assert_eq!(ok.status.code(), Some(0));
    std::fs::write(&file, &tampered).unwrap();
    let bad = env.run(&[
        "verify",
        "--secret",
        secret,
        "--signature",
        sig,
        "--id",
        id,
        "--timestamp",
        ts,
        "--body",
        path_str(&file),
    ]);
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn rotation_keeps_old_receivers_working_through_the_grace_period() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let _serve = Serve::start(&env);
    let (old, new) = ("old-secret-0123456789", "new-secret-9876543210");
    let sub = env.sub_add(&["--url", &sink.url("/r"), "--all", "--secret", old]);
    let rotated = env.json(&[
        "sub",
        "rotate-secret",
        &sub,
        "--secret",
        new,
        "--grace",
        "3s",
    ]);
    let until =
        chrono::DateTime::parse_from_rfc3339(rotated["previous_valid_until"].as_str().unwrap())
            .unwrap();
    env.ok(&["emit", "ContactCreate"]);
    sink.wait_count(1, LONG);
    let during = &sink.requests()[0];
    let body = during["body"].as_str().unwrap();
    // A receiver written from the events reference checks only x-wl-signature.
    assert_eq!(
        during["headers"]["x-wl-signature"].as_str().unwrap(),
        hex_hmac(old, body)
    );
    assert_eq!(
        during["headers"]["x-wl-signature-next"].as_str().unwrap(),
        hex_hmac(new, body)
    );
    // After the grace period (waiting on the clock, with a deadline).
    wait_until("the grace period to end", LONG, || {
        chrono::Utc::now() > until
    });
    env.ok(&["emit", "ContactCreate"]);
    sink.wait_count(2, LONG);
    let after = &sink.requests()[1];
    let body = after["body"].as_str().unwrap();
    assert_eq!(
        after["headers"]["x-wl-signature"].as_str().unwrap(),
        hex_hmac(new, body)
    );
    assert!(after["headers"].get("x-wl-signature-next").is_none());
}

#[test]
fn rate_limited_endpoint_stays_under_its_rate_and_others_do_not_wait() {
    let env = Env::new();
    let limited = Sink::start(&env, &[]);
    let free = Sink::start(&env, &[]);
    let _serve = Serve::start(&env);
    env.sub_add(&["--url", &limited.url("/l"), "--all", "--rate", "20/s"]);
    env.sub_add(&["--url", &free.url("/f"), "--all"]);
    let (file, _) = ndjson(&env, "burst.ndjson", 500, "burst");
    env.ok(&["emit", "--ndjson", path_str(&file)]);
    free.wait_count(500, LONG);
    let limited_then = limited.count();
    assert!(
        limited_then < 100,
        "the limited endpoint already had {limited_then}"
    );
    limited.wait_count(100, LONG);
    let times: Vec<Instant> = limited.arrivals();
    let mut worst = 0;
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .take_while(|u| **u - *t < Duration::from_secs(1))
            .count();
        worst = worst.max(in_window);
    }
    eprintln!("most requests in any 1 s window: {worst} (rate 20/s)");
    assert!(worst <= 21, "{worst} requests within one second");
    assert!(
        worst >= 15,
        "only {worst} per second: the limit is too strict"
    );
}

#[test]
fn custom_values_prefer_the_location() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let _serve = Serve::start(&env);
    env.ok(&["values", "set", "api_key", "global-key-000111"]);
    env.ok(&[
        "values",
        "set",
        "api_key",
        "loc1-key-222333",
        "--location",
        "loc1",
    ]);
    let listed = env.ok(&["values", "list"]);
    assert!(
        !listed.contains("global-key-000111") && !listed.contains("loc1-key-222333"),
        "{listed}"
    );
    env.sub_add(&[
        "--url",
        &sink.url("/v"),
        "--all",
        "--template-text",
        "{\"key\": \"{{custom_values.api_key}}\"}",
    ]);
    env.ok(&[
        "emit",
        "TaskCreate",
        "--location",
        "loc1",
        "--id",
        "in-loc1",
    ]);
    env.ok(&[
        "emit",
        "TaskCreate",
        "--location",
        "loc2",
        "--id",
        "in-loc2",
    ]);
    sink.wait_count(2, LONG);
    let by_id = |id: &str| {
        sink.requests()
            .into_iter()
            .find(|r| r["headers"]["webhook-id"] == id)
            .unwrap()["body"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(by_id("in-loc1"), "{\"key\": \"loc1-key-222333\"}");
    assert_eq!(by_id("in-loc2"), "{\"key\": \"global-key-000111\"}");
}

#[test]
fn outbound_connections_use_the_configured_source_address() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let _serve = Serve::start_with(&env, &[("HOOKCTL_OUTBOUND_BIND_ADDRESS", "127.0.0.2")]);
    env.sub_add(&["--url", &sink.url("/b"), "--all"]);
    env.ok(&["emit", "ContactCreate"]);
    sink.wait_count(1, LONG);
    assert_eq!(sink.requests()[0]["remote"], "127.0.0.2");
}

/// DESIGN: a delivery's body is rendered once and kept; retries send it as first sent,
/// even when what it was rendered from has changed since.
#[test]
fn retries_send_the_body_as_first_sent() {
    let env = Env::new();
    let failing = Sink::start(&env, &["--status", "500"]);
    let _serve = Serve::start(&env);
    env.ok(&["values", "set", "greeting", "first"]);
    env.sub_add(&[
        "--url",
        &failing.url("/r"),
        "--all",
        "--retry-schedule",
        "1s,1s",
        "--template-text",
        "{\"greeting\": \"{{custom_values.greeting}}\"}",
    ]);
    env.ok(&["emit", "TaskCreate"]);
    failing.wait_count(1, LONG);
    env.ok(&["values", "set", "greeting", "second"]);
    failing.wait_count(3, LONG);
    for n in 0..3 {
        assert_eq!(body_of(&failing, "/r", n), "{\"greeting\": \"first\"}");
    }
    // A new event takes the new value.
    env.ok(&["emit", "TaskCreate"]);
    failing.wait_count(4, LONG);
    assert_eq!(body_of(&failing, "/r", 3), "{\"greeting\": \"second\"}");
}

/// A fan-out keeps no bytes for the bodies made from the event alone (only how they were
/// made) and a template's output once per distinct bytes, and every delivery still shows
/// exactly what it sent.
#[test]
fn a_fan_out_keeps_only_template_bodies_and_each_once() {
    use hookctl::store::OpenSettings;
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let _serve = Serve::start(&env);
    for path in ["/a", "/b", "/c"] {
        env.sub_add(&["--url", &sink.url(path), "--all"]);
    }
    env.sub_add(&[
        "--url",
        &sink.url("/t"),
        "--all",
        "--template-text",
        "{\"event\": \"{{event.id}}\"}",
    ]);
    env.sub_add(&[
        "--url",
        &sink.url("/u"),
        "--all",
        "--template-text",
        "{\"event\": \"{{event.id}}\"}",
    ]);
    env.sub_add(&["--url", &sink.url("/f"), "--all", "--format", "form"]);
    env.sub_add(&["--url", &sink.url("/g"), "--all", "--method", "GET"]);
    env.ok(&["emit", "TaskCreate", "--id", "fan"]);
    wait_until("seven deliveries recorded", LONG, || {
        let shown = env.json(&["event", "show", "fan"]);
        let all = shown["deliveries"].as_array().unwrap();
        all.len() == 7 && all.iter().all(|d| d["status"] == "delivered")
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let detail = rt.block_on(async {
        let store = hookctl::store::open(&env.db, &OpenSettings::default())
            .await
            .unwrap();
        store.event_detail("fan").await.unwrap().unwrap()
    });
    for d in &detail.deliveries {
        let url = url::Url::parse(d.url.as_deref().unwrap()).unwrap();
        let stored = String::from_utf8(d.body.clone().expect("a stored body")).unwrap();
        let sent = match url.path() {
            // GET carries the fields in the query string.
            "/g" => sink
                .requests()
                .iter()
                .find(|r| r["path"] == "/g")
                .and_then(|r| r["query"].as_str().map(str::to_string))
                .expect("the GET request's query"),
            path => body_of(&sink, path, 0),
        };
        assert_eq!(stored, sent, "{url}");
    }
    assert_eq!(body_of(&sink, "/t", 0), "{\"event\": \"fan\"}");
    // One kept body (the template's) for the two template deliveries.
    assert_eq!(env.stored_bodies(), (1, 2));
}

/// The test's database opened as the engine opens it, with a runtime to drive it.
fn open_store(
    env: &Env,
) -> (
    tokio::runtime::Runtime,
    std::sync::Arc<dyn hookctl::store::Store>,
) {
    use hookctl::store::OpenSettings;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt
        .block_on(hookctl::store::open(&env.db, &OpenSettings::default()))
        .unwrap();
    (rt, store)
}

/// A body made from the event alone is not kept as bytes, yet a retry sends it byte for byte
/// as first sent even after the subscription's payload style and format have changed.
#[test]
fn a_retry_remakes_the_first_body_after_the_payload_style_changed() {
    use hookctl::model::{BodyFormat, DeliveryStatus, PayloadStyle, now_ms};
    use hookctl::payload::Shape;
    use hookctl::store::{Outcome, SentBody};
    let env = Env::new();
    let id = env.sub_add(&["--url", "http://127.0.0.1:9/x", "--all"]);
    env.ok(&["emit", "TaskCreate", "--id", "e1"]);
    let (rt, store) = open_store(&env);
    rt.block_on(async {
        let far = now_ms() + 3_600_000;
        let claim = || store.claim(vec![(id.clone(), 10)], now_ms(), far);
        let jobs = claim().await.unwrap();
        assert_eq!(jobs.len(), 1);
        let mut sub = store.subscriptions().await.unwrap().remove(0);
        let first =
            hookctl::engine::request::render_payload(&sub, &jobs[0].event, &Default::default())
                .unwrap();
        let attempt = |n: u32| hookctl::model::Attempt {
            n,
            at: now_ms(),
            status_code: Some(500),
            error_class: Some(hookctl::model::ErrorClass::Status),
            error: Some("HTTP 500".into()),
            latency_ms: 1,
            request_headers: vec![],
            response_headers: vec![],
            response_body: None,
        };
        store
            .record(
                vec![Outcome {
                    delivery_id: jobs[0].delivery_id,
                    subscription_id: id.clone(),
                    probe: false,
                    probes: 0,
                    gone: false,
                    attempt: attempt(1),
                    status: DeliveryStatus::Retrying,
                    next_at: Some(now_ms()),
                    body: Some(SentBody::Made(Shape::of(&sub))),
                    kept_headers: None,
                }]
                .into(),
                10,
            )
            .await
            .unwrap();
        sub.payload = PayloadStyle::Envelope;
        sub.format = BodyFormat::Form;
        store.update_subscription(sub.clone(), None).await.unwrap();
        let now =
            hookctl::engine::request::render_payload(&sub, &jobs[0].event, &Default::default())
                .unwrap();
        assert_ne!(now, first, "the change makes other bytes");
        let again = claim().await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].body.as_deref(), Some(&first[..]));
        let detail = store.event_detail("e1").await.unwrap().unwrap();
        assert_eq!(detail.deliveries[0].body.as_deref(), Some(&first[..]));
    });
    assert_eq!(env.stored_bodies(), (0, 0));
}

/// An attempt recorded twice (a recorder retrying after a commit whose fate it could not
/// know) is kept once, as last recorded; the event published twice is stored once.
#[test]
fn an_attempt_recorded_twice_is_kept_once_as_last_recorded() {
    use hookctl::model::{DeliveryStatus, now_ms};
    use hookctl::store::Outcome;
    let env = Env::new();
    let id = env.sub_add(&["--url", "http://127.0.0.1:9/x", "--all"]);
    env.ok(&["emit", "TaskCreate", "--id", "e1"]);
    env.ok(&["emit", "TaskCreate", "--id", "e1"]);
    let (rt, store) = open_store(&env);
    rt.block_on(async {
        let jobs = store
            .claim(vec![(id.clone(), 10)], now_ms(), now_ms() + 3_600_000)
            .await
            .unwrap();
        assert_eq!(jobs.len(), 1, "one event, one delivery");
        let outcome = |code: u16, error: &str| Outcome {
            delivery_id: jobs[0].delivery_id,
            subscription_id: id.clone(),
            probe: false,
            probes: 0,
            gone: false,
            attempt: hookctl::model::Attempt {
                n: 1,
                at: now_ms(),
                status_code: Some(code),
                error_class: Some(hookctl::model::ErrorClass::Status),
                error: Some(error.into()),
                latency_ms: 1,
                request_headers: vec![("x-wl-attempt".into(), "1".into())],
                response_headers: vec![],
                response_body: Some(error.as_bytes().to_vec()),
            },
            status: DeliveryStatus::Retrying,
            next_at: Some(now_ms() + 60_000),
            body: None,
            kept_headers: None,
        };
        for (code, error) in [(500, "first"), (503, "second")] {
            store
                .record(vec![outcome(code, error)].into(), 10)
                .await
                .unwrap();
        }
        let detail = store.event_detail("e1").await.unwrap().unwrap();
        assert_eq!(detail.deliveries.len(), 1);
        let attempts = &detail.deliveries[0].attempts;
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(attempts[0].status_code, Some(503));
        assert_eq!(attempts[0].error.as_deref(), Some("second"));
        assert_eq!(attempts[0].response_body.as_deref(), Some(&b"second"[..]));
    });
}
