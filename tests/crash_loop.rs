//! Crash loop: `serve` killed with SIGKILL at seeded moments while it delivers to several
//! subscriptions, restarted each time, then let finish. Every (event, subscription) pair
//! must arrive at least once; duplicates are counted; the database must pass
//! `PRAGMA integrity_check`. The short run is part of `cargo test`; the long one:
//!     cargo test --release --test crash_loop -- --ignored --nocapture

mod common;
use common::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// xorshift64*: reproducible kill points from a seed, no dependency needed.
fn rng(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn integrity(db: &std::path::Path) -> String {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    c.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn crash_loop(events: usize, kills: usize, seed: u64) {
    let started = Instant::now();
    let env = Env::new();
    let sink = Sink::start(&env, &["--delay", "1ms"]);
    let subs = ["/s0", "/s1", "/s2"];
    for s in subs {
        env.sub_add(&["--url", &sink.url(s), "--all"]);
    }
    let (file, ids) = ndjson(&env, "events.ndjson", events, "crash");
    env.ok(&["emit", "--ndjson", path_str(&file)]);
    let total = events * subs.len();
    let mut next = rng(seed);
    let mut points: Vec<usize> = (0..kills)
        .map(|_| total / 10 + (next() as usize % (total * 8 / 10)))
        .collect();
    points.sort_unstable();
    let mut serve = Serve::start_with(&env, &[("HOOKCTL_ENDPOINT_IN_FLIGHT", "8")]);
    let mut killed_at = Vec::new();
    for p in &points {
        wait_until(
            &format!("{p} requests before a kill"),
            Duration::from_secs(300),
            || sink.count() >= *p,
        );
        killed_at.push(sink.count());
        serve.kill9();
        serve = Serve::start_with(&env, &[("HOOKCTL_ENDPOINT_IN_FLIGHT", "8")]);
    }
    let want: HashSet<(String, String)> = ids
        .iter()
        .flat_map(|id| subs.iter().map(move |s| (id.clone(), s.to_string())))
        .collect();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    wait_until(
        "every (event, subscription) pair at the sink",
        Duration::from_secs(600),
        || {
            seen = sink
                .requests()
                .iter()
                .map(|r| {
                    (
                        r["headers"]["webhook-id"].as_str().unwrap().to_string(),
                        r["path"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            want.is_subset(&seen)
        },
    );
    let received = sink.count();
    serve.terminate(Duration::from_secs(60));
    let missing = want.difference(&seen).count();
    let check = integrity(&env.db);
    eprintln!(
        "crash loop (seed {seed}): {events} events × {} subscriptions = {total} pairs, {kills} kills at {killed_at:?}; \
         received {received}, duplicates {}, missing {missing}, integrity_check {check}, {:.1} s",
        subs.len(),
        received - total,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(missing, 0);
    assert_eq!(check, "ok");
}

#[test]
fn short_crash_loop() {
    crash_loop(2000, 3, 0x5eed_0001);
}

#[test]
#[ignore = "long: 20,000 events and 10 kills; run with --ignored"]
fn long_crash_loop() {
    crash_loop(20_000, 10, 0x5eed_0002);
}
