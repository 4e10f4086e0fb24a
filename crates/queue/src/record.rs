//! The event record (`{p:pN}:event:<id>`): what GetEvent shows and where
//! delivery reads the payload from, kept for the event retention.
//!
//! One string value, sized for memory: a record in a hash costs ~1.2 KB
//! for a 100-byte payload (the payload alone passes the 64 bytes a hash
//! value may have and keep Redis's compact listpack encoding), one string
//! ~0.5 KB. Its layout:
//!
//! ```text
//! P 0000000000 0000000000000\n      fan-out header, fixed width (27 bytes)
//! {"v":1,"id":"evt_…",…}\n          the rest, JSON (never a raw newline)
//! <payload bytes>                   as published, to the end
//! ```
//!
//! The header is `P` (fan-out pending) or `D` (done), the matched
//! subscriptions and the fan-out time (Unix ms), zero-padded:
//! `fanout.lua` overwrites it in place (`SETRANGE 0`) once the event is
//! fanned out, without reading or copying the rest. `publish.lua` writes
//! [`RecordMeta::head`] followed by the payload it already has for the
//! stream entry, so the payload crosses the network once.
//!
//! Records written by builds before this format are hashes (`st`, `m`,
//! `fa`, `oa`, `ik`, `pv` and the entry's fields); [`read_event_records`]
//! and `fanout.lua` still read and complete them.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
};

use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};

use crate::{EventEntry, Fence};

/// Bytes of the fan-out header, newline included.
pub const RECORD_HEADER_LEN: usize = 27;

/// Where an event's fan-out stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanoutState {
    Pending,
    Done { matched: u64, at_ms: u64 },
}

impl FanoutState {
    /// The fixed-width header of a record in this state.
    pub fn header(self) -> String {
        let (mark, matched, at_ms) = match self {
            Self::Pending => ('P', 0, 0),
            Self::Done { matched, at_ms } => ('D', matched.min(9_999_999_999), at_ms.min(9_999_999_999_999)),
        };
        // Written digit by digit: a header is made for every event.
        let mut header = String::with_capacity(RECORD_HEADER_LEN);
        header.push(mark);
        header.push(' ');
        push_padded(&mut header, matched, 10);
        header.push(' ');
        push_padded(&mut header, at_ms, 13);
        header.push('\n');
        header
    }

    fn parse(header: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(header).ok()?;
        let mut parts = text.strip_suffix('\n')?.split(' ');
        let (mark, matched, at_ms) = (parts.next()?, parts.next()?, parts.next()?);
        match mark {
            "P" => Some(Self::Pending),
            "D" => Some(Self::Done { matched: matched.parse().ok()?, at_ms: at_ms.parse().ok()? }),
            _ => None,
        }
    }
}

/// Appends `value` in decimal, zero-padded to `width` digits.
fn push_padded(out: &mut String, value: u64, width: usize) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(value);
    out.extend(std::iter::repeat_n('0', width.saturating_sub(digits.len())));
    out.push_str(digits);
}

/// An event as its record holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub entry: EventEntry,
    pub meta: RecordMeta,
}

/// What the record holds beyond the stream entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMeta {
    pub occurred_ms: u64,
    /// Empty when none was given.
    pub idempotency_key: String,
    /// Payload variants: name -> JSON text.
    pub variants: BTreeMap<String, String>,
    pub fanout: FanoutState,
}

/// Everything but the payload and the header, as JSON.
#[derive(Serialize, Deserialize)]
struct Fields<'a> {
    v: u8,
    id: Cow<'a, str>,
    t: Cow<'a, str>,
    et: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "is_empty_map")]
    a: Cow<'a, HashMap<String, String>>,
    #[serde(default, skip_serializing_if = "str::is_empty")]
    tp: Cow<'a, str>,
    /// The fence's revision (kept for older builds' readers; the task
    /// carries the whole fence, the record's copy is not read).
    f: u64,
    ts: u64,
    oa: u64,
    #[serde(default, skip_serializing_if = "str::is_empty")]
    ik: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "is_empty_variants")]
    pv: Cow<'a, BTreeMap<String, String>>,
}

// serde hands `skip_serializing_if` the field as it is, a `Cow`.
#[allow(clippy::ptr_arg)]
fn is_empty_map(map: &Cow<'_, HashMap<String, String>>) -> bool {
    map.is_empty()
}

#[allow(clippy::ptr_arg)]
fn is_empty_variants(map: &Cow<'_, BTreeMap<String, String>>) -> bool {
    map.is_empty()
}

impl RecordMeta {
    /// The record of `entry` up to its payload: header and fields.
    pub fn head(&self, entry: &EventEntry) -> Vec<u8> {
        let fields = Fields {
            v: 1,
            id: Cow::Borrowed(&entry.event_id),
            t: Cow::Borrowed(&entry.tenant),
            et: Cow::Borrowed(&entry.event_type),
            a: Cow::Borrowed(&entry.attributes),
            tp: Cow::Borrowed(&entry.traceparent),
            f: entry.fence.revision,
            ts: entry.published_ms,
            oa: self.occurred_ms,
            ik: Cow::Borrowed(&self.idempotency_key),
            pv: Cow::Borrowed(&self.variants),
        };
        let mut head = self.fanout.header().into_bytes();
        // Serializing plain strings and numbers cannot fail.
        head.extend(serde_json::to_vec(&fields).unwrap_or_default());
        head.push(b'\n');
        head
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("event record {key}: {problem}")]
pub struct RecordError {
    key: String,
    problem: &'static str,
}

impl EventRecord {
    /// The whole value.
    pub fn encode(&self) -> Vec<u8> {
        let mut value = self.meta.head(&self.entry);
        value.extend_from_slice(&self.entry.payload);
        value
    }

    /// Reads a value written by [`Self::encode`]; `key` names it in errors.
    pub fn decode(key: &str, value: &[u8]) -> Result<Self, RecordError> {
        let problem = |problem| RecordError { key: key.to_owned(), problem };
        if value.len() < RECORD_HEADER_LEN {
            return Err(problem("shorter than its header"));
        }
        let (header, rest) = value.split_at(RECORD_HEADER_LEN);
        let fanout = FanoutState::parse(header).ok_or_else(|| problem("unreadable fan-out header"))?;
        let end = rest.iter().position(|b| *b == b'\n').ok_or_else(|| problem("no end to its fields"))?;
        let fields: Fields = serde_json::from_slice(&rest[..end]).map_err(|_| problem("unreadable fields"))?;
        if fields.v != 1 {
            return Err(problem("format version is not 1"));
        }
        Ok(Self {
            entry: EventEntry {
                event_id: fields.id.into_owned(),
                tenant: fields.t.into_owned(),
                event_type: fields.et.into_owned(),
                payload: rest[end + 1..].to_vec(),
                attributes: fields.a.into_owned(),
                traceparent: fields.tp.into_owned(),
                fence: Fence::new("", fields.f),
                published_ms: fields.ts,
            },
            meta: RecordMeta {
                occurred_ms: fields.oa,
                idempotency_key: fields.ik.into_owned(),
                variants: fields.pv.into_owned(),
                fanout,
            },
        })
    }

    /// A record an older build wrote as a hash; `None` without an id.
    fn from_hash(fields: &HashMap<String, Vec<u8>>) -> Option<Self> {
        let text = |name: &str| fields.get(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
        let number = |name: &str| text(name).parse::<u64>().unwrap_or(0);
        fn json<T: serde::de::DeserializeOwned + Default>(fields: &HashMap<String, Vec<u8>>, name: &str) -> T {
            fields.get(name).filter(|v| !v.is_empty()).and_then(|v| serde_json::from_slice(v).ok()).unwrap_or_default()
        }
        let event_id = text("id");
        if event_id.is_empty() {
            return None;
        }
        Some(Self {
            entry: EventEntry {
                event_id,
                tenant: text("t"),
                event_type: text("et"),
                payload: fields.get("p").cloned().unwrap_or_default(),
                attributes: json(fields, "a"),
                traceparent: text("tp"),
                fence: Fence::parse(&text("f")).unwrap_or_default(),
                published_ms: number("ts"),
            },
            meta: RecordMeta {
                occurred_ms: number("oa"),
                idempotency_key: text("ik"),
                variants: json(fields, "pv"),
                fanout: if text("st") == "done" {
                    FanoutState::Done { matched: number("m"), at_ms: number("fa") }
                } else {
                    FanoutState::Pending
                },
            },
        })
    }
}

/// The records at `keys` (`PartitionKeys::event`), in order; `None` for a
/// missing one (past its retention) or one that cannot be read (logged).
pub async fn read_event_records(
    conn: &mut impl ConnectionLike,
    keys: &[String],
) -> redis::RedisResult<Vec<Option<EventRecord>>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for key in keys {
        pipe.cmd("GET").arg(key);
    }
    let values: Vec<redis::RedisResult<Option<Vec<u8>>>> = pipe.query_async(conn).await?;
    let mut records = Vec::with_capacity(keys.len());
    let mut legacy = Vec::new();
    for (n, (key, value)) in keys.iter().zip(values).enumerate() {
        records.push(match value {
            Ok(None) => None,
            Ok(Some(bytes)) => EventRecord::decode(key, &bytes)
                .inspect_err(|error| tracing::error!(%error, "skipping an event record this build cannot read"))
                .ok(),
            Err(error) if error.code() == Some("WRONGTYPE") => {
                legacy.push(n);
                None
            }
            Err(error) => return Err(error),
        });
    }
    if !legacy.is_empty() {
        let mut pipe = redis::pipe();
        for n in &legacy {
            pipe.cmd("HGETALL").arg(&keys[*n]);
        }
        let hashes: Vec<HashMap<String, Vec<u8>>> = pipe.query_async(conn).await?;
        for (n, fields) in legacy.into_iter().zip(hashes) {
            records[n] = EventRecord::from_hash(&fields);
        }
    }
    Ok(records)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record() -> EventRecord {
        EventRecord {
            entry: EventEntry {
                event_id: "evt_1".into(),
                tenant: "acme".into(),
                event_type: "lead_closed".into(),
                payload: b"{\"a\":\"line\\nbreak\"}\n".to_vec(),
                attributes: HashMap::from([("team_id".into(), "7".into())]),
                traceparent: "00-abc-def-01".into(),
                fence: Fence::new("", 42), // a record keeps the revision only
                published_ms: 1_700_000_000_000,
            },
            meta: RecordMeta {
                occurred_ms: 1_699_999_999_000,
                idempotency_key: "order-1\nsecond line".into(),
                variants: BTreeMap::from([("legacy".into(), "{\"x\":1}".into())]),
                fanout: FanoutState::Pending,
            },
        }
    }

    #[test]
    fn records_round_trip_with_newlines_anywhere() {
        let record = record();
        assert_eq!(EventRecord::decode("k", &record.encode()), Ok(record));
    }

    #[test]
    fn the_fan_out_header_is_overwritten_in_place() {
        let mut record = record();
        let mut value = record.encode();
        let header = FanoutState::Done { matched: 4, at_ms: 1_700_000_000_123 }.header();
        assert_eq!(header.len(), RECORD_HEADER_LEN);
        assert_eq!(FanoutState::Pending.header().len(), RECORD_HEADER_LEN);
        assert_eq!(header, "D 0000000004 1700000000123\n");
        assert_eq!(FanoutState::Pending.header(), "P 0000000000 0000000000000\n");
        value[..RECORD_HEADER_LEN].copy_from_slice(header.as_bytes());
        record.meta.fanout = FanoutState::Done { matched: 4, at_ms: 1_700_000_000_123 };
        assert_eq!(EventRecord::decode("k", &value), Ok(record));
    }

    #[test]
    fn damaged_records_are_refused_with_the_key() {
        let value = record().encode();
        let error = EventRecord::decode("hookline:p0:{s0}:event:evt_1", &value[..10]).unwrap_err();
        assert!(error.to_string().contains("event:evt_1"), "{error}");
        let mut other = value.clone();
        other[0] = b'X';
        assert!(EventRecord::decode("k", &other).is_err());
        assert!(EventRecord::decode("k", &value[..RECORD_HEADER_LEN + 5]).is_err());
    }

    #[test]
    fn legacy_hash_records_still_read() {
        let fields: HashMap<String, Vec<u8>> = [
            ("id", "evt_1"),
            ("t", "acme"),
            ("et", "lead_closed"),
            ("p", "{}"),
            ("a", ""),
            ("tp", ""),
            ("f", "3"),
            ("ts", "10"),
            ("oa", "9"),
            ("st", "done"),
            ("m", "2"),
            ("fa", "11"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
        .collect();
        let record = EventRecord::from_hash(&fields).unwrap();
        assert_eq!(record.meta.fanout, FanoutState::Done { matched: 2, at_ms: 11 });
        assert_eq!((record.meta.occurred_ms, record.entry.payload.as_slice()), (9, &b"{}"[..]));
    }
}
