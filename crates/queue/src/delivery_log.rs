//! The delivery logs: which deliveries a subscription, and a tenant, has
//! had (`{p:pN}:sub:<sub>:log`, `{p:pN}:tenant:<t>:log`), for
//! ListDeliveries and ReplayDeliveries.
//!
//! Each log is a stream with one entry per delivery (`d`: its id), added
//! when its record is made (its first attempt ends, or it first waits):
//! `log_delivery` in `lua/tasks.lua` writes it, [`DeliveryLog`] reads it.
//! A stream keeps an entry in ~45 bytes where a sorted-set member costs
//! ~135 (a skiplist node, its hash-table entry and the member twice), and
//! its ids are unique and time-ordered, so a page boundary never falls
//! between two entries of the same millisecond. Each write trims what is
//! older than the delivery retention (`XADD … MINID ~`).
//!
//! Builds before this one kept the same lists as sorted sets scored by
//! creation time (`…:dlv`, the *legacy index*). They are still read,
//! after the log (newest first) or before it (oldest first), until the
//! retention has emptied them; nothing writes them any more.

use redis::aio::ConnectionLike;

use crate::PartitionKeys;

/// The field of a log entry that holds the delivery id.
pub const LOG_FIELD: &str = "d";

/// A point in a listing: the last entry handed out, which the next call
/// continues strictly past (towards older entries for [`DeliveryLog::older`],
/// newer for [`DeliveryLog::newer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// An entry of the log: its stream id.
    Log { ms: u64, seq: u64 },
    /// A member of the legacy index: its score (creation ms) and id.
    Legacy { score: u64, id: String },
}

impl Position {
    /// As text for a page token: `L<ms>-<seq>` for the log, `<score>:<id>`
    /// for the legacy index (the tokens older builds issued, which
    /// therefore still read).
    pub fn to_token(&self) -> String {
        match self {
            Self::Log { ms, seq } => format!("L{ms}-{seq}"),
            Self::Legacy { score, id } => format!("{score}:{id}"),
        }
    }

    pub fn from_token(text: &str) -> Option<Self> {
        if let Some(id) = text.strip_prefix('L') {
            let (ms, seq) = parse_stream_id(id)?;
            return Some(Self::Log { ms, seq });
        }
        let (score, id) = text.split_once(':')?;
        Some(Self::Legacy { score: score.parse().ok()?, id: id.to_owned() })
    }
}

fn parse_stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// One delivery of a listing, with its place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub delivery_id: String,
    /// When it was listed: the log entry's time, or the legacy score.
    pub at_ms: u64,
    pub position: Position,
}

/// A batch of a listing; `done` when nothing follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub items: Vec<Listed>,
    pub done: bool,
}

/// A subscription's or a tenant's deliveries, in the order they were
/// recorded.
#[derive(Debug, Clone)]
pub struct DeliveryLog {
    log: String,
    legacy: String,
}

/// Times in ms, both ends included.
#[derive(Debug, Clone, Copy)]
pub struct TimeRange {
    pub start_ms: u64,
    pub end_ms: u64,
}

impl DeliveryLog {
    pub fn of_subscription(keys: &PartitionKeys, subscription_id: &str) -> Self {
        Self { log: keys.subscription_log(subscription_id), legacy: keys.legacy_subscription_index(subscription_id) }
    }

    pub fn of_tenant(keys: &PartitionKeys, tenant: &str) -> Self {
        Self { log: keys.tenant_log(tenant), legacy: keys.legacy_tenant_index(tenant) }
    }

    /// The log's key (the scripts that write it get it from
    /// `PartitionKeys`; this is for tests).
    pub fn key(&self) -> &str {
        &self.log
    }

    /// Up to `count` deliveries listed within `range`, newest first, from
    /// just older than `after` (or the newest): the log, then the legacy
    /// index.
    pub async fn older<C: ConnectionLike>(
        &self,
        conn: &mut C,
        range: TimeRange,
        after: Option<&Position>,
        count: usize,
    ) -> redis::RedisResult<Batch> {
        self.list(conn, range, after, count, true).await
    }

    /// Up to `count` deliveries listed within `range`, oldest first, from
    /// just newer than `after` (or the oldest): the legacy index, then the
    /// log.
    pub async fn newer<C: ConnectionLike>(
        &self,
        conn: &mut C,
        range: TimeRange,
        after: Option<&Position>,
        count: usize,
    ) -> redis::RedisResult<Batch> {
        self.list(conn, range, after, count, false).await
    }

    /// [`Self::older`] when `rev`, else [`Self::newer`]: the newer part
    /// (the log) comes first newest first, the older (the legacy index)
    /// first oldest first; a position in the second part skips the first.
    async fn list<C: ConnectionLike>(
        &self,
        conn: &mut C,
        range: TimeRange,
        after: Option<&Position>,
        count: usize,
        rev: bool,
    ) -> redis::RedisResult<Batch> {
        let count = count.max(1);
        let in_second = match after {
            Some(Position::Legacy { .. }) => rev,
            Some(Position::Log { .. }) => !rev,
            None => false,
        };
        let mut items = Vec::new();
        if !in_second {
            let first = if rev {
                self.read_log(conn, range, after, count, rev).await?
            } else {
                self.read_legacy(conn, range, after, count, rev).await?
            };
            if !first.done {
                return Ok(first);
            }
            items = first.items;
        }
        let want = count - items.len();
        let second = if rev {
            self.read_legacy(conn, range, after, want, rev).await?
        } else {
            self.read_log(conn, range, after, want, rev).await?
        };
        items.extend(second.items);
        Ok(Batch { items, done: second.done })
    }

    /// Up to `want` entries of the log within `range`, newest first when
    /// `rev`, past `after` when it is a log position (otherwise from the
    /// end of `range` it starts at).
    async fn read_log<C: ConnectionLike>(
        &self,
        conn: &mut C,
        range: TimeRange,
        after: Option<&Position>,
        want: usize,
        rev: bool,
    ) -> redis::RedisResult<Batch> {
        let past = match after {
            Some(Position::Log { ms, seq }) => Some(format!("({ms}-{seq}")),
            _ => None,
        };
        let mut query = redis::cmd(if rev { "XREVRANGE" } else { "XRANGE" });
        query.arg(&self.log);
        if rev {
            query.arg(past.unwrap_or_else(|| range.end_ms.to_string())).arg(range.start_ms)
        } else {
            query.arg(past.unwrap_or_else(|| range.start_ms.to_string())).arg(range.end_ms)
        };
        let rows: Vec<(String, Vec<String>)> = query.arg("COUNT").arg(want).query_async(conn).await?;
        let done = rows.len() < want;
        Ok(Batch { items: rows.into_iter().filter_map(log_row).collect(), done })
    }

    /// Up to `want` members of the legacy index within `range`, newest
    /// first when `rev`, past `after` when it is a legacy position
    /// (otherwise from the end of `range` it starts at). Members sharing
    /// the cursor's score are read in full past it (`ZCOUNT`), so a page
    /// boundary between them neither repeats nor skips one.
    async fn read_legacy<C: ConnectionLike>(
        &self,
        conn: &mut C,
        range: TimeRange,
        after: Option<&Position>,
        want: usize,
        rev: bool,
    ) -> redis::RedisResult<Batch> {
        let cursor = match after {
            Some(Position::Legacy { score, id }) => Some((*score, id.as_str())),
            _ => None,
        };
        let ties: usize = match cursor {
            Some((score, _)) => redis::cmd("ZCOUNT").arg(&self.legacy).arg(score).arg(score).query_async(conn).await?,
            None => 0,
        };
        let (mut from, mut to) = (range.start_ms, range.end_ms);
        if let Some((score, _)) = cursor {
            if rev { to = score.min(to) } else { from = score.max(from) }
        }
        let mut query = redis::cmd("ZRANGE");
        query.arg(&self.legacy);
        if rev {
            query.arg(to).arg(from).arg("BYSCORE").arg("REV")
        } else {
            query.arg(from).arg(to).arg("BYSCORE")
        };
        let rows: Vec<(String, u64)> =
            query.arg("LIMIT").arg(0).arg(want + ties).arg("WITHSCORES").query_async(conn).await?;
        let done = rows.len() < want + ties;
        let past = |(id, score): &(String, u64)| {
            cursor.is_none_or(|(cs, cid)| {
                if rev {
                    *score < cs || (*score == cs && id.as_str() < cid)
                } else {
                    *score > cs || (*score == cs && id.as_str() > cid)
                }
            })
        };
        let items: Vec<Listed> = rows.into_iter().filter(past).take(want).map(legacy_row).collect();
        Ok(Batch { items, done })
    }
}

/// A log entry as a listed delivery; `None` for an entry without the
/// field (never written so; skipped rather than failing the listing).
fn log_row((id, fields): (String, Vec<String>)) -> Option<Listed> {
    let (ms, seq) = parse_stream_id(&id)?;
    let mut pairs = fields.chunks_exact(2);
    let delivery_id = pairs.find(|pair| pair[0] == LOG_FIELD).map(|pair| pair[1].clone())?;
    Some(Listed { delivery_id, at_ms: ms, position: Position::Log { ms, seq } })
}

fn legacy_row((id, score): (String, u64)) -> Listed {
    Listed { delivery_id: id.clone(), at_ms: score, position: Position::Legacy { score, id } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_back_from_their_tokens() {
        for position in [
            Position::Log { ms: 1_700_000_000_000, seq: 7 },
            Position::Legacy { score: 1_700_000_000_000, id: "dlv_01J".into() },
        ] {
            assert_eq!(Position::from_token(&position.to_token()), Some(position));
        }
        // A token of an older build: `<score>:<id>`.
        assert_eq!(
            Position::from_token("1700000000000:dlv_01J"),
            Some(Position::Legacy { score: 1_700_000_000_000, id: "dlv_01J".into() })
        );
        for bad in ["", "L", "L12", "Lx-1", "12", "x:dlv"] {
            assert_eq!(Position::from_token(bad), None, "{bad}");
        }
    }
}
