//! Delivery workers: per partition, a consumer loop on the deliveries
//! stream and a scheduler loop that puts due retries and resumed
//! subscriptions' held deliveries back on the stream.
//!
//! Both loops work their partition only while this replica owns it
//! (`hookline_queue::Ownership`); the consumer reads with a connection of
//! its own, so one partition's blocking read never delays another's.
//!
//! The consumer reads only as many tasks as it has free concurrency, so
//! tasks wait in Redis (where another replica may take them), not in this
//! process. Each task runs on its own (see `dispatch`): a slow endpoint
//! holds its own slots, never the loop.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use hookline_queue::{
    BlockingReader, ConsumerGroup, DELIVERY_GROUP, Ownership, PartitionKeys, RedisConn, is_missing_group,
};
use hookline_watch::SubscriptionCache;
use tokio::sync::{Semaphore, watch};

use crate::{
    breaker::Breakers,
    control::Control,
    http::Sender,
    store::{Requeue, Retention, Scripts, Step},
};

const READ_BLOCK: Duration = Duration::from_secs(1);
const SCHEDULE_EVERY: Duration = Duration::from_millis(100);
const RELEASE_EVERY: Duration = Duration::from_millis(500);
const TRIM_EVERY: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const REQUEUE_BATCH: usize = 500;
const PRUNE_EVERY: Duration = Duration::from_secs(600);
const PROBE_TICK: Duration = Duration::from_millis(250);
/// How often each partition's loop looks for tasks of consumers that are gone.
const TAKEOVER_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) consumer: String,
    pub(crate) batch_size: usize,
    pub(crate) claim_idle: Duration,
    /// How long a replica counts as alive without renewing (the partition
    /// lease): tasks of a consumer gone that long are taken over.
    pub(crate) liveness: Duration,
    pub(crate) max_retry_after: Duration,
    pub(crate) auto_pause: crate::outcome::AutoPause,
    pub(crate) metrics_tenant_label: bool,
    pub(crate) retention: Retention,
    pub(crate) key_prefix: String,
    /// Slots one subscription may hold in this process under contention.
    pub(crate) subscription_share: usize,
    pub(crate) max_concurrency: usize,
    /// Each consumer loop reads with a clone of this (unopened) reader.
    pub(crate) reader: BlockingReader,
}

#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) redis: RedisConn,
    pub(crate) ownership: Ownership,
    pub(crate) cache: SubscriptionCache,
    pub(crate) sender: Sender,
    pub(crate) scripts: Scripts,
    /// Where finished attempts are recorded, many at a time.
    pub(crate) completions: crate::completion::Completions,
    pub(crate) breakers: Breakers,
    pub(crate) control: Control,
    pub(crate) permits: Arc<Semaphore>,
    /// Slots each subscription holds in this process (fair share).
    pub(crate) held_slots: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    /// A moving average of each subscription's attempt durations: how long
    /// a wave of its in-flight slots takes to free, to pace the tasks its
    /// in-flight limit turns away.
    pub(crate) pace: std::sync::Mutex<std::collections::HashMap<String, Duration>>,
    pub(crate) partitions: hookline_queue::Partitions,
    pub(crate) settings: Settings,
    /// Tasks turned away by an in-flight limit or the fair share, waiting
    /// here for a slot.
    pub(crate) waiting: crate::waiting::Waiting,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

async fn pause(backoff: &mut Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(*backoff) => {}
        _ = stop.changed() => {}
    }
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
}

impl Worker {
    /// Consumes the partition's deliveries stream until `stop`.
    pub(crate) async fn consume(self: Arc<Self>, keys: PartitionKeys, mut stop: watch::Receiver<bool>) {
        let group = ConsumerGroup::new(keys.deliveries(), DELIVERY_GROUP, &self.settings.consumer);
        let mut ready = false;
        let mut backoff = Duration::from_millis(100);
        let mut claim_cursor = "0-0".to_owned();
        let mut last_claim = Instant::now();
        let mut last_takeover = Instant::now();
        let mut last_trim = Instant::now();
        let mut reader = self.settings.reader.clone();
        let mut ownership = self.ownership.clone();
        tracing::info!(partition = keys.index(), consumer = %self.settings.consumer, "delivery worker started");
        while !*stop.borrow() {
            if !ownership.owns_or_wait(keys.index(), &mut stop).await {
                continue;
            }
            if !self.cache.state().is_ready() {
                tokio::select! {
                    _ = self.cache.ready(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            // Tasks waiting for a slot count against what is read, and a
            // full batch of them stops reading (see `waiting`).
            let free = self.permits.available_permits().saturating_sub(self.waiting.len());
            if free == 0 || self.waiting.len() >= self.settings.batch_size {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            let step = async {
                let mut conn = self.redis.clone();
                if !ready {
                    group.ensure(&mut conn).await?;
                    ready = true;
                }
                if last_takeover.elapsed() >= TAKEOVER_EVERY
                    && let Some(live) = ownership.live()
                {
                    last_takeover = Instant::now();
                    let count = free.min(self.settings.batch_size);
                    let taken = group.take_over(&mut conn, &live.members, self.settings.liveness, count).await?;
                    self.clone().dispatch(&keys, taken).await?;
                }
                if last_claim.elapsed() >= self.settings.claim_idle / 2 {
                    last_claim = Instant::now();
                    let (stale, cursor) = group
                        .claim_stale(
                            &mut conn,
                            self.settings.claim_idle,
                            &claim_cursor,
                            free.min(self.settings.batch_size),
                        )
                        .await?;
                    claim_cursor = cursor;
                    self.clone().dispatch(&keys, stale).await?;
                }
                let count = free.min(self.settings.batch_size);
                let fresh = group.read_new(reader.conn().await?, count, READ_BLOCK).await?;
                self.clone().dispatch(&keys, fresh).await?;
                if last_trim.elapsed() >= TRIM_EVERY {
                    last_trim = Instant::now();
                    group.trim_done(&mut conn, Duration::from_secs(60), now_ms()).await?;
                }
                Ok::<_, redis::RedisError>(())
            };
            // A panic in one step (a bug meeting some input) must not end
            // this partition's loop: its tasks stay pending and are
            // claimed again; each attempt guards itself (`dispatch`).
            let step = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(step));
            match step.await {
                Ok(Ok(())) => backoff = Duration::from_millis(100),
                Err(panic) => {
                    let panic = crate::attempt::panic_text(&panic);
                    tracing::error!(partition = keys.index(), panic, "delivery step panicked; backing off");
                    metrics::counter!("hookline_delivery_panics_total").increment(1);
                    pause(&mut backoff, &mut stop).await;
                }
                Ok(Err(error)) => {
                    if is_missing_group(&error) {
                        tracing::warn!(partition = keys.index(), "deliveries stream or group missing; recreating");
                        ready = false;
                    } else {
                        tracing::warn!(partition = keys.index(), %error, "delivery step failed; backing off");
                    }
                    pause(&mut backoff, &mut stop).await;
                }
            }
        }
        tracing::info!(partition = keys.index(), "delivery worker stopped");
    }

    /// Open circuits probe on a short period, whatever their cooldown:
    /// when a probe is due and no task of the endpoint is at hand to be
    /// it, one deferred task is brought forward (see `breaker`).
    pub(crate) async fn wake_probes(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            let due = self.breakers.probes_to_wake();
            if !due.is_empty() {
                self.wake_deferred(&due, 1).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(PROBE_TICK) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Moves due retries, and the held deliveries of subscriptions no
    /// longer paused, back onto the stream.
    pub(crate) async fn schedule(self: Arc<Self>, keys: PartitionKeys, mut stop: watch::Receiver<bool>) {
        let mut last_release = Instant::now();
        // Pruned first when the partition is taken, then every PRUNE_EVERY.
        let mut last_prune: Option<Instant> = None;
        let mut backoff = Duration::from_millis(100);
        let mut ownership = self.ownership.clone();
        while !*stop.borrow() {
            if !ownership.owns_or_wait(keys.index(), &mut stop).await {
                continue;
            }
            let step = async {
                if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) && self.cache.state().is_ready() {
                    last_prune = Some(Instant::now());
                    self.prune_indexes(&keys, &mut self.redis.clone()).await?;
                }
                let mut conn = self.redis.clone();
                loop {
                    // Every 100 ms per partition: no load sent each time.
                    let now = now_ms();
                    let due = |pipe: &mut redis::Pipeline| {
                        self.scripts.requeue(pipe, &keys, Requeue::Due, "", now, REQUEUE_BATCH);
                    };
                    let (moved,): (usize,) = self.scripts.query(due, &[Step::Requeue], &mut conn).await?;
                    if moved < REQUEUE_BATCH {
                        break;
                    }
                }
                if last_release.elapsed() >= RELEASE_EVERY && self.cache.state().is_ready() {
                    last_release = Instant::now();
                    self.release_held(&keys, &mut conn).await?;
                    self.release_fifo(&keys, &mut conn).await?;
                }
                Ok::<_, redis::RedisError>(())
            };
            match step.await {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    tokio::select! {
                        _ = tokio::time::sleep(SCHEDULE_EVERY) => {}
                        _ = stop.changed() => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(partition = keys.index(), %error, "scheduler step failed; backing off");
                    pause(&mut backoff, &mut stop).await;
                }
            }
        }
    }

    /// Drops index entries older than the delivery retention (their records
    /// have expired) for the subscriptions and tenants of this partition:
    /// the delivery logs of those that no longer get deliveries (each new
    /// entry trims its log), the dead letters, and the sorted sets older
    /// builds listed deliveries in; and renews those logs' TTL.
    async fn prune_indexes(&self, keys: &PartitionKeys, conn: &mut RedisConn) -> redis::RedisResult<()> {
        let cutoff = now_ms().saturating_sub(self.settings.retention.record_secs * 1000);
        // The logs of live subscriptions (and their tenants) are renewed;
        // the others expire by themselves (`log_ttl_secs`).
        let log_ttl = hookline_queue::log_ttl_secs(self.settings.retention.record_secs);
        let state = self.cache.state();
        let mut pipe = redis::pipe();
        let mut tenants = std::collections::BTreeSet::new();
        for cached in state.subscriptions() {
            let tenant = cached.subscription.tenant.as_str();
            if self.partitions_of_tenant(tenant) != keys.index() {
                continue;
            }
            let sub = cached.subscription.id.to_string();
            let log = keys.subscription_log(&sub);
            pipe.cmd("XTRIM").arg(&log).arg("MINID").arg("~").arg(cutoff).ignore();
            pipe.cmd("EXPIRE").arg(&log).arg(log_ttl).ignore();
            pipe.cmd("ZREMRANGEBYSCORE").arg(keys.legacy_subscription_index(&sub)).arg("-inf").arg(cutoff).ignore();
            pipe.cmd("ZREMRANGEBYSCORE").arg(keys.dead_letters(&sub)).arg("-inf").arg(cutoff).ignore();
            tenants.insert(tenant.to_owned());
        }
        if tenants.is_empty() {
            return Ok(());
        }
        for tenant in tenants {
            let log = keys.tenant_log(&tenant);
            pipe.cmd("XTRIM").arg(&log).arg("MINID").arg("~").arg(cutoff).ignore();
            pipe.cmd("EXPIRE").arg(&log).arg(log_ttl).ignore();
            pipe.cmd("ZREMRANGEBYSCORE").arg(keys.legacy_tenant_index(&tenant)).arg("-inf").arg(cutoff).ignore();
        }
        pipe.query_async::<()>(conn).await
    }

    fn partitions_of_tenant(&self, tenant: &str) -> u16 {
        self.partitions.of_tenant(tenant).index()
    }

    /// Deliveries waiting their FIFO turn go back to the stream if their
    /// subscription is no longer FIFO (or is gone).
    async fn release_fifo(&self, keys: &PartitionKeys, conn: &mut RedisConn) -> redis::RedisResult<()> {
        let waiting: Vec<String> = redis::cmd("SMEMBERS").arg(keys.fifo_subscriptions()).query_async(conn).await?;
        let state = self.cache.state();
        for sub in waiting {
            let still_fifo = hookline_domain::SubscriptionId::parse(&sub, "sub")
                .ok()
                .and_then(|id| state.get(id))
                .is_some_and(|c| c.subscription.spec.ordering == hookline_domain::Ordering::Fifo);
            if still_fifo {
                continue;
            }
            let mut pipe = redis::pipe();
            self.scripts.load(&mut pipe, &[Step::Requeue]);
            self.scripts.requeue(&mut pipe, keys, Requeue::Fifo(&sub), "", now_ms(), REQUEUE_BATCH);
            let (moved,): (usize,) = pipe.query_async(conn).await?;
            tracing::info!(subscription = %sub, moved, "released deliveries waiting for a FIFO turn");
        }
        Ok(())
    }

    /// Held deliveries go back to the stream once their subscription is
    /// active again, or gone (the consumer then cancels them).
    async fn release_held(&self, keys: &PartitionKeys, conn: &mut RedisConn) -> redis::RedisResult<()> {
        let held: Vec<String> = redis::cmd("SMEMBERS").arg(keys.held_subscriptions()).query_async(conn).await?;
        let state = self.cache.state();
        for sub in held {
            let still_paused = hookline_domain::SubscriptionId::parse(&sub, "sub")
                .ok()
                .and_then(|id| state.get(id))
                .is_some_and(|c| matches!(c.subscription.state, hookline_domain::SubscriptionState::Paused(_)));
            if still_paused {
                continue;
            }
            loop {
                let mut pipe = redis::pipe();
                self.scripts.load(&mut pipe, &[Step::Requeue]);
                self.scripts.requeue(&mut pipe, keys, Requeue::Held(&sub), "", now_ms(), REQUEUE_BATCH);
                let (moved,): (usize,) = pipe.query_async(conn).await?;
                if moved > 0 {
                    tracing::info!(subscription = %sub, moved, "released held deliveries");
                }
                if moved < REQUEUE_BATCH {
                    break;
                }
            }
        }
        Ok(())
    }
}
