//! Acknowledging a write only once Redis replicas hold it too (opt-in).
//!
//! Redis answers a write as soon as its primary has applied it; replicas
//! get it a moment later, and the AOF reaches the disk at most once a
//! second with `appendfsync everysec`. A primary lost with its disk, or
//! failed over to a replica that was behind, takes its last writes with it,
//! acknowledged ones included. With [`Durability::replicas`] above 0, each
//! write hookline acknowledges to a caller (a publish, a subscription or
//! catalog change) is sent in one pipeline with `WAIT <replicas> <timeout>`
//! behind it, so both go over the same connection to the same primary, and
//! the caller hears "done" only once that many replicas have the write. On
//! a Redis Cluster the pipeline goes to the primary of the write's slot.
//!
//! `WAIT` blocks the connection it runs on, so a writer with durability on
//! keeps connections of its own ([`WRITER_CONNECTIONS`], taken in turn):
//! the service's other traffic (fan-out, health checks, reads) never
//! queues behind a `WAIT`, and that many writes wait for their replicas at
//! once (Redis asks its replicas for their offset once per event-loop
//! round, however many `WAIT`s came in it).
//!
//! What it does not do: a write confirmed by too few replicas in time is
//! still on the primary (it will be fanned out and delivered unless that
//! primary is lost); the caller gets UNAVAILABLE and retries, with the same
//! idempotency key for a publish.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use redis::{ErrorKind, FromRedisValue, RedisError, ScriptInvocation, ServerErrorKind};
use serde::{Deserialize, Serialize};

use crate::RedisConn;

/// How many replicas must hold a write before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Durability {
    /// Replicas that must have a write before hookline acknowledges it; 0
    /// (default): the primary's answer is enough, as with plain Redis.
    pub replicas: u32,
    /// How long a write waits for them; past it the caller gets
    /// UNAVAILABLE (the write stays on the primary).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for Durability {
    fn default() -> Self {
        Self { replicas: 0, timeout: Duration::from_secs(1) }
    }
}

/// Replicas a write may wait for, at most.
const MAX_REPLICAS: u32 = 16;

impl Durability {
    /// A sentence for the operator when the settings make no sense.
    pub fn check(&self) -> Result<(), String> {
        if self.replicas > MAX_REPLICAS {
            return Err(format!("durability.replicas must be at most {MAX_REPLICAS} (got {})", self.replicas));
        }
        if self.replicas > 0 && !(Duration::from_millis(10)..=Duration::from_secs(60)).contains(&self.timeout) {
            return Err("durability.timeout must be between 10ms and 60s".into());
        }
        Ok(())
    }
}

/// Why a write was not acknowledged.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// The write is on the primary, but too few replicas confirmed it in
    /// time.
    #[error(
        "the write is on the Redis primary but only {confirmed} of the {wanted} replicas required \
         (durability.replicas) confirmed it within {timeout:?}"
    )]
    NotReplicated { confirmed: u32, wanted: u32, timeout: Duration },
}

/// Connections a [`DurableWriter`] keeps when durability is on: how many
/// writes wait for replicas at once (each `WAIT` holds its connection for
/// about one replication round trip).
pub const WRITER_CONNECTIONS: usize = 8;

/// Runs the scripts whose writes a caller is told about, confirming each
/// on [`Durability::replicas`] replicas first when that is above 0.
#[derive(Debug, Clone)]
pub struct DurableWriter {
    conns: Arc<[RedisConn]>,
    next: Arc<AtomicUsize>,
    durability: Durability,
}

impl DurableWriter {
    /// With durability off, writes go over `shared`; on, over
    /// [`WRITER_CONNECTIONS`] connections of the writer's own to `url` (see
    /// the module documentation), whose commands may take
    /// `command_timeout` plus the wait.
    pub async fn connect(
        url: &str,
        command_timeout: Duration,
        durability: Durability,
        shared: &RedisConn,
    ) -> Result<Self, RedisError> {
        let conns = if durability.replicas == 0 {
            vec![shared.clone()]
        } else {
            let mut conns = Vec::with_capacity(WRITER_CONNECTIONS);
            for _ in 0..WRITER_CONNECTIONS {
                conns.push(crate::connect(url, command_timeout + durability.timeout).await?);
            }
            conns
        };
        Ok(Self { conns: conns.into(), next: Arc::default(), durability })
    }

    /// Runs `invocation` (loading the script if Redis lacks it), then
    /// waits for the replicas when durability is on.
    pub async fn invoke<T: FromRedisValue>(&self, invocation: &ScriptInvocation<'_>) -> Result<T, WriteError> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let mut conn = self.conns[turn].clone();
        let Durability { replicas, timeout } = self.durability;
        if replicas == 0 {
            return Ok(invocation.invoke_async(&mut conn).await?);
        }
        // One pipeline: the write and its WAIT go over the same connection
        // to the same primary (a reconnect in between cannot separate them).
        let mut pipe = redis::pipe();
        pipe.invoke_script(invocation).cmd("WAIT").arg(replicas).arg(timeout.as_millis() as u64);
        let reply: Result<(T, u32), RedisError> = pipe.query_async(&mut conn).await;
        let (value, confirmed) = match reply {
            Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                invocation.load_async(&mut conn).await?;
                pipe.query_async(&mut conn).await?
            }
            other => other?,
        };
        if confirmed < replicas {
            metrics::counter!("hookline_writes_not_replicated_total").increment(1);
            return Err(WriteError::NotReplicated { confirmed, wanted: replicas, timeout });
        }
        Ok(value)
    }
}

/// Describes (and zeroes) the metric a [`DurableWriter`] counts.
pub fn describe_durability_metrics() {
    metrics::describe_counter!(
        "hookline_writes_not_replicated_total",
        "Writes answered UNAVAILABLE because fewer replicas than durability.replicas confirmed them in time"
    );
    metrics::counter!("hookline_writes_not_replicated_total").absolute(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert_eq!(Durability::default().check(), Ok(()));
        assert!(Durability { replicas: 17, ..Default::default() }.check().is_err());
        assert!(Durability { replicas: 1, timeout: Duration::ZERO }.check().is_err());
        // The timeout does not matter while durability is off.
        assert_eq!(Durability { replicas: 0, timeout: Duration::ZERO }.check(), Ok(()));
    }
}
