//! Queue depth as Prometheus gauges, sampled from Redis by the service
//! that consumes each stream (fanout: events, delivery: deliveries).
//!
//! Per partition (bounded by configuration, so a safe label):
//! `hookline_stream_length` (entries kept), `hookline_stream_pending`
//! (read by a consumer, not yet acknowledged) and `hookline_stream_lag`
//! (not yet read by the group), each labelled `stream` and `partition`.

use redis::{RedisResult, aio::ConnectionLike, streams::StreamInfoGroupsReply};

use crate::{DELIVERY_GROUP, FANOUT_GROUP, Partitions};

/// Which of the two streams of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Events,
    Deliveries,
}

impl StreamKind {
    fn name(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Deliveries => "deliveries",
        }
    }

    fn group(self) -> &'static str {
        match self {
            Self::Events => FANOUT_GROUP,
            Self::Deliveries => DELIVERY_GROUP,
        }
    }
}

/// Describes the gauges below (Prometheus `# HELP`).
pub fn describe_stream_gauges() {
    use metrics::{Unit, describe_gauge};
    describe_gauge!("hookline_stream_length", Unit::Count, "Entries kept in the stream, per partition");
    describe_gauge!("hookline_stream_pending", Unit::Count, "Entries read by a consumer and not yet acknowledged");
    describe_gauge!("hookline_stream_lag", Unit::Count, "Entries the consumer group has not read yet");
}

/// Samples `kind` in every partition (one small pipeline per partition,
/// all at once: on a cluster partitions live in different slots) into the
/// gauges above.
pub async fn sample_stream_gauges(
    conn: &mut (impl ConnectionLike + Clone + Send),
    partitions: &Partitions,
    kind: StreamKind,
) -> RedisResult<()> {
    let reads = partitions.all().map(|keys| {
        let stream = match kind {
            StreamKind::Events => keys.events(),
            StreamKind::Deliveries => keys.deliveries(),
        };
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN").arg(&stream);
        // XINFO on a missing key is an error: ask only when it exists.
        pipe.cmd("EVAL")
            .arg("if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('XINFO', 'GROUPS', KEYS[1]) end return {}")
            .arg(1)
            .arg(&stream);
        let mut conn = conn.clone();
        async move { pipe.query_async::<(u64, redis::Value)>(&mut conn).await }
    });
    let replies = futures::future::try_join_all(reads).await?;
    for (keys, (length, groups)) in partitions.all().zip(replies) {
        let groups: StreamInfoGroupsReply = redis::from_redis_value(groups).unwrap_or_default();
        let group = groups.groups.into_iter().find(|g| g.name == kind.group());
        let pending = group.as_ref().map_or(0, |g| g.pending as u64);
        // No group yet: everything is still to read.
        let lag = group.map_or(length, |g| g.lag.map_or(length, |l| l as u64));
        let labels = [("stream", kind.name().to_owned()), ("partition", keys.index().to_string())];
        metrics::gauge!("hookline_stream_length", &labels).set(length as f64);
        metrics::gauge!("hookline_stream_pending", &labels).set(pending as f64);
        metrics::gauge!("hookline_stream_lag", &labels).set(lag as f64);
    }
    Ok(())
}
