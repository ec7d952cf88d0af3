//! The recorder: commits attempt outcomes in batches (whatever finished while the last
//! batch was committing) and then tells the scheduler how many leases it may forget.

use crate::store::{Outcome, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Most outcomes in one `record` call.
const MAX_BATCH: usize = 1000;
/// Outcomes gathered are committed once this many came, or the store's gathering time
/// (`Store::outcome_gathering`) is up.
const ENOUGH: usize = 256;

pub async fn run(
    store: Arc<dyn Store>,
    gather: Duration,
    mut rx: mpsc::UnboundedReceiver<Outcome>,
    recorded: mpsc::UnboundedSender<usize>,
    circuit_threshold: u32,
) {
    let mut batch: Vec<Outcome> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        // Gathered for a moment, as long as the store says a batch is worth it.
        let until = tokio::time::Instant::now() + gather;
        loop {
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            if batch.len() >= ENOUGH {
                break;
            }
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(more)) => batch.push(more),
                // Time is up, or the engine is stopping: what is here is committed now.
                Ok(None) | Err(_) => break,
            }
        }
        let n = batch.len();
        // Shared, not copied, with each try: a copy per batch was 5 % of the engine's CPU.
        let outcomes: Arc<[Outcome]> = std::mem::take(&mut batch).into();
        let mut tries = 0;
        loop {
            match store.record(outcomes.clone(), circuit_threshold).await {
                Ok(()) => break,
                Err(e) if tries < 5 => {
                    tries += 1;
                    tracing::warn!("recording {n} outcomes failed (try {tries}): {e:#}");
                    tokio::time::sleep(Duration::from_millis(100 << tries)).await;
                }
                Err(e) => {
                    // The leases stay; a later engine (or the sweep) returns them to the
                    // queue and the attempts are made again: at-least-once, never lost.
                    tracing::error!("giving up recording {n} outcomes: {e:#}");
                    break;
                }
            }
        }
        if recorded.send(n).is_err() {
            return;
        }
    }
}
