//! What the console shows, read from the store in one go: an immutable snapshot that the
//! view draws. The loader never blocks drawing; the UI only ever draws the latest snapshot.

use crate::model::*;
use crate::store::{
    AttemptSample, DeadItem, EventDetail, EventFilter, EventRow, QueueCounts, RetryItem, Store,
    SubscriptionStats,
};
use anyhow::Result;
use std::collections::HashMap;

/// Rows kept in memory for the stream; older ones are read from the store on demand.
pub const STREAM_WINDOW: u32 = 200;
/// Retries and dead letters read per snapshot, soonest and newest first; the counts in
/// [`Snapshot::counts`] say how many there are in all.
pub const RETRY_WINDOW: u32 = 500;
pub const DEAD_WINDOW: u32 = 1000;
pub const AUDIT_WINDOW: u32 = 200;
/// Sparkline buckets over the last hour (2 minutes each).
pub const SPARK_BUCKETS: usize = 30;
const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Clone, PartialEq)]
pub enum EngineMode {
    /// The engine runs in this process.
    Embedded { api: Result<String, String> },
    /// Another process runs the engine on this database.
    Attached { pid: Option<u32> },
    /// Several workers share this database's deliveries.
    Deployment { workers: usize },
    /// Nobody delivers: deliveries wait.
    Stopped,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubRow {
    pub sub: Subscription,
    pub stats: SubscriptionStats,
    /// Over the last hour; `None` without attempts.
    pub success_rate: Option<f64>,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub attempts_1h: usize,
    /// Attempts per 2-minute bucket over the last hour, oldest first.
    pub spark: Vec<u64>,
}

/// Where the stream window sits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamQuery {
    /// `None`: the newest rows (following). Otherwise rows at or older than this sequence.
    pub anchor: Option<i64>,
    pub filter: Option<String>,
}

/// What the UI asks the loader for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub stream: StreamQuery,
    pub inspect: Option<String>,
    /// How many of the engineer's actions have finished. Each one calls for a full read at
    /// once, whatever the pace of full reads: the table must show what the status line
    /// says was done, since the next key (`p` toggles) acts on what the table shows.
    pub actions_done: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub now: Millis,
    pub db: String,
    pub engine: EngineMode,
    pub counts: QueueCounts,
    pub events_per_s: f64,
    pub deliveries_per_s: f64,
    /// Across all endpoints over the last hour.
    pub success_rate: Option<f64>,
    pub subs: Vec<SubRow>,
    pub stream: Vec<EventRow>,
    pub stream_query: StreamQuery,
    /// The newest event's sequence, to tell how far behind a frozen window is.
    pub newest_seq: Option<i64>,
    pub retries: Vec<RetryItem>,
    pub dead: Vec<DeadItem>,
    /// The newest operator actions.
    pub audit: Vec<crate::audit::AuditEntry>,
    /// Endpoints in trouble within the last hour (the header's incident line).
    pub incident: Vec<crate::incident::EndpointIncident>,
    pub inspected: Option<EventDetail>,
    /// The inspector was asked for an event the store does not have.
    pub inspect_missing: Option<String>,
}

impl Snapshot {
    /// The subscription's name, or the id when it is gone.
    pub fn sub_name_ref<'a>(&'a self, id: &'a str) -> &'a str {
        self.subs
            .iter()
            .find(|s| s.sub.id == id)
            .map(|s| s.sub.name.as_str())
            .unwrap_or(id)
    }

    pub fn sub_name(&self, id: &str) -> String {
        self.subs
            .iter()
            .find(|s| s.sub.id == id)
            .map(|s| s.sub.name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    /// More retries wait than the snapshot holds.
    pub fn retries_cut(&self) -> bool {
        (self.retries.len() as i64) < self.counts.retrying
    }

    /// More dead letters exist than the snapshot holds.
    pub fn dead_cut(&self) -> bool {
        (self.dead.len() as i64) < self.counts.dead
    }

    /// The incident line, when something is wrong now.
    pub fn incident_line(&self) -> Option<String> {
        crate::incident::headline(&self.incident)
    }

    pub fn sub(&self, id: &str) -> Option<&Subscription> {
        self.subs.iter().find(|s| s.sub.id == id).map(|s| &s.sub)
    }
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn health(
    samples: &[AttemptSample],
    now: Millis,
) -> (Option<f64>, Option<u64>, Option<u64>, Vec<u64>) {
    let mut spark = vec![0u64; SPARK_BUCKETS];
    let bucket_ms = HOUR_MS / SPARK_BUCKETS as i64;
    for s in samples {
        let age = now - s.at;
        if (0..HOUR_MS).contains(&age) {
            let i = SPARK_BUCKETS - 1 - (age / bucket_ms) as usize;
            spark[i] += 1;
        }
    }
    if samples.is_empty() {
        return (None, None, None, spark);
    }
    let ok = samples.iter().filter(|s| s.ok).count();
    let mut lat: Vec<u64> = samples.iter().map(|s| s.latency_ms).collect();
    lat.sort_unstable();
    (
        Some(ok as f64 / samples.len() as f64),
        percentile(&lat, 0.50),
        percentile(&lat, 0.95),
        spark,
    )
}

/// Reads everything a frame needs. `now` is passed in so that tests can fix the clock.
pub async fn load(
    store: &dyn Store,
    query: &Query,
    engine: EngineMode,
    db: &str,
    now: Millis,
) -> Result<Snapshot> {
    let subs = store.subscriptions().await?;
    let (counts, stats) = store.overview().await?;
    let samples = store.attempt_samples(now - HOUR_MS, 50_000).await?;
    let mut rows = Vec::with_capacity(subs.len());
    let (mut ok_all, mut n_all) = (0usize, 0usize);
    let mut delivered_last_minute = 0usize;
    for sub in subs {
        let empty = Vec::new();
        let s = samples.get(&sub.id).unwrap_or(&empty);
        let (success_rate, p50_ms, p95_ms, spark) = health(s, now);
        ok_all += s.iter().filter(|x| x.ok).count();
        n_all += s.len();
        delivered_last_minute += s.iter().filter(|x| x.ok && now - x.at < 60_000).count();
        rows.push(SubRow {
            stats: stats
                .iter()
                .find(|x| x.subscription_id == sub.id)
                .cloned()
                .unwrap_or_else(|| SubscriptionStats {
                    subscription_id: sub.id.clone(),
                    ..Default::default()
                }),
            success_rate,
            p50_ms,
            p95_ms,
            attempts_1h: s.len(),
            spark,
            sub,
        });
    }
    let (stream, newest_seq, inspected, inspect_missing) = query_parts(store, query).await?;
    Ok(Snapshot {
        now,
        db: db.to_string(),
        engine,
        events_per_s: store.events_since(now - 60_000).await? as f64 / 60.0,
        deliveries_per_s: delivered_last_minute as f64 / 60.0,
        success_rate: (n_all > 0).then(|| ok_all as f64 / n_all as f64),
        counts,
        subs: rows,
        stream,
        stream_query: query.stream.clone(),
        newest_seq,
        retries: store.retry_queue(RETRY_WINDOW).await?,
        dead: store.dead_letters(DEAD_WINDOW).await?,
        audit: store
            .audit_log(&crate::audit::AuditFilter {
                limit: AUDIT_WINDOW,
                ..Default::default()
            })
            .await?,
        incident: store.incident(now - HOUR_MS).await?,
        inspected,
        inspect_missing,
    })
}

/// What depends on the query alone: the stream window and the inspected event.
async fn query_parts(
    store: &dyn Store,
    query: &Query,
) -> Result<(
    Vec<EventRow>,
    Option<i64>,
    Option<EventDetail>,
    Option<String>,
)> {
    let filter = EventFilter {
        text: query.stream.filter.clone(),
        before_seq: query.stream.anchor,
        limit: STREAM_WINDOW,
        ..Default::default()
    };
    let stream = store.list_events(&filter).await?;
    let newest_seq = if query.stream.anchor.is_none() && query.stream.filter.is_none() {
        stream.first().map(|e| e.seq)
    } else {
        store
            .list_events(&EventFilter {
                limit: 1,
                text: query.stream.filter.clone(),
                ..Default::default()
            })
            .await?
            .first()
            .map(|e| e.seq)
    };
    let (inspected, missing) = match &query.inspect {
        Some(id) => match store.event_detail(id).await? {
            Some(d) => (Some(d), None),
            None => (None, Some(id.clone())),
        },
        None => (None, None),
    };
    Ok((stream, newest_seq, inspected, missing))
}

/// The previous snapshot with only the query's parts read again: what a key that pages
/// or inspects costs, whatever the size of the store.
pub async fn reload_query(store: &dyn Store, query: &Query, prev: &Snapshot) -> Result<Snapshot> {
    let (stream, newest_seq, inspected, inspect_missing) = query_parts(store, query).await?;
    Ok(Snapshot {
        stream,
        stream_query: query.stream.clone(),
        newest_seq,
        inspected,
        inspect_missing,
        ..prev.clone()
    })
}

/// Groups consecutive dead letters of one endpoint and error (the store sorts them so).
pub fn dead_group_key(d: &DeadItem) -> (String, Option<ErrorClass>, Option<u16>) {
    (d.subscription_id.clone(), d.error_class, d.status_code)
}

pub fn dead_groups(dead: &[DeadItem]) -> HashMap<(String, Option<ErrorClass>, Option<u16>), usize> {
    let mut m = HashMap::new();
    for d in dead {
        *m.entry(dead_group_key(d)).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_figures() {
        let now = 10 * HOUR_MS;
        let samples: Vec<AttemptSample> = (0..100)
            .map(|i| AttemptSample {
                at: now - i * 1000,
                latency_ms: i as u64 + 1,
                ok: i % 4 != 0,
            })
            .collect();
        let (rate, p50, p95, spark) = health(&samples, now);
        assert_eq!(rate, Some(0.75));
        assert_eq!(p50, Some(50));
        assert_eq!(p95, Some(95));
        assert_eq!(spark.iter().sum::<u64>(), 100);
        assert_eq!(spark[SPARK_BUCKETS - 1], 100);
        assert_eq!(health(&[], now).0, None);
    }
}
