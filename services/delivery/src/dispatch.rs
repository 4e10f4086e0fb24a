//! Routing a batch of delivery tasks: the first stage of each (then
//! `admission` decides whether it may go now, `attempt` sends it and
//! records what happened).
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
//! task (`attempt`).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use hookline_domain::{Ordering, SubscriptionId, SubscriptionState};
use hookline_queue::{DELIVERY_GROUP, DeliveryTask, EventRecord, Fence, PartitionKeys, StreamMessage};
use hookline_watch::CachedSubscription;
use rand::Rng;
use tokio::sync::OwnedSemaphorePermit;

use crate::{
    breaker::{Deferred, Gate},
    instruments::{ParkReason, Parked},
    request::EventData,
    store::{CancelReason, Park, Parks, Step},
    worker::{Worker, now_ms},
};

/// A task cleared to go: stream entry, task, subscription, breaker key.
pub(crate) type Ready = (String, DeliveryTask, Arc<CachedSubscription>, String);

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

/// Work and its worker slot. (Work is boxed from the start: it moves
/// through the waiting room's queues, into its task and on to its
/// completion, a few hundred bytes each time otherwise.)
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) work: Box<Work>,
    pub(crate) permit: OwnedSemaphorePermit,
}

/// How long dispatch waits for the cache to see a subscription it does not
/// know yet.
const FENCE_TIMEOUT: Duration = Duration::from_secs(5);
/// A lease outlives its request by this much.
pub(crate) const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// How long a batch waits when the cache is of another change log.
const CACHE_RELOAD_WAIT: Duration = Duration::from_secs(1);
/// Deferred deliveries brought forward per `wake.lua` call.
const WAKE_BATCH: usize = 500;

/// The subscription cache a batch is routed with.
struct Fenced {
    state: Arc<hookline_watch::CacheState>,
    /// A subscription it does not know is gone: it has reached the change
    /// log's current position (or knows every subscription of the batch).
    /// When not, such a task waits.
    unknown_is_gone: bool,
}

/// What the stages of one batch share: its partition and clock, and the
/// tasks put back in Redis without an attempt (written together at the
/// end, counted by reason).
pub(crate) struct Batch<'a> {
    pub(crate) keys: &'a PartitionKeys,
    pub(crate) now: u64,
    pub(crate) read_at: Instant,
    parks: Parks<'a>,
    /// In-flight leases given back by tasks put back after taking one.
    leases: Vec<(String, String)>,
    /// Entries no build can read: acknowledged, and skipped.
    unreadable: Vec<String>,
    parked: Parked,
}

impl<'a> Batch<'a> {
    fn new(keys: &'a PartitionKeys) -> Self {
        let now = now_ms();
        let (parks, parked) = (Parks::new(keys, now), Parked::default());
        Self { keys, now, read_at: Instant::now(), parks, leases: Vec::new(), unreadable: Vec::new(), parked }
    }

    /// Takes a task off the stream without an attempt (`park.lua`).
    pub(crate) fn put_back(&mut self, entry: &str, task: &DeliveryTask, park: Park, why: ParkReason) {
        self.parks.add(entry, task, park);
        self.parked.add(why);
    }

    /// The same for a task that had taken an in-flight slot: gives it back.
    pub(crate) fn put_back_leased(&mut self, entry: &str, task: &DeliveryTask, due: u64, why: ParkReason) {
        self.put_back(entry, task, Park::Defer(due), why);
        self.leases.push((self.keys.in_flight(&task.subscription_id), task.delivery_id.clone()));
    }

    /// Skips an entry that no build can read, acknowledging it.
    fn skip_unreadable(&mut self, entry: String) {
        self.unreadable.push(entry);
        self.parked.add(ParkReason::Unreadable);
    }

    /// Writes what was put back: one `park.lua` call for the batch.
    async fn flush(self, worker: &Worker, conn: &mut hookline_queue::RedisConn) -> redis::RedisResult<()> {
        if !self.parked.any() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        if !self.parks.is_empty() {
            worker.scripts.load(&mut pipe, &[Step::Park]);
            worker.scripts.park(&mut pipe, &self.parks, &worker.settings.retention);
        }
        for (key, id) in &self.leases {
            pipe.cmd("ZREM").arg(key).arg(id).ignore();
        }
        for entry in &self.unreadable {
            pipe.cmd("XACK").arg(self.keys.deliveries()).arg(DELIVERY_GROUP).arg(entry).ignore();
        }
        let replies: Vec<redis::RedisResult<redis::Value>> = pipe.query_async(conn).await?;
        self.parked.record_replies(replies);
        Ok(())
    }
}

impl Worker {
    /// Routes a batch read from the stream: each task is cancelled, held,
    /// deferred or, cleared, handed to `admit`.
    pub(crate) async fn dispatch(
        self: Arc<Self>,
        keys: &PartitionKeys,
        batch: Vec<StreamMessage>,
    ) -> redis::RedisResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut b = Batch::new(keys);
        let now = b.now;
        let mut conn = self.redis.clone();
        let mut tasks = Vec::with_capacity(batch.len());
        let mut newer = hookline_queue::LeftForNewerBuild::default();
        for message in batch {
            match DeliveryTask::parse(&message.id, message.fields) {
                Ok(task) => tasks.push((message.id, task)),
                // Written by a newer build (a rolling upgrade is under way):
                // left pending, unacknowledged, for one that reads it to take
                // over when this consumer goes (or to claim once idle).
                Err(error) if error.is_unknown_version() => newer.add(&error),
                Err(error) => {
                    tracing::error!(entry = %message.id, %error, "skipping a delivery task this build cannot read");
                    b.skip_unreadable(message.id);
                }
            }
        }
        newer.report(&keys.deliveries());
        let events = self.load_events(keys, &tasks, &mut conn).await?;
        let reload_due = || now + CACHE_RELOAD_WAIT.as_millis() as u64 + rand::rng().random_range(0..100);
        let Some(Fenced { state, unknown_is_gone }) = self.fenced_state(&tasks, &mut conn).await? else {
            // Nothing is sent or cancelled on the word of a cache of another
            // change log: back in a second, without an attempt.
            for (entry, task) in &tasks {
                b.put_back(entry, task, Park::Defer(reload_due()), ParkReason::CacheReloading);
            }
            return b.flush(&self, &mut conn).await;
        };
        let mut active = Vec::with_capacity(tasks.len());
        let mut fifo = Vec::new();
        for (entry, task) in tasks {
            let cached = SubscriptionId::parse(&task.subscription_id, "sub").ok().and_then(|id| state.get(id)).cloned();
            let put_back = match cached.as_ref().map(|c| &c.subscription.state) {
                Some(SubscriptionState::Active) => None,
                Some(SubscriptionState::Paused(_)) => Some((Park::Hold, ParkReason::Paused)),
                Some(SubscriptionState::Disabled(_)) => {
                    Some((Park::Cancel(CancelReason::SubscriptionDisabled), ParkReason::Cancelled))
                }
                None if unknown_is_gone => Some((Park::Cancel(CancelReason::SubscriptionGone), ParkReason::Cancelled)),
                None => Some((Park::Defer(reload_due()), ParkReason::CacheBehind)),
            };
            let (Some(cached), None) = (cached, put_back) else {
                if let Some((park, why)) = put_back {
                    b.put_back(&entry, &task, park, why);
                }
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
            self.scripts.load(&mut gates, &[Step::FifoGate]);
            for (entry, task, _) in &fifo {
                self.scripts.fifo_gate(&mut gates, keys, entry, task, now, &self.settings.retention);
            }
            let turns: Vec<i64> = gates.query_async(&mut conn).await?;
            active.extend(fifo.into_iter().zip(turns).filter(|(_, turn)| *turn == 1).map(|(item, _)| item));
        }
        let mut ready = Vec::with_capacity(active.len());
        for (entry, task, cached) in active {
            let endpoint = cached.subscription.spec.url.endpoint().to_owned();
            match self.breakers.check(&endpoint) {
                Gate::Closed | Gate::Probe => ready.push((entry, task, cached, endpoint)),
                Gate::Open(wait) => {
                    let due = now + wait.as_millis() as u64;
                    self.breakers.deferred(&endpoint, (keys.index(), task.subscription_id.clone()));
                    b.put_back(&entry, &task, Park::AwaitEndpoint(due), ParkReason::CircuitOpen);
                }
            }
        }
        if !ready.is_empty() {
            self.admit(&mut b, ready, &events, &mut conn).await?;
        }
        b.flush(&self, &mut conn).await
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
    ) -> redis::RedisResult<Option<Fenced>> {
        let fence = Fence::latest(tasks.iter().map(|(_, t)| &t.fence));
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
            return Ok(Some(Fenced { state, unknown_is_gone: true }));
        }
        // Tasks requeued from their records carry no fence, and a
        // subscription the cache does not know may be newer than it: ask
        // the change log where it stands now.
        let current = hookline_queue::current_fence(conn, &self.settings.key_prefix).await?;
        let caught_up = |s: &hookline_watch::CacheState| s.is_ready() && current.reached_by(s.log_id(), s.revision());
        if caught_up(&state) {
            return Ok(Some(Fenced { state, unknown_is_gone: true }));
        }
        match self.cache.wait(FENCE_TIMEOUT, caught_up).await {
            Ok(state) => Ok(Some(Fenced { state, unknown_is_gone: true })),
            Err(_) if state.log_id() == current.log_id => {
                tracing::warn!(
                    cache = state.revision(),
                    log = current.revision,
                    "the subscription cache is behind the change log (its watch cut off?): tasks of subscriptions it \
                     does not know wait until it catches up"
                );
                Ok(Some(Fenced { state: self.cache.state(), unknown_is_gone: false }))
            }
            Err(_) => {
                tracing::warn!(
                    "the subscription cache is of another change log than the current one (the subscription \
                     store was emptied?): deferring the batch until it reloads"
                );
                Ok(None)
            }
        }
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
                    traceparent: entry.traceparent,
                };
                Some((id.to_owned(), Arc::new(event)))
            })
            .collect())
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
}
