//! Delivery's state in Redis: the scripts that move a delivery from one
//! state to the next (each atomic with its stream acknowledgement), and the
//! reads behind the query RPCs.
//!
//! States: a task in the stream is *pending*; after a failed attempt it is
//! *scheduled* in the retry set; then *succeeded* or *dead* (dead-lettered);
//! *held* while its subscription is paused; *cancelled* when the
//! subscription is gone. Key names are in `hookline-queue`.

mod records;

use std::collections::HashMap;

use hookline_queue::{DELIVERY_GROUP, DeliveryTask, Fence, FinishedParts, PartitionKeys, with_task_functions};
use redis::{Pipeline, Script, ScriptInvocation};

use records::ATTEMPT_FIELDS;
pub(crate) use records::{AttemptRecord, DeliveryRecord, Stats, read_attempts, read_listed, read_records};

/// The fields a script needs to create a delivery's record if it does not
/// exist yet, in the order every script takes them.
fn record_fields(inv: &mut ScriptInvocation<'_>, task: &DeliveryTask) {
    inv.arg(&task.event_id).arg(&task.subscription_id).arg(&task.tenant).arg(&task.event_type).arg(&task.traceparent);
}

/// At most this many completions go in one `complete.lua` call.
pub(crate) const MAX_COMPLETIONS: usize = 128;

/// What recording a completion found (`complete.lua`'s reply for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// Recorded; the subscription's failing streak is now this.
    Streak(Streak),
    /// Another consumer had completed the task already: nothing written.
    AlreadyDone,
    /// The task's stream is gone (Redis restarted empty): its outcome
    /// could not be recorded.
    Lost,
}

/// What `park.lua` did with a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParkOutcome {
    Parked,
    /// Another consumer had acknowledged the entry: nothing written.
    AlreadyDone,
    /// The task's stream is gone (Redis restarted empty), the task with it.
    Lost,
}

impl ParkOutcome {
    pub(crate) fn from_reply(reply: i64) -> Self {
        match reply {
            -1 => Self::AlreadyDone,
            n if n < 0 => Self::Lost,
            _ => Self::Parked,
        }
    }
}

/// A subscription's run of failed attempts since its last success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Streak {
    pub(crate) failures: u64,
    /// When the first of them was recorded, Unix ms (0 when none).
    pub(crate) since_ms: u64,
}

impl Recorded {
    /// From `complete.lua`'s reply: two numbers per completion, flat (its
    /// consecutive failures, or -1 or -2; since when).
    pub(crate) fn from_replies(flat: &[i64]) -> Vec<Self> {
        flat.chunks_exact(2)
            .map(|pair| match pair[0] {
                -1 => Self::AlreadyDone,
                n if n < 0 => Self::Lost,
                n => Self::Streak(Streak { failures: n as u64, since_ms: pair[1].max(0) as u64 }),
            })
            .collect()
    }
}

/// A finished attempt, to be recorded with its acknowledgement.
#[derive(Debug, Clone)]
pub(crate) struct Completion {
    /// The task's stream entry.
    pub(crate) entry: String,
    pub(crate) task: DeliveryTask,
    pub(crate) next: Next,
    pub(crate) attempt: AttemptRecord,
    pub(crate) fifo: bool,
    pub(crate) now_ms: u64,
}

impl Completion {
    /// The group of completions it shares `complete.lua`'s per-group keys
    /// with: its subscription, tenant and hour.
    fn group(&self) -> (&str, &str, u64) {
        (&self.task.subscription_id, &self.task.tenant, self.now_ms / 3_600_000)
    }

    /// The group's keys, in `complete.lua`'s order.
    fn add_group_keys(inv: &mut ScriptInvocation<'_>, keys: &PartitionKeys, (sub, tenant, hour): (&str, &str, u64)) {
        inv.key(keys.stats(sub))
            .key(keys.stats_hour(sub, hour))
            .key(keys.subscription_log(sub))
            .key(keys.tenant_log(tenant))
            .key(keys.dead_letters(sub))
            .key(keys.in_flight(sub))
            .key(keys.fifo_head(sub))
            .key(keys.fifo_waiting(sub));
    }

    /// Whether it is `complete.lua`'s `first`: a success at the first
    /// attempt of a task that came straight from fan-out (it carries the
    /// fence it was matched at; tasks rebuilt from a record carry none),
    /// not through a FIFO gate. Such a delivery has no record (the script
    /// says why), so the script needs neither its record nor the rest of
    /// its fields.
    fn is_first(&self) -> bool {
        let task = &self.task;
        self.next == Next::Done
            && task.attempt == 1
            && task.trigger.is_empty()
            && task.fence != Fence::default()
            && !self.fifo
    }

    /// All that is kept of it if it succeeded at its first attempt and has
    /// no record.
    fn finished(&self) -> FinishedParts<'_> {
        let (task, attempt) = (&self.task, &self.attempt);
        FinishedParts {
            event_id: &task.event_id,
            subscription_id: &task.subscription_id,
            event_type: &task.event_type,
            created_ms: task.enqueued_ms,
            started_ms: attempt.at,
            duration_ms: attempt.dur,
            status_code: attempt.code,
            error: &attempt.err,
            message: &attempt.msg,
            body: &attempt.body,
            trigger: &attempt.trig,
        }
    }

    /// Its two keys, in `complete.lua`'s order (none for a `first`).
    fn add_keys(&self, inv: &mut ScriptInvocation<'_>, keys: &PartitionKeys) {
        if !self.is_first() {
            inv.key(keys.delivery(&self.task.delivery_id)).key(keys.attempts(&self.task.delivery_id));
        }
    }

    /// Its arguments, in `complete.lua`'s order, `group` being the 1-based
    /// place of its group's keys: six for a `first`, the rest of its
    /// fields after those for any other.
    fn add_args(&self, inv: &mut ScriptInvocation<'_>, group: usize) {
        let task = &self.task;
        let (kind, due) = match self.next {
            Next::Done if self.is_first() => ("first", 0),
            Next::Done => ("ok", 0),
            Next::RetryAt(at) => ("retry", at),
            Next::DeadLetter => ("dead", 0),
        };
        let finished =
            if self.next == Next::Done && task.attempt == 1 { self.finished().packed() } else { String::new() };
        inv.arg(group).arg(&self.entry).arg(kind).arg(&task.delivery_id).arg(self.attempt.dur).arg(finished);
        if kind == "first" {
            return;
        }
        inv.arg(task.attempt).arg(due).arg(self.now_ms);
        record_fields(inv, task);
        inv.arg(task.enqueued_ms).arg(if self.fifo { "1" } else { "0" });
        for (_, value) in self.attempt.last_attempt_fields() {
            inv.arg(value);
        }
    }
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    Done,
    RetryAt(u64),
    DeadLetter,
}

/// One subscription's admission in a `lease.lua` call: its deliveries
/// waiting for an in-flight slot (and a rate token), the leases' expiry,
/// and its limits.
#[derive(Debug, Clone)]
pub(crate) struct Lease<'a> {
    pub(crate) subscription: &'a str,
    pub(crate) ids: Vec<&'a str>,
    pub(crate) expiry_ms: u64,
    pub(crate) max: u32,
    pub(crate) rate: Option<hookline_domain::RateLimit>,
}

/// Taking a task off the stream without an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Park {
    /// Back to Redis until this time (ms), no attempt spent: before its
    /// first attempt in the deferred set, as it is; after, in the retry set.
    Defer(u64),
    /// The same, because its endpoint's circuit is open: also noted in the
    /// subscription's endpoint-wait set, to come back when it closes.
    AwaitEndpoint(u64),
    Hold,
    /// Never to be sent; the record says why.
    Cancel(CancelReason),
}

/// Tasks of one partition to put back without an attempt at one time, in
/// one `park.lua` call ([`Scripts::park`]): each task's keys and
/// arguments, in the script's order.
#[derive(Debug)]
pub(crate) struct Parks<'a> {
    partition: &'a PartitionKeys,
    now_ms: u64,
    keys: Vec<String>,
    args: Vec<String>,
}

impl<'a> Parks<'a> {
    pub(crate) fn new(partition: &'a PartitionKeys, now_ms: u64) -> Self {
        Self { partition, now_ms, keys: Vec::new(), args: Vec::new() }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds `task`, read as stream entry `entry` of the partition.
    pub(crate) fn add(&mut self, entry: &str, task: &DeliveryTask, park: Park) {
        let keys = self.partition;
        self.keys.push(keys.delivery(&task.delivery_id));
        let (action, due) = match park {
            // Before its first attempt, a deferred task waits as it is.
            Park::Defer(at) if task.attempt <= 1 => {
                self.args.extend(["wait".into(), entry.to_owned(), at.to_string(), task.packed()]);
                return;
            }
            Park::Defer(at) => ("defer", at),
            Park::AwaitEndpoint(at) => ("await", at),
            Park::Hold => ("hold", 0),
            Park::Cancel(_) => ("cancel", 0),
        };
        self.keys.extend([
            keys.held(&task.subscription_id),
            keys.subscription_log(&task.subscription_id),
            keys.tenant_log(&task.tenant),
            keys.endpoint_wait(&task.subscription_id),
        ]);
        let reason = if let Park::Cancel(reason) = park { reason.text() } else { "" };
        self.args.extend([
            action.to_owned(),
            entry.to_owned(),
            due.to_string(),
            task.delivery_id.clone(),
            task.event_id.clone(),
            task.subscription_id.clone(),
            task.tenant.clone(),
            task.event_type.clone(),
            task.traceparent.clone(),
            task.enqueued_ms.to_string(),
            task.attempt.saturating_sub(1).to_string(),
            reason.to_owned(),
        ]);
    }
}

/// Why a delivery was cancelled, as its record (and the API) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelReason {
    /// The subscription no longer exists (deleted, or gone with an emptied
    /// subscription store).
    SubscriptionGone,
    SubscriptionDisabled,
}

impl CancelReason {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Self::SubscriptionGone => "its subscription no longer exists",
            Self::SubscriptionDisabled => "its subscription is disabled",
        }
    }
}

/// Where requeued deliveries come from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Requeue<'a> {
    /// Due retries.
    Due,
    /// A resumed subscription's held deliveries.
    Held(&'a str),
    /// These deliveries now (retry or replay), each only if its record is
    /// not pending and, when `status` is given, still has that status: two
    /// replays of the same dead letters at once send each one once.
    Ids { ids: &'a [String], status: Option<&'a str> },
    /// A subscription no longer FIFO: everything waiting its turn.
    Fifo(&'a str),
}

#[derive(Debug, Clone)]
pub(crate) struct Retention {
    pub(crate) record_secs: u64,
    pub(crate) stats_secs: u64,
}

#[derive(Debug)]
pub(crate) struct Scripts {
    complete: Script,
    park: Script,
    requeue: Script,
    lease: Script,
    fifo_gate: Script,
    wake: Script,
    restore: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Self {
            complete: Script::new(&with_task_functions(include_str!("lua/complete.lua"))),
            park: Script::new(&with_task_functions(include_str!("lua/park.lua"))),
            requeue: Script::new(&with_task_functions(include_str!("lua/requeue.lua"))),
            lease: Script::new(&with_task_functions(include_str!("lua/lease.lua"))),
            fifo_gate: Script::new(&with_task_functions(include_str!("lua/fifo_gate.lua"))),
            wake: Script::new(include_str!("lua/wake.lua")),
            restore: Script::new(&with_task_functions(include_str!("lua/restore.lua"))),
        }
    }
}

/// A state script, to load (`Scripts::load`) before a pipeline invokes it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    Park,
    Requeue,
    Lease,
    FifoGate,
    Restore,
}

impl Scripts {
    /// Loads `steps`' scripts first in `pipe`, so its EVALSHAs never meet
    /// a Redis that has not seen them (just restarted); only those the
    /// pipeline runs: each load sends the whole script and Redis hashes
    /// it. (`complete` and `wake` run through `invoke_async`, which loads
    /// on NOSCRIPT by itself.)
    pub(crate) fn load(&self, pipe: &mut Pipeline, steps: &[Step]) {
        for step in steps {
            let script = match step {
                Step::Park => &self.park,
                Step::Requeue => &self.requeue,
                Step::Lease => &self.lease,
                Step::FifoGate => &self.fifo_gate,
                Step::Restore => &self.restore,
            };
            pipe.load_script(script).ignore();
        }
    }

    /// Runs the pipeline `build` makes (calls of `steps`' scripts only)
    /// without loading them first: when Redis has lost them (restarted,
    /// flushed: it loses them all at once, so no call of the pipeline ran),
    /// runs it again with the loads first, in the same pipeline (on a
    /// cluster they go where its calls go). For pipelines run often, such
    /// as the admissions and the due requeues: a load sends the whole script and Redis hashes
    /// it, ~25 µs of Redis's time and a few KiB each.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        build: impl Fn(&mut Pipeline),
        steps: &[Step],
        conn: &mut (impl redis::aio::ConnectionLike + Send),
    ) -> redis::RedisResult<T> {
        let mut pipe = redis::pipe();
        build(&mut pipe);
        match pipe.query_async(conn).await {
            Err(error) if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                let mut pipe = redis::pipe();
                self.load(&mut pipe, steps);
                build(&mut pipe);
                pipe.query_async(conn).await
            }
            done => done,
        }
    }

    /// Records finished attempts of one partition (at most
    /// [`MAX_COMPLETIONS`]) and releases their in-flight leases; the reply
    /// is two numbers per completion, flat, for [`Recorded::from_replies`]. Run it with
    /// `invoke_async` (EVALSHA, loading the script only if Redis lost it).
    pub(crate) fn complete<'a>(
        &'a self,
        keys: &PartitionKeys,
        batch: &[&Completion],
        retention: &Retention,
    ) -> ScriptInvocation<'a> {
        let mut inv = self.complete.prepare_invoke();
        inv.key(keys.deliveries()).key(keys.retry());
        // A subscription's keys go once however many of its completions
        // the batch has (a 1:1 batch: one group for all).
        let mut groups: HashMap<(&str, &str, u64), usize> = HashMap::new();
        let places: Vec<usize> = batch
            .iter()
            .map(|c| {
                let next = groups.len() + 1;
                *groups.entry(c.group()).or_insert_with(|| {
                    Completion::add_group_keys(&mut inv, keys, c.group());
                    next
                })
            })
            .collect();
        for completion in batch {
            completion.add_keys(&mut inv, keys);
        }
        // The call's time: a `first` completion's (the others carry their own).
        let now = batch.iter().map(|c| c.now_ms).max().unwrap_or_default();
        inv.arg(DELIVERY_GROUP)
            .arg(retention.record_secs.max(1))
            .arg(retention.stats_secs.max(1))
            .arg(keys.delivery(""))
            .arg(groups.len())
            .arg(now)
            .arg(ATTEMPT_FIELDS.len());
        for field in ATTEMPT_FIELDS {
            inv.arg(field);
        }
        for (completion, group) in batch.iter().zip(places) {
            completion.add_args(&mut inv, group);
        }
        inv
    }

    /// FIFO subscriptions: replies 1 (its turn: go on), 0 (waiting its
    /// turn; acknowledged) or -1 (already handled).
    pub(crate) fn fifo_gate(
        &self,
        pipe: &mut Pipeline,
        keys: &PartitionKeys,
        entry_id: &str,
        task: &DeliveryTask,
        now_ms: u64,
        retention: &Retention,
    ) {
        let mut inv = self.fifo_gate.prepare_invoke();
        inv.key(keys.fifo_head(&task.subscription_id))
            .key(keys.fifo_waiting(&task.subscription_id))
            .key(keys.fifo_subscriptions())
            .key(keys.deliveries())
            .key(keys.delivery(&task.delivery_id))
            .key(keys.subscription_log(&task.subscription_id))
            .key(keys.tenant_log(&task.tenant))
            .arg(DELIVERY_GROUP)
            .arg(entry_id)
            .arg(&task.delivery_id)
            .arg(task.enqueued_ms)
            .arg(now_ms)
            .arg(retention.record_secs.max(1))
            .arg(keys.delivery(""));
        record_fields(&mut inv, task);
        inv.arg(task.attempt.saturating_sub(1));
        pipe.invoke_script(&inv);
    }

    /// Adds one `park.lua` call to `pipe`, putting back `parks` without an
    /// attempt; its reply is a number per task, in order
    /// ([`ParkOutcome::from_reply`]).
    pub(crate) fn park(&self, pipe: &mut Pipeline, parks: &Parks<'_>, retention: &Retention) {
        let keys = parks.partition;
        let mut inv = self.park.prepare_invoke();
        inv.key(keys.deliveries()).key(keys.retry()).key(keys.held_subscriptions()).key(keys.deferred());
        inv.arg(DELIVERY_GROUP).arg(parks.now_ms).arg(retention.record_secs.max(1));
        for key in &parks.keys {
            inv.key(key);
        }
        for arg in &parks.args {
            inv.arg(arg);
        }
        pipe.invoke_script(&inv);
    }

    /// Brings forward up to `count` of the subscription's deliveries
    /// deferred for its endpoint's open circuit (due now); replies how many
    /// entries it took from the endpoint-wait set (fewer than `count`: it
    /// is empty now). Run it with `invoke_async`.
    pub(crate) fn wake<'a>(
        &'a self,
        keys: &PartitionKeys,
        subscription_id: &str,
        now_ms: u64,
        count: usize,
    ) -> ScriptInvocation<'a> {
        let mut inv = self.wake.prepare_invoke();
        inv.key(keys.endpoint_wait(subscription_id)).key(keys.retry()).arg(now_ms).arg(count.max(1));
        inv
    }

    /// Replies how many deliveries were queued.
    /// Gives each of `records` (deliveries of `tenant` kept only in its
    /// log, `DeliveryRecord::from_finished`) a record of its own unless it
    /// has one, so a requeue can rebuild its next attempt from it.
    pub(crate) fn restore(
        &self,
        pipe: &mut Pipeline,
        keys: &PartitionKeys,
        tenant: &str,
        records: &[&DeliveryRecord],
        retention_secs: u64,
    ) {
        const PER_RECORD: usize = 5 + 2 * ATTEMPT_FIELDS.len();
        let mut inv = self.restore.prepare_invoke();
        inv.arg(retention_secs.max(1)).arg(PER_RECORD).arg(tenant);
        for record in records {
            inv.key(keys.delivery(&record.id))
                .arg(&record.event_id)
                .arg(&record.subscription_id)
                .arg(&record.event_type)
                .arg(record.created_ms)
                .arg(record.updated_ms);
            let attempt = record.last_attempt.clone().unwrap_or_default();
            for (field, value) in attempt.last_attempt_fields() {
                inv.arg(field).arg(value);
            }
        }
        pipe.invoke_script(&inv);
    }

    pub(crate) fn requeue(
        &self,
        pipe: &mut Pipeline,
        keys: &PartitionKeys,
        from: Requeue<'_>,
        trigger: &str,
        now_ms: u64,
        limit: usize,
    ) {
        let mut inv = self.requeue.prepare_invoke();
        let (mode, source, subscription) = match from {
            Requeue::Due => ("due", keys.retry(), String::new()),
            Requeue::Held(sub) => ("held", keys.held(sub), sub.to_owned()),
            Requeue::Ids { .. } => ("ids", keys.retry(), String::new()),
            Requeue::Fifo(sub) => ("fifo", keys.fifo_waiting(sub), sub.to_owned()),
        };
        let (index, head) = match from {
            Requeue::Fifo(sub) => (keys.fifo_subscriptions(), keys.fifo_head(sub)),
            _ => (keys.held_subscriptions(), keys.fifo_head("")),
        };
        inv.key(keys.deliveries())
            .key(source)
            .key(index)
            .key(keys.retry())
            .key(head)
            .key(keys.deferred())
            .arg(mode)
            .arg(now_ms)
            .arg(limit)
            .arg(keys.delivery(""))
            .arg(trigger)
            .arg(subscription);
        if let Requeue::Ids { ids, status } = from {
            inv.arg(status.unwrap_or_default());
            for id in ids {
                inv.arg(id);
            }
        }
        pipe.invoke_script(&inv);
    }

    /// Adds one `lease.lua` call admitting `leases` (all of one partition's
    /// subscriptions, `keys`), in one script call; its reply is a
    /// `Vec<(usize, u64)>` of (admitted, wait) per lease, in order (sent
    /// flat, two numbers a lease: redis-rs pairs a flat array).
    pub(crate) fn leases(&self, pipe: &mut Pipeline, keys: &PartitionKeys, now_ms: u64, leases: &[Lease<'_>]) {
        let mut inv = self.lease.prepare_invoke();
        inv.arg(now_ms);
        for lease in leases {
            inv.key(keys.in_flight(lease.subscription))
                .key(keys.rate(lease.subscription))
                .arg(lease.expiry_ms)
                .arg(lease.max)
                .arg(lease.rate.map_or(0, |r| r.per_second))
                .arg(lease.rate.map_or(0, |r| r.burst))
                .arg(lease.ids.len());
            for id in &lease.ids {
                inv.arg(*id);
            }
        }
        pipe.invoke_script(&inv);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use hookline_queue::{ConsumerGroup, FinishedEntry, Partitions};

    use super::*;

    const SUB: &str = "sub_01M81H0VK0J0RWH79N4YGFWWSW";
    const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    /// What a store test starts from: a private Redis whose deliveries
    /// group exists, read by `consumer`; the scripts; a one-minute retention.
    struct Setup {
        redis: hookline_testkit::RedisServer,
        conn: redis::aio::MultiplexedConnection,
        keys: hookline_queue::PartitionKeys,
        group: ConsumerGroup,
        scripts: Scripts,
        retention: Retention,
    }

    async fn setup(consumer: &str) -> Setup {
        let redis = hookline_testkit::RedisServer::start();
        let mut conn = redis.connection().await;
        let keys = Partitions::new("hookline", 1).get(0);
        let group = ConsumerGroup::new(keys.deliveries(), DELIVERY_GROUP, consumer);
        group.ensure(&mut conn).await.unwrap();
        let retention = Retention { record_secs: 60, stats_secs: 60 };
        Setup { redis, conn, keys, group, scripts: Scripts::default(), retention }
    }

    async fn recorded(invocation: ScriptInvocation<'_>, conn: &mut impl redis::aio::ConnectionLike) -> Vec<Recorded> {
        let replies: Vec<i64> = invocation.invoke_async(conn).await.unwrap();
        Recorded::from_replies(&replies)
    }

    /// The members of sorted set `key` with their scores, lowest first.
    async fn scored(conn: &mut impl redis::aio::ConnectionLike, key: String) -> Vec<(String, u64)> {
        redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES").query_async(conn).await.unwrap()
    }

    /// A pipeline putting `tasks` back in one `park.lua` call at `now`;
    /// its reply is `(Vec<i64>,)`, a number per task.
    fn park_call(setup: &Setup, now: u64, tasks: &[(&str, &DeliveryTask, Park)]) -> redis::Pipeline {
        let mut parks = Parks::new(&setup.keys, now);
        for (entry, task, park) in tasks {
            parks.add(entry, task, *park);
        }
        let mut pipe = redis::pipe();
        setup.scripts.load(&mut pipe, &[Step::Park]);
        setup.scripts.park(&mut pipe, &parks, &setup.retention);
        pipe
    }

    /// Puts the task of `delivery` (attempt `n`) on the deliveries stream
    /// and takes it as `group`'s consumer: its entry id and the task.
    async fn take(
        conn: &mut (impl redis::aio::ConnectionLike + Send),
        group: &ConsumerGroup,
        delivery: &str,
        subscription: &str,
        n: &str,
        traceparent: &str,
    ) -> (String, DeliveryTask) {
        let fields = [
            ("v", "1"),
            ("id", delivery),
            ("evt", "evt_01M81H0VK0J0RWH79N4YGFWWSW"),
            ("sub", subscription),
            ("t", "acme"),
            ("et", "a"),
            ("tp", traceparent),
            ("ts", "1"),
            ("n", n),
        ];
        append_and_take(conn, group, &fields).await
    }

    /// Appends a task entry of `fields` to the deliveries stream and takes
    /// it as `group`'s consumer: its entry id and the task.
    async fn append_and_take(
        conn: &mut (impl redis::aio::ConnectionLike + Send),
        group: &ConsumerGroup,
        fields: &[(&str, &str)],
    ) -> (String, DeliveryTask) {
        let keys = Partitions::new("hookline", 1).get(0);
        let _: String = redis::cmd("XADD").arg(keys.deliveries()).arg("*").arg(fields).query_async(conn).await.unwrap();
        let taken = group.read_new(conn, 1, std::time::Duration::from_millis(100)).await.unwrap();
        let task = DeliveryTask::parse(&taken[0].id, taken[0].fields.clone()).unwrap();
        (taken[0].id.clone(), task)
    }

    /// A task deferred before its first attempt waits in the deferred set
    /// as it is, with no record and no delivery-log entry, and a due
    /// requeue puts the same task back on the stream; one that has a
    /// record (or has been attempted) is deferred by its record, in the
    /// retry set.
    #[tokio::test]
    async fn a_task_deferred_before_its_first_attempt_waits_as_it_is() {
        let setup = setup("first").await;
        let (keys, group, scripts) = (&setup.keys, &setup.group, &setup.scripts);
        let mut conn = setup.conn.clone();
        let (entry, first) = take_from_fan_out(&mut conn, group, "dlv_01M81H0VK0J0RWH79N4YGFWWSW").await;
        let (retry_entry, retry) =
            take(&mut conn, group, "dlv_01M81H0VK0J0RWH79N4YGFWWSX", SUB, "2", TRACEPARENT).await;
        let tasks = [(entry.as_str(), &first, Park::Defer(2_000)), (retry_entry.as_str(), &retry, Park::Defer(2_000))];
        let (parked,): (Vec<i64>,) = park_call(&setup, 1_000, &tasks).query_async(&mut conn).await.unwrap();
        assert_eq!(parked, vec![1, 1]);

        let exists = |id: &str| redis::cmd("EXISTS").arg(keys.delivery(id)).to_owned();
        let (first_record, retry_record): (bool, bool) = redis::pipe()
            .add_command(exists(&first.delivery_id))
            .add_command(exists(&retry.delivery_id))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!((first_record, retry_record), (false, true));
        let listed = listed_in(&mut conn, hookline_queue::DeliveryLog::of_tenant(keys, "acme")).await;
        assert_eq!(listed.iter().map(|d| d.delivery_id.as_str()).collect::<Vec<_>>(), [retry.delivery_id.as_str()]);
        assert_eq!(scored(&mut conn, keys.deferred()).await, vec![(first.packed(), 2_000)]);
        let retrying: Vec<String> =
            redis::cmd("ZRANGE").arg(keys.retry()).arg(0).arg(-1).query_async(&mut conn).await.unwrap();
        assert_eq!(retrying, vec![retry.delivery_id.clone()]);

        // Not due yet: nothing moves. Due: both go back, the deferred task
        // exactly as it was read, the other rebuilt from its record.
        let requeue = |now: u64| {
            let mut pipe = redis::pipe();
            scripts.load(&mut pipe, &[Step::Requeue]);
            scripts.requeue(&mut pipe, keys, Requeue::Due, "", now, 500);
            pipe
        };
        let (early,): (usize,) = requeue(1_999).query_async(&mut conn).await.unwrap();
        let (due,): (usize,) = requeue(2_000).query_async(&mut conn).await.unwrap();
        assert_eq!((early, due), (0, 2));
        let back = group.read_new(&mut conn, 10, std::time::Duration::from_millis(100)).await.unwrap();
        let tasks: Vec<DeliveryTask> =
            back.iter().map(|m| DeliveryTask::parse(&m.id, m.fields.clone()).unwrap()).collect();
        assert_eq!(tasks.len(), 2);
        let again = tasks.iter().find(|t| t.delivery_id == first.delivery_id).unwrap();
        assert_eq!(again, &first, "the deferred task comes back as it was, fence and trace included");
        let rebuilt = tasks.iter().find(|t| t.delivery_id == retry.delivery_id).unwrap();
        assert_eq!(rebuilt.attempt, 2);
        let (left, retry_left): (u64, u64) = redis::pipe()
            .cmd("ZCARD")
            .arg(keys.deferred())
            .cmd("ZCARD")
            .arg(keys.retry())
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!((left, retry_left), (0, 0));
    }

    /// One `park.lua` call puts back tasks of every kind, each as it would
    /// on its own: the arguments of one never run into the next.
    #[tokio::test]
    async fn one_park_call_puts_back_tasks_of_every_kind() {
        let setup = setup("first").await;
        let (keys, group) = (&setup.keys, &setup.group);
        let mut conn = setup.conn.clone();
        let ids =
            ["dlv_01M81H0VK0J0RWH79N4YGFWWS0", "dlv_01M81H0VK0J0RWH79N4YGFWWS1", "dlv_01M81H0VK0J0RWH79N4YGFWWS2"];
        let more = ["dlv_01M81H0VK0J0RWH79N4YGFWWS3", "dlv_01M81H0VK0J0RWH79N4YGFWWS4"];
        let mut taken = Vec::new();
        for id in ids {
            taken.push(take_from_fan_out(&mut conn, group, id).await);
        }
        for id in more {
            taken.push(take(&mut conn, group, id, SUB, "3", TRACEPARENT).await);
        }
        let parks = [
            Park::Hold,
            Park::Defer(5_000),
            Park::Cancel(CancelReason::SubscriptionGone),
            Park::AwaitEndpoint(6_000),
            Park::Defer(7_000),
        ];
        let tasks: Vec<(&str, &DeliveryTask, Park)> =
            taken.iter().zip(parks).map(|((entry, task), park)| (entry.as_str(), task, park)).collect();
        let (replies,): (Vec<i64>,) = park_call(&setup, 1_000, &tasks).query_async(&mut conn).await.unwrap();
        assert_eq!(replies, vec![1; 5]);

        let all = [ids.as_slice(), more.as_slice()].concat();
        let records = read_records(&mut conn, keys, &all.iter().map(|id| (*id).to_owned()).collect::<Vec<_>>()).await;
        let states: Vec<(&str, u32)> =
            records.as_ref().unwrap().iter().map(|r| (r.status.as_str(), r.attempts)).collect();
        // The first-attempt deferral has no record: it waits as it is.
        assert_eq!(states, [("held", 0), ("cancelled", 0), ("scheduled", 2), ("scheduled", 2)]);
        let (deferred, retrying, waiting) = (
            scored(&mut conn, keys.deferred()).await,
            scored(&mut conn, keys.retry()).await,
            scored(&mut conn, keys.endpoint_wait(SUB)).await,
        );
        let (held, held_index): (Vec<String>, Vec<String>) = redis::pipe()
            .add_command(redis::cmd("LRANGE").arg(keys.held(SUB)).arg(0).arg(-1).to_owned())
            .add_command(redis::cmd("SMEMBERS").arg(keys.held_subscriptions()).to_owned())
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(deferred, vec![(taken[1].1.packed(), 5_000)]);
        assert_eq!(retrying, vec![(more[0].to_owned(), 6_000), (more[1].to_owned(), 7_000)]);
        assert_eq!(waiting, vec![(more[0].to_owned(), 6_000)]);
        assert_eq!((held, held_index), (vec![ids[0].to_owned()], vec![SUB.to_owned()]));
        let reason: Option<String> =
            redis::cmd("HGET").arg(keys.delivery(ids[2])).arg("sr").query_async(&mut conn).await.unwrap();
        assert_eq!(reason.as_deref(), Some(CancelReason::SubscriptionGone.text()));
    }

    /// park.lua tells a task parked from one another consumer had done and
    /// from one whose stream is gone (Redis restarted empty): XACK replies
    /// 0 for both.
    #[tokio::test]
    async fn a_park_tells_already_done_from_lost() {
        let setup = setup("first").await;
        let (keys, group) = (&setup.keys, &setup.group);
        let mut conn = setup.conn.clone();
        let park = |entry: &str, task: &DeliveryTask| {
            let tasks = [(entry, task, Park::Defer(2_000)), (entry, task, Park::Defer(2_000))];
            park_call(&setup, 1_000, &tasks)
        };
        let (entry, task) = take(&mut conn, group, "dlv_01M81H0VK0J0RWH79N4YGFWWSW", SUB, "1", "").await;
        let outcome = |replies: Vec<i64>| replies.into_iter().map(ParkOutcome::from_reply).collect::<Vec<_>>();
        // The same task twice in one call: the second finds it done.
        let (twice,): (Vec<i64>,) = park(&entry, &task).query_async(&mut conn).await.unwrap();
        assert_eq!(outcome(twice), vec![ParkOutcome::Parked, ParkOutcome::AlreadyDone]);

        let (entry, task) = take(&mut conn, group, "dlv_01M81H0VK0J0RWH79N4YGFWWSX", SUB, "1", "").await;
        let _: i64 = redis::cmd("DEL").arg(keys.deliveries()).query_async(&mut conn).await.unwrap();
        let (lost,): (Vec<i64>,) = park(&entry, &task).query_async(&mut conn).await.unwrap();
        assert_eq!(outcome(lost), vec![ParkOutcome::Lost, ParkOutcome::Lost]);
        let exists: bool =
            redis::cmd("EXISTS").arg(keys.delivery(&task.delivery_id)).query_async(&mut conn).await.unwrap();
        assert!(!exists, "nothing is written for a task that is gone");
    }

    /// A worker whose attempt outlived its claim finishes after the worker
    /// that took the task over: only the first completion may count.
    #[tokio::test]
    async fn a_task_completed_twice_is_recorded_once() {
        let Setup { redis: _redis, mut conn, keys, group, scripts, retention } = setup("first").await;
        let (entry, task) = take(&mut conn, &group, "dlv_01M81H0VK0J0RWH79N4YGFWWSW", SUB, "1", "").await;
        let attempt = |dur: u64| AttemptRecord {
            n: 1,
            at: 900,
            dur,
            code: 200,
            err: "none".into(),
            msg: String::new(),
            body: String::new(),
            trig: "scheduled".into(),
        };
        let completion = |a: AttemptRecord| Completion {
            entry: entry.clone(),
            task: task.clone(),
            next: Next::Done,
            attempt: a,
            fifo: false,
            now_ms: 1_000,
        };
        let (first, second) = (completion(attempt(5)), completion(attempt(7)));
        let separately = recorded(scripts.complete(&keys, &[&first], &retention), &mut conn).await;
        let again = recorded(scripts.complete(&keys, &[&second], &retention), &mut conn).await;
        assert_eq!(
            (separately, again),
            (vec![Recorded::Streak(Streak::default())], vec![Recorded::AlreadyDone]),
            "the second completion is refused"
        );
        let together = recorded(scripts.complete(&keys, &[&first, &second], &retention), &mut conn).await;
        assert_eq!(together, vec![Recorded::AlreadyDone; 2], "and so is each of a batch");
        // Redis restarted empty while an attempt ran: its outcome has
        // nowhere to go, and the reply says so (not "already done").
        let _: i64 = redis::cmd("DEL").arg(keys.deliveries()).query_async(&mut conn).await.unwrap();
        let lost = recorded(scripts.complete(&keys, &[&second], &retention), &mut conn).await;
        assert_eq!(lost, vec![Recorded::Lost]);
        let stats: HashMap<String, String> =
            redis::cmd("HGETALL").arg(keys.stats(&task.subscription_id)).query_async(&mut conn).await.unwrap();
        let kept = listed_in(&mut conn, hookline_queue::DeliveryLog::of_tenant(&keys, "acme")).await;
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].finished.as_ref().map(|f| f.duration_ms), Some(5), "the first completion's attempt");
        assert_eq!(Stats::from_fields(&stats).attempts, 1);
        for log in [keys.subscription_log(&task.subscription_id), keys.tenant_log(&task.tenant)] {
            let entries: u64 = redis::cmd("XLEN").arg(&log).query_async(&mut conn).await.unwrap();
            assert_eq!(entries, 1, "listed once in {log}");
        }
    }

    /// Every delivery listed in a log, oldest first.
    async fn listed_in(
        conn: &mut (impl redis::aio::ConnectionLike + Send),
        log: hookline_queue::DeliveryLog,
    ) -> Vec<hookline_queue::Listed> {
        let everything = hookline_queue::TimeRange { start_ms: 0, end_ms: u64::MAX / 2 };
        log.newer(conn, everything, None, 100).await.unwrap().items
    }

    /// A first-time success has no record and no attempts list: it is
    /// kept as an entry of its tenant's log, which its subscription's log
    /// points at, under an id naming that entry. A later attempt (a
    /// manual retry) gives it a record (`restore.lua`, in Redis's compact
    /// encoding) and logs the first attempt from that record's fields.
    #[tokio::test]
    async fn a_first_success_is_a_log_entry_and_is_logged_when_a_second_attempt_comes() {
        let Setup { redis, mut conn, keys, group, scripts, retention } = setup("only").await;
        let mut id = "dlv_01M81H0VK0J0RWH79N4YGFWWSW".to_owned();
        let mut attempts = Vec::new();
        for n in ["1", "2"] {
            let (entry, task) = take(&mut conn, &group, &id, SUB, n, TRACEPARENT).await;
            let attempt = AttemptRecord {
                n: task.attempt,
                at: 1_764_590_000_000 + u64::from(task.attempt),
                dur: 12,
                code: 200,
                err: "none".into(),
                msg: if n == "1" { "say \"hi\" / \\ ünïcode".into() } else { String::new() },
                body: AttemptRecord::encode_body(b"{\"ok\":true}"),
                trig: if n == "1" { "scheduled".into() } else { "manual".into() },
            };
            let completion = Completion {
                entry,
                task: task.clone(),
                next: Next::Done,
                attempt: attempt.clone(),
                fifo: false,
                now_ms: 2_000,
            };
            recorded(scripts.complete(&keys, &[&completion], &retention), &mut conn).await;
            attempts.push(attempt);
            if n == "1" {
                for key in [keys.delivery(&id), keys.attempts(&id)] {
                    let exists: i64 = redis::cmd("EXISTS").arg(&key).query_async(&mut conn).await.unwrap();
                    assert_eq!(exists, 0, "no record or attempts list for a first-time success: {key}");
                }
                let by_tenant = listed_in(&mut conn, hookline_queue::DeliveryLog::of_tenant(&keys, "acme")).await;
                let by_sub =
                    listed_in(&mut conn, hookline_queue::DeliveryLog::of_subscription(&keys, "acme", SUB)).await;
                assert_eq!(by_tenant.len(), 1);
                // The same delivery; the pointer's own place (the page
                // position in the subscription's log) may be a millisecond
                // later than the entry's: two XADDs.
                let same = |l: &[hookline_queue::Listed]| {
                    l.iter().map(|l| (l.delivery_id.clone(), l.finished.clone())).collect::<Vec<_>>()
                };
                assert_eq!(same(&by_sub), same(&by_tenant), "the subscription's log leads to the tenant's entry");
                let hookline_queue::Position::Log { ms, seq } = by_tenant[0].position else { panic!("a log entry") };
                let public = hookline_domain::DeliveryId::of_log_entry("acme", ms, seq).to_string();
                assert_eq!(by_tenant[0].delivery_id, public, "its id names its entry");
                let only = read_listed(&mut conn, &keys, "acme", &by_tenant).await.unwrap();
                assert_eq!(only[0].last_attempt.as_ref(), Some(&attempts[0]));
                assert_eq!(
                    (only[0].status.as_str(), only[0].attempts, only[0].event_id.as_str(), only[0].created_ms),
                    ("succeeded", 1, task.event_id.as_str(), 1)
                );
                // A retry: a record made from the entry, once.
                for made in [1, 0] {
                    let mut pipe = redis::pipe();
                    scripts.load(&mut pipe, &[Step::Restore]);
                    scripts.restore(&mut pipe, &keys, "acme", &[&only[0]], retention.record_secs);
                    let (restored,): (i64,) = pipe.query_async(&mut conn).await.unwrap();
                    assert_eq!(restored, made);
                }
                if redis.is_redis_server() {
                    let encoding: String = redis::cmd("OBJECT")
                        .arg("ENCODING")
                        .arg(keys.delivery(&public))
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    assert_eq!(encoding, "listpack", "a record made for a retry is compact");
                }
                let restored = read_records(&mut conn, &keys, std::slice::from_ref(&public)).await.unwrap();
                assert_eq!(restored[0].last_attempt.as_ref(), Some(&attempts[0]));
                let fields: HashMap<String, String> =
                    redis::cmd("HGETALL").arg(keys.delivery(&public)).query_async(&mut conn).await.unwrap();
                assert!(!fields.contains_key("tp"), "no trace context is kept for a first-time success: {fields:?}");
                id = public;
            }
        }
        let logged = read_attempts(&mut conn, &keys, &id, 0, -1).await.unwrap();
        assert_eq!(logged, attempts, "the first attempt logged from the record's fields, then the second");
        let record = read_records(&mut conn, &keys, std::slice::from_ref(&id)).await.unwrap();
        assert_eq!((record[0].attempts, record[0].last_attempt.as_ref()), (2, Some(&attempts[1])));
    }

    /// Puts a task as fan-out writes it (`TaskValues`: attempt 1, with the
    /// fence it was matched at) on the deliveries stream and takes it.
    async fn take_from_fan_out(
        conn: &mut (impl redis::aio::ConnectionLike + Send),
        group: &ConsumerGroup,
        delivery: &str,
    ) -> (String, DeliveryTask) {
        let event = hookline_queue::EventEntry {
            event_id: "evt_01M81H0VK0J0RWH79N4YGFWWSW".into(),
            tenant: "acme".into(),
            event_type: "a".into(),
            payload: b"{}".to_vec(),
            attributes: HashMap::new(),
            traceparent: String::new(),
            fence: Fence::new("01JLOG", 3),
            published_ms: 1,
        };
        let value = hookline_queue::TaskValues::new(&event, TRACEPARENT, 1, 1, "").value(delivery, SUB);
        append_and_take(
            conn,
            group,
            &[("v", hookline_queue::FORMAT_VERSION), (hookline_queue::TaskValues::FIELD, &value)],
        )
        .await
    }

    /// A success at the first attempt of a task straight from fan-out is
    /// recorded without looking for a record (`first`): a log entry, no
    /// record. It may skip the look because nothing writes a delivery's
    /// record before its task's entry is acknowledged: a task parked first
    /// (`park.lua` acknowledges, then writes its record) is already done
    /// when its attempt's completion comes, so no log entry is made beside
    /// its record. In one batch with a retry (the full form), each
    /// completion's arguments and keys are read as its own.
    #[tokio::test]
    async fn a_first_success_straight_from_fan_out_is_a_log_entry_without_a_record_lookup() {
        let Setup { redis: _redis, mut conn, keys, group, scripts, retention } = setup("only").await;
        let (entry, task) = take_from_fan_out(&mut conn, &group, "dlv_01M81H0VK0J0RWH79N4YGFWWSW").await;
        let (failed_entry, failed_task) = take_from_fan_out(&mut conn, &group, "dlv_01M81H0VK0J0RWH79N4YGFWWSX").await;
        let attempt = |code: u16| AttemptRecord {
            n: 1,
            at: 1_000,
            dur: 4,
            code,
            err: if code == 200 { "none".into() } else { "http_status".into() },
            msg: "a message with spaces".into(),
            body: String::new(),
            trig: "scheduled".into(),
        };
        let done = Completion {
            entry: entry.clone(),
            task: task.clone(),
            next: Next::Done,
            attempt: attempt(200),
            fifo: false,
            now_ms: 1_010,
        };
        let retry = Completion {
            entry: failed_entry,
            task: failed_task.clone(),
            next: Next::RetryAt(5_000),
            attempt: attempt(500),
            fifo: false,
            now_ms: 1_010,
        };
        assert!(done.is_first() && !retry.is_first());
        let replies = recorded(scripts.complete(&keys, &[&done, &retry], &retention), &mut conn).await;
        assert_eq!(
            replies,
            vec![Recorded::Streak(Streak::default()), Recorded::Streak(Streak { failures: 1, since_ms: 1_010 })]
        );
        let exists: i64 =
            redis::cmd("EXISTS").arg(keys.delivery(&task.delivery_id)).query_async(&mut conn).await.unwrap();
        assert_eq!(exists, 0, "no record for a first-time success");
        let by_tenant = listed_in(&mut conn, hookline_queue::DeliveryLog::of_tenant(&keys, "acme")).await;
        assert_eq!(by_tenant.len(), 2, "the success's entry and the retrying delivery's id");
        assert_eq!(by_tenant[0].finished.as_ref().map(FinishedEntry::packed), Some(done.finished().packed()));
        assert_eq!(by_tenant[1].delivery_id, failed_task.delivery_id);
        let retrying = read_records(&mut conn, &keys, std::slice::from_ref(&failed_task.delivery_id)).await.unwrap();
        assert_eq!((retrying[0].status.as_str(), retrying[0].attempts), ("scheduled", 1));
        let again = recorded(scripts.complete(&keys, &[&done], &retention), &mut conn).await;
        assert_eq!(again, vec![Recorded::AlreadyDone]);

        // Parked before its attempt ended (another consumer claimed it and
        // deferred it): the park acknowledged the entry, so the completion
        // writes nothing; the task waits in the deferred set, as it was,
        // for an attempt of its own.
        let (entry, task) = take_from_fan_out(&mut conn, &group, "dlv_01M81H0VK0J0RWH79N4YGFWWSY").await;
        let mut parks = Parks::new(&keys, 1_000);
        parks.add(&entry, &task, Park::Defer(9_000));
        let mut pipe = redis::pipe();
        scripts.load(&mut pipe, &[Step::Park]);
        scripts.park(&mut pipe, &parks, &retention);
        let (parked,): (Vec<i64>,) = pipe.query_async(&mut conn).await.unwrap();
        assert_eq!(parked.into_iter().map(ParkOutcome::from_reply).collect::<Vec<_>>(), vec![ParkOutcome::Parked]);
        let late = Completion {
            entry,
            task: task.clone(),
            next: Next::Done,
            attempt: attempt(200),
            fifo: false,
            now_ms: 1_020,
        };
        assert!(late.is_first());
        let replies = recorded(scripts.complete(&keys, &[&late], &retention), &mut conn).await;
        assert_eq!(replies, vec![Recorded::AlreadyDone]);
        let by_tenant = listed_in(&mut conn, hookline_queue::DeliveryLog::of_tenant(&keys, "acme")).await;
        assert_eq!(by_tenant.len(), 2, "the deferred delivery is listed once attempted, not before");
        let deferred: Vec<String> =
            redis::cmd("ZRANGE").arg(keys.deferred()).arg(0).arg(-1).query_async(&mut conn).await.unwrap();
        assert_eq!(deferred, vec![task.packed()]);
    }

    /// A completion batch trims the delivery logs it wrote, once each, of
    /// the entries past the record retention (`trim_logs`).
    #[tokio::test]
    async fn a_completion_batch_trims_the_logs_it_writes() {
        let Setup { redis: _redis, mut conn, keys, group, scripts, retention } = setup("only").await;
        let (sub_log, tenant_log) = (
            hookline_queue::DeliveryLog::of_subscription(&keys, "acme", SUB).key().to_owned(),
            hookline_queue::DeliveryLog::of_tenant(&keys, "acme").key().to_owned(),
        );
        let mut pipe = redis::pipe();
        for log in [&sub_log, &tenant_log] {
            for i in 1..=300 {
                pipe.cmd("XADD").arg(log).arg(format!("1000-{i}")).arg("d").arg(format!("dlv_old{i}")).ignore();
            }
        }
        let _: () = pipe.query_async(&mut conn).await.unwrap();
        let now = crate::worker::now_ms();
        let mut completions = Vec::new();
        for id in ["dlv_01M81H0VK0J0RWH79N4YGFWWSW", "dlv_01M81H0VK0J0RWH79N4YGFWWSX"] {
            let (entry, task) = take_from_fan_out(&mut conn, &group, id).await;
            let attempt = AttemptRecord { n: 1, at: now, dur: 4, code: 200, err: "none".into(), ..Default::default() };
            completions.push(Completion { entry, task, next: Next::Done, attempt, fifo: false, now_ms: now });
        }
        let batch: Vec<&Completion> = completions.iter().collect();
        let replies = recorded(scripts.complete(&keys, &batch, &retention), &mut conn).await;
        assert_eq!(replies, vec![Recorded::Streak(Streak::default()); 2]);
        for log in [&sub_log, &tenant_log] {
            let left: u64 = redis::cmd("XLEN").arg(log).query_async(&mut conn).await.unwrap();
            assert!(left <= 102, "{log}: entries past the retention are trimmed ({left} left)");
            let newest: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
                .arg(log)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(2)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(newest.iter().all(|(id, _)| !id.starts_with("1000-")), "{log}: the batch's entries stay");
        }
    }

    /// In-flight leases, for several subscriptions in one call: each gets
    /// at most its limit, across calls; a freed or expired lease is a free
    /// slot again. A set that grows large gets the member that keeps it in
    /// the skiplist encoding, never counted, and then an expiry of its own
    /// (also a set an older build left without one).
    #[tokio::test]
    async fn leases_count_only_leases_and_a_large_set_always_expires() {
        const BIG: &str = "sub_big";
        let Setup { redis, mut conn, keys, scripts, .. } = setup("only").await;
        let shared = conn.clone();
        let lease = async |requests: &[(&str, &[&str], u32)], now: u64| -> Vec<usize> {
            let leases: Vec<Lease<'_>> = requests
                .iter()
                .map(|(subscription, ids, max)| Lease {
                    subscription,
                    ids: ids.to_vec(),
                    expiry_ms: now + 30_000,
                    max: *max,
                    rate: None,
                })
                .collect();
            // Not loaded first: `query` loads the script when Redis has
            // not seen it (a fresh Redis here, then a flushed one).
            let build = |pipe: &mut redis::Pipeline| scripts.leases(pipe, &keys, now, &leases);
            let (admitted,): (Vec<(usize, u64)>,) =
                scripts.query(build, &[Step::Lease], &mut shared.clone()).await.unwrap();
            admitted.into_iter().map(|(n, _)| n).collect()
        };
        // Redis's own clock decides expiries: the leases run from now.
        let now = crate::worker::now_ms();
        let five = ["dlv_1", "dlv_2", "dlv_3", "dlv_4", "dlv_5"];
        assert_eq!(lease(&[(SUB, &five, 3), ("sub_other", &five[..2], 3)], now).await, [3, 2], "up to each limit");
        assert_eq!(lease(&[(SUB, &["dlv_4", "dlv_5"], 3)], now + 1).await, [0], "full");
        let () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.unwrap();
        let _: i64 = redis::cmd("ZREM").arg(keys.in_flight(SUB)).arg("dlv_2").query_async(&mut conn).await.unwrap();
        assert_eq!(lease(&[(SUB, &["dlv_4", "dlv_5"], 3)], now + 2).await, [1], "a freed slot");
        assert_eq!(
            lease(&[(SUB, &["dlv_6", "dlv_7", "dlv_8", "dlv_9"], 3)], now + 30_003).await,
            [3],
            "expired leases"
        );

        let many: Vec<String> = (0..60).map(|i| format!("dlv_{i:02}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(lease(&[(BIG, &many[..40], 50)], now).await, [40]);
        assert_eq!(lease(&[(BIG, &many[40..], 50)], now).await, [10], "the marker is no lease");
        let (members, ttl): (u64, i64) = redis::pipe()
            .cmd("ZCARD")
            .arg(keys.in_flight(BIG))
            .cmd("PTTL")
            .arg(keys.in_flight(BIG))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(members, 51, "50 leases and the marker");
        assert!(ttl > 0, "a set that holds the marker expires: {ttl}");
        if redis.is_redis_server() {
            let encoding: String =
                redis::cmd("OBJECT").arg("ENCODING").arg(keys.in_flight(BIG)).query_async(&mut conn).await.unwrap();
            assert_eq!(encoding, "skiplist");
        }
        let _: i64 = redis::cmd("ZREM").arg(keys.in_flight(BIG)).arg(&many[..50]).query_async(&mut conn).await.unwrap();
        assert_eq!(lease(&[(BIG, &many[..2], 50)], now).await, [2], "freed, with the marker still there");

        // A set an older build made: leases and no expiry.
        let older = keys.in_flight("sub_older");
        let old_leases: Vec<(u64, String)> = (0..40).map(|i| (now + 60_000, format!("dlv_old_{i:02}"))).collect();
        let _: i64 = redis::cmd("ZADD").arg(&older).arg(&old_leases).query_async(&mut conn).await.unwrap();
        assert_eq!(lease(&[("sub_older", &["dlv_b"], 50)], now).await, [1], "its leases count");
        let ttl: i64 = redis::cmd("PTTL").arg(&older).query_async(&mut conn).await.unwrap();
        assert!(ttl > 0, "it gets an expiry with the marker: {ttl}");
    }

    /// A batch over several subscriptions and hours: each completion's
    /// counters, log entries and dead letters land in its own
    /// subscription's and hour's keys, which the call takes once per group.
    #[tokio::test]
    async fn a_batch_over_subscriptions_and_hours_writes_each_to_its_own_keys() {
        const OTHER: &str = "sub_01M81H0VK0J0RWH79N4YGFWWSX";
        let Setup { redis: _redis, mut conn, keys, group, scripts, retention } = setup("only").await;
        let hour = 3_600_000;
        let plan = [
            (SUB, 1_000, Next::Done),
            (OTHER, 2_000, Next::DeadLetter),
            (SUB, hour + 1, Next::Done),
            (OTHER, 3_000, Next::Done),
        ];
        let mut completions = Vec::new();
        for (i, (sub, now_ms, next)) in plan.into_iter().enumerate() {
            let id = format!("dlv_01M81H0VK0J0RWH79N4YGFWWS{i}");
            let (entry, task) = take(&mut conn, &group, &id, sub, "1", "").await;
            let code = if next == Next::Done { 200 } else { 410 + i as u16 };
            let attempt =
                AttemptRecord { n: 1, at: now_ms, dur: 5, code, trig: "scheduled".into(), ..Default::default() };
            completions.push(Completion { entry, task, next, attempt, fifo: false, now_ms });
        }
        let batch: Vec<&Completion> = completions.iter().collect();
        let invocation = scripts.complete(&keys, &batch, &retention);
        assert_eq!(recorded(invocation, &mut conn).await.len(), 4);

        let stats = |key: String| {
            let mut conn = conn.clone();
            async move {
                let fields: HashMap<String, String> =
                    redis::cmd("HGETALL").arg(key).query_async(&mut conn).await.unwrap();
                let s = Stats::from_fields(&fields);
                (s.succeeded, s.dead, s.attempts)
            }
        };
        assert_eq!(stats(keys.stats(SUB)).await, (2, 0, 2));
        assert_eq!(stats(keys.stats(OTHER)).await, (1, 1, 2));
        assert_eq!(stats(keys.stats_hour(SUB, 0)).await, (1, 0, 1));
        assert_eq!(stats(keys.stats_hour(SUB, 1)).await, (1, 0, 1));
        assert_eq!(stats(keys.stats_hour(OTHER, 0)).await, (1, 1, 2));
        let ids = |i: usize| completions[i].task.delivery_id.clone();
        let by_tenant = listed_in(&mut conn, hookline_queue::DeliveryLog::of_tenant(&keys, "acme")).await;
        let listed_ids = |items: &[hookline_queue::Listed]| items.iter().map(|l| l.delivery_id.clone()).collect();
        // The successes are kept in the tenant's log (under ids naming
        // their entries), the dead letter has a record.
        let public: Vec<String> = listed_ids(&by_tenant);
        assert_eq!(public[1], ids(1));
        assert!(by_tenant.iter().enumerate().all(|(i, l)| l.finished.is_some() == (i != 1)));
        for (sub, expected) in [(SUB, [0, 2]), (OTHER, [1, 3])] {
            let log = hookline_queue::DeliveryLog::of_subscription(&keys, "acme", sub);
            let listed: Vec<String> = listed_ids(&listed_in(&mut conn, log).await);
            assert_eq!(listed, expected.map(|i| public[i].clone()), "{sub}");
        }
        let dead: Vec<String> =
            redis::cmd("ZRANGE").arg(keys.dead_letters(OTHER)).arg(0).arg(-1).query_async(&mut conn).await.unwrap();
        assert_eq!(dead, [ids(1)]);
        let records = read_listed(&mut conn, &keys, "acme", &by_tenant).await.unwrap();
        let codes: Vec<u16> = records.iter().map(|r| r.last_attempt.as_ref().unwrap().code).collect();
        assert_eq!(codes, [200, 411, 200, 200], "each delivery has its own attempt");
        let subs: Vec<&str> = records.iter().map(|r| r.subscription_id.as_str()).collect();
        assert_eq!(subs, [SUB, OTHER, SUB, OTHER]);
    }

    /// One call records a batch as the same completions one at a time
    /// would: consecutive failures in order, counters summed, every index.
    #[tokio::test]
    async fn a_batch_of_completions_counts_as_each_one_would() {
        let Setup { redis: _redis, mut conn, keys, group, scripts, retention } = setup("only").await;
        let sub = SUB;
        let nexts = [Next::RetryAt(50_000), Next::DeadLetter, Next::Done, Next::RetryAt(60_000)];
        let mut completions = Vec::new();
        for (i, next) in nexts.into_iter().enumerate() {
            let id = format!("dlv_01M81H0VK0J0RWH79N4YGFWWS{i}");
            let (entry, task) = take(&mut conn, &group, &id, sub, "1", TRACEPARENT).await;
            let ok = next == Next::Done;
            completions.push(Completion {
                entry,
                task,
                next,
                attempt: AttemptRecord {
                    n: 1,
                    at: 1_000,
                    dur: 10 + i as u64,
                    code: if ok { 200 } else { 500 },
                    err: if ok { "none".into() } else { "http_status".into() },
                    msg: if ok { String::new() } else { "HTTP 500".into() },
                    body: String::new(),
                    trig: "scheduled".into(),
                },
                fifo: false,
                now_ms: 2_000 + i as u64,
            });
        }
        let batch: Vec<&Completion> = completions.iter().collect();
        let replies = recorded(scripts.complete(&keys, &batch, &retention), &mut conn).await;
        let streak = |failures, since_ms| Recorded::Streak(Streak { failures, since_ms });
        assert_eq!(
            replies,
            vec![streak(1, 2_000), streak(2, 2_000), streak(0, 0), streak(1, 2_003)],
            "failing streaks in order: a success ends one, the next failure starts another"
        );

        let stats: HashMap<String, String> =
            redis::cmd("HGETALL").arg(keys.stats(sub)).query_async(&mut conn).await.unwrap();
        let stats = Stats::from_fields(&stats);
        assert_eq!((stats.succeeded, stats.failed, stats.dead, stats.consecutive_failures), (1, 3, 1, 1));
        assert_eq!((stats.last_attempt_ms, stats.last_success_ms), (Some(2_003), Some(2_002)));
        let hour: HashMap<String, String> =
            redis::cmd("HGETALL").arg(keys.stats_hour(sub, 0)).query_async(&mut conn).await.unwrap();
        let hour = Stats::from_fields(&hour);
        assert_eq!((hour.attempts, hour.dead, hour.duration_ms), (4, 1, 10 + 11 + 12 + 13));
        let ttl: i64 = redis::cmd("TTL").arg(keys.stats_hour(sub, 0)).query_async(&mut conn).await.unwrap();
        assert!(ttl > 0, "the hour's counters expire");
        let retry = scored(&mut conn, keys.retry()).await;
        let ids = |i: usize| completions[i].task.delivery_id.clone();
        assert_eq!(retry, vec![(ids(0), 50_000), (ids(3), 60_000)]);
        let dead: Vec<String> =
            redis::cmd("ZRANGE").arg(keys.dead_letters(sub)).arg(0).arg(-1).query_async(&mut conn).await.unwrap();
        assert_eq!(dead, vec![ids(1)]);
        let indexed: usize = redis::cmd("XLEN").arg(keys.subscription_log(sub)).query_async(&mut conn).await.unwrap();
        assert_eq!(indexed, 4);
        let listed = listed_in(&mut conn, hookline_queue::DeliveryLog::of_subscription(&keys, "acme", sub)).await;
        let records = read_listed(&mut conn, &keys, "acme", &listed).await.unwrap();
        let states: Vec<&str> = records.iter().map(|r| r.status.as_str()).collect();
        assert_eq!(states, ["scheduled", "dead", "succeeded", "scheduled"]);
        let mut traceparents = Vec::new();
        for i in 0..4 {
            let tp: Option<String> =
                redis::cmd("HGET").arg(keys.delivery(&ids(i))).arg("tp").query_async(&mut conn).await.unwrap();
            traceparents.push(tp);
        }
        let kept = Some(TRACEPARENT.to_owned());
        assert_eq!(
            traceparents,
            [kept.clone(), None, None, kept],
            "only a record its next attempt is rebuilt from keeps the task's trace context"
        );
        let pending: redis::streams::StreamPendingReply =
            redis::cmd("XPENDING").arg(keys.deliveries()).arg(DELIVERY_GROUP).query_async(&mut conn).await.unwrap();
        assert_eq!(pending.count(), 0, "every task acknowledged");
    }
}
