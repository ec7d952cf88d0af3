//! Publishes from many callers at once go in one transaction: what is queued while the
//! last one commits is stored together, as the SQLite writer does. One commit per
//! request cost a commit's round trips and its WAL flush every time, and the counters'
//! and notices' statements with it.

use super::{admin, work};
use crate::store::{NewEvent, Published, TokenRevoked};
use anyhow::Result;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

/// Events in one transaction at most.
const MAX_EVENTS: usize = 2_000;

pub struct Publish {
    pub events: Vec<NewEvent>,
    /// The API token the events come with, checked in the transaction.
    pub token: Option<String>,
    pub reply: oneshot::Sender<Result<Vec<Published>>>,
}

/// Publishers working at once: while one waits for its commit to be flushed, the next
/// gathers and writes its batch.
pub const PUBLISHERS: usize = 2;

/// One publisher: runs until every sender is gone; `committed` is told after each commit.
pub async fn run(
    pool: PgPool,
    rx: std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<Publish>>>,
    committed: impl Fn(),
) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut batch = vec![first];
            let mut events = batch[0].events.len();
            while events < MAX_EVENTS {
                match rx.try_recv() {
                    Ok(more) => {
                        events += more.events.len();
                        batch.push(more);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        match together(&pool, &batch).await {
            Ok(answers) => {
                committed();
                for (p, a) in batch.into_iter().zip(answers) {
                    let _ = p.reply.send(a);
                }
            }
            // Something in the batch failed it: each goes again on its own, so one bad
            // publish fails alone.
            Err(_) => {
                for p in batch {
                    let r = alone(&pool, &p).await;
                    if r.is_ok() {
                        committed();
                    }
                    let _ = p.reply.send(r);
                }
            }
        }
    }
}

/// One transaction for the batch: each publish's answer, a revoked token's refused.
async fn together(pool: &PgPool, batch: &[Publish]) -> Result<Vec<Result<Vec<Published>>>> {
    let mut tx = pool.begin().await?;
    let mut live = std::collections::HashMap::new();
    for token in batch.iter().filter_map(|p| p.token.as_deref()) {
        if !live.contains_key(token) {
            live.insert(token, admin::token_live(&mut tx, token).await?);
        }
    }
    let refused = |p: &Publish| {
        p.token
            .as_deref()
            .is_some_and(|t| live.get(t) == Some(&false))
    };
    let all: Vec<NewEvent> = batch
        .iter()
        .filter(|p| !refused(p))
        .flat_map(|p| p.events.iter().cloned())
        .collect();
    // It notifies the workers when it made deliveries.
    let mut stored = work::publish_in(&mut tx, &all).await?.into_iter();
    tx.commit().await?;
    Ok(batch
        .iter()
        .map(|p| {
            if refused(p) {
                Err(anyhow::Error::new(TokenRevoked))
            } else {
                Ok(stored.by_ref().take(p.events.len()).collect())
            }
        })
        .collect())
}

async fn alone(pool: &PgPool, p: &Publish) -> Result<Vec<Published>> {
    let mut tx = pool.begin().await?;
    if let Some(token) = &p.token
        && !admin::token_live(&mut tx, token).await?
    {
        return Err(anyhow::Error::new(TokenRevoked));
    }
    let out = work::publish_in(&mut tx, &p.events).await?;
    tx.commit().await?;
    Ok(out)
}
