//! Consumer-group plumbing shared by fan-out and delivery workers: create
//! the group (and stream) when missing, read new entries, claim entries a
//! dead consumer left pending, measure lag, trim what every consumer is done
//! with.

use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

use redis::{
    FromRedisValue, ParsingError, RedisError, RedisResult, Value,
    aio::ConnectionLike,
    streams::{StreamInfoGroupsReply, StreamPendingCountReply, StreamPendingReply},
};

/// One entry read from a stream.
#[derive(Debug, Clone)]
pub struct StreamMessage {
    pub id: String,
    pub fields: HashMap<String, Value>,
}

/// Entries as a stream command returns them, `[[id, [field, value, …]], …]`
/// (`XRANGE`, `XCLAIM`, and each stream of an `XREADGROUP`), moved out of
/// the reply. (redis-rs's own stream replies copy the whole reply first
/// and build nested maps: a tenth of fan-out's CPU.)
struct Entries(Vec<StreamMessage>);

fn unexpected(what: &str, value: &Value) -> ParsingError {
    ParsingError::from(format!("{what}: unexpected {value:?}"))
}

fn text(value: Value) -> Result<String, ParsingError> {
    match value {
        Value::BulkString(bytes) => Ok(String::from_utf8(bytes)?),
        Value::SimpleString(text) => Ok(text),
        other => Err(unexpected("stream entry id or field", &other)),
    }
}

fn items(value: Value) -> Result<Vec<Value>, ParsingError> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(unexpected("stream entries", &other)),
    }
}

impl FromRedisValue for Entries {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let mut out = Vec::new();
        for entry in items(v)? {
            let mut parts = items(entry)?.into_iter();
            let (Some(id), fields) = (parts.next(), parts.next()) else { continue };
            let map = match fields {
                Some(Value::Map(pairs)) => {
                    let mut map = HashMap::with_capacity(pairs.len());
                    for (field, value) in pairs {
                        map.insert(text(field)?, value);
                    }
                    map
                }
                Some(fields) => {
                    let fields = items(fields)?;
                    let mut map = HashMap::with_capacity(fields.len() / 2);
                    let mut fields = fields.into_iter();
                    while let (Some(field), Some(value)) = (fields.next(), fields.next()) {
                        map.insert(text(field)?, value);
                    }
                    map
                }
                None => HashMap::new(),
            };
            out.push(StreamMessage { id: text(id)?, fields: map });
        }
        Ok(Self(out))
    }
}

/// An `XREADGROUP` reply: nothing (`Nil` after a block), or each stream
/// read with its entries (an array of `[key, entries]`, or a map in RESP3).
struct ReadReply(Vec<StreamMessage>);

impl FromRedisValue for ReadReply {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let mut out = Vec::new();
        match v {
            Value::Map(streams) => {
                for (_key, entries) in streams {
                    out.extend(Entries::from_redis_value(entries)?.0);
                }
            }
            other => {
                for stream in items(other)? {
                    let mut parts = items(stream)?.into_iter();
                    if let (Some(_key), Some(entries)) = (parts.next(), parts.next()) {
                        out.extend(Entries::from_redis_value(entries)?.0);
                    }
                }
            }
        }
        Ok(Self(out))
    }
}

/// An `XAUTOCLAIM` reply: `[next cursor, entries, deleted ids]`.
struct AutoClaimReply {
    cursor: String,
    claimed: Vec<StreamMessage>,
}

impl FromRedisValue for AutoClaimReply {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let mut parts = items(v)?.into_iter();
        let cursor = text(parts.next().unwrap_or(Value::Nil))?;
        let claimed = Entries::from_redis_value(parts.next().unwrap_or(Value::Nil))?.0;
        Ok(Self { cursor, claimed })
    }
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
        let reply: ReadReply = redis::cmd("XREADGROUP")
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
        Ok(reply.0)
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
        let reply: AutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(min_idle.as_millis() as u64)
            .arg(cursor)
            .arg("COUNT")
            .arg(count)
            .query_async(conn)
            .await?;
        let messages = reply.claimed;
        if !messages.is_empty() {
            tracing::info!(stream = %self.stream, count = messages.len(), "claimed entries idle past claim_idle");
        }
        Ok((messages, reply.cursor))
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
                let claimed: Entries = redis::cmd("XCLAIM")
                    .arg(&self.stream)
                    .arg(&self.group)
                    .arg(&self.consumer)
                    .arg(min_idle_ms)
                    .arg(&ids)
                    .query_async(conn)
                    .await?;
                taken.extend(claimed.0);
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_compare_numerically() {
        assert!(stream_id_less("9-5", "10-0"));
        assert!(stream_id_less("10-1", "10-2"));
        assert!(!stream_id_less("10-0", "9-9"));
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[(&str, &str)]) -> Value {
        Value::Array(vec![bulk(id), Value::Array(fields.iter().flat_map(|(f, v)| [bulk(f), bulk(v)]).collect())])
    }

    fn fields(message: &StreamMessage) -> Vec<(String, String)> {
        let mut out: Vec<_> = message
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), String::from_redis_value(v.clone()).unwrap_or_default()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn stream_replies_are_read_in_resp2_and_resp3_shapes() {
        let entries = Value::Array(vec![entry("1-0", &[("v", "1"), ("id", "a")]), entry("2-0", &[("v", "1")])]);
        let read = |v: Value| ReadReply::from_redis_value(v).unwrap().0;
        for reply in [
            Value::Array(vec![Value::Array(vec![bulk("s"), entries.clone()])]),
            Value::Map(vec![(bulk("s"), entries.clone())]),
        ] {
            let got = read(reply);
            assert_eq!(got.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["1-0", "2-0"]);
            assert_eq!(fields(&got[0]), [("id".into(), "a".into()), ("v".into(), "1".into())]);
        }
        assert!(read(Value::Nil).is_empty(), "a block that timed out");
        // RESP3 may answer an entry's fields as a map.
        let mapped = Value::Array(vec![Value::Array(vec![bulk("3-0"), Value::Map(vec![(bulk("v"), bulk("1"))])])]);
        assert_eq!(fields(&Entries::from_redis_value(mapped).unwrap().0[0]), [("v".into(), "1".into())]);
        // An entry deleted while pending comes back without fields.
        let deleted = Value::Array(vec![Value::Array(vec![bulk("4-0"), Value::Nil])]);
        let got = Entries::from_redis_value(deleted).unwrap().0;
        assert_eq!((got[0].id.as_str(), got[0].fields.len()), ("4-0", 0));
        let claimed = Value::Array(vec![bulk("5-0"), entries, Value::Array(vec![bulk("0-1")])]);
        let reply = AutoClaimReply::from_redis_value(claimed).unwrap();
        assert_eq!((reply.cursor.as_str(), reply.claimed.len()), ("5-0", 2));
        assert!(ReadReply::from_redis_value(Value::Int(3)).is_err());
    }
}
