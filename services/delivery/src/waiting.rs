//! Tasks turned away by their subscription's in-flight limit, when its
//! attempts are known to be quick (`Worker::quick_turn`: its recent pace
//! says a slot frees well within `max_wait`), wait here, in this process,
//! for a slot, instead of a round trip
//! through Redis (park in the retry set, requeue onto the stream, a new
//! entry and record writes for every one).
//!
//! A waiting task is still pending in the consumer group (not
//! acknowledged), so a crash loses nothing: it is claimed again after
//! `claim_idle`. To stay far from that, a task waits at most
//! `max_wait` (2 s, or a quarter of `claim_idle` when that is shorter);
//! past it, or when the process stops, it is parked in Redis as before, so
//! another replica can take it at once.
//!
//! The room is bounded: waiting tasks count against what the consumer
//! reads, it does not read while a whole batch waits (a busy subscription
//! drains its backlog from here, not through Redis), and one subscription
//! may keep at most two batches waiting; beyond that a task is parked in
//! Redis as before. Tasks over their subscription's fair share of this
//! process do not wait here: that subscription is usually a slow one, and
//! its waiting tasks would hold back reading for the others.
//!
//! [`Worker::admit_waiting`] runs one admission round whenever an attempt
//! finishes (or every 10 ms, for slots freed by other replicas): one
//! `lease.lua` call per partition for its subscriptions with waiting
//! tasks, as many of each admitted as it has free slots, in arrival order.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use hookline_queue::PartitionKeys;
use rand::Rng;
use tokio::sync::{Notify, watch};

use crate::{
    dispatch::{Job, Work},
    instruments::{ParkReason, Parked},
    store::{Lease, Park, Parks, Step},
    worker::{Worker, now_ms},
};

/// How often waiting tasks are offered slots without a wake-up (slots
/// freed by other replicas, leases expired).
const RECHECK: Duration = Duration::from_millis(10);
/// After a wake-up, a moment for more attempts to finish, so one round
/// admits several tasks.
const GATHER: Duration = Duration::from_millis(1);
/// The longest a task waits here by default.
const MAX_WAIT: Duration = Duration::from_secs(2);

/// One subscription's waiting tasks, oldest first (boxed: they move
/// between queues every admission round).
type Queue = VecDeque<Box<Work>>;

/// The waiting tasks, by subscription, in arrival order.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    room: Mutex<Room>,
    /// Every task in the room, those out for an admission round included.
    len: AtomicUsize,
    wake: Notify,
}

#[derive(Debug, Default)]
struct Room {
    queues: HashMap<String, Queue>,
    /// Tasks of each subscription taken out for an admission round: still
    /// waiting (they count against the subscription's cap and against what
    /// the consumer reads) until the round says what became of them.
    out: HashMap<String, usize>,
}

impl Waiting {
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    fn room(&self) -> std::sync::MutexGuard<'_, Room> {
        self.room.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `waiter` unless its subscription already has `cap` waiting;
    /// then hands it back (to be parked in Redis instead).
    pub(crate) fn push(&self, waiter: Box<Work>, cap: usize) -> Result<(), Box<Work>> {
        let mut room = self.room();
        let out = room.out.get(&waiter.task.subscription_id).copied().unwrap_or(0);
        let queue = room.queues.entry(waiter.task.subscription_id.clone()).or_default();
        if queue.len() + out >= cap {
            return Err(waiter);
        }
        queue.push_back(waiter);
        self.len.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A slot may have freed: run an admission round soon.
    pub(crate) fn wake(&self) {
        if self.len() > 0 {
            self.wake.notify_one();
        }
    }

    /// Takes every queue out for an admission round; each must come back
    /// through [`Self::end_round`].
    fn take_all(&self) -> HashMap<String, Queue> {
        let mut room = self.room();
        let all = std::mem::take(&mut room.queues);
        for (subscription, queue) in &all {
            *room.out.entry(subscription.clone()).or_default() += queue.len();
        }
        all
    }

    /// Ends the round of `taken` tasks of `subscription`: `left` still
    /// wait, before anything that arrived meanwhile (so the order holds);
    /// the others were admitted or parked.
    fn end_round(&self, subscription: &str, left: Queue, taken: usize) {
        let mut room = self.room();
        if let Some(out) = room.out.get_mut(subscription) {
            *out = out.saturating_sub(taken);
            if *out == 0 {
                room.out.remove(subscription);
            }
        }
        self.len.fetch_sub(taken.saturating_sub(left.len()), Ordering::Relaxed);
        if left.is_empty() {
            return;
        }
        let queue = room.queues.entry(subscription.to_owned()).or_default();
        for waiter in left.into_iter().rev() {
            queue.push_front(waiter);
        }
    }
}

impl Worker {
    /// The longest a task waits in this process for a slot.
    pub(crate) fn max_wait(&self) -> Duration {
        MAX_WAIT.min(self.settings.claim_idle / 4)
    }

    /// Offers waiting tasks the slots that free, until `stop`; then parks
    /// whatever still waits (see the module documentation).
    pub(crate) async fn admit_waiting(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            tokio::select! {
                () = self.waiting.wake.notified() => tokio::time::sleep(GATHER).await,
                () = tokio::time::sleep(RECHECK) => {}
                _ = stop.changed() => {}
            }
            let stopping = *stop.borrow();
            if self.waiting.len() > 0 {
                match self.admission_round(stopping).await {
                    Ok(()) => backoff = Duration::from_millis(50),
                    Err(error) => {
                        tracing::warn!(%error, "could not admit waiting deliveries; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            }
            if stopping && self.waiting.len() == 0 {
                return;
            }
        }
    }

    /// One round: park what waited too long (or everything, when stopping),
    /// lease slots for the rest, start the admitted, keep the others.
    async fn admission_round(self: &Arc<Self>, stopping: bool) -> redis::RedisResult<()> {
        let mut by_partition: HashMap<u16, Vec<(String, Queue)>> = HashMap::new();
        for (subscription, queue) in self.waiting.take_all() {
            if let Some(first) = queue.front() {
                by_partition.entry(first.keys.index()).or_default().push((subscription, queue));
            }
        }
        let mut result = Ok(());
        for (_, groups) in by_partition {
            // One partition per pipeline (one slot on a cluster).
            if let Err(error) = self.admit_partition(groups, stopping).await {
                result = Err(error);
            }
        }
        result
    }

    async fn admit_partition(self: &Arc<Self>, groups: Vec<(String, Queue)>, stopping: bool) -> redis::RedisResult<()> {
        let taken: Vec<(String, usize)> = groups.iter().map(|(s, q)| (s.clone(), q.len())).collect();
        let mut left: HashMap<String, Queue> = HashMap::new();
        let result = self.admit_groups(groups, stopping, &mut left).await;
        // Whatever happened, every task taken out is accounted for: still
        // waiting (`left`), or admitted or parked.
        for (subscription, count) in taken {
            self.waiting.end_round(&subscription, left.remove(&subscription).unwrap_or_default(), count);
        }
        result
    }

    /// Puts the tasks that waited too long back in Redis: one `park.lua`
    /// call per partition.
    async fn park_expired(
        &self,
        expired: &[(String, Queue)],
        now: u64,
        conn: &mut hookline_queue::RedisConn,
    ) -> redis::RedisResult<()> {
        let mut parked = Parked::default();
        let mut parks: BTreeMap<u16, Parks<'_>> = BTreeMap::new();
        for w in expired.iter().flat_map(|(_, old)| old) {
            let due = now + rand::rng().random_range(0..50);
            let call = parks.entry(w.keys.index()).or_insert_with(|| Parks::new(&w.keys, now));
            call.add(&w.entry, &w.task, Park::Defer(due));
            self.breakers.not_sent(&w.endpoint);
            parked.add(ParkReason::WaitedTooLong);
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        self.scripts.load(&mut pipe, &[Step::Park]);
        for call in parks.values() {
            self.scripts.park(&mut pipe, call, &self.settings.retention);
        }
        let results: Vec<redis::RedisResult<redis::Value>> = pipe.query_async(conn).await?;
        parked.record_replies(results);
        Ok(())
    }

    /// Parks the tasks of `groups` that waited too long, leases slots for
    /// the others and starts those admitted; what still waits goes to
    /// `left`, oldest first.
    async fn admit_groups(
        self: &Arc<Self>,
        groups: Vec<(String, Queue)>,
        stopping: bool,
        left: &mut HashMap<String, Queue>,
    ) -> redis::RedisResult<()> {
        let now = now_ms();
        let max_wait = self.max_wait();
        let mut conn = self.redis.clone();
        let mut live = Vec::new();
        let mut expired = Vec::new();
        for (subscription, queue) in groups {
            let (old, young): (Queue, Queue) =
                queue.into_iter().partition(|w| stopping || w.read_at.elapsed() >= max_wait);
            if !old.is_empty() {
                expired.push((subscription.clone(), old));
            }
            if !young.is_empty() {
                live.push((subscription, young));
            }
        }
        if !expired.is_empty()
            && let Err(error) = self.park_expired(&expired, now, &mut conn).await
        {
            // Redis unreachable: everything stays in the room (and pending
            // in the group) for the next round, in order.
            for (subscription, queue) in expired.into_iter().chain(live) {
                left.entry(subscription).or_default().extend(queue);
            }
            return Err(error);
        }
        if live.is_empty() {
            return Ok(());
        }
        // One `lease.lua` call per partition, for all its subscriptions
        // with waiting tasks; the replies, in `live`'s order.
        let mut by_partition: BTreeMap<u16, (&PartitionKeys, Vec<usize>, Vec<Lease<'_>>)> = BTreeMap::new();
        for (place, (subscription, queue)) in live.iter().enumerate() {
            let first = &queue[0];
            let max = first.cached.subscription.spec.max_in_flight as usize;
            let ids = queue.iter().take(max).map(|w| w.task.delivery_id.as_str()).collect();
            let call = by_partition.entry(first.keys.index()).or_insert_with(|| (&first.keys, Vec::new(), Vec::new()));
            call.1.push(place);
            call.2.push(self.lease_request(&first.cached, subscription, ids, now));
        }
        let leases = |pipe: &mut redis::Pipeline| {
            for (keys, _, requests) in by_partition.values() {
                self.scripts.leases(pipe, keys, now, requests);
            }
        };
        let replies: Vec<Vec<(usize, u64)>> = match self.scripts.query(leases, &[Step::Lease], &mut conn).await {
            Ok(replies) => replies,
            Err(error) => {
                left.extend(live);
                return Err(error);
            }
        };
        let mut admissions = vec![(0, 0); live.len()];
        for ((_, places, _), reply) in by_partition.into_values().zip(replies) {
            for (place, admission) in places.into_iter().zip(reply) {
                admissions[place] = admission;
            }
        }
        for ((subscription, mut queue), (admitted, _)) in live.into_iter().zip(admissions) {
            let mut started = 0;
            while started < admitted.min(queue.len()) {
                let permit = match self.permits.clone().try_acquire_owned() {
                    Ok(permit) if self.take_share(&subscription) => permit,
                    Ok(_) | Err(_) => break,
                };
                let Some(w) = queue.pop_front() else { break };
                let job = Job { work: w, permit };
                tokio::spawn(self.clone().guarded_attempt(job));
                started += 1;
            }
            if started < admitted {
                // No slot in this process after all: give the leases of
                // the admitted ones back; they keep waiting.
                if let Some(first) = queue.front() {
                    let mut release = redis::cmd("ZREM");
                    release.arg(first.keys.in_flight(&subscription));
                    for w in queue.iter().take(admitted - started) {
                        release.arg(&w.task.delivery_id);
                    }
                    let _: redis::RedisResult<i64> = release.query_async(&mut conn).await;
                }
            }
            left.insert(subscription, queue);
        }
        Ok(())
    }
}
