//! The delivery engine: a scheduler that leases due deliveries per endpoint (each endpoint
//! has its own in-flight limit, so a slow one only holds its own slots), attempt tasks that
//! send them through the shared HTTP client, and a recorder that commits outcomes in
//! batches and hands the slots back.

pub mod attempt;
pub mod http;
pub mod lock;
pub mod request;
pub mod retry;
pub mod testsend;
pub mod verify;

use crate::model::{Millis, SubState, Subscription, now_ms};
use crate::netguard::Policy;
use crate::store::{Outcome, Release, Store};
use anyhow::Result;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub max_in_flight: usize,
    pub endpoint_in_flight: usize,
    pub policy: Arc<Policy>,
    pub response_body_cap: usize,
    /// How often other processes' commits are looked for.
    pub poll_interval: Duration,
    /// Consecutive failures that open an endpoint's circuit.
    pub circuit_threshold: u32,
    /// While open, one probe per this interval.
    pub probe_interval: Duration,
    /// Events older than this, with every delivery final, are pruned.
    pub retention: Duration,
    /// Source address of outbound connections, so receivers can allowlist it.
    pub bind_address: Option<std::net::IpAddr>,
    /// Between confirmation requests to a pending subscription.
    pub verify_interval: Duration,
}

impl EngineConfig {
    pub fn from_config(c: &crate::config::Config) -> EngineConfig {
        EngineConfig {
            max_in_flight: c.max_in_flight.max(1),
            endpoint_in_flight: c.endpoint_in_flight.max(1),
            policy: Arc::new(Policy::new(c.allow_networks.clone())),
            response_body_cap: c.response_body_cap,
            poll_interval: Duration::from_millis(200),
            circuit_threshold: c.circuit_threshold.max(1),
            probe_interval: c.circuit_probe_interval,
            retention: c.retention(),
            bind_address: c.outbound_bind_address,
            verify_interval: c.verify_interval,
        }
    }
}

/// A running engine. Holds the database's engine lock for as long as it lives.
pub struct Engine {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<()>>,
    _lock: lock::EngineLock,
}

/// How long leases last beyond the attempt's own timeout; expired leases are swept back.
const LEASE_MARGIN_MS: i64 = 60_000;
const SWEEP_EVERY: Duration = Duration::from_secs(30);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How much work a rate-limited endpoint may have claimed ahead, in seconds of its rate.
const RATE_HORIZON_S: f64 = 1.0;

impl Engine {
    /// Starts delivering. Every lease left in the database belonged to an engine that is no
    /// longer running (we hold the lock), so those deliveries go back to the queue first.
    pub async fn start(
        store: Arc<dyn Store>,
        local_commits: Arc<Notify>,
        lock: lock::EngineLock,
        cfg: EngineConfig,
    ) -> Result<Engine> {
        let reclaimed = store.release(Release::All).await?;
        if reclaimed > 0 {
            tracing::info!(
                reclaimed,
                "returned deliveries leased by a previous engine to the queue"
            );
        }
        let sender = Arc::new(http::Sender::new(
            cfg.policy.clone(),
            cfg.response_body_cap,
            cfg.endpoint_in_flight,
            cfg.bind_address,
        )?);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
        let (freed_tx, freed_rx) = mpsc::unbounded_channel();
        tokio::spawn(record_outcomes(
            store.clone(),
            outcomes_rx,
            freed_tx,
            cfg.circuit_threshold,
        ));
        let scheduler = Scheduler {
            store,
            cfg,
            sender,
            subs: HashMap::new(),
            in_flight: HashMap::new(),
            total: 0,
            last_probe: HashMap::new(),
            values: Arc::new(Vec::new()),
            gates: HashMap::new(),
            verifying: HashMap::new(),
            outcomes_tx,
            freed_rx,
            local_commits,
        };
        let task = tokio::spawn(scheduler.run(shutdown_rx));
        Ok(Engine {
            shutdown,
            task,
            _lock: lock,
        })
    }

    /// Stops claiming, lets attempts in flight finish for up to `deadline`, returns what is
    /// still leased to the queue, and releases the lock.
    pub async fn drain(self, deadline: Duration) -> Result<()> {
        let _ = self.shutdown.send(true);
        match tokio::time::timeout(deadline + Duration::from_secs(5), self.task).await {
            Ok(joined) => joined?,
            Err(_) => anyhow::bail!("engine did not stop within the drain deadline"),
        }
    }

    /// Drain deadline that lets every attempt in flight reach its own timeout.
    pub fn default_drain_deadline() -> Duration {
        Duration::from_secs(30)
    }
}

struct Scheduler {
    store: Arc<dyn Store>,
    cfg: EngineConfig,
    sender: Arc<http::Sender>,
    subs: HashMap<String, Arc<Subscription>>,
    in_flight: HashMap<String, usize>,
    total: usize,
    /// When each open circuit was last probed.
    last_probe: HashMap<String, Millis>,
    /// Custom values for templates, read with the subscriptions.
    values: Arc<Vec<crate::store::CustomValue>>,
    /// Pending subscriptions: when their last confirmation request went out.
    verifying: HashMap<String, Instant>,
    /// Rate-limited endpoints: when the next send may start (ms), one lock per endpoint.
    gates: HashMap<String, Arc<tokio::sync::Mutex<f64>>>,
    outcomes_tx: mpsc::UnboundedSender<(String, Outcome)>,
    freed_rx: mpsc::UnboundedReceiver<Vec<String>>,
    local_commits: Arc<Notify>,
}

impl Scheduler {
    async fn refresh_subs(&mut self) -> Result<()> {
        self.subs = self
            .store
            .subscriptions()
            .await?
            .into_iter()
            .map(|s| (s.id.clone(), Arc::new(s)))
            .collect();
        self.values = Arc::new(self.store.values().await?);
        Ok(())
    }

    fn free(&mut self, subs: Vec<String>) {
        for s in subs {
            if let Some(n) = self.in_flight.get_mut(&s) {
                *n = n.saturating_sub(1);
            }
            self.total = self.total.saturating_sub(1);
        }
    }

    /// When an endpoint with an open circuit may be probed next.
    fn probe_at(&self, sub: &Subscription) -> Option<Millis> {
        if !sub.circuit_open || sub.state != SubState::Active {
            return None;
        }
        let since = self
            .last_probe
            .get(&sub.id)
            .copied()
            .max(sub.circuit_changed_at)
            .unwrap_or(0);
        Some(since + self.cfg.probe_interval.as_millis() as i64)
    }

    /// The earliest probe of any open circuit: a wake-up of its own, since nothing else
    /// may change while an endpoint is down.
    fn next_probe(&self) -> Option<Millis> {
        self.subs
            .values()
            .filter(|s| self.in_flight.get(&s.id).copied().unwrap_or(0) == 0)
            .filter_map(|s| self.probe_at(s))
            .min()
    }

    /// Leases what each active endpoint has room for and starts the attempts.
    async fn claim_and_dispatch(&mut self) -> Result<()> {
        let mut room = self.cfg.max_in_flight.saturating_sub(self.total);
        if room == 0 {
            return Ok(());
        }
        let mut wants = Vec::new();
        let mut max_timeout = 0u64;
        let now = now_ms();
        let probe_ms = self.cfg.probe_interval.as_millis() as i64;
        let mut probing: Vec<String> = Vec::new();
        for sub in self.subs.values().filter(|s| s.state == SubState::Active) {
            let busy = self.in_flight.get(&sub.id).copied().unwrap_or(0);
            let n = if sub.circuit_open {
                // Open circuit: one probe at a time, one per interval; the rest waits
                // in the database without spending retries.
                if busy == 0 && self.probe_at(sub).is_some_and(|t| t <= now) {
                    probing.push(sub.id.clone());
                    1
                } else {
                    0
                }
            } else {
                let slots = self.cfg.endpoint_in_flight.saturating_sub(busy).min(room);
                match sub.rate_per_sec.filter(|r| *r > 0.0) {
                    // Rate-limited: no more than a second's worth claimed ahead; the
                    // endpoint's gate spaces the sends themselves.
                    Some(rate) => {
                        slots.min(((rate * RATE_HORIZON_S).ceil() as usize).saturating_sub(busy))
                    }
                    None => slots,
                }
            };
            if n > 0 {
                room -= n;
                max_timeout = max_timeout.max(sub.timeout_ms);
                wants.push((sub.id.clone(), n));
            }
            if room == 0 {
                break;
            }
        }
        if wants.is_empty() {
            return Ok(());
        }
        let lease_until = now + max_timeout as i64 + LEASE_MARGIN_MS;
        let jobs = self.store.claim(wants, now, lease_until).await?;
        let mut orphans = Vec::new();
        for job in jobs {
            let Some(sub) = self.subs.get(&job.subscription_id).cloned() else {
                orphans.push(job.delivery_id);
                continue;
            };
            *self.in_flight.entry(sub.id.clone()).or_default() += 1;
            self.total += 1;
            let probe = probing.contains(&sub.id);
            if probe {
                self.last_probe.insert(sub.id.clone(), now);
                tracing::info!(subscription = %sub.id, "circuit open: probing with delivery {}", job.delivery_id);
            }
            let mode = attempt::Mode {
                probe,
                probe_interval_ms: probe_ms,
            };
            let gate = sub.rate_per_sec.filter(|r| *r > 0.0).map(|rate| {
                let g = self
                    .gates
                    .entry(sub.id.clone())
                    .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(0.0)))
                    .clone();
                (g, 1000.0 / rate)
            });
            let sender = self.sender.clone();
            let tx = self.outcomes_tx.clone();
            let values = self.values.clone();
            tokio::spawn(async move {
                if let Some((gate, interval)) = gate {
                    // Sends pass the gate one at a time, each `interval` after the last
                    // actual send: a late start pushes the next ones back too.
                    let mut next = gate.lock().await;
                    let wait = *next - now_ms() as f64;
                    if wait > 0.0 {
                        tokio::time::sleep(Duration::from_micros((wait * 1000.0) as u64)).await;
                    }
                    *next = now_ms() as f64 + interval;
                }
                let outcome = attempt::run(&sender, &sub, job, mode, &values).await;
                let _ = tx.send((sub.id.clone(), outcome));
            });
        }
        if !orphans.is_empty() {
            self.store.release(Release::Ids(orphans)).await?;
        }
        Ok(())
    }

    async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        self.refresh_subs().await?;
        let mut counter = self.store.change_counter().await?;
        let mut last_poll = Instant::now();
        let mut last_sweep = Instant::now();
        let mut last_prune: Option<Instant> = None;
        let mut last_expire = Instant::now();
        let mut dirty = true;
        // The next time something becomes due, if that is in the future. Work already due
        // but not claimable (endpoint saturated, circuit open) wakes us through freed slots,
        // commits and polls instead, never through a zero-length timer.
        let mut next_due: Option<Millis> = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Armed before claiming, so a commit that lands meanwhile still wakes us.
            let commits = self.local_commits.clone();
            let notified = commits.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let wake_at = match (next_due, self.next_probe()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let due = wake_at.is_some_and(|t| t <= now_ms());
            if dirty || due {
                dirty = false;
                if let Err(e) = self.claim_and_dispatch().await {
                    tracing::warn!("claiming deliveries failed: {e:#}");
                }
                next_due = match self.store.next_due().await {
                    Ok(t) => t.filter(|t| *t > now_ms()),
                    Err(e) => {
                        tracing::warn!("reading the next due time failed: {e:#}");
                        None
                    }
                };
            }
            // Hourly, or more often when events are kept for less than ten hours.
            let prune_every = PRUNE_EVERY
                .min(self.cfg.retention / 10)
                .max(Duration::from_secs(1));
            if last_prune.is_none_or(|t| t.elapsed() >= prune_every) {
                last_prune = Some(Instant::now());
                self.prune().await;
            }
            self.verify_pending();
            if last_expire.elapsed() >= Duration::from_secs(1)
                && self.subs.values().any(|s| s.circuit_open)
            {
                last_expire = Instant::now();
                self.expire_held().await;
            }
            if last_sweep.elapsed() >= SWEEP_EVERY {
                last_sweep = Instant::now();
                self.sweep_expired_leases().await;
            }
            let wake_at = match (next_due, self.next_probe()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let until_due = wake_at
                .map(|t| Duration::from_millis((t - now_ms()).max(1) as u64))
                .unwrap_or(self.cfg.poll_interval);
            let poll_in = self.cfg.poll_interval.saturating_sub(last_poll.elapsed());
            let wait = until_due.min(poll_in);
            tokio::select! {
                // A dropped Engine (no drain) stops the scheduler too, instead of
                // leaving it spinning on a closed channel.
                r = shutdown.changed() => if r.is_err() { break },
                Some(freed) = self.freed_rx.recv() => {
                    self.free(freed);
                    while let Ok(more) = self.freed_rx.try_recv() {
                        self.free(more);
                    }
                    dirty = true;
                }
                _ = &mut notified => { dirty = true; }
                _ = tokio::time::sleep(wait) => {}
            }
            if last_poll.elapsed() >= self.cfg.poll_interval {
                last_poll = Instant::now();
                match self.store.change_counter().await {
                    Ok(c) if c != counter => {
                        counter = c;
                        if let Err(e) = self.refresh_subs().await {
                            tracing::warn!("reading subscriptions failed: {e:#}");
                        }
                        dirty = true;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("polling for changes failed: {e:#}"),
                }
            }
        }
        self.finish().await
    }

    /// Sends each pending subscription its confirmation request, once per interval.
    fn verify_pending(&mut self) {
        let interval = self.cfg.verify_interval;
        for sub in self.subs.values().filter(|s| s.state == SubState::Pending) {
            if self
                .verifying
                .get(&sub.id)
                .is_some_and(|t| t.elapsed() < interval)
            {
                continue;
            }
            self.verifying.insert(sub.id.clone(), Instant::now());
            let (store, sender, sub) = (self.store.clone(), self.sender.clone(), sub.clone());
            tokio::spawn(async move {
                if let Err(e) = verify::confirm(store.as_ref(), &sender, &sub).await {
                    tracing::warn!(subscription = %sub.id, "confirmation failed: {e:#}");
                }
            });
        }
    }

    /// Retention: old events whose deliveries are all final go, with their attempts.
    async fn prune(&self) {
        let before = now_ms() - self.cfg.retention.as_millis() as i64;
        match self.store.prune(before).await {
            Ok(c) if c.events > 0 => {
                tracing::info!(events = c.events, "retention: pruned old events")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("retention pruning failed: {e:#}"),
        }
    }

    /// An endpoint whose circuit has stayed open longer than its whole retry schedule
    /// does not hold its deliveries forever: those older than the schedule go dead.
    async fn expire_held(&self) {
        let now = now_ms();
        for sub in self
            .subs
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
            match self.store.expire_held(&sub.id, now - max_age, reason).await {
                Ok(n) if n > 0 => {
                    tracing::warn!(subscription = %sub.id, expired = n, "held deliveries outlived the retry schedule")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("expiring held deliveries failed: {e:#}"),
            }
        }
    }

    /// Leases outlive their attempt only when recording failed; return them to the queue.
    /// A lease runs LEASE_MARGIN_MS past its attempt's timeout, and attempts are bounded by
    /// that timeout, so an expired lease is not in flight any more.
    async fn sweep_expired_leases(&self) {
        if let Err(e) = self.store.release(Release::ExpiredBefore(now_ms())).await {
            tracing::warn!("returning expired leases failed: {e:#}");
        }
    }

    async fn finish(mut self) -> Result<()> {
        let longest = self.subs.values().map(|s| s.timeout_ms).max().unwrap_or(0);
        let deadline = Instant::now() + Duration::from_millis(longest) + Duration::from_secs(2);
        while self.total > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, self.freed_rx.recv()).await {
                Ok(Some(freed)) => self.free(freed),
                _ => break,
            }
        }
        if self.total > 0 {
            tracing::warn!(
                in_flight = self.total,
                "drain deadline reached; returning unfinished deliveries to the queue"
            );
        }
        let released = self.store.release(Release::All).await?;
        tracing::info!(released, "engine stopped");
        Ok(())
    }
}

/// Commits outcomes in batches (whatever finished while the last batch was committing),
/// then frees the slots of those deliveries.
async fn record_outcomes(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<(String, Outcome)>,
    freed: mpsc::UnboundedSender<Vec<String>>,
    circuit_threshold: u32,
) {
    let mut batch: Vec<(String, Outcome)> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 1000 {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let (subs, outcomes): (Vec<String>, Vec<Outcome>) = batch.drain(..).unzip();
        let mut tries = 0;
        loop {
            match store.record(outcomes.clone(), circuit_threshold).await {
                Ok(()) => break,
                Err(e) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(
                        "recording {} outcomes failed (try {tries}): {e:#}",
                        outcomes.len()
                    );
                    tokio::time::sleep(Duration::from_millis(100 << tries)).await;
                }
                Err(e) => {
                    // The leases stay; a later engine (or the sweep) returns them to the
                    // queue and the attempts are made again: at-least-once, never lost.
                    tracing::error!("giving up recording {} outcomes: {e:#}", outcomes.len());
                    break;
                }
            }
        }
        if freed.send(subs).is_err() {
            return;
        }
    }
}
