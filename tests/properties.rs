//! Properties: the retry schedule (jitter within ±20 %, nothing past the schedule, default
//! delays monotone, Retry-After capped) and fan-out (an event gets exactly one delivery per
//! matching subscription), the latter through the real store.

use hookctl::engine::retry;
use hookctl::model::*;
use hookctl::store::sqlite::{OpenOptions, SqliteStore};
use hookctl::store::{NewEvent, Store};
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
    #[test]
    fn fan_out_is_exactly_the_matching_subscriptions(
        subs in proptest::collection::vec((proptest::option::of(proptest::sample::subsequence(TYPES.to_vec(), 1..4)), 0usize..3), 0..6),
        events in proptest::collection::vec((0usize..4, 0usize..3), 1..20),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(&dir.path().join("p.db"), OpenOptions::default()).await.unwrap();
            let mut made = Vec::new();
            for (i, (types, loc)) in subs.iter().enumerate() {
                let mut s = Subscription::new(format!("sub_{i}"), format!("s{i}"), "https://example.com/h".into(), types.as_ref().map(|t| t.iter().map(|x| x.to_string()).collect()), "whsec_x".into());
                s.location_id = LOCATIONS[*loc].map(str::to_string);
                store.add_subscription(s.clone()).await.unwrap();
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
            for (e, p) in batch.iter().zip(&published) {
                let want = made.iter().filter(|s| s.matches(&e.event_type, e.location_id.as_deref())).count();
                assert_eq!(p.deliveries, want, "{e:?}");
                let stored = store.event_detail(&e.id).await.unwrap().unwrap().deliveries.len();
                assert_eq!(stored, want, "{e:?}");
            }
        });
    }
}
