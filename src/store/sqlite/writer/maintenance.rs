//! Deleting what is done with: purges, held deliveries expired, retention; counters.

use super::super::sql::Sql;
use super::*;
use anyhow::Result;
use rusqlite::{Connection, params};

/// Deletes the events of a range of sequence numbers that have no delivery left (after
/// deliveries were purged, and those no subscription wanted).
pub(super) fn delete_orphan_events(conn: &Connection, (after, upto): (i64, i64)) -> Result<u64> {
    let r = conn
        .prepare_cached(
            "DELETE FROM events WHERE seq > ?1 AND seq <= ?2 AND NOT EXISTS \
             (SELECT 1 FROM deliveries d WHERE d.event_seq = events.seq)",
        )?
        .execute(params![after, upto])?;
    Ok(r as u64)
}

/// Also counts, with `dry_run`, on a read connection.
pub(crate) fn purge(
    conn: &Connection,
    f: &PurgeFilter,
    dry_run: bool,
    ids: Option<(i64, i64)>,
) -> Result<PurgeCount> {
    let mut q = Sql::new(if dry_run {
        "SELECT COUNT(*) FROM deliveries WHERE status IN ("
    } else {
        "DELETE FROM deliveries WHERE status IN ("
    });
    let statuses = f.status.iter().filter(|s| s.is_final());
    q.list(
        statuses
            .map(|s| s.as_str().to_string())
            .chain(["-".to_string()]),
    );
    q.push(")");
    if let Some(sub) = &f.subscription_id {
        q.push(" AND subscription_id = ").bind(sub.clone());
    }
    if let Some(before) = f.before {
        q.push(" AND updated_at < ").bind(before);
    }
    if let Some((after, upto)) = ids {
        q.push(" AND id > ").bind(after);
        q.push(" AND id <= ").bind(upto);
    }
    let deliveries = if dry_run {
        let n = q.rows(conn, |r| Ok(r.get::<_, i64>(0)?))?;
        n.first().copied().unwrap_or(0) as u64
    } else {
        q.execute(conn)? as u64
    };
    // Events left without deliveries are the caller's next step (`DeleteOrphans`): a dry
    // run cannot know which events a real purge would orphan without doing it.
    Ok(PurgeCount {
        deliveries,
        events: 0,
    })
}

/// Adds to monotonic counters.
pub(super) fn bump(conn: &Connection, deltas: &[(String, i64)]) -> Result<()> {
    let mut q = conn.prepare_cached(
        "INSERT INTO counters (name, value) VALUES (?1, ?2) \
         ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
    )?;
    for (name, d) in deltas.iter().filter(|(_, d)| *d != 0) {
        q.execute(params![name, d])?;
    }
    Ok(())
}

pub(super) fn expire_held(
    conn: &Connection,
    sub: &str,
    before: Millis,
    reason: &str,
) -> Result<u64> {
    let now = now_ms();
    let held = "subscription_id = ?1 AND status IN ('pending', 'retrying') AND lease_until IS NULL AND created_at < ?2";
    let sql = format!(
        "INSERT OR REPLACE INTO attempts (delivery_id, n, at, error_class, error, latency_ms) \
         SELECT id, attempts + 1, ?3, 'circuit_open', ?4, 0 FROM deliveries WHERE {held}"
    );
    conn.prepare_cached(&sql)?
        .execute(params![sub, before, now, reason])?;
    let sql = format!(
        "UPDATE deliveries SET status = 'dead', attempts = attempts + 1, next_at = NULL, updated_at = ?3 WHERE {held}"
    );
    let n = conn
        .prepare_cached(&sql)?
        .execute(params![sub, before, now])? as u64;
    if n > 0 {
        bump(
            conn,
            &[
                ("deliveries_dead".into(), n as i64),
                ("attempts".into(), n as i64),
                ("attempts_failed_circuit_open".into(), n as i64),
            ],
        )?;
        log(
            conn,
            sub,
            "expired held deliveries",
            Some(&format!("{n}: {reason}")),
        )?;
        super::operational::dead_letters(
            conn,
            &[(sub.to_string(), n as i64, Some(reason.to_string()))],
            now,
        )?;
    }
    Ok(n)
}

pub(super) fn prune(conn: &Connection, before: Millis, from: Millis, limit: u32) -> Result<Pruned> {
    // Only events whose every delivery is final: retention never drops work still to do.
    // Oldest first, through the received_at index, from where the last step stopped.
    let doomed: Vec<(i64, Millis)> = conn
        .prepare_cached(
            "SELECT seq, received_at FROM events \
             WHERE received_at >= ?1 AND received_at < ?2 AND NOT EXISTS \
             (SELECT 1 FROM deliveries d \
             WHERE d.event_seq = events.seq AND d.status IN ('pending', 'retrying')) \
             ORDER BY received_at LIMIT ?3",
        )?
        .query_map(params![from, before, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    // Deliveries and attempts go with their events (ON DELETE CASCADE).
    let mut delete = conn.prepare_cached("DELETE FROM events WHERE seq = ?")?;
    for (seq, _) in &doomed {
        delete.execute([seq])?;
    }
    // The audit trail is kept as long as the events it is about.
    prune_audit(conn, before, limit)?;
    Ok(Pruned {
        events: doomed.len() as u64,
        // Events received in the same millisecond as the last one may remain: start there.
        next_from: match doomed.last() {
            Some((_, at)) if doomed.len() as u64 >= u64::from(limit) => Some(*at),
            _ => None,
        },
    })
}
