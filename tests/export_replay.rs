//! Evidence out and back in: `event export` and `redeliver --from`.

mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn deliveries(env: &Env) -> i64 {
    env.count_sql("SELECT count(*) FROM deliveries")
}

/// Five events dead at a failing endpoint, delivered at a healthy one.
fn outage(env: &Env) -> (Sink, String, Serve, Vec<String>) {
    let failing = Sink::start(env, &["--status", "500"]);
    let healthy = Sink::start(env, &[]);
    let serve = Serve::start(env);
    let f = env.sub_add(&[
        "--url",
        &failing.url("/f"),
        "--events",
        "ContactCreate",
        "--retry-schedule",
        "",
        "--header",
        "Authorization: Bearer sk_live_very_secret_value",
    ]);
    env.sub_add(&["--url", &healthy.url("/h"), "--all"]);
    let ids: Vec<String> = (0..5)
        .map(|_| {
            env.json(&["emit", "ContactCreate"])["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    wait_until("five dead letters", LONG, || {
        env.json(&["event", "list", "--sub", &f, "--status", "dead"])
            .as_array()
            .unwrap()
            .len()
            == 5
    });
    healthy.wait_count(5, LONG);
    (failing, f, serve, ids)
}

#[test]
fn export_then_replay_sends_exactly_the_listed_pairs_once() {
    let env = Env::new();
    let (failing, f, _serve, ids) = outage(&env);
    let out = env.run(&["event", "export", "--status", "dead"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("sk_live_very_secret_value"), "{text}");
    let exported = lines(&text);
    assert_eq!(exported.len(), 5);
    for l in &exported {
        assert_eq!(l["subscription_id"], f.as_str());
        assert_eq!(l["status"], "dead");
        assert!(ids.iter().any(|i| l["event"]["id"] == i.as_str()), "{l}");
        assert_eq!(l["event"]["type"], "ContactCreate");
        let a = &l["attempts"][0];
        assert_eq!(a["status_code"], 500, "{l}");
        assert!(a["latency_ms"].is_u64());
        assert_eq!(a["error_class"], "status");
    }
    // Filters: the healthy subscription's deliveries are not dead; a window in the past
    // holds nothing.
    let all = lines(&env.ok(&["event", "export"]));
    assert_eq!(all.len(), 10);
    assert!(env.ok(&["event", "export", "--until", "1h"]).is_empty());
    let file = env.path("dead.jsonl");
    std::fs::write(&file, &text).unwrap();

    let before = deliveries(&env);
    let dry = env.json(&["redeliver", "--from", path_str(&file), "--dry-run"]);
    assert_eq!(
        (dry["listed"].as_u64(), dry["count"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(deliveries(&env), before, "a dry run stores nothing");

    // The endpoint is back: each pair arrives once.
    let addr = failing.addr.clone();
    failing.stop();
    let back = Sink::start_on(&env, &addr, &[]);
    let done = env.json(&["redeliver", "--from", path_str(&file)]);
    assert_eq!(done["count"], 5);
    wait_until("the five redeliveries delivered", LONG, || {
        env.json(&["event", "list", "--sub", &f, "--status", "delivered"])
            .as_array()
            .unwrap()
            .len()
            == 5
    });
    let got: Vec<String> = back
        .requests()
        .iter()
        .map(|r| r["headers"]["webhook-id"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = got.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), got.len(), "a pair arrived twice: {got:?}");
    let mut want = ids.clone();
    want.sort();
    assert_eq!(sorted, want);

    // Again: every pair was delivered since, so nothing is sent.
    let again = env.json(&["redeliver", "--from", path_str(&file)]);
    assert_eq!(
        (again["count"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(5))
    );
    let audit = env.json(&["audit"]);
    let from: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["filter"].as_str().is_some_and(|f| f.starts_with("from=")))
        .collect();
    assert_eq!(from.len(), 2, "{audit}");
    assert!(from.iter().any(|e| e["count"] == 5));
}

#[test]
fn a_bad_line_is_named_and_nothing_is_redelivered() {
    let env = Env::new();
    let (_failing, f, _serve, _) = outage(&env);
    let text = env.ok(&["event", "export", "--status", "dead", "--sub", &f]);
    let good: Vec<&str> = text.lines().collect();
    let before = deliveries(&env);
    let cases = [
        (format!("{}\n{}\nnot json\n", good[0], good[1]), "line 3"),
        (
            format!("{}\n{}", good[0], &good[1][..good[1].len() / 2]),
            "line 2",
        ),
        (
            format!("{}\n{{\"subscription_id\": \"x\"}}\n", good[0]),
            "line 2",
        ),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        let file = env.path(&format!("bad{i}.jsonl"));
        std::fs::write(&file, body).unwrap();
        let out = env.run(&["redeliver", "--from", path_str(&file)]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains(want) && err.contains("nothing was redelivered"),
            "{err}"
        );
    }
    assert_eq!(deliveries(&env), before);
    let out = env.run(&["redeliver", "--from", "/nonexistent/x.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

/// Acceptance figure: a million dead deliveries stream out in constant memory.
/// `cargo test --release --test export_replay -- --ignored --nocapture`
#[test]
#[ignore]
fn a_million_dead_deliveries_export_in_constant_memory() {
    let env = Env::sqlite_only();
    env.sub_add(&["--url", "http://127.0.0.1:9/x", "--all"]);
    let file = env.path("1m.ndjson");
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for i in 0..1_000_000 {
            writeln!(
                w,
                "{{\"type\":\"ContactCreate\",\"data\":{{\"n\":{i},\"email\":\"c{i}@example.com\"}}}}"
            )
            .unwrap();
        }
    }
    env.ok(&["emit", "--ndjson", path_str(&file)]);
    let c = rusqlite::Connection::open(&env.db).unwrap();
    c.execute_batch(
        "INSERT INTO attempts (delivery_id, n, at, status_code, error_class, error, latency_ms) \
         SELECT id, 1, updated_at, 500, 'status', 'HTTP 500', 3 FROM deliveries; \
         UPDATE deliveries SET status = 'dead', attempts = 1, next_at = NULL;",
    )
    .unwrap();
    drop(c);
    let out_path = env.path("dead.jsonl");
    let started = std::time::Instant::now();
    let status = env
        .cmd()
        .args(["event", "export", "--status", "dead"])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let took = started.elapsed();
    // SAFETY: getrusage fills the struct it is given.
    let peak_kb = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u.ru_maxrss
    };
    let n = std::io::BufRead::lines(std::io::BufReader::new(
        std::fs::File::open(&out_path).unwrap(),
    ))
    .count();
    println!("exported {n} deliveries in {took:.1?}, peak RSS of the largest child {peak_kb} KB");
    assert_eq!(n, 1_000_000);
    assert!(peak_kb <= 50 * 1024, "peak RSS {peak_kb} KB");
    let dry = env.json(&["redeliver", "--from", path_str(&out_path), "--dry-run"]);
    assert_eq!(dry["count"], 1_000_000);
}
