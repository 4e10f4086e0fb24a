//! Stream entry formats.
//!
//! An entry is a flat field map. Every entry has `v` (format version); a
//! reader refuses versions it does not know rather than guess, and leaves
//! such an entry pending for a build that knows it
//! ([`EntryError::is_unknown_version`]). Entries carry
//! ids, never whole subscriptions; the event entry carries the payload
//! because fan-out filters need it, delivery tasks do not (delivery reads it
//! once per event from the event record).
//!
//! This build writes version 2 and reads versions 1 and 2 (version 1 is
//! what builds before commit f06b7a5 wrote; such entries may still be in
//! the streams: ARCHITECTURE.md, "Upgrading the stream formats").
//!
//! Version 2 packs an entry's short fields into one value, separated by
//! single spaces, in a fixed order: each value of a stream reply is
//! parsed on its own (by the client, and built by Redis), so a task of 4
//! values costs a fraction of one of 20. No packed field may
//! hold a space but the event's last (`a`): they are ids, tenants, event
//! types, numbers, a `traceparent` and a fence, none of which can
//! (`packed_fields_cannot_hold_the_separator` pins it); a value that
//! splits into the wrong number of fields is malformed, never shifted.
//!
//! Event entry (`{p:pN}:events`), version 2:
//!
//! | field | meaning |
//! |---|---|
//! | `v` | `2` |
//! | `e` | `<id> <t> <et> <tp> <f> <ts> <a>`: see below |
//! | `p` | payload, UTF-8 JSON bytes |
//!
//! | packed | meaning |
//! |---|---|
//! | `id` | event id (`evt_…`) |
//! | `t` | tenant |
//! | `et` | event type |
//! | `tp` | W3C `traceparent` of the publish (empty: none) |
//! | `f` | subscription revision fence: fan-out waits until its cache has it |
//! | `ts` | publish time, Unix ms |
//! | `a` | attributes, JSON object of strings (empty: none); the rest of the value |
//!
//! Delivery task (`{p:pN}:deliveries`), version 2, written by
//! [`TaskValues`] (fan-out's tasks: Rust builds each value, the script only
//! appends it) and by `tasks.lua`'s `enqueue_task` (a task rebuilt from its
//! delivery record); `task_values_are_what_delivery_task_reads` and
//! `lua_tasks_are_what_delivery_task_reads` pin each to
//! [`DeliveryTask::parse`]:
//!
//! | field | meaning |
//! |---|---|
//! | `v` | `2` |
//! | `d` | `<id> <sub> <evt> <t> <et> <tp> <ts> <n> <tr> <f>`: see below |
//!
//! | packed | meaning |
//! |---|---|
//! | `id` | delivery id (`dlv_…`) |
//! | `sub` | subscription id |
//! | `evt` | event id; the payload is in `{p:pN}:event:<evt>` |
//! | `t`, `et` | tenant, event type |
//! | `tp` | `traceparent` to continue (empty: none) |
//! | `ts` | enqueue time, Unix ms |
//! | `n` | the attempt this task is for, from 1 |
//! | `tr` | what queued it (`manual`, `replay`); empty: the schedule |
//! | `f` | the subscription revision the event was matched at; delivery's cache reaches it before routing the task (empty in tasks requeued from their record) |
//!
//! Version 1 had each of these as a field of its own, under the same
//! names (`tr` and `f` of a task left out when empty).

use std::{borrow::Cow, collections::HashMap};

use redis::Value;

use crate::Fence;

/// The format version this build writes.
pub const FORMAT_VERSION: &str = "2";

/// The format of builds before commit f06b7a5, still read.
const FORMAT_V1: &str = "1";

/// Separates the fields packed into one value (version 2).
const SEPARATOR: char = ' ';

/// An entry's fields as read from its stream (`StreamMessage::fields`).
type Fields = HashMap<String, Value>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("entry {id}: format version `{version}` is not supported (this build reads `1` and `2`)")]
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

fn number<T: std::str::FromStr>(map: &mut Fields, entry: &str, field: &'static str) -> Result<T, EntryError> {
    parse_number(&text(map, entry, field)?, entry, field)
}

/// The entry's format version: one this build reads, or
/// [`EntryError::Version`].
fn version(map: &mut Fields, entry: &str) -> Result<u8, EntryError> {
    let version = text(map, entry, "v")?;
    match version.as_str() {
        FORMAT_VERSION => Ok(2),
        FORMAT_V1 => Ok(1),
        _ => Err(EntryError::Version { id: entry.into(), version }),
    }
}

/// The `N` fields packed into `field` (version 2), in order. With `rest`,
/// the last one is the rest of the value (it may hold the separator);
/// otherwise a value of more or fewer fields than `N` is malformed.
fn unpack<const N: usize>(
    map: &mut Fields,
    entry: &str,
    field: &'static str,
    rest: bool,
) -> Result<[String; N], EntryError> {
    let packed = text(map, entry, field)?;
    let mut parts = packed.splitn(N, SEPARATOR);
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for slot in &mut out {
        *slot = parts.next().ok_or_else(|| EntryError::Field { id: entry.into(), field })?.to_owned();
    }
    if !rest && out[N - 1].contains(SEPARATOR) {
        return Err(EntryError::Field { id: entry.into(), field });
    }
    Ok(out)
}

fn parse_number<T: std::str::FromStr>(text: &str, entry: &str, field: &'static str) -> Result<T, EntryError> {
    text.parse().map_err(|_| EntryError::Field { id: entry.into(), field })
}

fn parse_fence(text: &str, entry: &str) -> Result<Fence, EntryError> {
    Fence::parse(text).ok_or_else(|| EntryError::Field { id: entry.into(), field: "f" })
}

fn parse_attributes(raw: &[u8], entry: &str) -> Result<HashMap<String, String>, EntryError> {
    if raw.is_empty() {
        return Ok(HashMap::new());
    }
    serde_json::from_slice(raw).map_err(|_| EntryError::Field { id: entry.into(), field: "a" })
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
    /// The format version's field.
    pub const VERSION: &'static str = "v";
    /// The field of the short fields, packed.
    pub const PACKED: &'static str = "e";
    /// The payload's field.
    pub const PAYLOAD: &'static str = "p";

    /// The fields to XADD, in order. Borrowed where the entry holds them:
    /// the payload is not copied on its way to Redis.
    pub fn fields(&self) -> Vec<(&'static str, Cow<'_, [u8]>)> {
        vec![
            (Self::VERSION, Cow::Borrowed(FORMAT_VERSION.as_bytes())),
            (Self::PACKED, Cow::Owned(self.packed())),
            (Self::PAYLOAD, Cow::Borrowed(self.payload.as_slice())),
        ]
    }

    /// The value of [`Self::PACKED`]: the entry's short fields.
    pub fn packed(&self) -> Vec<u8> {
        let mut packed = String::with_capacity(
            self.event_id.len() + self.tenant.len() + self.event_type.len() + self.traceparent.len() + 64,
        );
        for text in [&self.event_id, &self.tenant, &self.event_type, &self.traceparent] {
            packed.push_str(text);
            packed.push(SEPARATOR);
        }
        self.fence.encode_into(&mut packed);
        packed.push(SEPARATOR);
        packed.push_str(itoa::Buffer::new().format(self.published_ms));
        packed.push(SEPARATOR);
        let mut packed = packed.into_bytes();
        if !self.attributes.is_empty() {
            // A map of strings always serializes.
            packed.extend(serde_json::to_vec(&self.attributes).unwrap_or_default());
        }
        packed
    }

    /// Reads an entry; `entry` is its stream id, for error messages.
    pub fn parse(entry: &str, mut fields: Fields) -> Result<Self, EntryError> {
        let map = &mut fields;
        if version(map, entry)? == 1 {
            return Self::parse_v1(map, entry);
        }
        let [event_id, tenant, event_type, traceparent, fence, published, attributes] =
            unpack(map, entry, Self::PACKED, true)?;
        Ok(Self {
            attributes: parse_attributes(attributes.as_bytes(), entry)?,
            event_id,
            tenant,
            event_type,
            payload: bytes(map, entry, Self::PAYLOAD)?,
            traceparent,
            fence: parse_fence(&fence, entry)?,
            published_ms: parse_number(&published, entry, "ts")?,
        })
    }

    fn parse_v1(map: &mut Fields, entry: &str) -> Result<Self, EntryError> {
        Ok(Self {
            attributes: parse_attributes(&bytes(map, entry, "a")?, entry)?,
            event_id: text(map, entry, "id")?,
            tenant: text(map, entry, "t")?,
            event_type: text(map, entry, "et")?,
            payload: bytes(map, entry, Self::PAYLOAD)?,
            traceparent: text(map, entry, "tp")?,
            fence: parse_fence(&text(map, entry, "f")?, entry)?,
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

/// The packed values (`d`) of the tasks of one event's fan-out: the part
/// after the delivery and subscription ids is the same for all of them, so
/// it is built once ([`TaskValues::value`] per task).
#[derive(Debug, Clone)]
pub struct TaskValues {
    /// `" <evt> <t> <et> <tp> <ts> <n> <tr> <f>"`.
    tail: String,
}

impl TaskValues {
    /// The tasks of `attempt` of `event`, queued at `enqueued_ms` with
    /// `traceparent` (the fan-out's span) and `trigger` (`""` for the
    /// schedule).
    pub fn new(event: &EventEntry, traceparent: &str, enqueued_ms: u64, attempt: u32, trigger: &str) -> Self {
        let (event_id, tenant, event_type) = (&event.event_id, &event.tenant, &event.event_type);
        Self::of(event_id, tenant, event_type, traceparent, enqueued_ms, attempt, trigger, &event.fence)
    }

    #[allow(clippy::too_many_arguments)]
    fn of(
        event_id: &str,
        tenant: &str,
        event_type: &str,
        traceparent: &str,
        enqueued_ms: u64,
        attempt: u32,
        trigger: &str,
        fence: &Fence,
    ) -> Self {
        let mut tail = String::with_capacity(
            event_id.len()
                + tenant.len()
                + event_type.len()
                + traceparent.len()
                + trigger.len()
                + fence.log_id.len()
                + 64,
        );
        for text in [event_id, tenant, event_type, traceparent] {
            tail.push(SEPARATOR);
            tail.push_str(text);
        }
        tail.push(SEPARATOR);
        tail.push_str(itoa::Buffer::new().format(enqueued_ms));
        tail.push(SEPARATOR);
        tail.push_str(itoa::Buffer::new().format(attempt));
        tail.push(SEPARATOR);
        tail.push_str(trigger);
        tail.push(SEPARATOR);
        fence.encode_into(&mut tail);
        Self { tail }
    }

    /// The stream field holding a task's packed value.
    pub const FIELD: &'static str = "d";

    /// The packed value of the task delivering the event to `subscription_id`.
    pub fn value(&self, delivery_id: &str, subscription_id: &str) -> String {
        let mut value = String::with_capacity(delivery_id.len() + subscription_id.len() + 1 + self.tail.len());
        value.push_str(delivery_id);
        value.push(SEPARATOR);
        value.push_str(subscription_id);
        value.push_str(&self.tail);
        value
    }
}

impl DeliveryTask {
    /// The task's packed value (`d`), as [`TaskValues::value`] writes it:
    /// put back on the stream as it is, it reads as the same task.
    pub fn packed(&self) -> String {
        let Self { delivery_id, event_id, subscription_id, tenant, event_type, traceparent, .. } = self;
        let (enqueued, attempt, trigger) = (self.enqueued_ms, self.attempt, &self.trigger);
        TaskValues::of(event_id, tenant, event_type, traceparent, enqueued, attempt, trigger, &self.fence)
            .value(delivery_id, subscription_id)
    }

    pub fn parse(entry: &str, mut fields: Fields) -> Result<Self, EntryError> {
        let map = &mut fields;
        if version(map, entry)? == 1 {
            return Self::parse_v1(map, entry);
        }
        let [
            delivery_id,
            subscription_id,
            event_id,
            tenant,
            event_type,
            traceparent,
            enqueued,
            attempt,
            trigger,
            fence,
        ] = unpack(map, entry, TaskValues::FIELD, false)?;
        Ok(Self {
            delivery_id,
            event_id,
            subscription_id,
            tenant,
            event_type,
            traceparent,
            enqueued_ms: parse_number(&enqueued, entry, "ts")?,
            attempt: parse_number(&attempt, entry, "n")?,
            trigger,
            fence: if fence.is_empty() { Fence::default() } else { parse_fence(&fence, entry)? },
        })
    }

    fn parse_v1(map: &mut Fields, entry: &str) -> Result<Self, EntryError> {
        Ok(Self {
            delivery_id: text(map, entry, "id")?,
            event_id: text(map, entry, "evt")?,
            subscription_id: text(map, entry, "sub")?,
            tenant: text(map, entry, "t")?,
            event_type: text(map, entry, "et")?,
            traceparent: text(map, entry, "tp")?,
            enqueued_ms: number(map, entry, "ts")?,
            attempt: number(map, entry, "n")?,
            trigger: if map.contains_key("tr") { text(map, entry, "tr")? } else { String::new() },
            fence: if map.contains_key("f") { parse_fence(&text(map, entry, "f")?, entry)? } else { Fence::default() },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use hookline_domain::{DeliveryId, EventId, EventTypeName, SubscriptionId, TenantId};

    use super::*;

    fn as_map(fields: Vec<(&'static str, Cow<'_, [u8]>)>) -> HashMap<String, Value> {
        fields.into_iter().map(|(k, v)| (k.to_owned(), Value::BulkString(v.into_owned()))).collect()
    }

    fn map(fields: &[(&'static str, &str)]) -> HashMap<String, Value> {
        as_map(fields.iter().map(|(k, v)| (*k, Cow::Borrowed(v.as_bytes()))).collect())
    }

    fn event() -> EventEntry {
        EventEntry {
            event_id: "evt_1".into(),
            tenant: "acme".into(),
            event_type: "lead_closed".into(),
            payload: br#"{"a": 1}"#.to_vec(),
            attributes: HashMap::from([("team name".into(), "the A team".into())]),
            traceparent: "00-abc-def-01".into(),
            fence: Fence::new("01JLOG", 42),
            published_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn event_entries_round_trip_packed() {
        let entry = event();
        let fields = entry.fields();
        assert_eq!(fields.iter().map(|(name, _)| *name).collect::<Vec<_>>(), ["v", "e", "p"]);
        assert_eq!(EventEntry::parse("1-0", as_map(fields)), Ok(entry.clone()));
        let bare = EventEntry { attributes: HashMap::new(), traceparent: String::new(), ..entry };
        assert_eq!(EventEntry::parse("1-0", as_map(bare.fields())), Ok(bare));
    }

    #[test]
    fn version_1_entries_of_older_builds_are_still_read() {
        let mut entry = event();
        let v1 = map(&[
            ("v", "1"),
            ("id", "evt_1"),
            ("t", "acme"),
            ("et", "lead_closed"),
            ("p", r#"{"a": 1}"#),
            ("a", r#"{"team name":"the A team"}"#),
            ("tp", "00-abc-def-01"),
            ("f", "42:01JLOG"),
            ("ts", "1700000000000"),
        ]);
        assert_eq!(EventEntry::parse("1-0", v1), Ok(entry.clone()));
        entry.attributes.clear();
        let task = |extra: &[(&'static str, &str)]| {
            let mut fields = vec![
                ("v", "1"),
                ("id", "dlv_1"),
                ("evt", "evt_1"),
                ("sub", "sub_1"),
                ("t", "acme"),
                ("et", "lead_closed"),
                ("tp", ""),
                ("ts", "1700000000000"),
                ("n", "2"),
            ];
            fields.extend_from_slice(extra);
            DeliveryTask::parse("1-0", map(&fields)).unwrap()
        };
        let scheduled = task(&[]);
        assert_eq!((scheduled.attempt, scheduled.trigger.as_str(), &scheduled.fence), (2, "", &Fence::default()));
        let replay = task(&[("tr", "replay"), ("f", "7:01JLOG")]);
        assert_eq!((replay.trigger.as_str(), replay.fence), ("replay", Fence::new("01JLOG", 7)));
    }

    #[test]
    fn packed_tasks_are_read_field_by_field() {
        let read = |d: &str| DeliveryTask::parse("1-0", map(&[("v", "2"), ("d", d)]));
        assert_eq!(
            read("dlv_1 sub_1 evt_1 acme order.paid 00-tp-01 1700000000000 3 manual 7:01JLOG"),
            Ok(DeliveryTask {
                delivery_id: "dlv_1".into(),
                event_id: "evt_1".into(),
                subscription_id: "sub_1".into(),
                tenant: "acme".into(),
                event_type: "order.paid".into(),
                traceparent: "00-tp-01".into(),
                enqueued_ms: 1_700_000_000_000,
                attempt: 3,
                trigger: "manual".into(),
                fence: Fence::new("01JLOG", 7),
            })
        );
        let requeued = read("dlv_1 sub_1 evt_1 acme order.paid  1700000000000 1  ").unwrap();
        assert_eq!((requeued.traceparent.as_str(), requeued.trigger.as_str()), ("", ""));
        assert_eq!(requeued.fence, Fence::default());
        for malformed in [
            "dlv_1 sub_1 evt_1 acme order.paid 00-tp-01 1700000000000 3 manual",
            "dlv_1 sub_1 evt_1 acme order.paid 00-tp-01 1700000000000 3 manual 7:01JLOG extra",
            "dlv_1 sub_1 evt_1 acme order.paid 00-tp-01 soon 3 manual 7:01JLOG",
        ] {
            assert!(matches!(read(malformed), Err(EntryError::Field { field: "d" | "ts", .. })), "{malformed}");
        }
        let short = EventEntry::parse("1-0", map(&[("v", "2"), ("e", "evt_1 acme"), ("p", "{}")]));
        assert!(matches!(short, Err(EntryError::Field { field: "e", .. })));
    }

    /// The values fan-out writes are what delivery reads, traceparent,
    /// trigger and fence included, and tasks of one event differ only in
    /// their ids.
    #[test]
    fn task_values_are_what_delivery_task_reads() {
        let mut event = event();
        event.fence = Fence::new("01JLOG", 7);
        let values = TaskValues::new(&event, "00-tp-01", 1_700_000_000_000, 1, "");
        let read =
            |value: String| DeliveryTask::parse("1-0", map(&[("v", FORMAT_VERSION), (TaskValues::FIELD, &value)]));
        let expected = DeliveryTask {
            delivery_id: "dlv_1".into(),
            event_id: event.event_id.clone(),
            subscription_id: "sub_1".into(),
            tenant: event.tenant.clone(),
            event_type: event.event_type.clone(),
            traceparent: "00-tp-01".into(),
            enqueued_ms: 1_700_000_000_000,
            attempt: 1,
            trigger: String::new(),
            fence: Fence::new("01JLOG", 7),
        };
        assert_eq!(read(values.value("dlv_1", "sub_1")), Ok(expected.clone()));
        let other = read(values.value("dlv_2", "sub_2")).unwrap();
        assert_eq!(other, DeliveryTask { delivery_id: "dlv_2".into(), subscription_id: "sub_2".into(), ..expected });
        let untraced = read(TaskValues::new(&event, "", 5, 2, "manual").value("dlv_3", "sub_3")).unwrap();
        assert_eq!((untraced.traceparent.as_str(), untraced.attempt, untraced.trigger.as_str()), ("", 2, "manual"));
    }

    /// A task packed again (to wait in the deferred set) is the value
    /// fan-out wrote, and reads as the same task.
    #[test]
    fn a_task_packs_back_to_the_value_it_was_read_from() {
        let mut event = event();
        event.fence = Fence::new("01JLOG", 7);
        for (traceparent, trigger) in [("00-tp-01", ""), ("", "manual")] {
            let value = TaskValues::new(&event, traceparent, 1_700_000_000_000, 3, trigger).value("dlv_1", "sub_1");
            let task = DeliveryTask::parse("1-0", map(&[("v", FORMAT_VERSION), (TaskValues::FIELD, &value)])).unwrap();
            assert_eq!(task.packed(), value);
        }
        let unfenced = DeliveryTask {
            fence: Fence::default(),
            ..DeliveryTask::parse("1-0", map(&[("v", "2"), ("d", "dlv_1 sub_1 evt_1 acme a.b  5 1  ")])).unwrap()
        };
        let again = DeliveryTask::parse("1-0", map(&[("v", "2"), ("d", &unfenced.packed())])).unwrap();
        assert_eq!(again, unfenced);
    }

    #[test]
    fn unknown_versions_and_missing_fields_are_refused() {
        let mut fields = map(&[("v", "3")]);
        assert!(matches!(EventEntry::parse("1-0", fields.clone()), Err(EntryError::Version { .. })));
        assert!(matches!(DeliveryTask::parse("1-0", fields.clone()), Err(EntryError::Version { .. })));
        fields.insert("v".into(), Value::BulkString(b"2".to_vec()));
        assert!(matches!(DeliveryTask::parse("1-0", fields.clone()), Err(EntryError::Field { field: "d", .. })));
        fields.insert("v".into(), Value::BulkString(b"1".to_vec()));
        assert!(matches!(DeliveryTask::parse("1-0", fields), Err(EntryError::Field { field: "id", .. })));
    }

    /// What a packed value holds cannot hold its separator: the ids are
    /// prefixed ULIDs, tenants and event types refuse it, and the other
    /// fields are numbers, fences and `traceparent`s this code formats.
    #[test]
    fn packed_fields_cannot_hold_the_separator() {
        let sep = SEPARATOR.to_string();
        for id in [
            EventId::generate().to_string(),
            SubscriptionId::generate().to_string(),
            DeliveryId::generate().to_string(),
        ] {
            assert!(!id.contains(SEPARATOR), "{id}");
        }
        assert!(TenantId::parse(&format!("a{sep}b")).is_err());
        assert!(EventTypeName::parse(&format!("a{sep}b")).is_err());
        assert!(!Fence::new("01JLOG", 7).encode().contains(SEPARATOR));
    }
}
