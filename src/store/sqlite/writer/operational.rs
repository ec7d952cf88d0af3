//! Operational events (`crate::ops` decides what they say and when), published in the
//! transaction of the change they report.

use super::*;
use crate::ops::{self, Alert, Backlog, News, Subject, Window};
use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};

/// The subscription news would be about, unless it takes operational events itself or
/// is gone.
fn subject(conn: &Connection, id: &str) -> Result<Option<Subject>> {
    let row: Option<(String, String, Option<String>, Option<String>)> = conn
        .prepare_cached("SELECT name, url, location_id, events FROM subscriptions WHERE id = ?")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((name, url, location_id, events)) = row else {
        return Ok(None);
    };
    let events: Option<Vec<String>> = events.map(|e| serde_json::from_str(&e)).transpose()?;
    if ops::takes_operational(events.as_deref()) {
        return Ok(None);
    }
    Ok(Some(Subject {
        id: id.to_string(),
        name,
        url,
        location_id,
    }))
}

/// Publishes each piece of news about a subscription that may be told of; says how many.
pub(super) fn tell(conn: &Connection, news: &[(String, News)], now: Millis) -> Result<usize> {
    if news.is_empty() {
        return Ok(0);
    }
    let routes = super::publish::routes(conn)?;
    let mut events = Vec::new();
    for (id, n) in news {
        if let Some(s) = subject(conn, id)? {
            let e = ops::event(&s, n, now);
            // News nobody subscribed to is not stored: without an ops subscription the
            // stream shows the product's events only.
            if routes
                .iter()
                .any(|r| r.matches(&e.event_type, e.location_id.as_deref()))
            {
                events.push(e);
            }
        }
    }
    if !events.is_empty() {
        super::publish::publish_routed(conn, &events, &routes)?;
    }
    Ok(events.len())
}

fn window(conn: &Connection, id: &str) -> Result<Option<Window>> {
    Ok(conn
        .prepare_cached(
            "SELECT opened_at, pending, pending_since FROM ops_dead_windows WHERE subscription_id = ?",
        )?
        .query_row([id], |r| {
            Ok(Window {
                opened_at: r.get(0)?,
                pending: r.get(1)?,
                pending_since: r.get(2)?,
            })
        })
        .optional()?)
}

fn keep_window(conn: &Connection, id: &str, w: &Window, last_error: Option<&str>) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO ops_dead_windows (subscription_id, opened_at, pending, pending_since, last_error) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(subscription_id) DO UPDATE SET \
           opened_at = excluded.opened_at, pending = excluded.pending, \
           pending_since = excluded.pending_since, \
           last_error = coalesce(excluded.last_error, last_error)",
    )?
    .execute(params![id, w.opened_at, w.pending, w.pending_since, last_error])?;
    Ok(())
}

/// Dead letters of a batch, by subscription (count, the last one's error): the first of an
/// endpoint's window is told at once, the rest when the window ends.
pub(super) fn dead_letters(
    conn: &Connection,
    deaths: &[(String, i64, Option<String>)],
    now: Millis,
) -> Result<()> {
    let mut news = Vec::new();
    for (id, n, last_error) in deaths {
        if subject(conn, id)?.is_none() {
            continue;
        }
        let (told, w) = ops::on_dead(window(conn, id)?, *n, now);
        keep_window(conn, id, &w, last_error.as_deref())?;
        if let Some((count, first_at)) = told {
            news.push((
                id.clone(),
                News::DeadLettered {
                    count,
                    first_at,
                    last_error: last_error.clone(),
                },
            ));
        }
    }
    tell(conn, &news, now)?;
    Ok(())
}

/// The periodic part: dead-letter windows that ended with deaths untold, and backlog
/// alerts raised or cleared. Returns how many events it published.
pub(super) fn tick(
    conn: &Connection,
    backlogs: &[Backlog],
    limits: ops::Limits,
    now: Millis,
) -> Result<usize> {
    let mut news: Vec<(String, News)> = Vec::new();
    let ended: Vec<(String, Window, Option<String>)> = conn
        .prepare_cached(
            "SELECT subscription_id, opened_at, pending, pending_since, last_error \
             FROM ops_dead_windows WHERE opened_at <= ?",
        )?
        .query_map([now - ops::DEAD_WINDOW_MS], |r| {
            Ok((
                r.get(0)?,
                Window {
                    opened_at: r.get(1)?,
                    pending: r.get(2)?,
                    pending_since: r.get(3)?,
                },
                r.get(4)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (id, w, last_error) in ended {
        match ops::window_ends(w, now) {
            (told, Some(next)) => {
                keep_window(conn, &id, &next, None)?;
                if let Some((count, first_at)) = told {
                    news.push((
                        id,
                        News::DeadLettered {
                            count,
                            first_at,
                            last_error,
                        },
                    ));
                }
            }
            (_, None) => {
                conn.prepare_cached("DELETE FROM ops_dead_windows WHERE subscription_id = ?")?
                    .execute([&id])?;
            }
        }
    }
    for b in backlogs {
        let raised: Vec<String> = conn
            .prepare_cached("SELECT kind FROM ops_alerts WHERE subscription_id = ?")?
            .query_map([&b.subscription_id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let was = |alert: Alert| raised.iter().any(|k| k == alert.as_str());
        for (alert, is, told) in ops::alert_changes(&limits, b, was, now) {
            if is {
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO ops_alerts (subscription_id, kind, raised_at) VALUES (?, ?, ?)",
                )?
                .execute(params![b.subscription_id, alert.as_str(), now])?;
            } else {
                conn.prepare_cached(
                    "DELETE FROM ops_alerts WHERE subscription_id = ? AND kind = ?",
                )?
                .execute(params![b.subscription_id, alert.as_str()])?;
            }
            news.push((b.subscription_id.clone(), told));
        }
    }
    // Windows and alerts of subscriptions removed since.
    conn.prepare_cached(
        "DELETE FROM ops_alerts WHERE subscription_id NOT IN (SELECT id FROM subscriptions)",
    )?
    .execute([])?;
    conn.prepare_cached(
        "DELETE FROM ops_dead_windows WHERE subscription_id NOT IN (SELECT id FROM subscriptions)",
    )?
    .execute([])?;
    tell(conn, &news, now)
}
