//! The delivery queue on PostgreSQL: publishes fanned out in one transaction each, claims
//! with `FOR UPDATE SKIP LOCKED` so that workers never wait for one another's rows, and
//! leases that name their worker.

use crate::model::{Millis, now_ms};
use crate::store::fanout::Route;
use crate::store::{NewEvent, Published};
use anyhow::Result;
use sqlx::{PgPool, Row};

pub(super) async fn routes(tx: &mut sqlx::PgConnection) -> Result<Vec<Route>> {
    let rows = sqlx::query("SELECT id, events, location_id FROM subscriptions")
        .fetch_all(&mut *tx)
        .await?;
    rows.into_iter()
        .map(|r| {
            let events: Option<String> = r.try_get("events")?;
            Route::from_columns(
                r.try_get("id")?,
                events.as_deref(),
                r.try_get("location_id")?,
            )
        })
        .collect()
}

/// Stores each event not stored yet and its deliveries, in one transaction; acknowledged
/// only after the commit.
pub async fn publish(pool: &PgPool, events: &[NewEvent]) -> Result<Vec<Published>> {
    let mut tx = pool.begin().await?;
    let out = publish_in(&mut tx, events).await?;
    tx.commit().await?;
    Ok(out)
}

/// [`publish`] inside a transaction of the caller's (operational events join the change
/// they report).
pub async fn publish_in(
    tx: &mut sqlx::PgConnection,
    events: &[NewEvent],
) -> Result<Vec<Published>> {
    let now = now_ms();
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let locations: Vec<Option<&str>> = events.iter().map(|e| e.location_id.as_deref()).collect();
    let stamps: Vec<i64> = events.iter().map(|e| e.timestamp).collect();
    let data: Vec<String> = events.iter().map(|e| e.data.to_string()).collect();
    let received: Vec<i64> = events
        .iter()
        .map(|e| e.received_at.unwrap_or(now))
        .collect();
    // One statement for the batch: the first of a repeated id is stored, the rest are
    // duplicates (as are ids stored before).
    let rows = sqlx::query(
        "INSERT INTO events (id, type, location_id, timestamp, data, received_at) \
         SELECT DISTINCT ON (t.id) t.id, t.type, t.location_id, t.timestamp, t.data, t.received_at \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[]) \
           WITH ORDINALITY AS t(id, type, location_id, timestamp, data, received_at, ord) \
         ORDER BY t.id, t.ord \
         ON CONFLICT (id) DO NOTHING RETURNING seq, id",
    )
    .bind(&ids)
    .bind(&types)
    .bind(&locations)
    .bind(&stamps)
    .bind(&data)
    .bind(&received)
    .fetch_all(&mut *tx)
    .await?;
    let mut seq_of: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for r in rows {
        seq_of.insert(r.try_get("id")?, r.try_get("seq")?);
    }
    let routes = routes(&mut *tx).await?;
    let (mut fan_seq, mut fan_sub): (Vec<i64>, Vec<&str>) = (Vec::new(), Vec::new());
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        // Only the first occurrence of a fresh id fans out.
        let Some(seq) = seq_of.remove(&e.id) else {
            out.push(Published {
                id: e.id.clone(),
                duplicate: true,
                deliveries: 0,
            });
            continue;
        };
        let mut n = 0;
        for r in routes
            .iter()
            .filter(|r| r.matches(&e.event_type, e.location_id.as_deref()))
        {
            fan_seq.push(seq);
            fan_sub.push(r.id.as_str());
            n += 1;
        }
        out.push(Published {
            id: e.id.clone(),
            duplicate: false,
            deliveries: n,
        });
    }
    if !fan_seq.is_empty() {
        sqlx::query(
            "INSERT INTO deliveries (event_seq, subscription_id, status, attempts, next_at, created_at, updated_at) \
             SELECT s, sub, 'pending', 0, $3, $3, $3 FROM UNNEST($1::bigint[], $2::text[]) AS t(s, sub)",
        )
        .bind(&fan_seq)
        .bind(&fan_sub)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(super::workers::WORK)
            .execute(&mut *tx)
            .await?;
    }
    let fresh = out.iter().filter(|p| !p.duplicate).count() as i64;
    if fresh > 0 {
        sqlx::query(
            "INSERT INTO counters (name, shard, value) VALUES ('events_published', $2, $1) \
             ON CONFLICT (name, shard) DO UPDATE SET value = counters.value + excluded.value",
        )
        .bind(fresh)
        .bind(counter_shard())
        .execute(&mut *tx)
        .await?;
    }
    Ok(out)
}

/// The counters' shard a commit adds to (see the schema).
pub fn counter_shard() -> i16 {
    rand::random::<u8>() as i16 % 16
}

pub use crate::store::Leased;

/// How many times its part of an endpoint's limit a worker may hold leased, so that its
/// next requests are claimed while the last ones are on the wire.
pub const LOOKAHEAD: i64 = 4;

/// What claims hold to for the whole deployment.
pub struct Limits {
    /// Requests in flight to one endpoint.
    pub slots: usize,
    /// How long a worker stays live, and its leases, without a heartbeat.
    pub lease_ms: i64,
    /// How often an endpoint with an open circuit is probed.
    pub probe_ms: i64,
}

/// The live workers as one claim sees them.
struct Deployment {
    /// Live workers' ids, this one's among them.
    live: Vec<String>,
    /// The other live workers' lane bounds, summed (an unknown bound counts as `slots`).
    others_bound: i64,
    /// This worker's lane bound as recorded.
    own_bound: Option<i64>,
}

impl Deployment {
    async fn read(
        tx: &mut sqlx::PgConnection,
        worker: &str,
        slots: i64,
        lease_ms: i64,
    ) -> Result<Deployment> {
        let rows: Vec<(String, Option<i32>, bool)> = sqlx::query_as(
            "SELECT id, lane_bound, heartbeat_at >= $2 FROM workers \
             WHERE id = $1 OR heartbeat_at >= $2",
        )
        .bind(worker)
        .bind(now_ms() - lease_ms)
        .fetch_all(&mut *tx)
        .await?;
        let mut d = Deployment {
            live: vec![worker.to_string()],
            others_bound: 0,
            own_bound: None,
        };
        for (id, bound, live) in rows {
            if id == worker {
                d.own_bound = bound.map(i64::from);
            } else if live {
                d.others_bound += bound.map_or(slots, i64::from);
                d.live.push(id);
            }
        }
        Ok(d)
    }

    /// Each live worker's part of an endpoint's limit.
    fn share(&self, slots: i64) -> i64 {
        (slots / self.live.len() as i64).max(1)
    }
}

/// Leases up to `n` due deliveries of each listed active subscription to `worker` until
/// `lease_until`, and says how many requests the worker may have on the wire to one
/// endpoint from now on: its part of the limit, `slots` split among the live workers.
///
/// Each worker records its lane bound: the larger of what it has on the wire (`on_wire`)
/// and the part it is given. While the live workers' bounds add up to no more than
/// `slots`, their requests cannot exceed an endpoint's limit whatever they hold leased, so
/// each may lease up to [`LOOKAHEAD`] times its part ahead. Otherwise (a worker joined
/// and the others have not yet come down to their new part, or the limit is too small to
/// split), or where a worker no longer live holds leases on the endpoint, the leases
/// across all workers are its requests in flight: a claim takes at most `slots` less
/// those held. While its circuit is open an endpoint has one lease at most, a probe leased
/// once per `probe_ms` by whichever worker asks first. Bounds change under an exclusive
/// advisory lock, which claims that only read them take shared, so no claim decides on
/// bounds that are changing. A rate-limited endpoint's claims take from a token bucket
/// that refills at its rate for the whole deployment. Claims for one endpoint take turns
/// (a transaction-scoped advisory lock); rows another transaction holds are skipped, never
/// waited for.
pub async fn claim(
    pool: &PgPool,
    wants: &[(String, usize)],
    (now, lease_until): (Millis, Millis),
    worker: &str,
    limits: &Limits,
    on_wire: usize,
) -> Result<(Vec<Leased>, usize)> {
    let slots = limits.slots.max(1) as i64;
    let lease_ms = limits.lease_ms;
    let on_wire = on_wire as i64;
    let mut out = Vec::new();
    // Endpoints' locks are taken in one order by every claim, or two claims could each
    // wait for the other's.
    let mut wants: Vec<&(String, usize)> = wants.iter().filter(|(_, n)| *n > 0).collect();
    wants.sort_by(|a, b| a.0.cmp(&b.0));
    let mut tx = pool.begin().await?;
    // Read once to choose the lock, and again under it: only what is read under the lock
    // is decided on.
    let guess = Deployment::read(&mut tx, worker, slots, lease_ms).await?;
    let changes = guess.own_bound != Some(on_wire.max(guess.share(slots)));
    let lock = if changes {
        "SELECT pg_advisory_xact_lock($1, 0)"
    } else {
        "SELECT pg_advisory_xact_lock_shared($1, 0)"
    };
    sqlx::query(lock)
        .bind(BOUNDS_LOCK)
        .execute(&mut *tx)
        .await?;
    let seen = Deployment::read(&mut tx, worker, slots, lease_ms).await?;
    let share = seen.share(slots);
    let (bound, share) = match seen.own_bound {
        Some(b) if !changes => (b, share.min(b)),
        // The row went meanwhile (a worker silent for long is forgotten); the next claim
        // records it again under the exclusive lock.
        None if !changes => return Ok((Vec::new(), share as usize)),
        _ => {
            let bound = on_wire.max(share);
            sqlx::query(
                "INSERT INTO workers (id, host, pid, started_at, heartbeat_at, lane_bound) \
                 VALUES ($1, $2, $3, $4, $4, $5) \
                 ON CONFLICT (id) DO UPDATE SET lane_bound = excluded.lane_bound",
            )
            .bind(worker)
            .bind(super::workers::host())
            .bind(i64::from(std::process::id()))
            .bind(now_ms())
            .bind(i32::try_from(bound).unwrap_or(i32::MAX))
            .execute(&mut *tx)
            .await?;
            (bound, share)
        }
    };
    let ahead = seen.others_bound + bound <= slots;
    for (sub, n) in wants {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(CLAIM_LOCK)
            .bind(sub)
            .execute(&mut *tx)
            .await?;
        let Some(row) = sqlx::query(
            "SELECT circuit, circuit_changed_at, probed_at, rate_per_sec, rate_tokens, rate_at \
             FROM subscriptions \
             WHERE id = $1 AND state = 'active'",
        )
        .bind(sub)
        .fetch_optional(&mut *tx)
        .await?
        else {
            continue;
        };
        let (mut all, mut own, mut unowned, expired) =
            held(&mut tx, sub, worker, &seen.live, now).await?;
        if expired > 0 {
            // A stopped worker's leases, expired, come back here first.
            sqlx::query(
                "UPDATE deliveries SET lease_until = NULL, lease_owner = NULL \
                 WHERE subscription_id = $1 AND lease_until IS NOT NULL AND lease_until < $2",
            )
            .bind(sub)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            (all, own, unowned, _) = held(&mut tx, sub, worker, &seen.live, now).await?;
        }
        let open = row.try_get::<String, _>("circuit")? == "open";
        let room = if open {
            let since: Option<i64> = row.try_get("probed_at")?;
            let changed: Option<i64> = row.try_get("circuit_changed_at")?;
            let last = since.max(changed).unwrap_or(0);
            if now >= last.saturating_add(limits.probe_ms) {
                1 - all
            } else {
                0
            }
        } else if ahead && unowned == 0 {
            LOOKAHEAD * share - own
        } else {
            slots - all
        };
        let mut take = (*n as i64).min(room).max(0);
        let rate: Option<f64> = row
            .try_get::<Option<f64>, _>("rate_per_sec")?
            .filter(|r| *r > 0.0);
        let mut tokens = 0.0;
        if let Some(rate) = rate {
            let burst = rate.max(1.0);
            let (had, at): (Option<f64>, Option<i64>) =
                (row.try_get("rate_tokens")?, row.try_get("rate_at")?);
            let elapsed = at.map_or(f64::MAX, |at| (now - at).max(0) as f64 / 1000.0);
            tokens = (had.unwrap_or(burst) + elapsed * rate).min(burst);
            take = take.min(tokens.floor() as i64);
        }
        if take == 0 {
            continue;
        }
        let rows = sqlx::query(
            "UPDATE deliveries SET lease_until = $1, lease_owner = $2 \
             WHERE id IN (SELECT id FROM deliveries \
                 WHERE subscription_id = $3 AND status IN ('pending', 'retrying') \
                   AND lease_until IS NULL AND next_at <= $4 \
                 ORDER BY next_at LIMIT $5 FOR UPDATE SKIP LOCKED) \
             RETURNING id, event_seq, attempts, probes",
        )
        .bind(lease_until)
        .bind(worker)
        .bind(sub)
        .bind(now)
        .bind(take)
        .fetch_all(&mut *tx)
        .await?;
        if open && !rows.is_empty() {
            sqlx::query("UPDATE subscriptions SET probed_at = $2 WHERE id = $1")
                .bind(sub)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        if rate.is_some() {
            sqlx::query("UPDATE subscriptions SET rate_tokens = $2, rate_at = $3 WHERE id = $1")
                .bind(sub)
                .bind(tokens - rows.len() as f64)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        for r in rows {
            out.push(Leased {
                delivery_id: r.try_get("id")?,
                event_seq: r.try_get("event_seq")?,
                subscription_id: sub.clone(),
                attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
                probes: u32::try_from(r.try_get::<i64, _>("probes")?).unwrap_or(u32::MAX),
            });
        }
    }
    tx.commit().await?;
    Ok((out, share as usize))
}

/// An endpoint's leases: all, this worker's, those of workers not live, and those expired.
async fn held(
    tx: &mut sqlx::PgConnection,
    sub: &str,
    worker: &str,
    live: &[String],
    now: Millis,
) -> Result<(i64, i64, i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE lease_owner = $2), \
           count(*) FILTER (WHERE lease_owner IS NULL OR NOT lease_owner = ANY($3)), \
           count(*) FILTER (WHERE lease_until < $4) \
         FROM deliveries WHERE subscription_id = $1 AND lease_until IS NOT NULL",
    )
    .bind(sub)
    .bind(worker)
    .bind(live)
    .bind(now)
    .fetch_one(tx)
    .await?)
}

/// The first key of the advisory lock under which workers' lane bounds change ("lane").
const BOUNDS_LOCK: i32 = 0x6c61_6e65;

/// The first key of the advisory locks claims take per endpoint ("hook").
const CLAIM_LOCK: i32 = 0x686f_6f6b;
