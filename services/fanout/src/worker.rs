//! Fan-out workers: one loop per partition of the events stream.
//!
//! Each loop reads batches as a consumer of the `fanout` group, waits (up to
//! `fence_timeout`) until the subscription cache has every change made
//! before the events were published (and never uses one of another change
//! log), matches them locally, and runs one fan-out script call for the
//! batch (more only past `FANOUT_TASKS_PER_CALL` tasks). For each event the
//! script acknowledges the entry and enqueues its delivery tasks
//! atomically, so a crash at any
//! point loses nothing and doubles nothing: unacknowledged entries of a
//! consumer that is gone are taken over by a live one as soon as its
//! liveness expires (`ConsumerGroup::take_over`), those of a stuck one
//! after `claim_idle` (XAUTOCLAIM), and the script's XACK lets only one
//! consumer enqueue.
//!
//! A loop works its partition only while this replica owns it
//! (`hookline_queue::Ownership`), with a reading connection of its own, so
//! one partition's blocking read never delays another's.
//!
//! A vanished stream or group (Redis restarted empty) is recreated, with
//! backoff. While the delivery backlog of the partition (tasks not yet
//! acknowledged by delivery) is at `max_delivery_backlog`, the loop waits
//! instead of growing Redis; Publish keeps answering meanwhile.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use hookline_domain::DeliveryId;
use hookline_queue::{
    BlockingReader, ConsumerGroup, DELIVERY_GROUP, EventEntry, FANOUT_GROUP, FanoutItem, FanoutOutcome, Fence,
    Ownership, PartitionKeys, RedisConn, Scripts, StreamMessage, current_fence, is_missing_group,
};
use hookline_watch::{CacheState, SubscriptionCache};
use tokio::sync::watch;

use crate::{matching::matching_subscriptions, publish::unix_ms};

const READ_BLOCK: Duration = Duration::from_secs(1);
const BACKLOG_PAUSE: Duration = Duration::from_millis(100);
const BACKLOG_WARN_EVERY: Duration = Duration::from_secs(10);
const TRIM_EVERY: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often each partition's loop looks for entries of consumers that are gone.
const TAKEOVER_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub(crate) struct WorkerSettings {
    pub(crate) consumer: String,
    pub(crate) batch_size: usize,
    pub(crate) claim_idle: Duration,
    /// How long a replica counts as alive without renewing (the partition
    /// lease): entries of a consumer gone that long are taken over.
    pub(crate) liveness: Duration,
    pub(crate) fence_timeout: Duration,
    pub(crate) max_delivery_backlog: u64,
    pub(crate) stream_retention: Duration,
    pub(crate) key_prefix: String,
    /// Each partition loop reads with a clone of this (unopened) reader.
    pub(crate) reader: BlockingReader,
}

#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) redis: RedisConn,
    pub(crate) ownership: Ownership,
    pub(crate) cache: SubscriptionCache,
    pub(crate) scripts: Scripts,
    pub(crate) settings: WorkerSettings,
}

/// One loop's state.
struct Partition {
    keys: PartitionKeys,
    /// This loop's own connection for its blocking reads.
    reader: BlockingReader,
    events: ConsumerGroup,
    deliveries: ConsumerGroup,
    group_ready: bool,
    claim_cursor: String,
    last_claim: Instant,
    last_takeover: Instant,
    last_trim: Instant,
    last_backlog_warning: Instant,
    backoff: Duration,
}

impl Worker {
    /// Runs until `stop` turns true; finishes the batch in hand first.
    pub(crate) async fn run(self: Arc<Self>, keys: PartitionKeys, mut stop: watch::Receiver<bool>) {
        let consumer = &self.settings.consumer;
        let long_ago = Instant::now().checked_sub(Duration::from_secs(3600)).unwrap_or_else(Instant::now);
        let mut p = Partition {
            events: ConsumerGroup::new(keys.events(), FANOUT_GROUP, consumer),
            deliveries: ConsumerGroup::new(keys.deliveries(), DELIVERY_GROUP, consumer),
            keys,
            reader: self.settings.reader.clone(),
            group_ready: false,
            claim_cursor: "0-0".into(),
            last_claim: long_ago,
            last_takeover: long_ago,
            last_trim: Instant::now(),
            last_backlog_warning: long_ago,
            backoff: Duration::from_millis(100),
        };
        tracing::info!(partition = p.keys.index(), consumer, "fan-out worker started");
        // Served from the start (at 0), as every documented metric is.
        metrics::counter!("hookline_fanout_backlog_waits_total", "partition" => p.keys.index().to_string())
            .increment(0);
        let mut ownership = self.ownership.clone();
        while !*stop.borrow() {
            if !ownership.owns_or_wait(p.keys.index(), &mut stop).await {
                continue;
            }
            if !self.cache.state().is_ready() {
                tokio::select! {
                    _ = self.cache.ready(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            if let Err(error) = self.step(&mut p).await {
                if is_missing_group(&error) {
                    tracing::warn!(partition = p.keys.index(), "events stream or group missing; recreating");
                    p.group_ready = false;
                } else {
                    tracing::warn!(partition = p.keys.index(), %error, "fan-out step failed; backing off");
                }
                tokio::select! {
                    _ = tokio::time::sleep(p.backoff) => {}
                    _ = stop.changed() => {}
                }
                p.backoff = (p.backoff * 2).min(MAX_BACKOFF);
            } else {
                p.backoff = Duration::from_millis(100);
            }
        }
        tracing::info!(partition = p.keys.index(), "fan-out worker stopped");
    }

    async fn step(&self, p: &mut Partition) -> redis::RedisResult<()> {
        let mut conn = self.redis.clone();
        if !p.group_ready {
            p.events.ensure(&mut conn).await?;
            p.group_ready = true;
        }
        let backlog = p.deliveries.backlog(&mut conn).await?;
        metrics::gauge!("hookline_delivery_backlog", "partition" => p.keys.index().to_string()).set(backlog as f64);
        if backlog >= self.settings.max_delivery_backlog {
            metrics::counter!("hookline_fanout_backlog_waits_total", "partition" => p.keys.index().to_string())
                .increment(1);
            if p.last_backlog_warning.elapsed() >= BACKLOG_WARN_EVERY {
                p.last_backlog_warning = Instant::now();
                tracing::warn!(
                    partition = p.keys.index(),
                    backlog,
                    limit = self.settings.max_delivery_backlog,
                    "delivery backlog at its limit; fan-out waits"
                );
            }
            tokio::time::sleep(BACKLOG_PAUSE).await;
            return Ok(());
        }
        if p.last_takeover.elapsed() >= TAKEOVER_EVERY
            && let Some(live) = self.ownership.live()
        {
            p.last_takeover = Instant::now();
            let taken =
                p.events.take_over(&mut conn, &live.members, self.settings.liveness, self.settings.batch_size).await?;
            self.fan_out(p, taken).await?;
        }
        if p.last_claim.elapsed() >= self.settings.claim_idle / 2 {
            p.last_claim = Instant::now();
            let (stale, cursor) = p
                .events
                .claim_stale(&mut conn, self.settings.claim_idle, &p.claim_cursor, self.settings.batch_size)
                .await?;
            p.claim_cursor = cursor;
            self.fan_out(p, stale).await?;
        }
        let fresh = p.events.read_new(p.reader.conn().await?, self.settings.batch_size, READ_BLOCK).await?;
        self.fan_out(p, fresh).await?;
        if p.last_trim.elapsed() >= TRIM_EVERY {
            p.last_trim = Instant::now();
            p.events.trim_done(&mut conn, self.settings.stream_retention, unix_ms(SystemTime::now())).await?;
        }
        Ok(())
    }

    /// A cache that has reached `fence` (the batch's highest). One of
    /// another change log is never used: while the events' log is the
    /// current one, this waits for the cache to catch up (in steps of
    /// `fence_timeout`, for as long as it takes); once the log has changed
    /// since they were published (the subscription store was emptied), their
    /// subscriptions are gone and the cache of the current log is the truth.
    /// Behind on the same log past `fence_timeout`, it matches anyway (the
    /// subscription service may be down), with a warning.
    async fn fenced_state(&self, fence: Fence) -> redis::RedisResult<Arc<CacheState>> {
        let reached = |s: &CacheState| s.is_ready() && fence.reached_by(s.log_id(), s.revision());
        loop {
            if let Ok(state) = self.cache.wait(self.settings.fence_timeout, reached).await {
                return Ok(state);
            }
            let state = self.cache.state();
            if fence.log_id.is_empty() || fence.log_id == state.log_id() {
                tracing::warn!(
                    fence = fence.revision,
                    cached = state.revision(),
                    "subscription cache behind the events' fence; matching anyway"
                );
                return Ok(state);
            }
            let current = current_fence(&mut self.redis.clone(), &self.settings.key_prefix).await?;
            if current.log_id == state.log_id() {
                tracing::warn!(
                    "events published before the subscription store was emptied: matching them with its current \
                     subscriptions"
                );
                return Ok(state);
            }
            tracing::warn!(
                "the subscription cache is of another change log than the events (the subscription store was \
                 emptied?); waiting for it to reload"
            );
        }
    }

    /// Matches a batch and runs its fan-out scripts in one pipeline.
    async fn fan_out(&self, p: &Partition, batch: Vec<StreamMessage>) -> redis::RedisResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let parsed: Vec<_> = batch
            .into_iter()
            .map(|StreamMessage { id, fields }| {
                let entry = EventEntry::parse(&id, fields);
                (id, entry)
            })
            .collect();
        let fence = Fence::latest(parsed.iter().filter_map(|(_, e)| e.as_ref().ok()).map(|e| &e.fence));
        let state = self.fenced_state(fence).await?;
        let now_ms = unix_ms(SystemTime::now());
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        self.scripts.load(&mut pipe);
        let mut matched = Vec::with_capacity(parsed.len());
        let mut newer = hookline_queue::LeftForNewerBuild::default();
        for (id, entry) in &parsed {
            match entry {
                Ok(event) => {
                    let span = fanout_span(&p.events.stream, id, event);
                    let traceparent = hookline_telemetry::continue_trace(&span, &event.traceparent);
                    let tasks: Vec<_> = span.in_scope(|| {
                        matching_subscriptions(&state, event)
                            .into_iter()
                            .map(|sub| (DeliveryId::generate().to_string(), sub.to_string()))
                            .collect()
                    });
                    span.record("hookline.matched", tasks.len());
                    matched.push((id.as_str(), event, traceparent, tasks, span));
                }
                // Written by a newer build (a rolling upgrade is under way):
                // left pending, unacknowledged, for one that reads it to take
                // over when this consumer goes.
                Err(error) if error.is_unknown_version() => newer.add(error),
                Err(error) => {
                    // Malformed: acknowledge it so it does not block the
                    // partition; it stays in the stream (until trimmed) for
                    // inspection.
                    tracing::error!(entry = %id, %error, "skipping an event entry this build cannot read");
                    pipe.cmd("XACK").arg(p.events.stream.as_str()).arg(FANOUT_GROUP).arg(id).ignore();
                }
            }
        }
        newer.report(&p.events.stream);
        let items: Vec<FanoutItem<'_>> = matched
            .iter()
            .map(|(entry_id, event, traceparent, tasks, _)| FanoutItem { entry_id, event, traceparent, tasks })
            .collect();
        let calls = self.scripts.fanout(&mut pipe, &p.keys, FANOUT_GROUP, now_ms, &items);
        let results: Vec<redis::RedisResult<redis::Value>> = pipe.query_async(&mut self.redis.clone()).await?;
        let (mut events, mut tasks) = (0usize, 0usize);
        let mut spans = matched.into_iter().map(|(.., span)| span);
        for (result, size) in results.into_iter().zip(calls) {
            let chunk: Vec<tracing::Span> = spans.by_ref().take(size).collect();
            match result.and_then(|v| FanoutOutcome::list(v).map_err(Into::into)) {
                Ok(outcomes) => {
                    for (outcome, span) in outcomes.into_iter().zip(&chunk) {
                        match outcome {
                            FanoutOutcome::Enqueued(n) => {
                                events += 1;
                                tasks += n;
                            }
                            FanoutOutcome::AlreadyDone => {
                                span.record("hookline.matched", 0);
                                span.record("hookline.already_done", true);
                            }
                        }
                    }
                }
                Err(error) => {
                    for span in &chunk {
                        span.record("otel.status_code", "ERROR");
                    }
                    if is_missing_group(&error) {
                        return Err(error);
                    }
                    // Left pending: a later claim retries them.
                    tracing::warn!(%error, events = chunk.len(), "fan-out of events failed; they will be retried");
                }
            }
        }
        metrics::counter!("hookline_fanout_events_total").increment(events as u64);
        metrics::counter!("hookline_fanout_tasks_total").increment(tasks as u64);
        tracing::debug!(partition = p.keys.index(), events, tasks, "fanned out");
        Ok(())
    }
}

/// The span of one event's fan-out: a child of its Publish span, the parent
/// of every delivery attempt it enqueues (OpenTelemetry messaging
/// conventions, plus hookline's own attributes).
fn fanout_span(stream: &str, entry_id: &str, event: &EventEntry) -> tracing::Span {
    use tracing::field::Empty;
    tracing::info_span!(
        "fanout",
        otel.name = "fanout process",
        otel.kind = "consumer",
        otel.status_code = Empty,
        messaging.system = "redis",
        messaging.operation.type = "process",
        messaging.destination.name = stream,
        messaging.consumer.group.name = FANOUT_GROUP,
        messaging.message.id = entry_id,
        hookline.tenant = %event.tenant,
        hookline.event_id = %event.event_id,
        hookline.event_type = %event.event_type,
        hookline.matched = Empty,
        hookline.already_done = Empty,
        trace_id = Empty,
        span_id = Empty,
    )
}
