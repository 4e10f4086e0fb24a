//! Stream entry formats, version 1.
//!
//! An entry is a flat field map. Every entry has `v` (format version); a
//! reader refuses versions it does not know rather than guess, and leaves
//! such an entry pending for a build that knows it
//! ([`EntryError::is_unknown_version`]). Entries carry
//! ids, never whole subscriptions; the event entry carries the payload
//! because fan-out filters need it, delivery tasks do not (delivery reads it
//! once per event from the event record).
//!
//! Event entry (`{p:pN}:events`):
//!
//! | field | meaning |
//! |---|---|
//! | `v` | `1` |
//! | `id` | event id (`evt_…`) |
//! | `t` | tenant |
//! | `et` | event type |
//! | `p` | payload, UTF-8 JSON bytes |
//! | `a` | attributes, JSON object of strings (empty: none) |
//! | `tp` | W3C `traceparent` of the publish (empty: none) |
//! | `f` | subscription revision fence: fan-out waits until its cache has it |
//! | `ts` | publish time, Unix ms |
//!
//! Delivery task (`{p:pN}:deliveries`), written by `fanout.lua`:
//!
//! | field | meaning |
//! |---|---|
//! | `v` | `1` |
//! | `id` | delivery id (`dlv_…`) |
//! | `evt` | event id; the payload is in `{p:pN}:event:<evt>` |
//! | `sub` | subscription id |
//! | `t`, `et` | tenant, event type |
//! | `tp` | `traceparent` to continue (empty: none) |
//! | `ts` | enqueue time, Unix ms |
//! | `n` | the attempt this task is for, from 1 |
//! | `tr` | optional: what queued it (`manual`, `replay`); absent: the schedule |
//! | `f` | optional: the subscription revision the event was matched at; delivery's cache reaches it before routing the task (absent in tasks requeued from their record) |

use std::{borrow::Cow, collections::HashMap};

use redis::Value;

use crate::Fence;

pub const FORMAT_VERSION: &str = "1";

/// An entry's fields as read from its stream (`StreamMessage::fields`).
type Fields = HashMap<String, Value>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("entry {id}: format version `{version}` is not supported (this build reads `1`)")]
    Version { id: String, version: String },
    #[error("entry {id}: field `{field}` is missing or malformed")]
    Field { id: String, field: &'static str },
}

impl EntryError {
    /// Whether the entry is of a format version this build does not know:
    /// a newer build wrote it (a rolling upgrade is under way) and will
    /// read it. Its reader leaves it pending, unacknowledged, for such a
    /// build to claim, rather than skip it: see ARCHITECTURE.md,
    /// "Upgrading the stream formats".
    pub fn is_unknown_version(&self) -> bool {
        matches!(self, Self::Version { .. })
    }
}

/// Counter of entries a consumer read and left pending because a newer
/// build wrote them (each read counts: such an entry is read again at
/// every claim until a newer build takes it).
const LEFT_FOR_NEWER_BUILD: &str = "hookline_entries_left_for_newer_build_total";

/// Describes [`LEFT_FOR_NEWER_BUILD`] (Prometheus `# HELP`) and sets it to
/// zero, so the series exists from the first scrape.
pub fn describe_left_for_newer_build() {
    metrics::describe_counter!(
        LEFT_FOR_NEWER_BUILD,
        "Stream entries of a newer format than this build reads, left pending for a newer build (each read counts)"
    );
    metrics::counter!(LEFT_FOR_NEWER_BUILD).absolute(0);
}

/// The entries of one read that a reader leaves pending for a newer build
/// ([`EntryError::is_unknown_version`]): counted, and logged once for the
/// read rather than once an entry (a rolling upgrade can leave thousands,
/// read again at every claim).
#[derive(Debug, Default)]
pub struct LeftForNewerBuild {
    count: u64,
    first: Option<String>,
}

impl LeftForNewerBuild {
    pub fn add(&mut self, error: &EntryError) {
        self.count += 1;
        self.first.get_or_insert_with(|| error.to_string());
    }

    /// Logs and counts what was left of `stream`'s read, if anything.
    pub fn report(self, stream: &str) {
        let Some(first) = self.first else { return };
        tracing::warn!(
            stream, count = self.count, first = %first,
            "stream entries of a newer format than this build reads: left pending for a newer build"
        );
        metrics::counter!(LEFT_FOR_NEWER_BUILD).increment(self.count);
    }
}

// The readers below take each field out of the entry's map (each is read
// once): its bytes become the value read, with no copy.

fn text(map: &mut Fields, entry: &str, field: &'static str) -> Result<String, EntryError> {
    match map.remove(field) {
        Some(Value::BulkString(bytes)) => {
            String::from_utf8(bytes).map_err(|_| EntryError::Field { id: entry.into(), field })
        }
        Some(Value::SimpleString(s)) => Ok(s),
        _ => Err(EntryError::Field { id: entry.into(), field }),
    }
}

fn bytes(map: &mut Fields, entry: &str, field: &'static str) -> Result<Vec<u8>, EntryError> {
    match map.remove(field) {
        Some(Value::BulkString(bytes)) => Ok(bytes),
        _ => Err(EntryError::Field { id: entry.into(), field }),
    }
}

fn number(map: &mut Fields, entry: &str, field: &'static str) -> Result<u64, EntryError> {
    text(map, entry, field)?.parse().map_err(|_| EntryError::Field { id: entry.into(), field })
}

fn fence(map: &mut Fields, entry: &str) -> Result<Fence, EntryError> {
    Fence::parse(&text(map, entry, "f")?).ok_or_else(|| EntryError::Field { id: entry.into(), field: "f" })
}

fn check_version(map: &mut Fields, entry: &str) -> Result<(), EntryError> {
    let version = text(map, entry, "v")?;
    if version == FORMAT_VERSION { Ok(()) } else { Err(EntryError::Version { id: entry.into(), version }) }
}

/// A published event as the events stream carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEntry {
    pub event_id: String,
    pub tenant: String,
    pub event_type: String,
    pub payload: Vec<u8>,
    pub attributes: HashMap<String, String>,
    pub traceparent: String,
    /// `f`: the change log's position at publish ([`Fence`]).
    pub fence: Fence,
    pub published_ms: u64,
}

impl EventEntry {
    /// The payload's field.
    pub const PAYLOAD: &'static str = "p";

    /// The fields to XADD, in order. Borrowed where the entry holds them:
    /// the payload is not copied on its way to Redis.
    pub fn fields(&self) -> Vec<(&'static str, Cow<'_, [u8]>)> {
        let attributes = if self.attributes.is_empty() {
            Vec::new()
        } else {
            serde_json::to_vec(&self.attributes).unwrap_or_default()
        };
        let text = |s: &str| Cow::Owned(s.as_bytes().to_vec());
        vec![
            ("v", Cow::Borrowed(FORMAT_VERSION.as_bytes())),
            ("id", Cow::Borrowed(self.event_id.as_bytes())),
            ("t", Cow::Borrowed(self.tenant.as_bytes())),
            ("et", Cow::Borrowed(self.event_type.as_bytes())),
            (Self::PAYLOAD, Cow::Borrowed(self.payload.as_slice())),
            ("a", Cow::Owned(attributes)),
            ("tp", Cow::Borrowed(self.traceparent.as_bytes())),
            ("f", text(&self.fence.encode())),
            ("ts", text(&self.published_ms.to_string())),
        ]
    }

    /// Reads an entry; `entry` is its stream id, for error messages.
    pub fn parse(entry: &str, mut fields: Fields) -> Result<Self, EntryError> {
        let map = &mut fields;
        check_version(map, entry)?;
        let raw_attributes = bytes(map, entry, "a")?;
        let attributes = if raw_attributes.is_empty() {
            HashMap::new()
        } else {
            serde_json::from_slice(&raw_attributes).map_err(|_| EntryError::Field { id: entry.into(), field: "a" })?
        };
        Ok(Self {
            event_id: text(map, entry, "id")?,
            tenant: text(map, entry, "t")?,
            event_type: text(map, entry, "et")?,
            payload: bytes(map, entry, Self::PAYLOAD)?,
            attributes,
            traceparent: text(map, entry, "tp")?,
            fence: fence(map, entry)?,
            published_ms: number(map, entry, "ts")?,
        })
    }
}

/// One delivery of one event to one subscription, as the deliveries stream
/// carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryTask {
    pub delivery_id: String,
    pub event_id: String,
    pub subscription_id: String,
    pub tenant: String,
    pub event_type: String,
    pub traceparent: String,
    pub enqueued_ms: u64,
    pub attempt: u32,
    /// `""` (scheduled), `"manual"` or `"replay"`.
    pub trigger: String,
    /// `f`: the change log's position fan-out matched the event at
    /// ([`Fence`]; revision 0 and no log when unknown: a task requeued from
    /// its record). Delivery's cache must have reached it before the task
    /// is routed, so a pause or a secret rotation acknowledged before the
    /// publish is seen, and a cache of a previous log is never used.
    pub fence: Fence,
}

impl DeliveryTask {
    pub fn parse(entry: &str, mut fields: Fields) -> Result<Self, EntryError> {
        let map = &mut fields;
        check_version(map, entry)?;
        Ok(Self {
            delivery_id: text(map, entry, "id")?,
            event_id: text(map, entry, "evt")?,
            subscription_id: text(map, entry, "sub")?,
            tenant: text(map, entry, "t")?,
            event_type: text(map, entry, "et")?,
            traceparent: text(map, entry, "tp")?,
            enqueued_ms: number(map, entry, "ts")?,
            attempt: u32::try_from(number(map, entry, "n")?)
                .map_err(|_| EntryError::Field { id: entry.into(), field: "n" })?,
            trigger: if map.contains_key("tr") { text(map, entry, "tr")? } else { String::new() },
            fence: if map.contains_key("f") { fence(map, entry)? } else { Fence::default() },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_map(fields: Vec<(&'static str, Cow<'_, [u8]>)>) -> HashMap<String, Value> {
        fields.into_iter().map(|(k, v)| (k.to_owned(), Value::BulkString(v.into_owned()))).collect()
    }

    #[test]
    fn event_entries_round_trip() {
        let entry = EventEntry {
            event_id: "evt_1".into(),
            tenant: "acme".into(),
            event_type: "lead_closed".into(),
            payload: br#"{"a":1}"#.to_vec(),
            attributes: HashMap::from([("team_id".into(), "7".into())]),
            traceparent: "00-abc-def-01".into(),
            fence: Fence::new("01JLOG", 42),
            published_ms: 1_700_000_000_000,
        };
        assert_eq!(EventEntry::parse("1-0", as_map(entry.fields())), Ok(entry));
    }

    #[test]
    fn unknown_versions_and_missing_fields_are_refused() {
        let mut map = as_map(vec![("v", Cow::Borrowed(&b"2"[..]))]);
        assert!(matches!(EventEntry::parse("1-0", map.clone()), Err(EntryError::Version { .. })));
        map.insert("v".into(), Value::BulkString(b"1".to_vec()));
        assert!(matches!(DeliveryTask::parse("1-0", map.clone()), Err(EntryError::Field { field: "id", .. })));
    }
}
