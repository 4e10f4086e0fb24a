//! Admission, the stage after routing ([`Worker::admit`]), and the state
//! it keeps in this process: each subscription's share of the
//! worker slots (so slow endpoints cannot starve the others under
//! contention) and the pace of its attempts (how long a wave of its
//! in-flight slots takes to free, which decides whether a task turned
//! away by its in-flight limit waits here or in Redis, and for how long).

use std::{collections::HashMap, sync::Arc, time::Duration};

use hookline_domain::SubscriptionId;
use hookline_queue::RedisConn;
use hookline_watch::CachedSubscription;
use rand::Rng;

use crate::{
    dispatch::{Batch, Job, LEASE_MARGIN, Ready, Work},
    instruments::ParkReason,
    request::EventData,
    store::{Lease, Park, Step},
    worker::Worker,
};

/// How soon a task deferred by a full in-flight limit is tried again.
const IN_FLIGHT_RETRY: Duration = Duration::from_millis(200);
/// The shortest wait for a task turned away by a full in-flight limit.
const MIN_WAVE: Duration = Duration::from_millis(10);

/// A subscription's slot of this process's fair share, given back when the
/// attempt ends however it ends.
pub(crate) struct ShareSlot<'a> {
    pub(crate) worker: &'a Worker,
    pub(crate) subscription: &'a str,
}

impl Drop for ShareSlot<'_> {
    fn drop(&mut self) {
        self.worker.release_share(self.subscription);
    }
}

impl Worker {
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
    pub(crate) fn wave(&self, subscription: &str) -> Duration {
        let pace = self.pace.lock().unwrap_or_else(|e| e.into_inner());
        pace.get(subscription).map_or(IN_FLIGHT_RETRY, |d| (*d).max(MIN_WAVE))
    }

    /// Whether the `position`-th task turned away by the subscription's
    /// full in-flight limit should get a slot well within the waiting
    /// room's `max_wait`: only when its attempts are known to be quick (a
    /// subscription whose attempts have not finished yet, such as one
    /// hanging, is parked instead, so it cannot fill the room).
    pub(crate) fn quick_turn(&self, subscription: &str, position: usize, max_in_flight: u32) -> bool {
        let pace = self.pace.lock().unwrap_or_else(|e| e.into_inner());
        let waves = 1 + position as u32 / max_in_flight.max(1);
        pace.get(subscription).is_some_and(|d| (*d).max(MIN_WAVE) * waves <= self.max_wait() / 2)
    }

    pub(crate) fn record_pace(&self, subscription: &str, took: Duration) {
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

    /// `subscription`'s admission of `ids` in a `lease.lua` call at `now`,
    /// with its limits: each lease outlives the request by `LEASE_MARGIN`.
    pub(crate) fn lease_request<'a>(
        &self,
        cached: &CachedSubscription,
        subscription: &'a str,
        ids: Vec<&'a str>,
        now: u64,
    ) -> Lease<'a> {
        let spec = &cached.subscription.spec;
        Lease {
            subscription,
            ids,
            expiry_ms: now + (self.request_timeout(cached) + LEASE_MARGIN).as_millis() as u64,
            max: spec.max_in_flight,
            rate: spec.rate_limit,
        }
    }

    pub(crate) fn release_share(&self, subscription: &str) {
        // Called from `ShareSlot::drop`, so also when an attempt panics.
        let mut held = self.held_slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slots) = held.get_mut(subscription) {
            *slots = slots.saturating_sub(1);
            if *slots == 0 {
                held.remove(subscription);
            }
        }
    }

    /// Admission, once per subscription for all its tasks of the batch
    /// (one `lease.lua` call for all the batch's subscriptions): in-flight
    /// slots (shared by every replica) and rate tokens, then this
    /// process's fair share. Each admitted task gets a worker slot and its
    /// attempt (`attempt`); one turned away by a full in-flight limit waits
    /// here for a slot when the subscription's attempts are quick
    /// (`waiting`), else goes back to Redis without an attempt, as a
    /// rate-limited one or one over the fair share does.
    pub(crate) async fn admit(
        self: &Arc<Self>,
        b: &mut Batch<'_>,
        ready: Vec<Ready>,
        events: &HashMap<String, Arc<EventData>>,
        conn: &mut RedisConn,
    ) -> redis::RedisResult<()> {
        let (keys, now, read_at) = (b.keys, b.now, b.read_at);
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
        let requests: Vec<Lease<'_>> = groups
            .iter()
            .map(|group| {
                let (_, first, cached, _) = &group[0];
                let ids = group.iter().map(|(_, task, _, _)| task.delivery_id.as_str()).collect();
                self.lease_request(cached, &first.subscription_id, ids, now)
            })
            .collect();
        let leases = |pipe: &mut redis::Pipeline| self.scripts.leases(pipe, keys, now, &requests);
        let (admissions,): (Vec<(usize, u64)>,) = self.scripts.query(leases, &[Step::Lease], conn).await?;
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
                    let waiter = Box::new(Work { keys: keys.clone(), entry, task, cached, endpoint, event, read_at });
                    match self.waiting.push(waiter, 2 * self.settings.batch_size) {
                        Ok(()) => continue,
                        Err(w) => {
                            reason = ParkReason::WaitingRoomFull;
                            let Work { entry, task, cached, endpoint, event, .. } = *w;
                            (entry, task, cached, endpoint, event)
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
                    b.put_back(&entry, &task, Park::Defer(due), reason);
                    self.breakers.not_sent(&endpoint);
                    continue;
                }
                if !self.take_share(&task.subscription_id) {
                    // Over its fair share of this process: free the lease
                    // just taken and defer it in Redis without an attempt
                    // (not in the waiting room: a subscription over its
                    // share is usually a slow one, and its tasks waiting
                    // here would hold back reading for the others).
                    let due = now + IN_FLIGHT_RETRY.as_millis() as u64 + rand::rng().random_range(0..50);
                    b.put_back_leased(&entry, &task, due, ParkReason::FairShare);
                    self.breakers.not_sent(&endpoint);
                    continue;
                }
                let Ok(permit) = self.permits.clone().acquire_owned().await else { break 'send };
                let work = Box::new(Work { keys: keys.clone(), entry, task, cached, endpoint, event, read_at });
                let job = Job { work, permit };
                tokio::spawn(self.clone().guarded_attempt(job));
            }
        }
        Ok(())
    }
}
