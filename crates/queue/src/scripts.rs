//! The atomic queue steps, as Lua scripts added to a pipeline.
//!
//! Each step touches the keys of one partition only (one Cluster slot).
//! Pipelines start with `SCRIPT LOAD` so an `EVALSHA` never meets a Redis
//! that has not seen the script (e.g. just restarted).

use redis::{FromRedisValue, Pipeline, Script, ScriptInvocation, Value};

use crate::{EventEntry, FanoutState, PartitionKeys, RecordMeta};

#[derive(Debug, Clone)]
pub struct Scripts {
    publish: Script,
    fanout: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Self {
            publish: Script::new(include_str!("lua/publish.lua")),
            fanout: Script::new(include_str!("lua/fanout.lua")),
        }
    }
}

/// What publishing one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    Published(String),
    /// The idempotency key was seen; the first event's id.
    Duplicate(String),
}

impl FromRedisValue for PublishOutcome {
    fn from_redis_value(v: Value) -> Result<Self, redis::ParsingError> {
        let (fresh, id): (i64, String) = FromRedisValue::from_redis_value(v)?;
        Ok(if fresh == 1 { Self::Published(id) } else { Self::Duplicate(id) })
    }
}

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

/// Settings of a publish.
#[derive(Debug, Clone)]
pub struct PublishArgs<'a> {
    pub idempotency_window_secs: u64,
    pub retention_secs: u64,
    /// The record's fields beyond the entry (its fan-out state pending);
    /// an empty idempotency key means none was given.
    pub record: &'a RecordMeta,
}

impl Scripts {
    /// Loads both scripts; put first in a pipeline that invokes them.
    pub fn load(&self, pipe: &mut Pipeline) {
        pipe.load_script(&self.publish).ignore();
        pipe.load_script(&self.fanout).ignore();
    }

    /// Adds a publish of `entry` to `pipe`; its reply is a [`PublishOutcome`].
    pub fn publish(&self, pipe: &mut Pipeline, keys: &PartitionKeys, entry: &EventEntry, args: &PublishArgs<'_>) {
        pipe.invoke_script(&self.publish_invocation(keys, entry, args));
    }

    /// One publish on its own: `invoke_async` it (EVALSHA, loading the
    /// script only if Redis lost it).
    pub fn publish_invocation(
        &self,
        keys: &PartitionKeys,
        entry: &EventEntry,
        args: &PublishArgs<'_>,
    ) -> ScriptInvocation<'_> {
        let key = &args.record.idempotency_key;
        let mut invocation = self.publish.prepare_invoke();
        invocation
            .key(keys.idempotency(&entry.tenant, key))
            .key(keys.event(&entry.event_id))
            .key(keys.events())
            .arg(if key.is_empty() { "0" } else { "1" })
            .arg(&entry.event_id)
            .arg(args.idempotency_window_secs.max(1))
            .arg(args.retention_secs.max(1))
            .arg(args.record.head(entry));
        let fields = entry.fields();
        // ARGV is 1-based; the pairs start at 7.
        let payload_at = fields.iter().position(|(name, _)| *name == EventEntry::PAYLOAD).map_or(0, |i| 8 + 2 * i);
        invocation.arg(payload_at);
        for (name, value) in fields {
            invocation.arg(name).arg(value.as_ref());
        }
        invocation
    }

    /// Adds the fan-out of one event entry to `pipe`; its reply is a
    /// [`FanoutOutcome`]. `tasks` are (delivery id, subscription id) pairs;
    /// each carries `traceparent` (the fan-out's span) to delivery.
    #[allow(clippy::too_many_arguments)]
    pub fn fanout(
        &self,
        pipe: &mut Pipeline,
        keys: &PartitionKeys,
        group: &str,
        entry_id: &str,
        event: &EventEntry,
        traceparent: &str,
        now_ms: u64,
        tasks: &[(String, String)],
    ) {
        let mut invocation = self.fanout.prepare_invoke();
        invocation
            .key(keys.events())
            .key(keys.event(&event.event_id))
            .key(keys.deliveries())
            .arg(group)
            .arg(entry_id)
            .arg(&event.event_id)
            .arg(&event.tenant)
            .arg(&event.event_type)
            .arg(traceparent)
            .arg(now_ms)
            .arg(event.fence)
            .arg(FanoutState::Done { matched: tasks.len() as u64, at_ms: now_ms }.header());
        for (delivery, subscription) in tasks {
            invocation.arg(delivery).arg(subscription);
        }
        pipe.invoke_script(&invocation);
    }
}
