//! Several `hookctl serve` workers on one PostgreSQL database, driven as users run them:
//! real processes, a real server on 127.0.0.1 (a throw-away cluster, or the one
//! `TEST_POSTGRES_URL` names), a sink that sees every request.
#![cfg(feature = "postgres")]

mod common;

use common::*;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(180);

/// A worker whose requests leave from its own loopback address, so the sink can tell
/// who sent what.
fn worker(env: &Env, n: u8, extra: &[(&str, &str)]) -> Serve {
    let source = format!("127.0.0.{}", n + 2);
    let mut envs = vec![("HOOKCTL_OUTBOUND_BIND_ADDRESS", source.as_str())];
    envs.extend_from_slice(extra);
    Serve::start_with(env, &envs)
}

/// (event id, path) of each request, with how many times each came and from where.
struct Arrivals {
    pairs: HashMap<(String, String), usize>,
    by_source: HashMap<String, usize>,
}

fn arrivals(sink: &Sink) -> Arrivals {
    let mut pairs = HashMap::new();
    let mut by_source = HashMap::new();
    for r in sink.requests() {
        let id = r["headers"]["webhook-id"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let path = r["path"].as_str().unwrap_or("").to_string();
        *pairs.entry((id, path)).or_default() += 1;
        *by_source
            .entry(r["remote"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    Arrivals { pairs, by_source }
}

fn duplicates(a: &Arrivals) -> usize {
    a.pairs.values().map(|n| n - 1).sum()
}

/// A POST with an API token through curl, which must succeed.
fn post(url: &str, token: &str, json: Option<&str>) {
    let auth = format!("Authorization: Bearer {token}");
    let mut args = vec!["-sf", "-X", "POST", "-H", auth.as_str()];
    if let Some(body) = json {
        args.extend(["-H", "content-type: application/json", "--data", body]);
    }
    args.push(url);
    let out = std::process::Command::new("curl")
        .args(&args)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "{url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every (event, subscription) pair that must arrive.
fn wanted(ids: &[String]) -> HashSet<(String, String)> {
    ids.iter()
        .flat_map(|id| {
            [
                (id.clone(), "/a".to_string()),
                (id.clone(), "/b".to_string()),
            ]
        })
        .collect()
}

fn missing(a: &Arrivals, want: &HashSet<(String, String)>) -> usize {
    want.iter().filter(|p| !a.pairs.contains_key(*p)).count()
}

/// Acceptance: three workers deliver 20,000 events × 2 subscriptions, every pair arrives,
/// duplicates are counted (none without crashes), and each worker sent at least 20 %.
#[test]
fn three_workers_share_forty_thousand_deliveries() {
    let (_cluster, env) = pg::env();
    let sink = Sink::start(&env, &[]);
    env.sub_add(&["--url", &sink.url("/a"), "--all"]);
    env.sub_add(&["--url", &sink.url("/b"), "--all"]);
    let workers: Vec<Serve> = (0..3).map(|n| worker(&env, n, &[])).collect();
    let (file, ids) = ndjson(&env, "20k.ndjson", 20_000, "w");
    let started = Instant::now();
    env.ok(&["emit", "--ndjson", path_str(&file)]);
    let want = wanted(&ids);
    wait_until("every pair at the sink", LONG, || {
        missing(&arrivals(&sink), &want) == 0
    });
    let took = started.elapsed();
    let a = arrivals(&sink);
    let total: usize = a.by_source.values().sum();
    println!(
        "40,000 deliveries by 3 workers in {took:?}; duplicates {}; by worker {:?}",
        duplicates(&a),
        a.by_source
    );
    assert_eq!(duplicates(&a), 0, "duplicates without a crash");
    for n in 0..3u8 {
        let sent = a
            .by_source
            .get(&format!("127.0.0.{}", n + 2))
            .copied()
            .unwrap_or(0);
        assert!(
            sent * 5 >= total,
            "worker {n} sent {sent} of {total}: {:?}",
            a.by_source
        );
    }
    let st = env.json(&["status"]);
    assert_eq!(
        st["engine"]["workers"].as_array().map(Vec::len),
        Some(3),
        "{st}"
    );
    assert_eq!(st["queue"]["delivered"], 40_000, "{st}");
    drop(workers);
}

/// Acceptance: a worker killed with SIGKILL mid-run, three times and restarted each time:
/// its leased deliveries are delivered by the others once the lease expires.
#[test]
fn a_killed_worker_leaves_nothing_behind() {
    let (_cluster, env) = pg::env();
    // Each request takes a while, so a worker always has some on the wire.
    let sink = Sink::start(&env, &["--delay", "20ms"]);
    env.sub_add(&["--url", &sink.url("/a"), "--all"]);
    env.sub_add(&["--url", &sink.url("/b"), "--all"]);
    let lease = [("HOOKCTL_WORKER_LEASE", "2s")];
    let mut workers: Vec<Serve> = (0..3).map(|n| worker(&env, n, &lease)).collect();
    let (file, ids) = ndjson(&env, "6k.ndjson", 6_000, "k");
    env.ok(&["emit", "--ndjson", path_str(&file)]);
    let want = wanted(&ids);
    for round in 1..=3usize {
        let victim = round % 3;
        sink.wait_count(round * 3_000, LONG);
        let (_, before) = env.json_any(&["status"]);
        let in_flight = before["queue"]["in_flight"].as_i64().unwrap_or(0);
        workers.remove(victim).kill9();
        println!("round {round}: killed worker {victim} with {in_flight} deliveries leased in all");
        workers.insert(victim, worker(&env, victim as u8, &lease));
    }
    wait_until("every pair at the sink after three kills", LONG, || {
        missing(&arrivals(&sink), &want) == 0
    });
    wait_until("nothing left leased or waiting", LONG, || {
        let (_, st) = env.json_any(&["status"]);
        st["queue"]["in_flight"] == 0 && st["queue"]["pending"] == 0 && st["queue"]["retrying"] == 0
    });
    let a = arrivals(&sink);
    println!(
        "12,000 deliveries, 3 kills: 0 missing, {} duplicates (attempts in flight when a worker died)",
        duplicates(&a)
    );
}

/// The most requests the sink held open at once.
fn most_at_once(sink: &Sink) -> u64 {
    sink.requests()
        .iter()
        .filter_map(|r| r["open"].as_u64())
        .max()
        .unwrap_or(0)
}

/// Acceptance: an in-flight limit of 2 holds across three workers, and a pause through one
/// worker's API stops delivery from all three within a second.
#[test]
fn limits_and_pauses_hold_for_the_whole_deployment() {
    let (_cluster, env) = pg::env();
    let sink = Sink::start(&env, &["--delay", "100ms"]);
    let sub = env.sub_add(&["--url", &sink.url("/a"), "--all"]);
    let limit = [("HOOKCTL_ENDPOINT_IN_FLIGHT", "2")];
    let workers: Vec<Serve> = (0..3).map(|n| worker(&env, n, &limit)).collect();
    let (file, _) = ndjson(&env, "400.ndjson", 400, "p");
    env.ok(&["emit", "--ndjson", path_str(&file)]);
    sink.wait_count(60, LONG);
    let token = env.json(&["token", "create", "--scopes", "webhooks:write"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let paused_at = Instant::now();
    post(
        &format!("http://{}/v2/webhooks/{sub}/pause", workers[1].addr),
        &token,
        None,
    );
    // Nothing arrives a second after the pause; watched for a second more.
    let quiet_from = paused_at + Duration::from_secs(1);
    wait_until(
        "two seconds after the pause",
        Duration::from_secs(10),
        || paused_at.elapsed() >= Duration::from_secs(2),
    );
    let times = sink.arrivals();
    let late = times.iter().filter(|t| **t > quiet_from).count();
    let by: HashMap<String, usize> = arrivals(&sink).by_source;
    println!(
        "{} requests before the pause, from {:?}; most open at once {}",
        times.len(),
        by,
        most_at_once(&sink)
    );
    assert_eq!(
        late, 0,
        "{late} requests arrived over a second after the pause"
    );
    assert!(
        most_at_once(&sink) <= 2,
        "more than 2 requests open at once"
    );
    assert!(by.len() >= 2, "only one worker delivered: {by:?}");
    let waiting = env.json(&["status"])["queue"]["pending"].as_i64().unwrap();
    assert!(waiting > 0, "the pause left nothing waiting");
    drop(workers);
}

/// Each live worker's part of an endpoint's limit, as `status` shows them.
fn shares(env: &Env) -> Vec<u64> {
    let (_, st) = env.json_any(&["status"]);
    let workers = st["engine"]["workers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    workers
        .iter()
        .map(|w| w["endpoint_share"].as_u64().unwrap_or(0))
        .collect()
}

/// Workers joining a running deployment and leaving it: each live worker gets its part of
/// the endpoint's limit (and leases ahead within it), and the limit holds for the whole
/// deployment at every step.
#[test]
fn workers_joining_and_leaving_split_the_limit_without_exceeding_it() {
    let (_cluster, env) = pg::env();
    let sink = Sink::start(&env, &["--delay", "100ms"]);
    env.sub_add(&["--url", &sink.url("/a"), "--all"]);
    let settings = [
        ("HOOKCTL_ENDPOINT_IN_FLIGHT", "8"),
        ("HOOKCTL_WORKER_LEASE", "2s"),
    ];
    let (file, ids) = ndjson(&env, "900.ndjson", 900, "j");
    env.ok(&["emit", "--ndjson", path_str(&file)]);
    let mut workers = vec![worker(&env, 0, &settings)];
    sink.wait_count(80, LONG);
    workers.push(worker(&env, 1, &settings));
    // Two live workers: four each.
    wait_until("two workers bound to 4 each", LONG, || {
        shares(&env) == [4, 4]
    });
    let halves = sink.count();
    workers.push(worker(&env, 2, &settings));
    wait_until("three workers bound to 2 each", LONG, || {
        shares(&env) == [2, 2, 2]
    });
    let thirds = sink.count();
    // The first leaves as a user stops it; the other two take its part.
    assert_eq!(
        workers.remove(0).terminate(Duration::from_secs(30)),
        Some(0)
    );
    wait_until("two workers bound to 4 each again", LONG, || {
        shares(&env) == [4, 4]
    });
    let want: HashSet<(String, String)> = ids
        .iter()
        .map(|id| (id.clone(), "/a".to_string()))
        .collect();
    wait_until("every event at the sink", LONG, || {
        missing(&arrivals(&sink), &want) == 0
    });
    let a = arrivals(&sink);
    println!(
        "900 deliveries: {halves} before the second worker's part, {thirds} before the third's; \
         by worker {:?}; most open at once {}; duplicates {}",
        a.by_source,
        most_at_once(&sink),
        duplicates(&a)
    );
    assert!(
        most_at_once(&sink) <= 8,
        "more than 8 requests open at once"
    );
    assert_eq!(duplicates(&a), 0, "duplicates without a crash");
    for n in 0..3u8 {
        assert!(
            a.by_source.contains_key(&format!("127.0.0.{}", n + 2)),
            "worker {n} sent nothing: {:?}",
            a.by_source
        );
    }
    drop(workers);
}

/// An open circuit is probed once per interval by the whole deployment, not by each
/// worker.
#[test]
fn an_open_circuit_is_probed_once_per_interval_by_the_deployment() {
    let (_cluster, env) = pg::env();
    let failing = Sink::start(&env, &["--status", "503"]);
    let settings = [
        ("HOOKCTL_CIRCUIT_THRESHOLD", "5"),
        ("HOOKCTL_CIRCUIT_PROBE_INTERVAL", "1s"),
    ];
    let workers: Vec<Serve> = (0..3).map(|n| worker(&env, n, &settings)).collect();
    let f = env.sub_add(&[
        "--url",
        &failing.url("/f"),
        "--all",
        "--retry-schedule",
        "1s,1s,5m",
    ]);
    let (file, _) = ndjson(&env, "20.ndjson", 20, "c");
    env.ok(&["emit", "--ndjson", path_str(&file)]);
    wait_until("the circuit to open", LONG, || {
        env.json(&["sub", "show", &f])["circuit"] == "open"
    });
    let opened_at = failing.count();
    // Plenty due, so that every worker has something to probe with.
    let (more, _) = ndjson(&env, "60.ndjson", 60, "d");
    env.ok(&["emit", "--ndjson", path_str(&more)]);
    wait_until("six requests after the circuit opened", LONG, || {
        failing.count() >= opened_at + 6
    });
    // The last four are probes: one a second among three workers spans three seconds.
    let times = failing.arrivals();
    let last = &times[times.len() - 4..];
    let span = last[3] - last[0];
    let by = arrivals(&failing).by_source;
    let after: Vec<String> = failing.requests()[opened_at..]
        .iter()
        .map(|r| r["remote"].as_str().unwrap_or("").to_string())
        .collect();
    println!("4 probes over {span:?}, by worker {by:?}; after opening from {after:?}");
    assert!(
        span >= Duration::from_millis(2_400),
        "4 probes within {span:?}: each worker probes on its own"
    );
    drop(workers);
}

/// Acceptance: a console attached to a deployment of two workers shows what is published
/// through either worker's API within a second, and its `p` and `r` act on every worker.
#[test]
fn a_console_attached_to_the_deployment_sees_and_acts_on_every_worker() {
    let (_cluster, env) = pg::env();
    let sink = Sink::start(&env, &[]);
    let sub = env.sub_add(&["--url", &sink.url("/a"), "--all", "--name", "shared"]);
    let workers: Vec<Serve> = (0..2).map(|n| worker(&env, n, &[])).collect();
    let token = env.json(&["token", "create", "--scopes", "events:write"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let publish_via = |w: &Serve, id: &str| {
        let body = format!("{{\"type\":\"InvoicePaid\",\"id\":\"{id}\"}}");
        post(&format!("http://{}/v2/events", w.addr), &token, Some(&body));
    };
    let t = tmux::Tmux::new(&env);
    t.start(&env, "", &[], false);
    // The header counts the deployment's workers.
    t.wait_screen("2 workers", Duration::from_secs(30));
    t.keys(&["2"]);
    t.wait_screen("following", Duration::from_secs(10));
    for (i, w) in workers.iter().enumerate() {
        let id = format!("via-worker-{i}");
        publish_via(w, &id);
        let published = Instant::now();
        t.wait_screen(&id, Duration::from_secs(10));
        let took = published.elapsed();
        eprintln!("{id} on screen {took:?} after its publish was answered");
        assert!(took < Duration::from_secs(1), "{id} took {took:?}");
    }
    sink.wait_count(2, LONG);

    // `p` on the subscription pauses it for both workers.
    t.keys(&["1"]);
    t.wait_screen("shared", Duration::from_secs(10));
    t.keys(&["p"]);
    t.wait_screen("shared paused", LONG);
    let paused_at = Instant::now();
    for (i, w) in workers.iter().enumerate() {
        publish_via(w, &format!("held-{i}"));
    }
    wait_until(
        "two seconds after the pause",
        Duration::from_secs(10),
        || paused_at.elapsed() >= Duration::from_secs(2),
    );
    assert_eq!(sink.count(), 2, "a worker delivered to a paused endpoint");
    t.keys(&["p"]);
    t.wait_screen("shared resumed", LONG);
    sink.wait_count(4, LONG);

    // `r` on an event in the stream sends it again, through whichever worker claims it.
    t.keys(&["2"]);
    t.wait_screen("held-1", Duration::from_secs(10));
    t.keys(&["r"]);
    t.wait_screen("redeliver ", LONG);
    let screen = t.screen();
    let event = screen
        .split("redeliver ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .trim_end_matches('?')
        .to_string();
    t.keys(&["y"]);
    sink.wait_count(5, LONG);
    let again = sink
        .requests()
        .iter()
        .filter(|r| r["headers"]["webhook-id"].as_str() == Some(event.as_str()))
        .count();
    assert_eq!(again, 2, "{event} was not sent again: {screen}");
    let st = env.json(&["status"]);
    assert_eq!(st["subscriptions"][0]["id"], sub.as_str(), "{st}");
    drop(workers);
}

/// Acceptance: a server that cannot be reached, a wrong password and a schema newer than
/// the binary each give one line and a non-zero exit, the password never shown.
#[test]
fn bad_database_urls_get_one_line() {
    let (_cluster, env) = pg::env();
    env.ok(&["status"]);
    let url = env.db.to_string_lossy().to_string();
    let one_line = |db: &str, want: &str| {
        let out = env.run(&["--db", db, "status"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{db}: {err}");
        assert!(err.contains(want), "{db}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!err.contains("nope") && !err.contains(":hookctl@"), "{err}");
    };
    one_line(
        &url.replacen("hookctl:hookctl@", "hookctl:nope@", 1),
        "wrong password",
    );
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let parsed = url::Url::parse(&url).unwrap();
    let mut elsewhere = parsed.clone();
    elsewhere.set_port(Some(free)).unwrap();
    one_line(elsewhere.as_str(), "cannot reach PostgreSQL at 127.0.0.1");
    pg_query_one(
        &url,
        "WITH u AS (UPDATE schema_version SET version = 99 RETURNING 1) SELECT count(*) FROM u",
    );
    one_line(&url, "newer than this hookctl knows");
}

/// Acceptance: a worker whose connections are cut mid-run reconnects and goes on; every
/// acknowledged publish is stored once and delivered once.
#[test]
fn a_worker_that_loses_its_connections_reconnects_and_resumes() {
    let (_cluster, env) = pg::env();
    let sink = Sink::start(&env, &["--delay", "5ms"]);
    env.sub_add(&["--url", &sink.url("/a"), "--all"]);
    env.sub_add(&["--url", &sink.url("/b"), "--all"]);
    let serve = worker(&env, 0, &[]);
    let (file, mut ids) = ndjson(&env, "first.ndjson", 2_000, "r1");
    env.ok(&["emit", "--ndjson", path_str(&file)]);
    sink.wait_count(500, LONG);
    let url = env.db.to_string_lossy().to_string();
    let cut = pg_query_one(
        &url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'hookctl' AND datname = current_database() \
           AND pid <> pg_backend_pid()",
    );
    assert!(cut > 0, "no connection of the worker's to cut");
    // Published after the cut, through the same worker's pool.
    let (file, more) = ndjson(&env, "second.ndjson", 1_000, "r2");
    env.ok(&["emit", "--ndjson", path_str(&file)]);
    ids.extend(more);
    let want = wanted(&ids);
    wait_until("every pair after the cut", LONG, || {
        missing(&arrivals(&sink), &want) == 0
    });
    wait_until("everything recorded delivered", LONG, || {
        env.json(&["status"])["queue"]["delivered"] == 6_000
    });
    let a = arrivals(&sink);
    println!(
        "{cut} connections cut: 6,000 delivered, {} duplicates",
        duplicates(&a)
    );
    assert_eq!(duplicates(&a), 0);
    assert_eq!(
        env.json(&["status"])["queue"]["events"],
        3_000,
        "acknowledged events stored once"
    );
    drop(serve);
}
