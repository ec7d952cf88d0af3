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

/// The most requests a sink had open at once, from when they arrived: each is answered
/// `delay` after its arrival, so requests arriving within less than `delay` of one another
/// were open together.
fn most_at_once(arrivals: &[Instant], delay: Duration) -> usize {
    let window = delay - Duration::from_millis(15);
    let mut best = 0;
    for (i, a) in arrivals.iter().enumerate() {
        let open = arrivals[..=i]
            .iter()
            .filter(|b| a.duration_since(**b) < window)
            .count();
        best = best.max(open);
    }
    best
}

/// Acceptance: an in-flight limit of 2 holds across three workers, and a pause through one
/// worker's API stops delivery from all three within a second.
#[test]
fn limits_and_pauses_hold_for_the_whole_deployment() {
    let (_cluster, env) = pg::env();
    let delay = Duration::from_millis(100);
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
    let out = std::process::Command::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {token}"),
            &format!("http://{}/v2/webhooks/{sub}/pause", workers[1].addr),
        ])
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
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
        most_at_once(&times, delay)
    );
    assert_eq!(
        late, 0,
        "{late} requests arrived over a second after the pause"
    );
    assert!(
        most_at_once(&times, delay) <= 2,
        "more than 2 requests open at once"
    );
    assert!(by.len() >= 2, "only one worker delivered: {by:?}");
    let waiting = env.json(&["status"])["queue"]["pending"].as_i64().unwrap();
    assert!(waiting > 0, "the pause left nothing waiting");
    drop(workers);
}
