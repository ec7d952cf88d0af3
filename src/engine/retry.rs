//! When to try again: the subscription's schedule with ±20 % jitter, stretched by a
//! receiver's `Retry-After` on throttling statuses.

use crate::model::Millis;
use rand::Rng;

/// Statuses whose `Retry-After` is honoured (the statuses a receiver uses to say "later").
pub fn honours_retry_after(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Longest wait a receiver can ask for; beyond it the schedule decides.
const RETRY_AFTER_CAP_MS: i64 = 24 * 3600 * 1000;

/// Parses `Retry-After` (delta seconds or an HTTP date) into a wait from `now`.
pub fn parse_retry_after(value: &str, now: Millis) -> Option<i64> {
    let v = value.trim();
    let wait = if let Ok(secs) = v.parse::<u64>() {
        i64::try_from(secs).ok()?.checked_mul(1000)?
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
        (at.timestamp_millis() - now).max(0)
    };
    Some(wait.min(RETRY_AFTER_CAP_MS))
}

/// The delay before retry number `retry` (1-based), or `None` when the schedule is spent.
pub fn delay(schedule: &[u64], retry: u32, rng: &mut impl Rng) -> Option<i64> {
    let base = *schedule.get(retry.checked_sub(1)? as usize)? as f64;
    let jitter = rng.random_range(-0.2..=0.2);
    Some((base * (1.0 + jitter)).round().max(0.0) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_the_schedule_within_jitter() {
        let mut rng = rand::rng();
        let schedule = [1000, 60_000];
        for _ in 0..200 {
            let d = delay(&schedule, 1, &mut rng).unwrap();
            assert!((800..=1200).contains(&d), "{d}");
            let d = delay(&schedule, 2, &mut rng).unwrap();
            assert!((48_000..=72_000).contains(&d), "{d}");
        }
        assert_eq!(delay(&schedule, 3, &mut rng), None);
        assert_eq!(delay(&schedule, 0, &mut rng), None);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("2", 0), Some(2000));
        assert_eq!(parse_retry_after(" 120 ", 0), Some(120_000));
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(30_000)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("999999999999", 0),
            Some(RETRY_AFTER_CAP_MS)
        );
    }
}
