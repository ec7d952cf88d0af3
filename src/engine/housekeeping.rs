//! The engine's chores beside delivery, run from the scheduler's loop when due: retention
//! (in steps, on a task of its own), deliveries held behind an open circuit for longer than
//! their retry schedule, leases that outlived their attempt, and operational events due by
//! time (dead-letter windows, backlog alerts).

use crate::model::{Millis, SubState, Subscription, now_ms};
use crate::store::{Release, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SWEEP_EVERY: Duration = Duration::from_secs(30);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const EXPIRE_EVERY: Duration = Duration::from_secs(1);
const OPS_EVERY: Duration = Duration::from_secs(2);
/// Events deleted per retention step (one writer transaction each, with their deliveries
/// and attempts): a step takes milliseconds, and publishes and records run between steps
/// instead of waiting behind an hour's worth of deletions.
const PRUNE_STEP: u32 = 200;

pub(super) struct Housekeeping {
    last_prune: Option<Instant>,
    /// Retention runs beside the loop, so that neither claims nor the writer's other work
    /// wait for it.
    pruning: Option<tokio::task::JoinHandle<()>>,
    last_expire: Instant,
    last_sweep: Instant,
    last_ops: Instant,
}

impl Housekeeping {
    pub(super) fn new() -> Housekeeping {
        Housekeeping {
            last_prune: None,
            pruning: None,
            last_expire: Instant::now(),
            last_sweep: Instant::now(),
            last_ops: Instant::now(),
        }
    }

    /// Does whatever chore is due.
    pub(super) async fn run_due(
        &mut self,
        store: &Arc<dyn Store>,
        cfg: &super::EngineConfig,
        subs: &HashMap<String, Arc<Subscription>>,
    ) {
        let retention = cfg.retention;
        // Hourly, or more often when events are kept for less than ten hours.
        let prune_every = PRUNE_EVERY.min(retention / 10).max(Duration::from_secs(1));
        if self.last_prune.is_none_or(|t| t.elapsed() >= prune_every)
            && self.pruning.as_ref().is_none_or(|t| t.is_finished())
        {
            self.last_prune = Some(Instant::now());
            self.pruning = Some(tokio::spawn(prune(
                store.clone(),
                now_ms() - retention.as_millis() as i64,
            )));
        }
        if self.last_expire.elapsed() >= EXPIRE_EVERY && subs.values().any(|s| s.circuit_open) {
            self.last_expire = Instant::now();
            expire_held(store.as_ref(), subs).await;
        }
        if self.last_ops.elapsed() >= OPS_EVERY {
            self.last_ops = Instant::now();
            if let Err(e) = store.ops_tick(cfg.alerts, now_ms()).await {
                tracing::warn!("operational events failed: {e:#}");
            }
        }
        if self.last_sweep.elapsed() >= SWEEP_EVERY {
            self.last_sweep = Instant::now();
            sweep_expired_leases(store.as_ref()).await;
        }
    }

    /// A retention step already with the writer finishes; no new one starts.
    pub(super) fn stop(self) {
        if let Some(t) = self.pruning {
            t.abort();
        }
    }
}

/// An endpoint whose circuit has stayed open longer than its whole retry schedule does not
/// hold its deliveries forever: those older than the schedule go dead.
async fn expire_held(store: &dyn Store, subs: &HashMap<String, Arc<Subscription>>) {
    let now = now_ms();
    for sub in subs
        .values()
        .filter(|s| s.circuit_open && s.state == SubState::Active)
    {
        let schedule: u64 = sub.retry_schedule_ms.iter().sum::<u64>().max(1_000);
        // Jitter may stretch each delay by a fifth; allow for it.
        let max_age = (schedule + schedule / 5) as i64;
        if sub.circuit_changed_at.is_none_or(|t| now - t < max_age) {
            continue;
        }
        let reason = format!(
            "the endpoint's circuit stayed open longer than the retry schedule ({})",
            humantime::format_duration(Duration::from_millis(max_age as u64))
        );
        match store.expire_held(&sub.id, now - max_age, reason).await {
            Ok(n) if n > 0 => {
                tracing::warn!(subscription = %sub.id, expired = n, "held deliveries outlived the retry schedule")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("expiring held deliveries failed: {e:#}"),
        }
    }
}

/// Leases outlive their attempt only when recording failed; return them to the queue.
/// A lease runs the scheduler's margin past its attempt's timeout, and attempts are bounded
/// by that timeout, so an expired lease is not in flight any more.
async fn sweep_expired_leases(store: &dyn Store) {
    if let Err(e) = store.release(Release::ExpiredBefore(now_ms())).await {
        tracing::warn!("returning expired leases failed: {e:#}");
    }
}

/// Retention: old events whose deliveries are all final go, with their attempts, a step
/// at a time.
async fn prune(store: Arc<dyn Store>, before: Millis) {
    let (mut from, mut events) = (Millis::MIN, 0u64);
    loop {
        let started = Instant::now();
        match store.prune(before, from, PRUNE_STEP).await {
            Ok(step) => {
                events += step.events;
                match step.next_from {
                    Some(next) => from = next,
                    None => break,
                }
                crate::store::leave_the_lock_free(started.elapsed()).await;
            }
            Err(e) => {
                tracing::warn!("retention pruning failed: {e:#}");
                break;
            }
        }
    }
    if events > 0 {
        tracing::info!(events, "retention: pruned old events");
    }
}
