//! The scheduler: leases due deliveries per endpoint into lanes and starts their attempts.
//!
//! Each active endpoint has a lane: leased jobs waiting to start (`ready`, claimed a few
//! batches ahead so the next request can start the moment one ends) and a count of requests
//! on the wire, bounded by the endpoint's own limit (this engine's part of it, where
//! engines share the endpoints) — a slow endpoint only fills its own lane. An endpoint's
//! slot is free as soon as its HTTP exchange ends; the lease itself is forgotten once the
//! recorder has committed the outcome. Everything leased in memory
//! (ready, sending, awaiting its commit) stays within a fixed budget, so a backlog waits
//! in the database, not here.

use super::housekeeping::Housekeeping;
use super::{EngineConfig, attempt, http, verify};
use crate::model::{Millis, SubState, Subscription, now_ms};
use crate::store::{Claim, Job, LocalCommits, Outcome, Release, Store};
use anyhow::Result;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// How long leases last beyond the attempt's own timeout; expired leases are swept back.
const LEASE_MARGIN_MS: i64 = 60_000;
/// How much work a rate-limited endpoint may have claimed ahead, in seconds of its rate.
const RATE_HORIZON_S: f64 = 1.0;
/// A lane holds up to this many times its endpoint's limit (sending and ready): a claim
/// can wait several milliseconds behind a record batch in the writer, and a lane with only
/// one batch ahead runs dry meanwhile (measured: sends fell to zero between claims).
const LOOKAHEAD: usize = 4;

/// How many jobs a lane keeps ready: enough to go on sending for two claims' round trips
/// at this endpoint's pace (`limit` requests finish every `exchange_ms`), within half a
/// batch and LOOKAHEAD − 1 batches. A slow endpoint drains its lane slowly and so needs
/// few ready, leaving the shared budget to the fast ones (with a flat lookahead it held a
/// quarter of the budget while answering 320 requests a second).
fn ready_target(limit: usize, claim_ms: f64, exchange_ms: f64) -> usize {
    let (low, high) = (limit.div_ceil(2), (LOOKAHEAD - 1) * limit);
    if exchange_ms <= 0.0 {
        return high;
    }
    let pace = limit as f64 / exchange_ms;
    ((2.0 * pace * claim_ms.max(1.0)).ceil() as usize).clamp(low, high)
}

/// Moving averages of times in ms: recent ones weigh a fifth.
fn smooth(avg: f64, sample: f64) -> f64 {
    if avg <= 0.0 {
        sample
    } else {
        avg + (sample - avg) / 5.0
    }
}

/// One endpoint's work in memory.
#[derive(Default)]
struct Lane {
    /// Leased, not started yet.
    ready: VecDeque<Job>,
    /// Requests started and not yet answered (or waiting at the rate gate).
    sending: usize,
    /// The job in `ready` is a probe of an open circuit.
    probe_ready: bool,
    /// When the open circuit was last probed.
    last_probe: Option<Millis>,
    /// Rate-limited endpoints: when the next send may start (ms).
    gate: Option<Arc<tokio::sync::Mutex<f64>>>,
    /// The last claim found less due work than it asked for: no point asking again until
    /// something is committed or comes due.
    drained: bool,
    /// The endpoint's HTTP exchanges lately, ms (0 before the first).
    exchange_ms: f64,
}

impl Lane {
    /// Jobs this lane may hold, sending and ready.
    fn target(&self, limit: usize, claim_ms: f64) -> usize {
        limit + ready_target(limit, claim_ms, self.exchange_ms)
    }
}

/// A claim's answer, sent back by the task that waited for the store.
struct Claimed {
    claim: Result<Claim>,
    wants: Vec<(String, usize)>,
    probing: Vec<String>,
}

pub(super) struct Scheduler {
    pub store: Arc<dyn Store>,
    pub cfg: EngineConfig,
    pub sender: Arc<http::Sender>,
    pub subs: HashMap<String, Arc<Subscription>>,
    lanes: HashMap<String, Lane>,
    /// Jobs leased in memory: ready, sending, or sent and not yet recorded.
    held: usize,
    /// Requests on the wire, all endpoints.
    sending: usize,
    /// Requests each endpoint may have on the wire from this engine, as the last claim
    /// said (0 before the first): where engines share an endpoint, a part of its limit.
    lane_limit: usize,
    /// Custom values for templates, read with the subscriptions.
    values: Arc<Vec<crate::store::CustomValue>>,
    /// Pending subscriptions: when their last confirmation request went out.
    verifying: HashMap<String, Instant>,
    outcomes_tx: mpsc::UnboundedSender<Outcome>,
    /// An attempt's HTTP exchange ended (its endpoint's id, how long it took).
    sent_tx: mpsc::UnboundedSender<(String, Duration)>,
    sent_rx: mpsc::UnboundedReceiver<(String, Duration)>,
    /// The recorder committed this many outcomes.
    recorded_rx: mpsc::UnboundedReceiver<usize>,
    claimed_tx: mpsc::UnboundedSender<Claimed>,
    claimed_rx: mpsc::UnboundedReceiver<Claimed>,
    /// A claim is on its way to the store (one at a time), since when.
    claiming: bool,
    claim_started: Instant,
    /// Work-making commits seen when the claim on its way was asked for.
    claim_generation: u64,
    /// Claims' round trips lately, ms.
    claim_ms: f64,
    local_commits: Arc<LocalCommits>,
    /// Where the next claim starts among the endpoints, so none always comes first.
    turn: usize,
}

impl Scheduler {
    pub fn new(
        store: Arc<dyn Store>,
        cfg: EngineConfig,
        sender: Arc<http::Sender>,
        outcomes_tx: mpsc::UnboundedSender<Outcome>,
        recorded_rx: mpsc::UnboundedReceiver<usize>,
        local_commits: Arc<LocalCommits>,
    ) -> Scheduler {
        let (sent_tx, sent_rx) = mpsc::unbounded_channel();
        let (claimed_tx, claimed_rx) = mpsc::unbounded_channel();
        Scheduler {
            store,
            cfg,
            sender,
            subs: HashMap::new(),
            lanes: HashMap::new(),
            held: 0,
            sending: 0,
            lane_limit: 0,
            values: Arc::new(Vec::new()),
            verifying: HashMap::new(),
            outcomes_tx,
            sent_tx,
            sent_rx,
            recorded_rx,
            claimed_tx,
            claimed_rx,
            claiming: false,
            claim_started: Instant::now(),
            claim_generation: 0,
            claim_ms: 0.0,
            local_commits,
            turn: 0,
        }
    }

    /// Leases in memory at most: one batch on the wire and one ready, for every slot.
    fn budget(&self) -> usize {
        self.cfg.max_in_flight * 2
    }

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

    /// Requests one endpoint may have on the wire from this engine.
    fn limit(&self) -> usize {
        match self.lane_limit {
            0 => self.cfg.endpoint_in_flight,
            n => n,
        }
    }

    /// The most requests this engine has, or may start before the next claim's answer,
    /// on the wire to any one endpoint.
    fn on_wire(&self) -> usize {
        let widest = self.lanes.values().map(|l| l.sending).max().unwrap_or(0);
        widest.max(self.lane_limit)
    }

    fn sent(&mut self, (sub, took): &(String, Duration)) {
        if let Some(lane) = self.lanes.get_mut(sub) {
            lane.sending = lane.sending.saturating_sub(1);
            lane.exchange_ms = smooth(lane.exchange_ms, took.as_secs_f64() * 1000.0);
        }
        self.sending = self.sending.saturating_sub(1);
    }

    /// When an endpoint with an open circuit may be probed next.
    fn probe_at(&self, sub: &Subscription) -> Option<Millis> {
        if !sub.circuit_open || sub.state != SubState::Active {
            return None;
        }
        let since = self
            .lanes
            .get(&sub.id)
            .and_then(|l| l.last_probe)
            .max(sub.circuit_changed_at)
            .unwrap_or(0);
        Some(since + self.cfg.probe_interval.as_millis() as i64)
    }

    /// The earliest probe of any open circuit: a wake-up of its own, since nothing else
    /// may change while an endpoint is down.
    fn next_probe(&self) -> Option<Millis> {
        self.subs
            .values()
            .filter(|s| self.lanes.get(&s.id).is_none_or(|l| l.sending == 0))
            .filter_map(|s| self.probe_at(s))
            .min()
    }

    /// Asks the store to lease what each active endpoint's lane has room for. The answer
    /// comes back on `claimed_rx`, so requests keep starting from the lanes meanwhile.
    /// False when there was nothing to ask for.
    fn start_claim(&mut self) -> bool {
        // Read before `now` is: work committed after this read counts as news when the
        // claim comes back short, and work committed before it is due by `now` (its due
        // time was set before its commit), so the claim sees it.
        let generation = self.local_commits.generation.load(Ordering::Acquire);
        let mut room = self.budget().saturating_sub(self.held);
        if room == 0 {
            return false;
        }
        let now = now_ms();
        let per_endpoint = self.limit();
        let mut wants = Vec::new();
        let mut max_timeout = 0u64;
        let mut probing = Vec::new();
        let mut active: Vec<&Arc<Subscription>> = self
            .subs
            .values()
            .filter(|s| s.state == SubState::Active)
            .collect();
        if active.is_empty() {
            return false;
        }
        active.sort_by(|a, b| a.id.cmp(&b.id));
        self.turn = (self.turn + 1) % active.len();
        active.rotate_left(self.turn);
        for sub in active {
            let (sending, ready, drained, lane_target) =
                self.lanes
                    .get(&sub.id)
                    .map_or((0, 0, false, LOOKAHEAD * per_endpoint), |l| {
                        (
                            l.sending,
                            l.ready.len(),
                            l.drained,
                            l.target(per_endpoint, self.claim_ms),
                        )
                    });
            let n = if sub.circuit_open {
                // Open circuit: one probe at a time, one per interval; the rest waits
                // in the database without spending retries.
                if sending == 0 && ready == 0 && self.probe_at(sub).is_some_and(|t| t <= now) {
                    probing.push(sub.id.clone());
                    1
                } else {
                    0
                }
            } else if drained {
                // It had no more due work at the last claim.
                0
            } else {
                let target = match sub.rate_per_sec.filter(|r| *r > 0.0) {
                    // Rate-limited: no more than a second's worth claimed ahead; the
                    // endpoint's gate spaces the sends themselves.
                    Some(rate) => lane_target.min((rate * RATE_HORIZON_S).ceil() as usize),
                    None => lane_target,
                };
                let n = target.saturating_sub(sending + ready);
                // Claims go out in batches, not one job at a time.
                if n < per_endpoint.min(target).div_ceil(2) {
                    0
                } else {
                    n
                }
            };
            let n = n.min(room);
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
            return false;
        }
        let lease_until = now + max_timeout as i64 + LEASE_MARGIN_MS;
        // Reserved now, so the budget holds while the answer is on its way.
        self.held += wants.iter().map(|(_, n)| n).sum::<usize>();
        self.claim_generation = generation;
        let (store, tx) = (self.store.clone(), self.claimed_tx.clone());
        let on_wire = self.on_wire();
        tokio::spawn(async move {
            let claim = store
                .claim_for_lanes(wants.clone(), now, lease_until, on_wire)
                .await;
            let _ = tx.send(Claimed {
                claim,
                wants,
                probing,
            });
        });
        true
    }

    /// Puts a claim's jobs in their lanes; true when some lane got less than it asked for
    /// (the queue is empty there, so the next due time is worth reading). A lane is marked
    /// drained only if nothing that makes work was committed since the claim was asked
    /// for: that commit's wake-up may have come before this answer, and a lane marked
    /// drained after it would wait for the next commit, which may never come.
    fn claimed(&mut self, c: Claimed) -> bool {
        let moved = self.local_commits.generation.load(Ordering::Acquire) != self.claim_generation;
        let asked: usize = c.wants.iter().map(|(_, n)| n).sum();
        let jobs = match c.claim {
            Ok(claim) => {
                // Applied before any of its jobs starts: the store counts on it.
                self.lane_limit = claim
                    .lane_limit
                    .unwrap_or(self.cfg.endpoint_in_flight)
                    .clamp(1, self.cfg.endpoint_in_flight);
                claim.jobs
            }
            Err(e) => {
                tracing::warn!("claiming deliveries failed: {e:#}");
                Vec::new()
            }
        };
        self.held = self.held.saturating_sub(asked - jobs.len().min(asked));
        let mut got: HashMap<&str, usize> = HashMap::new();
        for job in &jobs {
            *got.entry(job.subscription_id.as_str()).or_default() += 1;
        }
        let mut short = false;
        let now = now_ms();
        for (sub, n) in &c.wants {
            let lane = self.lanes.entry(sub.clone()).or_default();
            let got = got.get(sub.as_str()).copied().unwrap_or(0);
            lane.drained = got < *n && !moved;
            short |= lane.drained;
            if got == 0 && c.probing.contains(sub) {
                // Nothing to probe with, or another engine probed it lately: asked again
                // an interval on, not at every turn of the loop.
                lane.last_probe = Some(now);
            }
        }
        for job in jobs {
            let lane = self.lanes.entry(job.subscription_id.clone()).or_default();
            if c.probing.contains(&job.subscription_id) {
                lane.probe_ready = true;
            }
            lane.ready.push_back(job);
        }
        short
    }

    /// Something was committed or came due: every lane may have work again.
    fn undrain(&mut self) {
        for lane in self.lanes.values_mut() {
            lane.drained = false;
        }
    }

    async fn read_next_due(&self) -> Option<Millis> {
        match self.store.next_due().await {
            Ok(t) => t.filter(|t| *t > now_ms()),
            Err(e) => {
                tracing::warn!("reading the next due time failed: {e:#}");
                None
            }
        }
    }

    /// Starts what the lanes have room for; returns to the queue what may not go out any
    /// more (endpoint paused, disabled, deleted, or its circuit opened meanwhile).
    async fn dispatch(&mut self) {
        let probe_ms = self.cfg.probe_interval.as_millis() as i64;
        let limit = self.limit();
        let mut returned = Vec::new();
        let now = now_ms();
        for (id, lane) in self.lanes.iter_mut() {
            if lane.ready.is_empty() {
                continue;
            }
            let sub = self.subs.get(id).filter(|s| s.state == SubState::Active);
            let Some(sub) = sub.filter(|s| !s.circuit_open || lane.probe_ready) else {
                returned.extend(lane.ready.drain(..).map(|j| j.delivery_id));
                lane.probe_ready = false;
                continue;
            };
            let probe = sub.circuit_open;
            if probe {
                lane.probe_ready = false;
                lane.last_probe = Some(now);
                // Only one of what was claimed goes out as the probe.
                returned.extend(lane.ready.drain(1..).map(|j| j.delivery_id));
            }
            let gate = sub.rate_per_sec.filter(|r| *r > 0.0).map(|rate| {
                let g = lane
                    .gate
                    .get_or_insert_with(|| Arc::new(tokio::sync::Mutex::new(0.0)))
                    .clone();
                (g, 1000.0 / rate)
            });
            while lane.sending < limit && self.sending < self.cfg.max_in_flight {
                let Some(job) = lane.ready.pop_front() else {
                    break;
                };
                if probe {
                    tracing::info!(subscription = %sub.id, "circuit open: probing with delivery {}", job.delivery_id);
                }
                lane.sending += 1;
                self.sending += 1;
                let mode = attempt::Mode {
                    probe,
                    probe_interval_ms: probe_ms,
                };
                let (sub, gate, sender) = (sub.clone(), gate.clone(), self.sender.clone());
                let (outcomes, sent) = (self.outcomes_tx.clone(), self.sent_tx.clone());
                let values = self.values.clone();
                tokio::spawn(async move {
                    if let Some((gate, interval)) = gate {
                        // Sends pass the gate one at a time, each `interval` after the
                        // last actual send: a late start pushes the next ones back too.
                        let mut next = gate.lock().await;
                        let wait = *next - now_ms() as f64;
                        if wait > 0.0 {
                            tokio::time::sleep(Duration::from_micros((wait * 1000.0) as u64)).await;
                        }
                        *next = now_ms() as f64 + interval;
                    }
                    let began = Instant::now();
                    let outcome = attempt::run(&sender, &sub, job, mode, &values).await;
                    let _ = outcomes.send(outcome);
                    let _ = sent.send((sub.id.clone(), began.elapsed()));
                });
            }
        }
        if !returned.is_empty() {
            self.held = self.held.saturating_sub(returned.len());
            if let Err(e) = self.store.release(Release::Ids(returned)).await {
                // The leases expire and the sweep returns them.
                tracing::warn!("returning held deliveries to the queue failed: {e:#}");
            }
        }
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let commits = self.local_commits.clone();
        // Read before the subscriptions, so a change committed in between is not missed.
        let mut config_seen = commits.config.load(Ordering::Acquire);
        self.refresh_subs().await?;
        let mut counter = self.store.change_counter().await?;
        let mut last_poll = Instant::now();
        let mut chores = Housekeeping::new();
        let mut dirty = true;
        // The next time something becomes due, if that is in the future. Work already due
        // but not claimable (endpoint saturated, circuit open) wakes us through freed slots,
        // commits and polls instead, never through a zero-length timer.
        let mut next_due: Option<Millis> = None;
        // Armed before the first claim and re-armed the moment it fires, so a commit that
        // lands while we claim, dispatch or handle another wake-up still wakes us.
        let mut notified = Box::pin(commits.any.notified());
        notified.as_mut().enable();
        loop {
            if *shutdown.borrow() {
                break;
            }

            let wake_at = match (next_due, self.next_probe()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let due = wake_at.is_some_and(|t| t <= now_ms());
            if due {
                self.undrain();
            }
            if (dirty || due) && !self.claiming {
                dirty = false;
                self.claiming = self.start_claim();
                if self.claiming {
                    self.claim_started = Instant::now();
                }
                if !self.claiming {
                    next_due = self.read_next_due().await;
                }
            }
            self.dispatch().await;
            self.verify_pending();
            chores.run_due(&self.store, &self.cfg, &self.subs).await;
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
                Some(sub) = self.sent_rx.recv() => {
                    // A slot is free: start the next ready job; claim only when a lane
                    // has room for a batch.
                    self.sent(&sub);
                    while let Ok(more) = self.sent_rx.try_recv() {
                        self.sent(&more);
                    }
                    let (per_endpoint, claim_ms) = (self.cfg.endpoint_in_flight, self.claim_ms);
                    dirty |= self
                        .lanes
                        .values()
                        .any(|l| {
                            !l.drained
                                && l.ready.len() + l.sending + per_endpoint.div_ceil(2)
                                    <= l.target(per_endpoint, claim_ms)
                        });
                }
                Some(c) = self.claimed_rx.recv() => {
                    self.claiming = false;
                    let took = self.claim_started.elapsed().as_secs_f64() * 1000.0;
                    self.claim_ms = smooth(self.claim_ms, took);
                    if self.claimed(c) {
                        next_due = self.read_next_due().await;
                    }
                }
                Some(n) = self.recorded_rx.recv() => {
                    self.held = self.held.saturating_sub(n);
                    while let Ok(more) = self.recorded_rx.try_recv() {
                        self.held = self.held.saturating_sub(more);
                    }
                    dirty = true;
                }
                _ = &mut notified => {
                    notified.set(commits.any.notified());
                    notified.as_mut().enable();
                    self.undrain();
                    dirty = true;
                }
                _ = tokio::time::sleep(wait) => {}
            }
            let config = commits.config.load(Ordering::Acquire);
            if config != config_seen {
                // A subscription changed in this process: act on it now, not at the poll.
                config_seen = config;
                if let Err(e) = self.refresh_subs().await {
                    tracing::warn!("reading subscriptions failed: {e:#}");
                }
                self.undrain();
                dirty = true;
            }
            if last_poll.elapsed() >= self.cfg.poll_interval {
                last_poll = Instant::now();
                match self.store.change_counter().await {
                    Ok(c) if c != counter => {
                        counter = c;
                        if let Err(e) = self.refresh_subs().await {
                            tracing::warn!("reading subscriptions failed: {e:#}");
                        }
                        self.undrain();
                        dirty = true;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("polling for changes failed: {e:#}"),
                }
                // A safety net under the wake-ups: a lane believed drained while work is
                // due gets asked again within a poll interval. (Three concurrent quick
                // benchmarks still left one lane waiting with work due, until the next
                // sweep's commit; the race behind it is not found yet.)
                if !self.claiming
                    && self.lanes.values().any(|l| l.drained)
                    && let Ok(Some(t)) = self.store.next_due().await
                    && t <= now_ms()
                {
                    self.undrain();
                    dirty = true;
                }
            }
        }
        chores.stop();
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

    /// Lets the requests on the wire finish and their outcomes be recorded, then returns
    /// every lease still held (ready jobs included) to the queue.
    async fn finish(mut self) -> Result<()> {
        let longest = self.subs.values().map(|s| s.timeout_ms).max().unwrap_or(0);
        let deadline = Instant::now() + Duration::from_millis(longest) + Duration::from_secs(2);
        // A claim still on its way would lease deliveries after the release below.
        if self.claiming
            && let Ok(Some(c)) =
                tokio::time::timeout_at(deadline.into(), self.claimed_rx.recv()).await
        {
            self.claimed(c);
        }
        let ready: usize = self
            .lanes
            .values_mut()
            .map(|l| l.ready.drain(..).count())
            .sum();
        self.held = self.held.saturating_sub(ready);
        while self.held > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, self.recorded_rx.recv()).await {
                Ok(Some(n)) => self.held = self.held.saturating_sub(n),
                _ => break,
            }
        }
        if self.held > 0 {
            tracing::warn!(
                in_flight = self.held,
                "drain deadline reached; returning unfinished deliveries to the queue"
            );
        }
        let released = self.store.release(Release::All).await?;
        tracing::info!(released, "engine stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ready_target;

    #[test]
    fn a_lane_keeps_ready_what_its_endpoint_drains_during_two_claims() {
        // Unknown pace: the most.
        assert_eq!(ready_target(64, 5.0, 0.0), 192);
        // 64 slots answering in 200 ms drain 1.6 jobs in a 5 ms claim: half a batch.
        assert_eq!(ready_target(64, 5.0, 200.0), 32);
        // 64 slots answering in 10 ms drain 32 in a 5 ms claim: twice that.
        assert_eq!(ready_target(64, 5.0, 10.0), 64);
        // Fast answers and slow claims: capped at three batches.
        assert_eq!(ready_target(64, 20.0, 2.0), 192);
    }
}
