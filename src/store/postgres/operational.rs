//! Operational events on PostgreSQL (`crate::ops` decides what they say and when),
//! published in the transaction of the change they report.

use crate::model::Millis;
use crate::ops::{self, News, Subject, Window};
use anyhow::Result;
use sqlx::{PgConnection, Row};

/// The subscription news would be about, unless it takes operational events itself or
/// is gone.
async fn subject(tx: &mut PgConnection, id: &str) -> Result<Option<Subject>> {
    let Some(r) =
        sqlx::query("SELECT name, url, location_id, events FROM subscriptions WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
    else {
        return Ok(None);
    };
    let events: Option<String> = r.try_get("events")?;
    let events: Option<Vec<String>> = events.map(|e| serde_json::from_str(&e)).transpose()?;
    if ops::takes_operational(events.as_deref()) {
        return Ok(None);
    }
    Ok(Some(Subject {
        id: id.to_string(),
        name: r.try_get("name")?,
        url: r.try_get("url")?,
        location_id: r.try_get("location_id")?,
    }))
}

/// Publishes each piece of news some subscription takes; says how many.
pub async fn tell(tx: &mut PgConnection, news: &[(String, News)], now: Millis) -> Result<usize> {
    if news.is_empty() {
        return Ok(0);
    }
    let routes = super::work::routes(&mut *tx).await?;
    let mut events = Vec::new();
    for (id, n) in news {
        if let Some(s) = subject(&mut *tx, id).await? {
            let e = ops::event(&s, n, now);
            if routes
                .iter()
                .any(|r| r.matches(&e.event_type, e.location_id.as_deref()))
            {
                events.push(e);
            }
        }
    }
    if !events.is_empty() {
        super::work::publish_in(&mut *tx, &events).await?;
    }
    Ok(events.len())
}

async fn window(tx: &mut PgConnection, id: &str) -> Result<Option<Window>> {
    let r = sqlx::query(
        "SELECT opened_at, pending, pending_since FROM ops_dead_windows \
         WHERE subscription_id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    r.map(|r| {
        Ok(Window {
            opened_at: r.try_get("opened_at")?,
            pending: r.try_get("pending")?,
            pending_since: r.try_get("pending_since")?,
        })
    })
    .transpose()
}

async fn keep_window(
    tx: &mut PgConnection,
    id: &str,
    w: &Window,
    last_error: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO ops_dead_windows (subscription_id, opened_at, pending, pending_since, last_error) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (subscription_id) DO UPDATE SET \
           opened_at = excluded.opened_at, pending = excluded.pending, \
           pending_since = excluded.pending_since, \
           last_error = coalesce(excluded.last_error, ops_dead_windows.last_error)",
    )
    .bind(id)
    .bind(w.opened_at)
    .bind(w.pending)
    .bind(w.pending_since)
    .bind(last_error)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Dead letters of a batch by subscription (count, the last one's error): the first of an
/// endpoint's window is told at once, the rest when the window ends.
pub async fn dead_letters(
    tx: &mut PgConnection,
    deaths: &[(String, i64, Option<String>)],
    now: Millis,
) -> Result<()> {
    let mut news = Vec::new();
    for (id, n, last_error) in deaths {
        if subject(&mut *tx, id).await?.is_none() {
            continue;
        }
        let (told, w) = ops::on_dead(window(&mut *tx, id).await?, *n, now);
        keep_window(&mut *tx, id, &w, last_error.as_deref()).await?;
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
    tell(tx, &news, now).await?;
    Ok(())
}
