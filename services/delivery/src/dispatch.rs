//! Routing a batch of delivery tasks and running each attempt.
//!
//! For each task (once the cache has reached the batch's fence): a deleted
//! or disabled subscription cancels it, a paused one holds it, an open
//! circuit defers it, a full in-flight limit (shared by all replicas, in
//! Redis) makes it wait in this process for a slot (`waiting`) when the
//! subscription's attempts are quick, and defers it otherwise, as an
//! empty rate-limit bucket does, and so does a subscription holding its
//! fair share of this process's slots (so slow endpoints cannot starve
//! the others); for a FIFO
//! subscription only the task whose turn it is goes on (the
//! others wait in Redis, in fan-out order, and the completion of one
//! queues the next); the rest each get a worker slot and run on their own
//! task. An attempt ends with one script
//! that acknowledges the task and records everything about the attempt
//! (`complete.lua`), so a crash before it means the task is redelivered,
//! never lost; an attempt that cannot be made, or that panics, ends the
//! same way as a dead letter that says why.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use hookline_domain::{Ordering, SubscriptionId, SubscriptionState};
use hookline_queue::{DELIVERY_GROUP, DeliveryTask, EventRecord, Fence, PartitionKeys, StreamMessage};
use hookline_watch::CachedSubscription;
use rand::Rng;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use crate::{
    breaker::{Deferred, Gate, endpoint_of},
    http::{AttemptError, AttemptResult, Outgoing, span},
    instruments::{ParkReason, Parked},
    outcome::{Decision, decide, endpoint_unhealthy},
    request::{EventData, Undeliverable, body, headers},
    store::{AttemptRecord, CancelReason, Completion, Next, Park, Recorded},
    worker::{Worker, now_ms},
};

/// A task cleared to go: stream entry, task, subscription, breaker key.
type Ready = (String, DeliveryTask, Arc<CachedSubscription>, String);

/// A task read from the stream and cleared for an attempt, with
/// everything the attempt needs (it may wait for a slot first, in
/// `waiting`).
#[derive(Debug)]
pub(crate) struct Work {
    pub(crate) keys: PartitionKeys,
    pub(crate) entry: String,
    pub(crate) task: DeliveryTask,
    pub(crate) cached: Arc<CachedSubscription>,
    pub(crate) endpoint: String,
    pub(crate) event: Option<Arc<EventData>>,
    /// When the consumer read the task (its claim clock started then).
    pub(crate) read_at: Instant,
}

/// Work and its worker slot.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) work: Work,
    pub(crate) permit: OwnedSemaphorePermit,
}

/// How soon a task deferred by a full in-flight limit is tried again.
const IN_FLIGHT_RETRY: Duration = Duration::from_millis(200);
/// The shortest wait for a task turned away by a full in-flight limit.
const MIN_WAVE: Duration = Duration::from_millis(10);
/// How long dispatch waits for the cache to see a subscription it does not
/// know yet.
const FENCE_TIMEOUT: Duration = Duration::from_secs(5);
/// A lease outlives its request by this much.
pub(crate) const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// The shortest request worth sending: a task with less time left before
/// it may be claimed again is left to that claim.
const MIN_REQUEST: Duration = Duration::from_millis(100);
/// How long a batch waits when the cache is of another change log.
const CACHE_RELOAD_WAIT: Duration = Duration::from_secs(1);
/// Deferred deliveries brought forward per `wake.lua` call.
const WAKE_BATCH: usize = 500;

/// A subscription's slot of this process's fair share, given back when the
/// attempt ends however it ends.
struct ShareSlot<'a> {
    worker: &'a Worker,
    subscription: &'a str,
}

impl Drop for ShareSlot<'_> {
    fn drop(&mut self) {
        self.worker.release_share(self.subscription);
    }
}

/// What a caught panic said.
pub(crate) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    text.chars().take(200).collect()
}

impl Worker {
    pub(crate) async fn dispatch(
        self: Arc<Self>,
        keys: &PartitionKeys,
        batch: Vec<StreamMessage>,
    ) -> redis::RedisResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let read_at = Instant::now();
        let mut conn = self.redis.clone();
        let mut park = redis::pipe();
        park.ignore_errors();
        self.scripts.load(&mut park);
        let mut parked = Parked::default();
        let mut tasks = Vec::with_capacity(batch.len());
        for message in batch {
            match DeliveryTask::parse(&message.id, &message.fields) {
                Ok(task) => tasks.push((message.id, task)),
                Err(error) => {
                    tracing::error!(entry = %message.id, %error, "skipping a delivery task this build cannot read");
                    park.cmd("XACK").arg(keys.deliveries()).arg(DELIVERY_GROUP).arg(&message.id);
                    parked.add(ParkReason::Unreadable);
                }
            }
        }
        let events = self.load_events(keys, &tasks, &mut conn).await?;
        let retention = &self.settings.retention;
        let Some(state) = self.fenced_state(&tasks, &mut conn).await? else {
            // Nothing is sent or cancelled on the word of a cache of another
            // change log: back in a second, without an attempt.
            for (entry, task) in &tasks {
                let due = now + CACHE_RELOAD_WAIT.as_millis() as u64 + rand::rng().random_range(0..100);
                self.scripts.park(&mut park, keys, entry, task, Park::Defer(due), now, retention);
                parked.add(ParkReason::CacheReloading);
            }
            parked.record();
            let _: Vec<redis::RedisResult<redis::Value>> = park.query_async(&mut conn).await?;
            return Ok(());
        };
        let mut active = Vec::with_capacity(tasks.len());
        let mut fifo = Vec::new();
        for (entry, task) in tasks {
            let cached = SubscriptionId::parse(&task.subscription_id, "sub").ok().and_then(|id| state.get(id)).cloned();
            let action = match cached.as_ref().map(|c| &c.subscription.state) {
                None => Some(Park::Cancel(CancelReason::SubscriptionGone)),
                Some(SubscriptionState::Disabled(_)) => Some(Park::Cancel(CancelReason::SubscriptionDisabled)),
                Some(SubscriptionState::Paused(_)) => Some(Park::Hold),
                Some(SubscriptionState::Active) => None,
            };
            let (Some(cached), None) = (cached, action) else {
                let action = action.unwrap_or(Park::Cancel(CancelReason::SubscriptionGone));
                self.scripts.park(&mut park, keys, &entry, &task, action, now, retention);
                parked.add(if action == Park::Hold { ParkReason::Paused } else { ParkReason::Cancelled });
                continue;
            };
            if cached.subscription.spec.ordering == Ordering::Fifo {
                fifo.push((entry, task, cached));
            } else {
                active.push((entry, task, cached));
            }
        }
        if !fifo.is_empty() {
            // One at a time per FIFO subscription, in order: only a task
            // whose turn it is goes on; the others wait in Redis.
            let mut gates = redis::pipe();
            self.scripts.load(&mut gates);
            for (entry, task, _) in &fifo {
                self.scripts.fifo_gate(&mut gates, keys, entry, task, now, retention);
            }
            let turns: Vec<i64> = gates.query_async(&mut conn).await?;
            active.extend(fifo.into_iter().zip(turns).filter(|(_, turn)| *turn == 1).map(|(item, _)| item));
        }
        let mut ready = Vec::with_capacity(active.len());
        for (entry, task, cached) in active {
            let endpoint = endpoint_of(cached.subscription.spec.url.as_url());
            match self.breakers.check(&endpoint) {
                Gate::Closed | Gate::Probe => ready.push((entry, task, cached, endpoint)),
                Gate::Open(wait) => {
                    let due = now + wait.as_millis() as u64;
                    self.breakers.deferred(&endpoint, (keys.index(), task.subscription_id.clone()));
                    self.scripts.park(&mut park, keys, &entry, &task, Park::AwaitEndpoint(due), now, retention);
                    parked.add(ParkReason::CircuitOpen);
                }
            }
        }
        if !ready.is_empty() {
            // One admission per subscription for all its tasks of the batch.
            let mut groups: Vec<Vec<Ready>> = Vec::new();
            let mut group_of: HashMap<String, usize> = HashMap::new();
            for item in ready {
                let next = groups.len();
                let index = *group_of.entry(item.1.subscription_id.clone()).or_insert(next);
                if index == next {
                    groups.push(Vec::new());
                }
                groups[index].push(item);
            }
            let mut leases = redis::pipe();
            self.scripts.load(&mut leases);
            for group in &groups {
                let (_, first, cached, _) = &group[0];
                let expiry = now + (self.request_timeout(cached) + LEASE_MARGIN).as_millis() as u64;
                let spec = &cached.subscription.spec;
                let ids = group.iter().map(|(_, task, _, _)| task.delivery_id.as_str());
                let (max, rate) = (spec.max_in_flight, spec.rate_limit);
                self.scripts.lease(&mut leases, keys, &first.subscription_id, ids, now, expiry, max, rate);
            }
            let admissions: Vec<(usize, u64)> = leases.query_async(&mut conn).await?;
            'send: for (group, (admitted, wait)) in groups.into_iter().zip(admissions) {
                for (n, (entry, task, cached, endpoint)) in group.into_iter().enumerate() {
                    let event = events.get(&task.event_id).cloned();
                    let in_flight_full = n >= admitted && wait == 0;
                    let quick =
                        || self.quick_turn(&task.subscription_id, n - admitted, cached.subscription.spec.max_in_flight);
                    let mut reason = if wait > 0 { ParkReason::RateLimited } else { ParkReason::InFlight };
                    let (entry, task, cached, endpoint, event) = if in_flight_full && quick() {
                        // In-flight full, and its slots free quickly: wait in
                        // this process for one.
                        let waiter = Work { keys: keys.clone(), entry, task, cached, endpoint, event, read_at };
                        match self.waiting.push(waiter, 2 * self.settings.batch_size) {
                            Ok(()) => continue,
                            Err(w) => {
                                reason = ParkReason::WaitingRoomFull;
                                (w.entry, w.task, w.cached, w.endpoint, w.event)
                            }
                        }
                    } else {
                        (entry, task, cached, endpoint, event)
                    };
                    if n >= admitted {
                        // Rate-limited: the next token is `wait` ms away. In-flight
                        // full and no room to wait here: the k-th task turned away
                        // waits about k waves of the subscription's attempts, so a
                        // deep backlog comes back in order instead of all at once.
                        let wait = if wait > 0 {
                            wait
                        } else {
                            let waves =
                                1 + (n - admitted) as u64 / u64::from(cached.subscription.spec.max_in_flight.max(1));
                            self.wave(&task.subscription_id).as_millis() as u64 * waves
                        };
                        let due = now + wait + rand::rng().random_range(0..10);
                        self.scripts.park(&mut park, keys, &entry, &task, Park::Defer(due), now, retention);
                        self.breakers.not_sent(&endpoint);
                        parked.add(reason);
                        continue;
                    }
                    if !self.take_share(&task.subscription_id) {
                        // Over its fair share of this process: free the lease
                        // just taken and defer it in Redis without an attempt
                        // (not in the waiting room: a subscription over its
                        // share is usually a slow one, and its tasks waiting
                        // here would hold back reading for the others).
                        let due = now + IN_FLIGHT_RETRY.as_millis() as u64 + rand::rng().random_range(0..50);
                        self.scripts.park(&mut park, keys, &entry, &task, Park::Defer(due), now, retention);
                        self.breakers.not_sent(&endpoint);
                        park.cmd("ZREM").arg(keys.in_flight(&task.subscription_id)).arg(&task.delivery_id).ignore();
                        parked.add(ParkReason::FairShare);
                        continue;
                    }
                    let Ok(permit) = self.permits.clone().acquire_owned().await else { break 'send };
                    let work = Work { keys: keys.clone(), entry, task, cached, endpoint, event, read_at };
                    let job = Job { work, permit };
                    tokio::spawn(self.clone().guarded_attempt(job));
                }
            }
        }
        if parked.any() {
            parked.record();
            let results: Vec<redis::RedisResult<redis::Value>> = park.query_async(&mut conn).await?;
            for error in results.into_iter().filter_map(Result::err) {
                tracing::warn!(%error, "could not park a delivery; it will be retried");
            }
        }
        Ok(())
    }

    /// The cache to route a batch with: one that has reached the tasks'
    /// fence, and knows every subscription they name unless the
    /// subscription service's current revision says it is gone. `None`
    /// when the only cache at hand is of another change log than the
    /// current one (the subscription store was emptied and the cache has
    /// not reloaded yet): nothing is sent or cancelled on its word.
    async fn fenced_state(
        &self,
        tasks: &[(String, DeliveryTask)],
        conn: &mut hookline_queue::RedisConn,
    ) -> redis::RedisResult<Option<Arc<hookline_watch::CacheState>>> {
        let fence = tasks.iter().map(|(_, t)| t.fence.clone()).reduce(Fence::max).unwrap_or_default();
        let reached = |s: &hookline_watch::CacheState| s.is_ready() && fence.reached_by(s.log_id(), s.revision());
        let mut state = self.cache.state();
        if !reached(&state) {
            state = self.cache.wait(FENCE_TIMEOUT, reached).await.unwrap_or_else(|_| {
                tracing::warn!(
                    fence = fence.revision,
                    "the subscription cache did not reach the tasks' fence in time; checking the current log"
                );
                self.cache.state()
            });
        }
        let unknown = tasks
            .iter()
            .any(|(_, t)| SubscriptionId::parse(&t.subscription_id, "sub").ok().and_then(|id| state.get(id)).is_none());
        let vouched = !fence.log_id.is_empty() && fence.reached_by(state.log_id(), state.revision());
        if !unknown && vouched {
            return Ok(Some(state));
        }
        // Tasks requeued from their records carry no fence, and a
        // subscription the cache does not know may be newer than it: ask
        // the change log where it stands now.
        let current = hookline_queue::current_fence(conn, &self.settings.key_prefix).await?;
        let caught_up = |s: &hookline_watch::CacheState| s.is_ready() && current.reached_by(s.log_id(), s.revision());
        if caught_up(&state) {
            return Ok(Some(state));
        }
        match self.cache.wait(FENCE_TIMEOUT, caught_up).await {
            Ok(state) => Ok(Some(state)),
            Err(_) if state.log_id() == current.log_id => Ok(Some(self.cache.state())),
            Err(_) => {
                tracing::warn!(
                    "the subscription cache is of another change log than the current one (the subscription \
                     store was emptied?): deferring the batch until it reloads"
                );
                Ok(None)
            }
        }
    }

    /// Takes one of the subscription's slots in this process. Beyond its
    /// fair share only while slots are plentiful (a quarter free): the share
    /// binds under contention, so slow endpoints cannot starve the others,
    /// and a lone busy subscription is not throttled.
    pub(crate) fn take_share(&self, subscription: &str) -> bool {
        let plentiful = self.permits.available_permits() > self.settings.max_concurrency / 4;
        let mut held = self.held_slots.lock().unwrap_or_else(|e| e.into_inner());
        let slots = held.entry(subscription.to_owned()).or_default();
        if *slots >= self.settings.subscription_share && !plentiful {
            return false;
        }
        *slots += 1;
        true
    }

    /// How long a wave of the subscription's in-flight attempts takes: its
    /// recent attempt duration, at least `MIN_WAVE`, `IN_FLIGHT_RETRY`
    /// before any attempt.
    fn wave(&self, subscription: &str) -> Duration {
        let pace = self.pace.lock().unwrap_or_else(|e| e.into_inner());
        pace.get(subscription).map_or(IN_FLIGHT_RETRY, |d| (*d).max(MIN_WAVE))
    }

    /// Whether the `position`-th task turned away by the subscription's
    /// full in-flight limit should get a slot well within the waiting
    /// room's `max_wait`: only when its attempts are known to be quick (a
    /// subscription whose attempts have not finished yet, such as one
    /// hanging, is parked instead, so it cannot fill the room).
    fn quick_turn(&self, subscription: &str, position: usize, max_in_flight: u32) -> bool {
        let pace = self.pace.lock().unwrap_or_else(|e| e.into_inner());
        let waves = 1 + position as u32 / max_in_flight.max(1);
        pace.get(subscription).is_some_and(|d| (*d).max(MIN_WAVE) * waves <= self.max_wait() / 2)
    }

    fn record_pace(&self, subscription: &str, took: Duration) {
        let mut pace = self.pace.lock().unwrap_or_else(|e| e.into_inner());
        let average = pace.entry(subscription.to_owned()).or_insert(took);
        *average = (*average * 4 + took) / 5;
    }

    /// Forgets the pace of subscriptions `state` no longer has (deleted),
    /// so the map follows the live subscriptions instead of growing with
    /// every one ever seen.
    pub(crate) fn forget_deleted(&self, state: &hookline_watch::CacheState) {
        let mut pace = self.pace.lock().unwrap_or_else(|e| e.into_inner());
        pace.retain(|sub, _| SubscriptionId::parse(sub, "sub").is_ok_and(|id| state.get(id).is_some()));
    }

    fn release_share(&self, subscription: &str) {
        // Called from `ShareSlot::drop`, so also when an attempt panics.
        let mut held = self.held_slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slots) = held.get_mut(subscription) {
            *slots = slots.saturating_sub(1);
            if *slots == 0 {
                held.remove(subscription);
            }
        }
    }

    /// Brings forward up to `each` deliveries of each subscription that were
    /// deferred for its endpoint's open circuit. On failure they are still
    /// due when their cooldown ends.
    pub(crate) async fn wake_deferred(&self, subscriptions: &[Deferred], each: usize) {
        let mut conn = self.redis.clone();
        for (partition, subscription) in subscriptions {
            if *partition >= self.partitions.count() {
                continue;
            }
            let keys = self.partitions.get(*partition);
            let mut left = each;
            while left > 0 {
                let count = left.min(WAKE_BATCH);
                let taken =
                    self.scripts.wake(&keys, subscription, now_ms(), count).invoke_async::<usize>(&mut conn).await;
                match taken {
                    Ok(taken) if taken == count => left -= count,
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(%subscription, %error, "could not bring deferred deliveries forward; they come back at their cooldown's end");
                        break;
                    }
                }
            }
        }
    }

    /// The subscription's timeout, cut 1 s before the claim idle time so an
    /// attempt never outlives its claim.
    pub(crate) fn request_timeout(&self, cached: &CachedSubscription) -> Duration {
        cached.subscription.spec.timeout.min(self.settings.claim_idle.saturating_sub(Duration::from_secs(1)))
    }

    /// The payload, variants and time of each event of the batch, read once.
    async fn load_events(
        &self,
        keys: &PartitionKeys,
        tasks: &[(String, DeliveryTask)],
        conn: &mut hookline_queue::RedisConn,
    ) -> redis::RedisResult<HashMap<String, Arc<EventData>>> {
        let mut ids: Vec<&str> = tasks.iter().map(|(_, t)| t.event_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| keys.event(id)).collect();
        let records = hookline_queue::read_event_records(conn, &keys).await?;
        Ok(ids
            .into_iter()
            .zip(records)
            .filter_map(|(id, record)| {
                let EventRecord { entry, meta } = record?;
                let event = EventData {
                    payload: entry.payload,
                    variants: meta.variants,
                    occurred_ms: meta.occurred_ms,
                    published_ms: entry.published_ms,
                };
                Some((id.to_owned(), Arc::new(event)))
            })
            .collect())
    }

    /// One attempt; if it panics, its delivery is dead-lettered with the
    /// reason rather than left pending to panic again at every claim.
    pub(crate) async fn guarded_attempt(self: Arc<Self>, job: Job) {
        let Job { work, permit: _permit } = job;
        let attempt = std::panic::AssertUnwindSafe(self.attempt(&work));
        if let Err(panic) = futures::FutureExt::catch_unwind(attempt).await {
            let message = format!("hookline failed during this attempt (internal error: {})", panic_text(&panic));
            tracing::error!(delivery = %work.task.delivery_id, %message, "an attempt panicked; dead-lettering its delivery");
            metrics::counter!("hookline_delivery_panics_total").increment(1);
            let result = AttemptResult::not_sent(AttemptError::Undeliverable, message);
            self.finish(&work, &result, Decision::DeadLetter, 0).await;
        }
    }

    /// One attempt, in its own span of the event's trace.
    async fn attempt(&self, work: &Work) {
        let span = span::attempt_span(&work.task, &work.cached);
        let traceparent = hookline_telemetry::continue_trace(&span, &work.task.traceparent);
        self.run_attempt(work, traceparent).instrument(span).await
    }

    async fn run_attempt(&self, work: &Work, traceparent: String) {
        let Work { task, cached, endpoint, event, read_at, .. } = work;
        let sub = &cached.subscription;
        let _share = ShareSlot { worker: self, subscription: &task.subscription_id };
        if self.request_timeout(cached).saturating_sub(read_at.elapsed()) < MIN_REQUEST {
            // Held here so long (waiting for a slot) that another consumer
            // may claim the task before a request could end: leave it to
            // that claim rather than risk two attempts at once.
            tracing::warn!(delivery = %task.delivery_id, "a task waited too long in this process to be attempted; it will be claimed again");
            self.breakers.not_sent(endpoint);
            return;
        }
        let result = match event {
            Some(event) => match self.build(cached, task, event, &traceparent, *read_at) {
                Ok(out) => {
                    let result = self.sender.send(out).await;
                    let closed = self.breakers.record(endpoint, !endpoint_unhealthy(&result));
                    if !closed.is_empty() {
                        // Deliveries deferred while it was open come back now.
                        self.wake_deferred(&closed, usize::MAX).await;
                    }
                    self.record_pace(&task.subscription_id, result.duration);
                    result
                }
                Err(undeliverable) => AttemptResult::not_sent(AttemptError::Undeliverable, undeliverable.0),
            },
            None => AttemptResult::not_sent(
                AttemptError::EventExpired,
                "the event is past its retention; nothing was sent".into(),
            ),
        };
        span::record(&tracing::Span::current(), &result);
        let jitter = rand::rng().random::<f64>();
        let decision = decide(&result, &sub.spec.retry, task.attempt, self.settings.max_retry_after, jitter);
        let published_ms = event.as_ref().map_or(0, |e| e.published_ms);
        self.finish(work, &result, decision, published_ms).await;
    }

    /// The request of one attempt; a body or headers that cannot be built
    /// (or a bug that panics while building them) make the task
    /// undeliverable instead of taking the worker down.
    fn build<'a>(
        &self,
        cached: &'a CachedSubscription,
        task: &DeliveryTask,
        event: &EventData,
        traceparent: &str,
        read_at: Instant,
    ) -> Result<Outgoing<'a>, Undeliverable> {
        let sub = &cached.subscription;
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let payload = body(&sub.spec, &task.event_id, &task.event_type, event)?;
            let headers = headers(&sub.spec, &cached.secrets, &task.event_id, &payload, traceparent, SystemTime::now());
            Ok((payload, headers))
        }));
        let (payload, headers) = built.unwrap_or_else(|panic| {
            tracing::error!(delivery = %task.delivery_id, panic = panic_text(&panic), "building the request panicked");
            Err(Undeliverable(format!(
                "hookline could not build this request (internal error: {})",
                panic_text(&panic)
            )))
        })?;
        // Time spent waiting for a slot comes off the request: the attempt
        // still ends before the task could be claimed again.
        let timeout = self.request_timeout(cached).saturating_sub(read_at.elapsed()).max(MIN_REQUEST);
        Ok(Outgoing { url: &sub.spec.url, body: payload, headers, timeout })
    }

    /// Records an attempt's outcome (with others finishing at the same
    /// time: `completion`), then its metrics and any pause or disable it
    /// calls for.
    async fn finish(&self, work: &Work, result: &AttemptResult, decision: Decision, published_ms: u64) {
        let Work { keys, entry, task, cached, .. } = work;
        let sub = &cached.subscription;
        let now = now_ms();
        let next = match decision {
            Decision::Success => Next::Done,
            Decision::Retry(delay) => Next::RetryAt(now + delay.as_millis() as u64),
            Decision::DeadLetter | Decision::Gone => Next::DeadLetter,
        };
        let record = AttemptRecord {
            n: task.attempt,
            at: result.started.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            dur: result.duration.as_millis() as u64,
            code: result.status,
            err: result.error.as_str().into(),
            msg: result.message.clone(),
            body: AttemptRecord::encode_body(&result.body),
            trig: if task.trigger.is_empty() { "scheduled".into() } else { task.trigger.clone() },
        };
        let completion = Completion {
            entry: entry.clone(),
            task: task.clone(),
            next,
            attempt: record,
            fifo: sub.spec.ordering == Ordering::Fifo,
            now_ms: now,
        };
        let completed = self.completions.record(keys, completion).await;
        // Its in-flight slot is free (complete.lua removed the lease): a
        // task waiting for one may go.
        self.waiting.wake();
        let streak = match completed {
            Ok(Recorded::Streak(streak)) => Some(streak),
            Ok(Recorded::AlreadyDone) => None,
            Ok(Recorded::Lost) => {
                // The task went with the stream: nothing will claim it again.
                tracing::warn!(
                    delivery = %task.delivery_id, attempt = task.attempt, status = result.status,
                    "the deliveries stream is gone (Redis restarted empty?): this attempt's outcome was not recorded"
                );
                metrics::counter!("hookline_delivery_outcomes_lost_total").increment(1);
                None
            }
            Err(error) => {
                // The task stays pending and is claimed again: delivered at
                // least once, never lost.
                tracing::warn!(delivery = %task.delivery_id, %error, "could not record the attempt; it will be retried");
                return;
            }
        };
        let outcome = match decision {
            Decision::Success => "succeeded",
            Decision::Retry(_) => "retry",
            Decision::DeadLetter => "dead_lettered",
            Decision::Gone => "gone",
        };
        if self.settings.metrics_tenant_label {
            metrics::counter!("hookline_delivery_attempts_total", "outcome" => outcome, "tenant" => task.tenant.clone())
                .increment(1);
        } else {
            metrics::counter!("hookline_delivery_attempts_total", "outcome" => outcome).increment(1);
        }
        metrics::histogram!("hookline_delivery_attempt_duration_seconds").record(result.duration.as_secs_f64());
        if decision == Decision::Success && published_ms > 0 {
            let latency_ms = now.saturating_sub(published_ms);
            metrics::histogram!("hookline_publish_to_delivery_seconds").record(latency_ms as f64 / 1000.0);
        }
        tracing::debug!(
            delivery = %task.delivery_id, subscription = %sub.id, attempt = task.attempt,
            status = result.status, error = result.error.as_str(), ?decision, "attempt"
        );
        if decision == Decision::Gone {
            self.control.disable_gone(sub).await;
        } else if let Some(streak) = streak
            && next != Next::Done
            && self.settings.auto_pause.applies(streak, now)
        {
            let last =
                if result.message.is_empty() { result.error.as_str().to_owned() } else { result.message.clone() };
            self.control.pause_for_failures(sub, streak, &last).await;
        }
    }
}
