//! The PostgreSQL backend against a real, throw-away cluster on 127.0.0.1
//! (`scripts/pg-cluster.sh`; the server from Debian's postgresql package).
#![cfg(feature = "postgres")]

mod common;

use common::pg::Cluster;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Claims' limits for tests that lease directly: wide enough not to be what is tested.
const LIMITS: hookctl::store::postgres::work::Limits = hookctl::store::postgres::work::Limits {
    slots: 1_000,
    lease_ms: 10_000,
    probe_ms: 1_000,
};

/// `n` ContactCreate events, e0 to e(n-1).
fn contacts(n: usize) -> Vec<hookctl::store::NewEvent> {
    (0..n)
        .map(|i| hookctl::store::NewEvent {
            id: format!("e{i}"),
            event_type: "ContactCreate".into(),
            location_id: None,
            timestamp: 0,
            data: serde_json::json!({}),
            received_at: None,
        })
        .collect()
}

#[test]
fn a_fresh_database_gets_the_schema_and_bad_targets_get_one_line() {
    use hookctl::store::postgres;
    let c = Cluster::start();
    rt().block_on(async {
        let pool = postgres::connect(&c.url, 4).await.expect("connect");
        let v: i64 = sqlx::query_scalar("SELECT version FROM schema_version")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(v, postgres::SCHEMA_VERSION);
        // Opening again applies nothing twice.
        postgres::connect(&c.url, 4).await.expect("reconnect");

        let wrong = c.url.replace("hookctl:hookctl@", "hookctl:nope@");
        let e = postgres::connect(&wrong, 2).await.unwrap_err().to_string();
        assert!(e.contains("refused user 'hookctl'"), "{e}");
        assert!(!e.contains("nope"), "the password is not shown: {e}");

        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let nobody = c
            .url
            .replace(&format!(":{}/", c.port), &format!(":{free}/"));
        let e = postgres::connect(&nobody, 2).await.unwrap_err().to_string();
        assert!(
            e.starts_with("cannot reach PostgreSQL at 127.0.0.1:"),
            "{e}"
        );

        let missing = format!("{}/nosuch", c.url.rsplit_once('/').unwrap().0);
        let e = postgres::connect(&missing, 2)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("no database 'nosuch'"), "{e}");

        sqlx::query("UPDATE schema_version SET version = 99")
            .execute(&pool)
            .await
            .unwrap();
        let e = postgres::connect(&c.url, 2).await.unwrap_err().to_string();
        assert!(
            e.contains("schema 99, newer than this hookctl knows"),
            "{e}"
        );
        assert!(!e.contains(":hookctl@"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    });
}

/// Publishes fan out once per fresh id; claims from many tasks at once never lease the
/// same delivery twice, and together lease every due one.
#[test]
fn publishes_fan_out_and_parallel_claims_are_disjoint() {
    use hookctl::store::{NewEvent, postgres};
    let c = Cluster::start();
    rt().block_on(async {
        let pool = postgres::connect(&c.url, 8).await.expect("connect");
        for (id, events) in [
            ("sub_all", None),
            ("sub_contacts", Some("[\"ContactCreate\"]")),
        ] {
            sqlx::query(
                "INSERT INTO subscriptions (id, name, url, events, secret, retry_schedule, \
                   timeout_ms, state, created_at, updated_at) \
                 VALUES ($1, $1, 'http://127.0.0.1:9/x', $2, 's', '[]', 1000, 'active', 0, 0)",
            )
            .bind(id)
            .bind(events)
            .execute(&pool)
            .await
            .unwrap();
        }
        let event = |id: String, t: &str| NewEvent {
            id,
            event_type: t.into(),
            location_id: None,
            timestamp: 0,
            data: serde_json::json!({"n": 1}),
            received_at: None,
        };
        let mut batch: Vec<NewEvent> = (0..500)
            .map(|i| {
                event(
                    format!("e{i}"),
                    if i % 2 == 0 {
                        "ContactCreate"
                    } else {
                        "InvoicePaid"
                    },
                )
            })
            .collect();
        batch.push(event("e0".into(), "ContactCreate"));
        let done = postgres::work::publish(&pool, &batch).await.unwrap();
        assert_eq!(done.iter().filter(|p| p.duplicate).count(), 1);
        assert_eq!(done.iter().map(|p| p.deliveries).sum::<usize>(), 750);
        let again = postgres::work::publish(&pool, &batch[..10]).await.unwrap();
        assert!(again.iter().all(|p| p.duplicate && p.deliveries == 0));

        let now = hookctl::model::now_ms();
        let claims = (0..6).map(|w| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let wants = vec![
                        ("sub_all".to_string(), 16),
                        ("sub_contacts".to_string(), 16),
                    ];
                    let got = postgres::work::claim(
                        &pool,
                        &wants,
                        (now, now + 60_000),
                        &format!("w{w}"),
                        &LIMITS,
                        0,
                    )
                    .await
                    .unwrap()
                    .0;
                    if got.is_empty() {
                        break mine;
                    }
                    mine.extend(got.into_iter().map(|l| l.delivery_id));
                }
            })
        });
        let mut all = Vec::new();
        for h in claims {
            all.extend(h.await.unwrap());
        }
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!((n, all.len()), (750, 750), "a delivery was leased twice");
    });
}

/// Outcomes recorded: the attempts, the delivery's state, a template's bytes kept once,
/// the counters, and the circuit opened at the threshold as `crate::health` says.
#[test]
fn outcomes_record_attempts_bodies_counters_and_health() {
    use hookctl::model::{Attempt, DeliveryStatus, ErrorClass};
    use hookctl::store::{Outcome, SentBody, postgres};
    let c = Cluster::start();
    rt().block_on(async {
        let pool = postgres::connect(&c.url, 4).await.expect("connect");
        sqlx::query(
            "INSERT INTO subscriptions (id, name, url, secret, retry_schedule, timeout_ms, \
               state, created_at, updated_at) \
             VALUES ('sub_a', 'a', 'http://127.0.0.1:9/x', 's', '[1000]', 1000, 'active', 0, 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO subscriptions (id, name, url, events, secret, retry_schedule, timeout_ms, \
               state, created_at, updated_at) \
             VALUES ('sub_ops', 'ops', 'http://127.0.0.1:9/ops', \
               '[\"hookctl.circuit.opened\", \"hookctl.delivery.dead_lettered\"]', 's', '[]', \
               1000, 'active', 0, 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        postgres::work::publish(&pool, &contacts(4)).await.unwrap();
        let now = hookctl::model::now_ms();
        let leased = postgres::work::claim(&pool, &[("sub_a".into(), 10)], (now, now + 60_000), "w", &LIMITS, 0)
            .await
            .unwrap()
            .0;
        assert_eq!(leased.len(), 4);
        let outcome = |l: &postgres::work::Leased, ok: bool, last: bool| Outcome {
            delivery_id: l.delivery_id,
            subscription_id: l.subscription_id.clone(),
            probe: false,
            probes: 0,
            gone: false,
            attempt: Attempt {
                n: 1,
                at: now,
                status_code: Some(if ok { 200 } else { 500 }),
                error_class: (!ok).then_some(ErrorClass::Status),
                error: (!ok).then(|| "HTTP 500".to_string()),
                latency_ms: 7,
                request_headers: vec![("x-wl-attempt".into(), "1".into())],
                response_headers: vec![],
                response_body: None,
            },
            status: if ok { DeliveryStatus::Delivered } else if last { DeliveryStatus::Dead } else { DeliveryStatus::Retrying },
            next_at: (!ok && !last).then_some(now + 1000),
            body: Some(SentBody::Bytes(b"{\"same\":1}".to_vec())),
            kept_headers: None,
        };
        // One success, then three failures in a row: threshold 3 opens the circuit.
        let batch: Vec<Outcome> = leased
            .iter()
            .enumerate()
            .map(|(i, l)| outcome(l, i == 0, i == 3))
            .collect();
        let news = postgres::record::record(&pool, &batch, 3).await.unwrap();
        assert!(
            matches!(news.as_slice(), [(s, hookctl::ops::News::CircuitOpened { failures: 3, .. })] if s == "sub_a"),
            "{news:?}"
        );
        let (failures, circuit): (i64, String) = sqlx::query_as(
            "SELECT consecutive_failures, circuit FROM subscriptions WHERE id = 'sub_a'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!((failures, circuit.as_str()), (3, "open"));
        let statuses: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, count(*) FROM deliveries WHERE subscription_id = 'sub_a' \
             GROUP BY 1 ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(
            statuses,
            vec![("dead".into(), 1), ("delivered".into(), 1), ("retrying".into(), 2)]
        );
        // The circuit's opening and the dead letter, told to the ops subscription in the
        // record's own transaction.
        let told: Vec<String> = sqlx::query_scalar(
            "SELECT e.type FROM events e JOIN deliveries d ON d.event_seq = e.seq \
             WHERE d.subscription_id = 'sub_ops' ORDER BY e.seq",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(told, ["hookctl.circuit.opened", "hookctl.delivery.dead_lettered"]);
        let bodies: i64 = sqlx::query_scalar("SELECT count(*) FROM bodies")
            .fetch_one(&pool)
            .await
            .unwrap();
        // Four events, each its own body (bodies are kept per event).
        assert_eq!(bodies, 4);
        let attempts: i64 = sqlx::query_scalar("SELECT sum(value)::bigint FROM counters WHERE name = 'attempts'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(attempts, 4);
        // The same batch recorded again changes no count of attempts rows.
        postgres::record::record(&pool, &batch, 3).await.unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM attempts")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, 4);
    });
}

/// An open circuit has one probe leased per interval, whichever workers ask.
#[test]
fn an_open_circuit_is_probed_once_per_interval_whoever_asks() {
    use hookctl::store::postgres;
    let c = Cluster::start();
    rt().block_on(async {
        let pool = postgres::connect(&c.url, 4).await.expect("connect");
        sqlx::query(
            "INSERT INTO subscriptions (id, name, url, secret, retry_schedule, timeout_ms, \
               state, circuit, circuit_changed_at, created_at, updated_at) \
             VALUES ('sub_o', 'o', 'http://127.0.0.1:9/x', 's', '[1000]', 1000, 'active', \
               'open', 0, 0, 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        postgres::work::publish(&pool, &contacts(5)).await.unwrap();
        let now = hookctl::model::now_ms();
        let claim = |worker: &'static str, at: i64| {
            let pool = pool.clone();
            async move {
                postgres::work::claim(
                    &pool,
                    &[("sub_o".into(), 5)],
                    (at, at + 60_000),
                    worker,
                    &LIMITS,
                    0,
                )
                .await
                .unwrap()
                .0
                .len()
            }
        };
        let free = || async {
            sqlx::query("UPDATE deliveries SET lease_until = NULL, lease_owner = NULL")
                .execute(&pool)
                .await
                .unwrap();
        };
        assert_eq!(claim("w1", now).await, 1, "the probe");
        assert_eq!(claim("w2", now).await, 0, "a second probe while one is out");
        // The probe's outcome is recorded; the interval is not over yet.
        free().await;
        assert_eq!(
            claim("w2", now + 500).await,
            0,
            "a probe within the interval"
        );
        assert_eq!(
            claim("w3", now + 999).await,
            0,
            "a probe within the interval"
        );
        assert_eq!(
            claim("w3", now + 1_000).await,
            1,
            "the next interval's probe"
        );
        free().await;
        assert_eq!(
            claim("w1", now + 1_500).await,
            0,
            "a probe within the interval"
        );
    });
}
