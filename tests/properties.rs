//! Properties: the retry schedule (jitter within ±20 %, nothing past the schedule, default
//! delays monotone, Retry-After capped) and fan-out (an event gets exactly one delivery per
//! matching subscription), the latter through the real store.

use hookctl::engine::retry;
use hookctl::model::*;
use hookctl::store::OpenSettings;
use hookctl::store::{EventFilter, NewEvent};
use proptest::prelude::*;

proptest! {
    #[test]
    fn jitter_stays_within_a_fifth(schedule in proptest::collection::vec(0u64..10_000_000_000, 0..12), retry in 0u32..14) {
        let got = retry::delay(&schedule, retry, &mut rand::rng());
        match schedule.get((retry as usize).wrapping_sub(1)) {
            Some(&base) if retry >= 1 => {
                let d = got.expect("a retry within the schedule has a delay") as f64;
                prop_assert!(d >= base as f64 * 0.8 - 1.0 && d <= base as f64 * 1.2 + 1.0, "{d} for {base}");
            }
            _ => prop_assert!(got.is_none()),
        }
    }

    #[test]
    fn retry_after_is_capped(secs in any::<u64>()) {
        if let Some(ms) = retry::parse_retry_after(&secs.to_string(), 0) {
            prop_assert!(ms <= 24 * 3600 * 1000);
            prop_assert!(ms >= 0);
        }
    }
}

#[test]
fn default_schedule_grows() {
    assert!(DEFAULT_RETRY_SCHEDULE_MS.windows(2).all(|w| w[0] <= w[1]));
    let total: u64 = DEFAULT_RETRY_SCHEDULE_MS.iter().sum();
    // About three days, as DESIGN says.
    assert!((2 * 86_400_000..4 * 86_400_000).contains(&total), "{total}");
}

const TYPES: &[&str] = &["ContactCreate", "InvoicePaid", "TaskCreate", "NoteCreate"];
const LOCATIONS: &[Option<&str>] = &[None, Some("loc-a"), Some("loc-b")];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Each event gets one delivery per matching subscription, and each subscription gets
    /// its deliveries in the order of the events (the writer inserts them subscription by
    /// subscription, in 32-row statements: batches up to 80 events cross them).
    #[test]
    fn fan_out_is_exactly_the_matching_subscriptions(
        subs in proptest::collection::vec((proptest::option::of(proptest::sample::subsequence(TYPES.to_vec(), 1..4)), 0usize..3), 0..6),
        events in proptest::collection::vec((0usize..4, 0usize..3), 1..80),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = hookctl::store::open(&dir.path().join("p.db"), &OpenSettings::default()).await.unwrap();
            let mut made = Vec::new();
            for (i, (types, loc)) in subs.iter().enumerate() {
                let mut s = Subscription::new(format!("sub_{i}"), format!("s{i}"), "https://example.com/h".into(), types.as_ref().map(|t| t.iter().map(|x| x.to_string()).collect()), "whsec_x".into());
                s.location_id = LOCATIONS[*loc].map(str::to_string);
                store.add_subscription(s.clone(), None).await.unwrap();
                made.push(s);
            }
            let batch: Vec<NewEvent> = events.iter().enumerate().map(|(i, (t, l))| NewEvent {
                id: format!("e{i}"),
                event_type: TYPES[*t].into(),
                location_id: LOCATIONS[*l].map(str::to_string),
                timestamp: 0,
                data: serde_json::json!({}),
                received_at: None,
            }).collect();
            let published = store.publish(batch.clone()).await.unwrap();
            let mut last_id: std::collections::HashMap<String, i64> = Default::default();
            for (e, p) in batch.iter().zip(&published) {
                let mut want: Vec<&str> = made.iter().filter(|s| s.matches(&e.event_type, e.location_id.as_deref())).map(|s| s.id.as_str()).collect();
                want.sort_unstable();
                assert_eq!(p.deliveries, want.len(), "{e:?}");
                let stored = store.event_detail(&e.id).await.unwrap().unwrap().deliveries;
                let mut got: Vec<&str> = stored.iter().map(|d| d.subscription_id.as_str()).collect();
                got.sort_unstable();
                assert_eq!(got, want, "{e:?}");
                for d in &stored {
                    let before = last_id.insert(d.subscription_id.clone(), d.id);
                    assert!(before.is_none_or(|b| b < d.id), "{e:?}: {before:?} then {}", d.id);
                }
            }
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// Publishing is idempotent by event id, whatever the batch: an id stored before, or
    /// earlier in the same batch, is a duplicate (stored once, with its first data, one
    /// delivery); new ids are stored in the order given. Batches up to 100 cross the
    /// writer's multi-row chunks (32 rows) and their remainders.
    #[test]
    fn each_event_id_is_stored_once_in_the_order_first_given(
        first in proptest::collection::vec(0u32..60, 0..100),
        second in proptest::collection::vec(0u32..60, 1..100),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = hookctl::store::open(&dir.path().join("i.db"), &OpenSettings::default()).await.unwrap();
            let s = Subscription::new("sub_all".into(), "all".into(), "https://example.com/h".into(), None, "whsec_x".into());
            store.add_subscription(s, None).await.unwrap();
            let mut seen: Vec<u32> = Vec::new();
            for (b, ids) in [&first, &second].into_iter().enumerate() {
                let batch: Vec<NewEvent> = ids.iter().enumerate().map(|(i, id)| NewEvent {
                    id: format!("e{id}"),
                    event_type: "ContactCreate".into(),
                    location_id: None,
                    timestamp: 0,
                    data: serde_json::json!({ "batch": b, "at": i }),
                    received_at: None,
                }).collect();
                let published = store.publish(batch).await.unwrap();
                assert_eq!(published.len(), ids.len());
                for (p, id) in published.iter().zip(ids.iter()) {
                    assert_eq!(p.id, format!("e{id}"));
                    let duplicate = seen.contains(id);
                    assert_eq!(p.duplicate, duplicate, "{p:?}");
                    assert_eq!(p.deliveries, usize::from(!duplicate), "{p:?}");
                    if !duplicate {
                        seen.push(*id);
                    }
                }
            }
            // By sequence: the order in which each id was first given.
            let mut rows = store.list_events(&EventFilter { limit: 1000, ..Default::default() }).await.unwrap();
            rows.sort_by_key(|r| r.seq);
            let stored: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
            let want: Vec<String> = seen.iter().map(|id| format!("e{id}")).collect();
            assert_eq!(stored, want);
            for r in &rows {
                assert_eq!(r.deliveries.len(), 1, "{}", r.id);
            }
            // Each keeps the data it was first published with.
            for (b, ids) in [&first, &second].into_iter().enumerate() {
                for (i, id) in ids.iter().enumerate() {
                    let first_at = [&first, &second].into_iter().enumerate()
                        .flat_map(|(b, ids)| ids.iter().enumerate().map(move |(i, x)| (b, i, *x)))
                        .find(|(_, _, x)| x == id)
                        .map(|(b, i, _)| (b, i));
                    if first_at == Some((b, i)) {
                        let d = store.event_detail(&format!("e{id}")).await.unwrap().unwrap();
                        assert_eq!(d.event.data.value(), &serde_json::json!({ "batch": b, "at": i }));
                        assert_eq!(d.deliveries.len(), 1);
                    }
                }
            }
        });
    }
}

const STATUSES: &[&str] = &["pending", "retrying", "delivered", "dead", "cancelled"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// The counts and last attempts read through indexes (`Store::overview`) are those of a
    /// plain pass over every delivery, whatever mix of states, leases, redeliveries and
    /// attempts the table holds.
    #[test]
    fn overview_matches_a_pass_over_every_delivery(
        rows in proptest::collection::vec((0usize..3, 0usize..5, 0i64..3, any::<bool>(), any::<bool>()), 1..60),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("o.db");
            let store = hookctl::store::open(&path, &OpenSettings::default()).await.unwrap();
            for i in 0..3 {
                let s = Subscription::new(format!("sub_{i}"), format!("s{i}"), "https://example.com/h".into(), None, "whsec_x".into());
                store.add_subscription(s, None).await.unwrap();
            }
            store.publish(vec![NewEvent {
                id: "e".into(),
                event_type: "ContactCreate".into(),
                location_id: None,
                timestamp: 0,
                data: serde_json::json!({}),
                received_at: None,
            }]).await.unwrap();
            // Deliveries of every kind, written straight into the table beside the store's.
            let c = rusqlite::Connection::open(&path).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
            let seq: i64 = c.query_row("SELECT seq FROM events", [], |r| r.get(0)).unwrap();
            for (k, (sub, status, attempts, superseded, leased)) in rows.iter().enumerate() {
                c.execute(
                    "INSERT INTO deliveries (event_seq, subscription_id, status, attempts, lease_until, superseded_by, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0)",
                    rusqlite::params![seq, format!("sub_{sub}"), STATUSES[*status], attempts, leased.then_some(1i64), superseded.then_some(1i64)],
                ).unwrap();
                let id = c.last_insert_rowid();
                for n in 1..=*attempts {
                    c.execute(
                        "INSERT INTO attempts (delivery_id, n, at, status_code, latency_ms) VALUES (?1, ?2, ?3, ?4, 1)",
                        rusqlite::params![id, n, k as i64 * 10 + n, 200 + k as i64],
                    ).unwrap();
                }
            }
            let counted = "superseded_by IS NULL OR status IN ('pending', 'retrying')";
            let mut want: std::collections::BTreeMap<(String, String), i64> = Default::default();
            let mut q = c.prepare(&format!("SELECT subscription_id, status, COUNT(*) FROM deliveries WHERE {counted} GROUP BY 1, 2")).unwrap();
            for r in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))).unwrap() {
                let (sub, status, n) = r.unwrap();
                want.insert((sub, status), n);
            }
            let in_flight: i64 = c.query_row(&format!("SELECT COUNT(*) FROM deliveries WHERE lease_until IS NOT NULL AND ({counted})"), [], |r| r.get(0)).unwrap();

            let (counts, stats) = store.overview().await.unwrap();
            let mut got: std::collections::BTreeMap<(String, String), i64> = Default::default();
            for s in &stats {
                for (status, n) in [("pending", s.pending), ("retrying", s.retrying), ("delivered", s.delivered), ("dead", s.dead), ("cancelled", s.cancelled)] {
                    if n != 0 {
                        got.insert((s.subscription_id.clone(), status.to_string()), n);
                    }
                }
                let last: Option<(Option<i64>, i64)> = c.query_row(
                    "SELECT a.status_code, a.at FROM attempts a WHERE a.delivery_id = (SELECT MAX(id) FROM deliveries WHERE attempts > 0 AND subscription_id = ?1) ORDER BY a.n DESC LIMIT 1",
                    [&s.subscription_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                ).ok();
                assert_eq!(s.last_attempt_at, last.map(|l| l.1), "{}", s.subscription_id);
                assert_eq!(s.last_status_code.map(i64::from), last.and_then(|l| l.0), "{}", s.subscription_id);
            }
            assert_eq!(got, want);
            let total = |status: &str| want.iter().filter(|((_, st), _)| st == status).map(|(_, n)| n).sum::<i64>();
            assert_eq!((counts.pending, counts.retrying, counts.delivered, counts.dead, counts.cancelled, counts.in_flight),
                (total("pending"), total("retrying"), total("delivered"), total("dead"), total("cancelled"), in_flight));
            assert_eq!(store.queue_counts().await.unwrap(), counts);
        });
    }
}
