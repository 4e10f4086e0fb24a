//! The delivery logs: which deliveries a subscription, and a tenant, has
//! had (`{p:pN}:sub:<sub>:log`, `{p:pN}:tenant:<t>:log`), for
//! ListDeliveries and ReplayDeliveries.
//!
//! Each log is a stream with one entry per delivery, added when the
//! delivery is first recorded (its first attempt ends, or it first waits),
//! so ordered by that time; each write trims what is older than the
//! delivery retention (`XADD … MINID ~`). An entry is one of:
//!
//! - `d` = a delivery id: the delivery has a record of its own
//!   (`{p:pN}:dlv:<id>`; `log_delivery` in `lua/tasks.lua` writes it);
//! - in the tenant's log, the fields of a [`FinishedEntry`]: a delivery
//!   that succeeded at its first attempt, which is all it keeps (no
//!   record, no attempts list: `log_finished`); its public id is the
//!   entry's place ([`DeliveryId::of_log_entry`]);
//! - in a subscription's log, `d` = `@<entry id>`: such a delivery of the
//!   subscription, kept in its tenant's log.
//!
//! [`DeliveryLog`] reads all three (a pointer is followed to its entry).
//!
//! A log lives [`log_ttl_secs`] past its last renewal: the write that
//! creates it sets that, and the delivery service's retention worker
//! renews it for the live subscriptions and their tenants (when it takes
//! a partition, then every 10 minutes), so the log of a deleted subscription, or of a tenant left
//! with none, goes by itself once its newest entry is past the retention.
//! A stream keeps an entry in ~45 bytes (~130 with a finished delivery's
//! fields) where a record costs ~370 and a sorted-set member ~135, and its
//! ids are unique and time-ordered, so a page boundary never falls between
//! two entries of the same millisecond.
//!
//! Builds before this one kept the same lists as sorted sets scored by
//! creation time (`…:dlv`, the *legacy index*). They are still read,
//! after the log (newest first) or before it (oldest first), until the
//! retention has emptied them; nothing writes them any more.

use redis::aio::ConnectionLike;

use hookline_domain::DeliveryId;

use crate::PartitionKeys;

/// How long a delivery log outlives the delivery retention since its TTL
/// was last set: longer than the retention worker takes between renewals,
/// many times over, so a live log never expires with entries still within
/// the retention (`with_task_functions` hands it to the Lua side as
/// `LOG_TTL_MARGIN`).
pub(crate) const LOG_TTL_MARGIN_SECS: u64 = 3600;

/// The TTL a delivery log gets when it is created or renewed, for the
/// record retention `record_secs`.
pub fn log_ttl_secs(record_secs: u64) -> u64 {
    record_secs.saturating_add(LOG_TTL_MARGIN_SECS)
}

/// The field of a log entry that holds the delivery id (or, as `@<entry
/// id>`, the place of its [`FinishedEntry`] in the tenant's log).
pub const LOG_FIELD: &str = "d";

/// A delivery that succeeded at its first attempt, as its entry in its
/// tenant's log holds it. It has no other record: its status is
/// `succeeded`, its attempt count 1.
///
/// Its entry is one field, [`FinishedEntry::FIELD`], whose value
/// [`FinishedParts::packed`] builds (in the delivery service, from values
/// it borrows; `log_finished` in `lua/tasks.lua` appends it as it is) and
/// [`FinishedEntry::from_fields`] reads: `<evt> <sub> <et> <c> <w> <ld> <lc> <le> <lt> <lb> <lm>`,
/// separated by single spaces, `w` the ms from creation to the attempt's
/// start, the attempt's fields as a record's last-attempt fields hold them
/// (`lt` empty for `scheduled`), and the message, which may hold spaces,
/// last. One value is one argument for the script to pass on and one
/// listpack element for Redis to store, where eleven were eleven of each.
/// Builds before this one wrote the eleven as fields of their own
/// ([`FinishedEntry::FIELDS`]); such entries are still read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinishedEntry {
    pub event_id: String,
    pub subscription_id: String,
    pub event_type: String,
    /// When the delivery was fanned out, Unix ms.
    pub created_ms: u64,
    /// When its attempt started, Unix ms.
    pub started_ms: u64,
    pub duration_ms: u64,
    pub status_code: u16,
    /// The attempt's error class, message and response-body start
    /// (base64), as a record's last-attempt fields hold them.
    pub error: String,
    pub message: String,
    pub body: String,
    /// What made the attempt (`scheduled`, …).
    pub trigger: String,
}

/// A [`FinishedEntry`] borrowed from where its values already are (the
/// delivery service packs one per first-time success without copying
/// them first).
#[derive(Debug, Clone, Copy)]
pub struct FinishedParts<'a> {
    pub event_id: &'a str,
    pub subscription_id: &'a str,
    pub event_type: &'a str,
    pub created_ms: u64,
    pub started_ms: u64,
    pub duration_ms: u64,
    pub status_code: u16,
    pub error: &'a str,
    pub message: &'a str,
    pub body: &'a str,
    pub trigger: &'a str,
}

impl FinishedParts<'_> {
    /// The value of [`FinishedEntry::FIELD`]. Every packed value but the
    /// message is free of the separator: ids, event types and numbers
    /// cannot hold it, and the error class, trigger and body (base64) are
    /// this code's words; a separator in those would be turned into `_`
    /// rather than shift what follows.
    pub fn packed(&self) -> String {
        use std::fmt::Write;
        fn word(out: &mut String, text: &str) {
            if text.contains(SEPARATOR) {
                out.push_str(&text.replace(SEPARATOR, "_"));
            } else {
                out.push_str(text);
            }
            out.push(SEPARATOR);
        }
        let mut out = String::with_capacity(
            self.event_id.len()
                + self.subscription_id.len()
                + self.event_type.len()
                + self.error.len()
                + self.body.len()
                + self.message.len()
                + 64,
        );
        word(&mut out, self.event_id);
        word(&mut out, self.subscription_id);
        word(&mut out, self.event_type);
        let wait = self.started_ms as i64 - self.created_ms as i64;
        // Writing to a String cannot fail.
        let _ = write!(out, "{} {wait} {} {} ", self.created_ms, self.duration_ms, self.status_code);
        word(&mut out, self.error);
        word(&mut out, if self.trigger == "scheduled" { "" } else { self.trigger });
        word(&mut out, self.body);
        out.push_str(self.message);
        out
    }
}

/// Separates the values packed into a [`FinishedEntry`]'s field.
const SEPARATOR: char = ' ';

impl FinishedEntry {
    /// The field of an entry that holds a finished delivery, packed.
    pub const FIELD: &'static str = "f";

    /// The fields of an entry of builds before the packed one, each a field
    /// of its own: the record's identity, `w`, and the attempt's.
    pub const FIELDS: [&'static str; 11] = ["evt", "sub", "et", "c", "w", "ld", "lc", "le", "lm", "lb", "lt"];

    /// The value of [`Self::FIELD`] ([`FinishedParts::packed`]).
    pub fn packed(&self) -> String {
        FinishedParts {
            event_id: &self.event_id,
            subscription_id: &self.subscription_id,
            event_type: &self.event_type,
            created_ms: self.created_ms,
            started_ms: self.started_ms,
            duration_ms: self.duration_ms,
            status_code: self.status_code,
            error: &self.error,
            message: &self.message,
            body: &self.body,
            trigger: &self.trigger,
        }
        .packed()
    }

    /// From an entry's field-value pairs; `None` when it is not one.
    pub fn from_fields(fields: &[String]) -> Option<Self> {
        let get = |name: &str| fields.chunks_exact(2).find(|p| p[0] == name).map(|p| p[1].as_str());
        match get(Self::FIELD) {
            Some(packed) => Self::from_packed(packed),
            None => Self::from_separate(get),
        }
    }

    fn from_packed(packed: &str) -> Option<Self> {
        let mut parts = packed.splitn(11, SEPARATOR);
        let mut next = || parts.next();
        let (event, sub, event_type) = (next()?, next()?, next()?);
        let (created, wait, duration, code) = (next()?, next()?, next()?, next()?);
        let (error, trigger, body, message) = (next()?, next()?, next()?, next()?);
        Self::assemble([event, sub, event_type, created, wait, duration, code, error, message, body, trigger])
    }

    fn from_separate<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<Self> {
        let [event, sub, event_type, created, wait, duration, code, error, message, body, trigger] = Self::FIELDS;
        Self::assemble([
            get(event)?,
            get(sub).unwrap_or_default(),
            get(event_type).unwrap_or_default(),
            get(created).unwrap_or_default(),
            get(wait).unwrap_or_default(),
            get(duration).unwrap_or_default(),
            get(code).unwrap_or_default(),
            get(error).unwrap_or_default(),
            get(message).unwrap_or_default(),
            get(body).unwrap_or_default(),
            get(trigger).unwrap_or_default(),
        ])
    }

    /// From its values in [`Self::FIELDS`]' order; numbers that do not read
    /// as numbers read as 0.
    fn assemble(
        [event, sub, event_type, created, wait, duration, code, error, message, body, trigger]: [&str; 11],
    ) -> Option<Self> {
        let num = |text: &str| text.parse::<i64>().unwrap_or(0);
        let created_ms = num(created).max(0) as u64;
        Some(Self {
            event_id: event.to_owned(),
            subscription_id: sub.to_owned(),
            event_type: event_type.to_owned(),
            created_ms,
            started_ms: created_ms.saturating_add_signed(num(wait)),
            duration_ms: num(duration).max(0) as u64,
            status_code: u16::try_from(num(code)).unwrap_or(0),
            error: error.to_owned(),
            message: message.to_owned(),
            body: body.to_owned(),
            trigger: match trigger {
                "" => "scheduled".to_owned(),
                other => other.to_owned(),
            },
        })
    }

    /// The entry at `place` of `tenant`'s log, if it is still there.
    pub async fn read<C: ConnectionLike>(
        conn: &mut C,
        keys: &PartitionKeys,
        tenant: &str,
        place: (u64, u64),
    ) -> redis::RedisResult<Option<Self>> {
        let id = format!("{}-{}", place.0, place.1);
        let rows: Vec<(String, Vec<String>)> =
            redis::cmd("XRANGE").arg(keys.tenant_log(tenant)).arg(&id).arg(&id).query_async(conn).await?;
        Ok(rows.first().and_then(|(_, fields)| Self::from_fields(fields)))
    }
}

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
    /// All there is of a delivery that succeeded at its first attempt
    /// (unless a retry since gave it a record); `None` for one that has a
    /// record.
    pub finished: Option<FinishedEntry>,
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
    /// Whose deliveries these are, and that tenant's log (where a
    /// subscription log's pointers lead).
    tenant: String,
    tenant_log: String,
}

/// Times in ms, both ends included.
#[derive(Debug, Clone, Copy)]
pub struct TimeRange {
    pub start_ms: u64,
    pub end_ms: u64,
}

impl DeliveryLog {
    /// The log of subscription `subscription_id` of `tenant`.
    pub fn of_subscription(keys: &PartitionKeys, tenant: &str, subscription_id: &str) -> Self {
        Self {
            log: keys.subscription_log(subscription_id),
            legacy: keys.legacy_subscription_index(subscription_id),
            tenant: tenant.to_owned(),
            tenant_log: keys.tenant_log(tenant),
        }
    }

    pub fn of_tenant(keys: &PartitionKeys, tenant: &str) -> Self {
        Self {
            log: keys.tenant_log(tenant),
            legacy: keys.legacy_tenant_index(tenant),
            tenant: tenant.to_owned(),
            tenant_log: keys.tenant_log(tenant),
        }
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
        let rows: Vec<Row> = rows.into_iter().filter_map(|row| Row::parse(row, self.log == self.tenant_log)).collect();
        // A subscription log's pointers, followed to their entries in one
        // round trip (one gone with the retention is skipped).
        let mut pipe = redis::pipe();
        for row in &rows {
            if let Entry::Pointer(ms, seq) = row.entry {
                let id = format!("{ms}-{seq}");
                pipe.cmd("XRANGE").arg(&self.tenant_log).arg(&id).arg(&id);
            }
        }
        let mut followed: std::vec::IntoIter<Vec<(String, Vec<String>)>> =
            if pipe.is_empty() { Vec::new() } else { pipe.query_async(conn).await? }.into_iter();
        let mut items = Vec::with_capacity(rows.len());
        for Row { ms, seq, entry } in rows {
            let position = Position::Log { ms, seq };
            let (delivery_id, finished) = match entry {
                Entry::Id(id) => (id, None),
                Entry::Finished(finished) => {
                    (DeliveryId::of_log_entry(&self.tenant, ms, seq).to_string(), Some(*finished))
                }
                Entry::Pointer(at, at_seq) => {
                    let found = followed.next().unwrap_or_default();
                    let Some(finished) = found.first().and_then(|(_, fields)| FinishedEntry::from_fields(fields))
                    else {
                        continue;
                    };
                    (DeliveryId::of_log_entry(&self.tenant, at, at_seq).to_string(), Some(finished))
                }
            };
            items.push(Listed { delivery_id, finished, at_ms: ms, position });
        }
        Ok(Batch { items, done })
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

/// What a log entry says of its delivery.
enum Entry {
    /// It has a record, under this id.
    Id(String),
    /// A finished delivery kept in this entry (of a tenant's log).
    Finished(Box<FinishedEntry>),
    /// A finished delivery kept in the tenant's log, at this place.
    Pointer(u64, u64),
}

struct Row {
    ms: u64,
    seq: u64,
    entry: Entry,
}

impl Row {
    /// A log entry; `None` for one that is none of [`Entry`] (never
    /// written so; skipped rather than failing the listing). Finished
    /// deliveries are read only from a tenant's log (`in_tenant_log`).
    fn parse((id, fields): (String, Vec<String>), in_tenant_log: bool) -> Option<Self> {
        let (ms, seq) = parse_stream_id(&id)?;
        let delivery = fields.chunks_exact(2).find(|pair| pair[0] == LOG_FIELD).map(|pair| pair[1].as_str());
        let entry = match delivery {
            Some(place) if place.starts_with('@') => {
                let (at, at_seq) = parse_stream_id(&place[1..])?;
                Entry::Pointer(at, at_seq)
            }
            Some(id) => Entry::Id(id.to_owned()),
            None if in_tenant_log => Entry::Finished(Box::new(FinishedEntry::from_fields(&fields)?)),
            None => return None,
        };
        Some(Self { ms, seq, entry })
    }
}

fn legacy_row((id, score): (String, u64)) -> Listed {
    Listed { delivery_id: id.clone(), finished: None, at_ms: score, position: Position::Legacy { score, id } }
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
