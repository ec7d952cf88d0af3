//! Issue 3's acceptance: endpoints that throttle, vanish, fail for a while or are slow;
//! outbound safety; drain on SIGTERM; health for scripts; bad input; secrets.

mod common;
use common::*;
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(120);

fn attempts_of(env: &Env, event_id: &str) -> Vec<Value> {
    env.json(&["event", "show", event_id])["deliveries"][0]["attempts"]
        .as_array()
        .unwrap()
        .clone()
}

fn at_ms(a: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(a["at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

#[test]
fn retry_after_is_honoured_and_410_disables() {
    let env = Env::new();
    let throttled = Sink::start(&env, &["--status", "429", "--retry-after", "2"]);
    let gone = Sink::start(&env, &["--status", "410"]);
    let control = Sink::start(&env, &[]);
    let _serve = Serve::start(&env);
    let t = env.sub_add(&[
        "--url",
        &throttled.url("/t"),
        "--events",
        "InvoicePaid",
        "--retry-schedule",
        "1s,1s",
    ]);
    let g = env.sub_add(&["--url", &gone.url("/g"), "--events", "ContactCreate"]);
    env.sub_add(&["--url", &control.url("/c"), "--all"]);

    let paid = env.json(&["emit", "InvoicePaid"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until("two attempts at the throttled endpoint", LONG, || {
        attempts_of(&env, &paid).len() >= 2
    });
    let a = attempts_of(&env, &paid);
    assert_eq!(a[0]["status_code"], 429);
    let gap = at_ms(&a[1]) - at_ms(&a[0]);
    assert!(
        gap >= 2000,
        "second attempt {gap} ms after the first, despite Retry-After: 2"
    );
    let _ = t;

    env.ok(&["emit", "ContactCreate"]);
    wait_until("the 410 to disable the subscription", LONG, || {
        env.json(&["sub", "show", &g])["state"] == "disabled"
    });
    let shown = env.json(&["sub", "show", &g]);
    assert!(
        shown["state_reason"].as_str().unwrap().contains("410"),
        "{shown}"
    );
    assert!(
        shown["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["change"] == "disabled")
    );
    let text = env.ok(&["sub", "show", &g]);
    assert!(text.contains("disabled") && text.contains("410"), "{text}");

    // Later events for the disabled endpoint are held, not attempted.
    let before = gone.count();
    let later = env.json(&["emit", "ContactCreate"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until("the control endpoint to get the later event", LONG, || {
        control
            .requests()
            .iter()
            .any(|r| r["headers"]["webhook-id"] == later.as_str())
    });
    assert_eq!(gone.count(), before);
    let held = env.json(&["event", "show", &later]);
    let to_g = held["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["subscription_id"] == g.as_str())
        .unwrap()
        .clone();
    assert_eq!(to_g["status"], "pending");
    assert!(to_g["attempts"].as_array().unwrap().is_empty());
    // status reports it.
    let st = env.run(&["status"]);
    assert_eq!(st.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&st.stdout).contains("disabled"));
}

#[test]
fn circuit_breaker_probes_then_delivers_everything_held() {
    let env = Env::new();
    let failing = Sink::start(&env, &["--status", "503"]);
    let addr = failing.addr.clone();
    let healthy = Sink::start(&env, &[]);
    let _serve = Serve::start_with(
        &env,
        &[
            ("HOOKCTL_CIRCUIT_THRESHOLD", "5"),
            ("HOOKCTL_CIRCUIT_PROBE_INTERVAL", "1s"),
        ],
    );
    let f = env.sub_add(&[
        "--url",
        &failing.url("/f"),
        "--all",
        "--retry-schedule",
        "1s,1s,5m",
    ]);
    env.sub_add(&["--url", &healthy.url("/h"), "--all"]);
    let (file, ids) = ndjson(&env, "wave1.ndjson", 20, "w1");
    env.ok(&["emit", "--ndjson", path_str(&file)]);
    wait_until("the circuit to open", LONG, || {
        env.json(&["sub", "show", &f])["circuit"] == "open"
    });
    let status = env.run(&["--json", "status"]);
    assert_eq!(status.status.code(), Some(1));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(
        status["problems"].to_string().contains("circuit open"),
        "{status}"
    );

    // While open: only probes, about one a second, however much is due.
    let opened_at = failing.count();
    let (file2, ids2) = ndjson(&env, "wave2.ndjson", 60, "w2");
    env.ok(&["emit", "--ndjson", path_str(&file2)]);
    healthy.wait_count(80, LONG);
    wait_until("three probes", LONG, || failing.count() >= opened_at + 3);
    let arrivals = failing.arrivals();
    let probes = &arrivals[opened_at..];
    for pair in probes.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(700), "probes {gap:?} apart");
    }
    assert!(
        failing.count() < opened_at + 10,
        "{} requests while open",
        failing.count() - opened_at
    );

    // The endpoint recovers on the same address: everything held arrives, nothing died.
    failing.stop();
    let back = Sink::start_on(&env, &addr, &[]);
    let want: HashSet<String> = ids.iter().chain(&ids2).cloned().collect();
    wait_until("every held event at the recovered endpoint", LONG, || {
        let seen: HashSet<String> = back
            .requests()
            .iter()
            .map(|r| r["headers"]["webhook-id"].as_str().unwrap().to_string())
            .collect();
        want.is_subset(&seen)
    });
    wait_until("the circuit to close", LONG, || {
        env.json(&["sub", "show", &f])["circuit"] == "closed"
    });
    let dead = env.json(&["event", "list", "--sub", &f, "--status", "dead"]);
    assert_eq!(
        dead.as_array().unwrap().len(),
        0,
        "dead-lettered by the outage: {dead}"
    );
    let history = env.json(&["sub", "show", &f])["history"].to_string();
    assert!(
        history.contains("circuit opened") && history.contains("circuit closed"),
        "{history}"
    );
}

#[test]
fn a_slow_endpoint_does_not_slow_a_fast_one() {
    let env = Env::new();
    let slow = Sink::start(&env, &["--delay", "200ms"]);
    let fast = Sink::start(&env, &[]);
    let _serve = Serve::start_with(&env, &[("HOOKCTL_ENDPOINT_IN_FLIGHT", "2")]);
    env.sub_add(&["--url", &slow.url("/slow"), "--events", "FormSubmitted"]);
    env.sub_add(&["--url", &fast.url("/fast"), "--all"]);
    let path = env.path("mix.ndjson");
    let lines: Vec<String> = (0..1000)
        .map(|i| {
            let t = if i % 20 == 0 {
                "FormSubmitted"
            } else {
                "ContactCreate"
            };
            serde_json::json!({"type": t, "id": format!("m{i}")}).to_string()
        })
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    env.ok(&["emit", "--ndjson", path_str(&path)]);
    fast.wait_count(1000, LONG);
    let slow_then = slow.count();
    assert!(
        slow_then < 50,
        "the slow endpoint already had {slow_then} of 50"
    );
    slow.wait_count(50, LONG);
}

#[test]
fn loopback_is_refused_without_the_allowlist() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let port = sink.addr.rsplit(':').next().unwrap().to_string();
    let strict = |args: &[&str]| {
        env.cmd()
            .args(args)
            .env("HOOKCTL_ALLOW_NETWORKS", "")
            .output()
            .unwrap()
    };
    for host in [
        "127.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
        "127.1.2.3",
    ] {
        for scheme in ["http", "https"] {
            let url = format!("{scheme}://{host}:{port}/x");
            let out = strict(&["sub", "add", "--url", &url, "--all"]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{url} accepted");
            assert!(err.contains("blocked"), "{url}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "{err}");
        }
    }
    let out = strict(&[
        "sub",
        "add",
        "--url",
        &format!("http://localhost:{port}/x"),
        "--all",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("https"),
        "{out:?}"
    );
    assert_eq!(env.json(&["sub", "list"]).as_array().unwrap().len(), 0);

    // A name is only known to be loopback once resolved: refused at connect time.
    let out = strict(&[
        "--json",
        "sub",
        "add",
        "--url",
        &format!("https://localhost:{port}/x"),
        "--all",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _serve = Serve::start_with(&env, &[("HOOKCTL_ALLOW_NETWORKS", "")]);
    let id = env.json(&["emit", "ContactCreate"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until("a blocked attempt on record", LONG, || {
        !attempts_of(&env, &id).is_empty()
    });
    let a = &attempts_of(&env, &id)[0];
    assert_eq!(a["error_class"], "blocked", "{a}");
    assert!(a["error"].as_str().unwrap().contains("loopback"), "{a}");
    assert_eq!(sink.count(), 0);
}

#[test]
fn sigterm_drains_a_thousand_in_flight_and_leaves_nothing_claimed() {
    let env = Env::new();
    let sink = Sink::start(&env, &["--delay", "1500ms"]);
    env.sub_add(&["--url", &sink.url("/x"), "--all", "--timeout", "10s"]);
    let (file, ids) = ndjson(&env, "e.ndjson", 1000, "d");
    env.ok(&["emit", "--ndjson", path_str(&file)]);
    let serve = Serve::start_with(
        &env,
        &[
            ("HOOKCTL_MAX_IN_FLIGHT", "1000"),
            ("HOOKCTL_ENDPOINT_IN_FLIGHT", "1000"),
        ],
    );
    wait_until("1000 in flight", LONG, || {
        env.json_any(&["status"]).1["queue"]["in_flight"]
            .as_i64()
            .unwrap()
            >= 1000
    });
    let started = Instant::now();
    let code = serve.terminate(Duration::from_secs(60));
    assert_eq!(code, Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "drain took {:?}",
        started.elapsed()
    );
    let (_, st) = env.json_any(&["status"]);
    assert_eq!(st["queue"]["in_flight"], 0, "{st}");
    assert_eq!(st["engine"]["running"], false);

    let _again = Serve::start(&env);
    let want: HashSet<String> = ids.into_iter().collect();
    wait_until("every event at the sink", LONG, || {
        let seen: HashSet<String> = sink
            .requests()
            .iter()
            .map(|r| r["headers"]["webhook-id"].as_str().unwrap().to_string())
            .collect();
        want.is_subset(&seen)
    });
}

#[test]
fn status_is_healthy_then_degraded_by_a_dead_letter() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let _serve = Serve::start(&env);
    env.sub_add(&["--url", &sink.url("/ok"), "--all"]);
    env.ok(&["emit", "TaskCreate"]);
    sink.wait_count(1, LONG);
    let ok = env.run(&["status"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        text.contains("engine    running") && text.contains("healthy"),
        "{text}"
    );
    assert!(text.lines().count() <= 24, "more than one screen:\n{text}");

    let dead = Sink::start(&env, &["--status", "500"]);
    env.sub_add(&[
        "--url",
        &dead.url("/dead"),
        "--events",
        "NoteCreate",
        "--retry-schedule",
        "none",
    ]);
    env.ok(&["emit", "NoteCreate"]);
    wait_until("a dead letter", LONG, || {
        env.run(&["status"]).status.code() == Some(1)
    });
    let (code, v) = env.json_any(&["status"]);
    assert_eq!(code, Some(1));
    assert_eq!(v["healthy"], false);
    assert_eq!(v["queue"]["dead"], 1);
    let out = env.run(&["--db", "/nonexistent-dir/x.db", "status"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_input_gets_one_line_and_writes_nothing() {
    let env = Env::new();
    env.sub_add(&["--url", "http://127.0.0.1:9/x", "--all"]);
    env.ok(&["emit", "ContactCreate"]);
    let counts = |env: &Env| {
        (
            env.json(&["event", "list"]).as_array().unwrap().len(),
            env.json(&["sub", "list"]).as_array().unwrap().len(),
        )
    };
    let before = counts(&env);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["emit", "ContactCreat"], "did you mean ContactCreate"),
        (
            vec!["emit", "ContactCreate", "--data", "{\"id\": "],
            "not valid JSON",
        ),
        (
            vec!["emit", "ContactCreate", "--data", "[1,2]"],
            "JSON object",
        ),
        (
            vec!["sub", "add", "--url", "ftp://example.com/x", "--all"],
            "scheme 'ftp'",
        ),
        (
            vec!["sub", "add", "--url", "not a url", "--all"],
            "url: 'not a url' has spaces",
        ),
        (
            vec![
                "sub",
                "add",
                "--url",
                "http://127.0.0.1:9/",
                "--events",
                "Nope",
            ],
            "unknown event type",
        ),
        (
            vec![
                "sub",
                "add",
                "--url",
                "http://127.0.0.1:9/",
                "--all",
                "--retry-schedule",
                "5x",
            ],
            "retry_schedule: '5x'",
        ),
        (
            vec![
                "sub",
                "add",
                "--url",
                "http://127.0.0.1:9/",
                "--all",
                "--header",
                "no colon",
            ],
            "Name: value",
        ),
        (vec!["sub", "rm", "sub_"], "unfinished deliveries"),
        (vec!["event", "show", "evt_missing"], "no event"),
        (vec!["sub", "pause", "sub_nothing"], "no subscription"),
    ];
    for (args, want) in cases {
        let out = env.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} exit {:?}: {err}",
            out.status.code()
        );
        assert!(err.contains(want), "{args:?}: '{err}' lacks '{want}'");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert_eq!(counts(&env), before);

    let missing = env.dir.path().join("no/such/dir/x.db");
    let out = env.run(&["--db", path_str(&missing), "emit", "ContactCreate"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("does not exist"), "{err}");
    assert!(!env.dir.path().join("no").exists());

    // --force cancels instead, and says so.
    let out = env.json(&["sub", "rm", "sub_", "--force"]);
    assert_eq!(out["cancelled"], 1);
    let d = env.json(&["event", "list"]);
    assert_eq!(d[0]["deliveries"][0]["status"], "cancelled");
}

/// A bad line stops a stream where it stands: the lines before it are published and
/// acknowledged, nothing from it on is stored, and the error names the line to resume from.
#[test]
fn a_bad_ndjson_line_keeps_the_lines_before_it_and_names_where_to_resume() {
    let env = Env::new();
    env.sub_add(&["--url", "http://127.0.0.1:9/x", "--all"]);
    let (file, ids) = ndjson(&env, "in.ndjson", 1500, "s");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    // Past two full batches and into a third; a blank line counts as a line.
    lines[1100] = "";
    lines[1201] = "{\"type\": broken";
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();

    let out = env.run(&["emit", "--ndjson", path_str(&file)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    for want in [
        "line 1202: not JSON",
        "lines 1-1201 are published (1200 events",
        "resume from line 1202",
    ] {
        assert!(err.contains(want), "'{err}' lacks '{want}'");
    }
    let (_, status) = env.json_any(&["status"]);
    assert_eq!(status["queue"]["events"], 1200, "{status}");
    assert!(env.run(&["event", "show", &ids[1199]]).status.success());
    assert!(!env.run(&["event", "show", &ids[1202]]).status.success());

    let first = env.path("first.ndjson");
    std::fs::write(&first, "\n{\"type\": \"Nope\"}\n").unwrap();
    let out = env.run(&["emit", "--ndjson", path_str(&first)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("line 2:"), "{err}");
    assert!(err.contains("nothing before it was stored either"), "{err}");
    let (_, status) = env.json_any(&["status"]);
    assert_eq!(status["queue"]["events"], 1200, "{status}");
}

#[test]
fn secrets_never_appear_in_full() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    // The most talkative log level, so that anything the engine might log is on record.
    let serve = Serve::start_with(&env, &[("HOOKCTL_LOG", "debug")]);
    let token = "tok_9f8e7d6c5b4a39281706";
    let header = format!("Authorization: Bearer {token}");
    let created = env.json(&[
        "sub",
        "add",
        "--url",
        &sink.url("/x"),
        "--all",
        "--secret",
        SECRET,
        "--header",
        &header,
    ]);
    assert_eq!(
        created["secret"], SECRET,
        "the creating command shows it once"
    );
    let id = created["id"].as_str().unwrap().to_string();
    let ev = env.json(&["emit", "ContactCreate"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    sink.wait_count(1, LONG);
    assert_eq!(
        sink.requests()[0]["headers"]["authorization"],
        format!("Bearer {token}")
    );
    wait_until("the attempt on record", LONG, || {
        !attempts_of(&env, &ev).is_empty()
    });
    let rotated = env.json(&["sub", "rotate-secret", &id]);
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    let secret_body = &SECRET[6..];
    for args in [
        vec!["sub", "list"],
        vec!["--json", "sub", "list"],
        vec!["sub", "show", &id],
        vec!["--json", "sub", "show", &id],
        vec!["event", "show", &ev],
        vec!["--json", "event", "show", &ev],
        vec!["event", "list"],
        vec!["status"],
        vec!["--json", "status"],
    ] {
        let out = String::from_utf8(env.run(&args).stdout).unwrap();
        for secret in [secret_body, token, &new_secret[6..]] {
            assert!(!out.contains(secret), "{args:?} shows a secret:\n{out}");
        }
    }
    let shown = env.json(&["event", "show", &ev]);
    let sent = &shown["deliveries"][0]["attempts"][0]["request_headers"];
    assert!(
        sent["Authorization"]
            .as_str()
            .unwrap()
            .starts_with("Bearer tok_"),
        "{sent}"
    );
    assert!(sent["x-wl-signature"].is_string());
    let log = serve.log();
    serve.terminate(Duration::from_secs(30));
    for secret in [secret_body, token, &new_secret[6..]] {
        assert!(
            !log.contains(secret),
            "the engine's log shows a secret:\n{log}"
        );
    }
}

#[test]
fn closed_stdout_ends_quietly() {
    let env = Env::new();
    let lines: Vec<String> = (0..3000)
        .map(|i| serde_json::json!({"type": "TaskCreate", "id": format!("p{i}")}).to_string())
        .collect();
    let path = env.path("p.ndjson");
    std::fs::write(&path, lines.join("\n")).unwrap();
    env.ok(&["emit", "--ndjson", path_str(&path)]);
    let mut child = env
        .cmd()
        .args(["event", "list", "--limit", "3000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
}

#[test]
fn purge_counts_asks_and_deletes_only_what_it_said() {
    let env = Env::new();
    let dead = Sink::start(&env, &["--status", "500"]);
    let ok = Sink::start(&env, &[]);
    let _serve = Serve::start(&env);
    // Templates, so that each delivery keeps its body's bytes (bodies made from the event
    // alone are kept as a shape).
    let template = "{\"id\": \"{{event.id}}\"}";
    let d = env.sub_add(&[
        "--url",
        &dead.url("/d"),
        "--events",
        "NoteCreate",
        "--retry-schedule",
        "none",
        "--template-text",
        template,
    ]);
    env.sub_add(&[
        "--url",
        &ok.url("/ok"),
        "--events",
        "TaskCreate",
        "--template-text",
        template,
    ]);
    for _ in 0..3 {
        env.ok(&["emit", "NoteCreate"]);
    }
    env.ok(&["emit", "TaskCreate"]);
    wait_until("three dead letters", LONG, || {
        env.json(&["event", "list", "--status", "dead"])
            .as_array()
            .unwrap()
            .len()
            == 3
    });
    ok.wait_count(1, LONG);
    let dry = env.json(&[
        "event",
        "purge",
        "--status",
        "dead",
        "--sub",
        &d,
        "--dry-run",
    ]);
    assert_eq!(dry["deliveries"], 3);
    // Not a terminal and no --yes: refused, nothing deleted.
    let out = env.run(&["event", "purge", "--status", "dead"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert_eq!(env.json(&["event", "list"]).as_array().unwrap().len(), 4);
    let done = env.json(&["event", "purge", "--status", "dead", "--yes"]);
    assert_eq!(done["deliveries"], 3);
    assert_eq!(done["events"], 3);
    let left = env.json(&["event", "list"]);
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["type"], "TaskCreate");
    // The purged deliveries' bodies went with their events; the one left keeps its own.
    assert_eq!(env.stored_bodies(), (1, 1));
}

#[test]
fn retention_prunes_finished_events_and_keeps_waiting_work() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let held = env.sub_add(&["--url", &sink.url("/held"), "--events", "InvoicePaid"]);
    env.ok(&["sub", "pause", &held]);
    env.ok(&["emit", "ContactCreate", "--id", "no-subscriber"]);
    env.ok(&["emit", "InvoicePaid", "--id", "still-waiting"]);
    // Retention of zero days: everything finished is already too old.
    let _serve = Serve::start_with(&env, &[("HOOKCTL_RETENTION_DAYS", "0")]);
    wait_until("the finished event to be pruned", LONG, || {
        env.json(&["event", "list"]).as_array().unwrap().len() == 1
    });
    let left = env.json(&["event", "list"]);
    assert_eq!(left[0]["id"], "still-waiting");
    env.ok(&["sub", "resume", &held]);
    sink.wait_count(1, LONG);
}

#[test]
fn an_open_circuit_does_not_hold_deliveries_past_their_schedule() {
    let env = Env::new();
    let dead = Sink::start(&env, &["--status", "500"]);
    let _serve = Serve::start_with(
        &env,
        &[
            ("HOOKCTL_CIRCUIT_THRESHOLD", "2"),
            ("HOOKCTL_CIRCUIT_PROBE_INTERVAL", "1h"),
        ],
    );
    let sub = env.sub_add(&["--url", &dead.url("/d"), "--all", "--retry-schedule", "1s"]);
    for i in 0..5 {
        env.ok(&["emit", "TaskCreate", "--id", &format!("held-{i}")]);
    }
    wait_until("the circuit to open", LONG, || {
        env.json(&["sub", "show", &sub])["circuit"] == "open"
    });
    wait_until("every held delivery to go dead", LONG, || {
        env.json(&["event", "list", "--status", "dead"])
            .as_array()
            .unwrap()
            .len()
            == 5
    });
    let shown = env.json(&["event", "show", "held-4"]);
    let attempts = shown["deliveries"][0]["attempts"].as_array().unwrap();
    let last = attempts.last().unwrap();
    assert_eq!(last["error_class"], "circuit_open", "{shown}");
    assert!(
        last["error"].as_str().unwrap().contains("retry schedule"),
        "{last}"
    );
    let history = env.json(&["sub", "show", &sub])["history"].to_string();
    assert!(history.contains("expired held deliveries"), "{history}");
}
