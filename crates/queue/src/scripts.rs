//! The atomic queue steps, as Lua scripts added to a pipeline.
//!
//! Each step touches the keys of one partition only (one Cluster slot).
//! Pipelines start with `SCRIPT LOAD` so an `EVALSHA` never meets a Redis
//! that has not seen the script (e.g. just restarted).

use redis::{FromRedisValue, Pipeline, Script, ScriptInvocation, Value};

use crate::{EventEntry, FanoutState, PartitionKeys, RecordMeta, TaskValues};

#[derive(Debug, Clone)]
pub struct Scripts {
    publish: Script,
    fanout: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Self {
            publish: Script::new(include_str!("lua/publish.lua")),
            fanout: Script::new(&with_task_functions(include_str!("lua/fanout.lua"))),
        }
    }
}

/// `script` with the Lua functions that write delivery tasks and records
/// (`lua/tasks.lua`: `enqueue_task`, `enqueue_from_record`,
/// `write_new_record`) before it: every script that writes them, here and in
/// delivery, is built with this, so their format is written once.
pub fn with_task_functions(script: &str) -> String {
    format!(
        "local LOG_TTL_MARGIN = {}\n{}{script}",
        crate::delivery_log::LOG_TTL_MARGIN_SECS,
        include_str!("lua/tasks.lua")
    )
}

/// What publishing one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    Published(String),
    /// The idempotency key was seen; the first event's id.
    Duplicate(String),
}

/// What one publish call replied: its duplicates only (each an event's
/// place in the call and the first event id of its idempotency key);
/// every other event was published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReply {
    duplicates: Vec<(usize, String)>,
}

impl FromRedisValue for PublishReply {
    fn from_redis_value(v: Value) -> Result<Self, redis::ParsingError> {
        let flat: Vec<Value> = FromRedisValue::from_redis_value(v)?;
        let mut duplicates = Vec::with_capacity(flat.len() / 2);
        let mut values = flat.into_iter();
        while let Some(place) = values.next() {
            let place: usize = FromRedisValue::from_redis_value(place)?;
            let first = values.next().ok_or_else(|| redis::ParsingError::from("a duplicate without its first id"))?;
            let place = place.checked_sub(1).ok_or_else(|| redis::ParsingError::from("a duplicate at place 0"))?;
            duplicates.push((place, FromRedisValue::from_redis_value(first)?));
        }
        Ok(Self { duplicates })
    }
}

impl PublishReply {
    /// The outcome of each event of the call, in order, given their ids
    /// (the call's, in the order it was made with).
    pub fn outcomes<'a>(self, event_ids: impl IntoIterator<Item = &'a str>) -> Vec<PublishOutcome> {
        let mut outcomes: Vec<PublishOutcome> =
            event_ids.into_iter().map(|id| PublishOutcome::Published(id.to_owned())).collect();
        for (place, first) in self.duplicates {
            debug_assert!(place < outcomes.len(), "publish.lua named a duplicate past its call's events");
            if let Some(outcome) = outcomes.get_mut(place) {
                *outcome = PublishOutcome::Duplicate(first);
            }
        }
        outcomes
    }
}

/// One event to fan out: its stream entry, the traceparent its tasks
/// carry (the fan-out's span) and its (delivery id, subscription id) pairs.
#[derive(Debug, Clone, Copy)]
pub struct FanoutItem<'a> {
    pub entry_id: &'a str,
    pub event: &'a EventEntry,
    pub traceparent: &'a str,
    pub tasks: &'a [(String, String)],
}

/// How many tasks one fan-out call enqueues at most (a single event with
/// more still goes in one call: its fan-out is atomic).
pub const FANOUT_TASKS_PER_CALL: usize = 2_000;

/// What fanning one event out did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanoutOutcome {
    Enqueued(usize),
    /// Another consumer had already acknowledged the entry.
    AlreadyDone,
}

impl FromRedisValue for FanoutOutcome {
    fn from_redis_value(v: Value) -> Result<Self, redis::ParsingError> {
        let n: i64 = FromRedisValue::from_redis_value(v)?;
        Ok(usize::try_from(n).map_or(Self::AlreadyDone, Self::Enqueued))
    }
}

impl FanoutOutcome {
    /// The outcomes of one fan-out call, one per item, in order.
    pub fn list(v: Value) -> Result<Vec<Self>, redis::ParsingError> {
        FromRedisValue::from_redis_value(v)
    }
}

/// Settings of a publish.
#[derive(Debug, Clone)]
pub struct PublishArgs {
    pub idempotency_window_secs: u64,
    pub retention_secs: u64,
}

/// One event to publish: its stream entry and the record's other fields
/// (fan-out pending; an empty idempotency key means none was given).
#[derive(Debug, Clone, Copy)]
pub struct PublishItem<'a> {
    pub entry: &'a EventEntry,
    pub record: &'a RecordMeta,
}

impl Scripts {
    /// Loads both scripts; put first in a pipeline that invokes them.
    pub fn load(&self, pipe: &mut Pipeline) {
        pipe.load_script(&self.publish).ignore();
        pipe.load_script(&self.fanout).ignore();
    }

    /// Adds a publish of `events` (one partition's) to `pipe`, in one
    /// script call; its reply is a [`PublishReply`].
    pub fn publish(&self, pipe: &mut Pipeline, keys: &PartitionKeys, args: &PublishArgs, events: &[PublishItem<'_>]) {
        pipe.invoke_script(&self.publish_invocation(keys, args, events));
    }

    /// The same call on its own: `invoke_async` it (EVALSHA, loading the
    /// script only if Redis lost it) and read a [`PublishReply`].
    pub fn publish_invocation(
        &self,
        keys: &PartitionKeys,
        args: &PublishArgs,
        events: &[PublishItem<'_>],
    ) -> ScriptInvocation<'_> {
        let mut invocation = self.publish.prepare_invoke();
        invocation
            .key(keys.events())
            .arg(args.idempotency_window_secs.max(1))
            .arg(args.retention_secs.max(1))
            .arg(EventEntry::VERSION)
            .arg(crate::FORMAT_VERSION)
            .arg(EventEntry::PACKED)
            .arg(EventEntry::PAYLOAD);
        for PublishItem { entry, record } in events {
            let key = &record.idempotency_key;
            if key.is_empty() {
                invocation.arg("0");
            } else {
                invocation.key(keys.idempotency(&entry.tenant, key)).arg("1").arg(&entry.event_id);
            }
            invocation.key(keys.event(&entry.event_id)).arg(record.head(entry)).arg(entry.packed()).arg(&entry.payload);
        }
        invocation
    }

    /// Adds the fan-out of `items` (one partition's) to `pipe`, in as
    /// few script calls as keep each under [`FANOUT_TASKS_PER_CALL`] tasks
    /// (an event with more has a call of its own); returns, per call added,
    /// how many items it holds. Each call's reply is a [`FanoutOutcome`]
    /// per item, in order: read them with [`FanoutOutcome::list`].
    pub fn fanout(
        &self,
        pipe: &mut Pipeline,
        keys: &PartitionKeys,
        group: &str,
        now_ms: u64,
        items: &[FanoutItem<'_>],
    ) -> Vec<usize> {
        let mut calls = Vec::new();
        let mut rest = items;
        while !rest.is_empty() {
            let mut take = 0;
            let mut tasks = 0;
            while take < rest.len() && (take == 0 || tasks + rest[take].tasks.len() <= FANOUT_TASKS_PER_CALL) {
                tasks += rest[take].tasks.len();
                take += 1;
            }
            let (chunk, after) = rest.split_at(take);
            let mut invocation = self.fanout.prepare_invoke();
            invocation.key(keys.events()).key(keys.deliveries()).arg(group).arg(now_ms);
            for item in chunk {
                let event = item.event;
                let done = FanoutState::Done { matched: item.tasks.len() as u64, at_ms: now_ms };
                invocation.key(keys.event(&event.event_id)).arg(item.entry_id).arg(done.header()).arg(item.tasks.len());
                let values = TaskValues::new(event, item.traceparent, now_ms, 1, "");
                for (delivery, subscription) in item.tasks {
                    invocation.arg(values.value(delivery, subscription));
                }
            }
            pipe.invoke_script(&invocation);
            calls.push(chunk.len());
            rest = after;
        }
        calls
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Partitions;

    #[test]
    fn a_publish_reply_names_its_duplicates_by_place() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let reply = Value::Array(vec![Value::Int(2), bulk("evt_first")]);
        let outcomes = PublishReply::from_redis_value(reply).unwrap().outcomes(["evt_a", "evt_b", "evt_c"]);
        assert_eq!(
            outcomes,
            [
                PublishOutcome::Published("evt_a".into()),
                PublishOutcome::Duplicate("evt_first".into()),
                PublishOutcome::Published("evt_c".into()),
            ]
        );
        let none = PublishReply::from_redis_value(Value::Array(vec![])).unwrap();
        assert_eq!(none.outcomes(["evt_a"]), [PublishOutcome::Published("evt_a".into())]);
        assert!(PublishReply::from_redis_value(Value::Array(vec![Value::Int(1)])).is_err(), "a place without its id");
        assert!(
            PublishReply::from_redis_value(Value::Array(vec![Value::Int(0), bulk("x")])).is_err(),
            "places start at 1"
        );
    }

    #[test]
    fn fan_out_calls_stay_under_the_task_limit_and_keep_big_events_whole() {
        let event = EventEntry {
            event_id: "evt_1".into(),
            tenant: "acme".into(),
            event_type: "a".into(),
            payload: b"{}".to_vec(),
            attributes: Default::default(),
            traceparent: String::new(),
            fence: crate::Fence::default(),
            published_ms: 0,
        };
        let tasks =
            |n: usize| -> Vec<(String, String)> { (0..n).map(|i| (format!("dlv_{i}"), "sub".into())).collect() };
        let lists: Vec<_> = [1, FANOUT_TASKS_PER_CALL - 1, 1, 5_000, 1, 0].map(tasks).into_iter().collect();
        let items: Vec<FanoutItem<'_>> =
            lists.iter().map(|t| FanoutItem { entry_id: "1-0", event: &event, traceparent: "", tasks: t }).collect();
        let mut pipe = redis::pipe();
        let calls = Scripts::default().fanout(&mut pipe, &Partitions::new("hookline", 1).get(0), "fanout", 1, &items);
        assert_eq!(calls, vec![2, 1, 1, 2], "2,000 tasks; then 1 alone (5,000 would pass); 5,000 alone; the rest");
    }
}
