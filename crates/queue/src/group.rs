//! Consumer-group plumbing shared by fan-out and delivery workers: create
//! the group (and stream) when missing, read new entries, claim entries a
//! dead consumer left pending, measure lag, trim what every consumer is done
//! with.

use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

use redis::{
    RedisError, RedisResult, Value,
    aio::ConnectionLike,
    streams::{
        StreamAutoClaimReply, StreamClaimReply, StreamInfoGroupsReply, StreamPendingCountReply, StreamPendingReply,
        StreamReadReply,
    },
};

/// One entry read from a stream.
#[derive(Debug, Clone)]
pub struct StreamMessage {
    pub id: String,
    pub fields: HashMap<String, Value>,
}

/// Whether an error means the stream or its group does not exist (Redis
/// restarted empty, or someone deleted the key).
pub fn is_missing_group(error: &RedisError) -> bool {
    error.code() == Some("NOGROUP")
}

/// A consumer in a group on one stream.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    pub stream: String,
    pub group: String,
    pub consumer: String,
}

impl ConsumerGroup {
    pub fn new(stream: String, group: &str, consumer: &str) -> Self {
        Self { stream, group: group.to_owned(), consumer: consumer.to_owned() }
    }

    /// Creates the group (and the stream) if missing; reading starts at the
    /// beginning so nothing written before the group existed is skipped.
    pub async fn ensure(&self, conn: &mut impl ConnectionLike) -> RedisResult<()> {
        let created: RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(conn)
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Up to `count` entries never delivered to this group, waiting up to
    /// `block` for the first. Use a connection of its own: `BLOCK` holds it.
    pub async fn read_new(
        &self,
        conn: &mut impl ConnectionLike,
        count: usize,
        block: Duration,
    ) -> RedisResult<Vec<StreamMessage>> {
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(conn)
            .await?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|id| StreamMessage { id: id.id, fields: id.map })
            .collect())
    }

    /// Takes over up to `count` entries pending longer than `min_idle` with
    /// any consumer (a crashed or stuck one), starting from `cursor`
    /// (`"0-0"` first). Returns them and the cursor for the next call
    /// (`"0-0"` when the scan wrapped around). Logs what it claimed.
    pub async fn claim_stale(
        &self,
        conn: &mut impl ConnectionLike,
        min_idle: Duration,
        cursor: &str,
        count: usize,
    ) -> RedisResult<(Vec<StreamMessage>, String)> {
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(min_idle.as_millis() as u64)
            .arg(cursor)
            .arg("COUNT")
            .arg(count)
            .query_async(conn)
            .await?;
        let messages: Vec<StreamMessage> =
            reply.claimed.into_iter().map(|id| StreamMessage { id: id.id, fields: id.map }).collect();
        if !messages.is_empty() {
            tracing::info!(stream = %self.stream, count = messages.len(), "claimed entries idle past claim_idle");
        }
        Ok((messages, reply.next_stream_id))
    }

    /// Takes over up to `count` entries pending with consumers that are not
    /// alive (not in `live`: their process is gone, see
    /// [`crate::Ownership::live`]) and idle at least `min_idle`, whatever
    /// `claim_idle` says: a dead consumer's work moves as soon as its
    /// liveness expires, while a live consumer's slow attempt is left
    /// alone. A dead consumer left with nothing pending is removed from the
    /// group (atomically: only if it still has nothing pending). Logs what
    /// it took.
    pub async fn take_over(
        &self,
        conn: &mut impl ConnectionLike,
        live: &BTreeSet<String>,
        min_idle: Duration,
        count: usize,
    ) -> RedisResult<Vec<StreamMessage>> {
        let summary: StreamPendingReply =
            redis::cmd("XPENDING").arg(&self.stream).arg(&self.group).query_async(conn).await?;
        let StreamPendingReply::Data(summary) = summary else { return Ok(Vec::new()) };
        let min_idle_ms = min_idle.as_millis() as u64;
        let mut taken = Vec::new();
        for dead in summary.consumers.iter().filter(|c| c.name != self.consumer && !live.contains(&c.name)) {
            let wanted = count.saturating_sub(taken.len());
            if wanted == 0 {
                break;
            }
            let idle: StreamPendingCountReply = redis::cmd("XPENDING")
                .arg(&self.stream)
                .arg(&self.group)
                .arg("IDLE")
                .arg(min_idle_ms)
                .arg("-")
                .arg("+")
                .arg(wanted)
                .arg(&dead.name)
                .query_async(conn)
                .await?;
            if !idle.ids.is_empty() {
                let ids: Vec<&str> = idle.ids.iter().map(|p| p.id.as_str()).collect();
                let claimed: StreamClaimReply = redis::cmd("XCLAIM")
                    .arg(&self.stream)
                    .arg(&self.group)
                    .arg(&self.consumer)
                    .arg(min_idle_ms)
                    .arg(&ids)
                    .query_async(conn)
                    .await?;
                taken.extend(claimed.ids.into_iter().map(|id| StreamMessage { id: id.id, fields: id.map }));
            }
            if idle.ids.len() < wanted {
                let _: i64 =
                    FORGET_IF_IDLE.key(&self.stream).arg(&self.group).arg(&dead.name).invoke_async(conn).await?;
            }
        }
        if !taken.is_empty() {
            tracing::info!(stream = %self.stream, count = taken.len(), "took over entries of consumers that are gone");
        }
        Ok(taken)
    }

    /// Entries not yet delivered to the group plus those delivered but not
    /// acknowledged: the work still ahead of it. A missing group counts the
    /// whole stream.
    pub async fn backlog(&self, conn: &mut impl ConnectionLike) -> RedisResult<u64> {
        let groups: RedisResult<StreamInfoGroupsReply> =
            redis::cmd("XINFO").arg("GROUPS").arg(&self.stream).query_async(conn).await;
        let group = match groups {
            Ok(reply) => reply.groups.into_iter().find(|g| g.name == self.group),
            Err(e) if e.code() == Some("ERR") => None, // no such key
            Err(e) => return Err(e),
        };
        match group {
            Some(g) => match g.lag {
                Some(lag) => Ok((lag + g.pending) as u64),
                None => Ok(redis::cmd("XLEN").arg(&self.stream).query_async::<u64>(conn).await?),
            },
            None => redis::cmd("XLEN").arg(&self.stream).query_async(conn).await,
        }
    }

    /// Deletes entries every consumer of this group is done with and that are
    /// older than `keep`. Assumes this group is the stream's only reader.
    pub async fn trim_done(&self, conn: &mut impl ConnectionLike, keep: Duration, now_ms: u64) -> RedisResult<u64> {
        let groups: StreamInfoGroupsReply =
            redis::cmd("XINFO").arg("GROUPS").arg(&self.stream).query_async(conn).await?;
        let Some(group) = groups.groups.into_iter().find(|g| g.name == self.group) else {
            return Ok(0);
        };
        let pending: StreamPendingReply =
            redis::cmd("XPENDING").arg(&self.stream).arg(&self.group).query_async(conn).await?;
        let mut floor = match pending {
            StreamPendingReply::Data(data) => data.start_id,
            _ => group.last_delivered_id,
        };
        let age_floor = format!("{}-0", now_ms.saturating_sub(keep.as_millis() as u64));
        if stream_id_less(&age_floor, &floor) {
            floor = age_floor;
        }
        redis::cmd("XTRIM").arg(&self.stream).arg("MINID").arg("~").arg(floor).query_async(conn).await
    }
}

/// Removes a consumer from a group if it has nothing pending (deleting a
/// consumer drops its pending entries, so never one that has any).
/// KEYS: 1 stream. ARGV: 1 group, 2 consumer. Returns 1 if removed.
static FORGET_IF_IDLE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
",
    )
});

fn parse_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

fn stream_id_less(a: &str, b: &str) -> bool {
    parse_id(a) < parse_id(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_compare_numerically() {
        assert!(stream_id_less("9-5", "10-0"));
        assert!(stream_id_less("10-1", "10-2"));
        assert!(!stream_id_less("10-0", "9-9"));
    }
}
