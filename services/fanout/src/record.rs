//! Reading an event record (`{p:pN}:event:<id>`, written by `publish.lua`
//! and completed by `fanout.lua`) back into the wire `Event`.

use std::collections::{BTreeMap, HashMap};

use hookline_proto::{Timestamp, convert::timestamp_from_unix_ms, v1};

fn text(fields: &HashMap<String, Vec<u8>>, name: &str) -> String {
    fields.get(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
}

fn millis(fields: &HashMap<String, Vec<u8>>, name: &str) -> Option<Timestamp> {
    text(fields, name).parse::<u64>().ok().map(timestamp_from_unix_ms)
}

/// `None` when the record lacks its identity fields.
pub(crate) fn to_proto(fields: &HashMap<String, Vec<u8>>) -> Option<v1::Event> {
    let id = text(fields, "id");
    if id.is_empty() {
        return None;
    }
    let attributes = fields
        .get("a")
        .filter(|a| !a.is_empty())
        .and_then(|a| serde_json::from_slice::<HashMap<String, String>>(a).ok())
        .unwrap_or_default();
    let payload_variants = fields
        .get("pv")
        .filter(|v| !v.is_empty())
        .and_then(|v| serde_json::from_slice::<BTreeMap<String, String>>(v).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(name, body)| (name, body.into_bytes()))
        .collect();
    let done = text(fields, "st") == "done";
    Some(v1::Event {
        id,
        tenant_id: text(fields, "t"),
        event_type: text(fields, "et"),
        payload: fields.get("p").cloned().unwrap_or_default(),
        attributes,
        idempotency_key: text(fields, "ik"),
        occurred_at: millis(fields, "oa"),
        publish_time: millis(fields, "ts"),
        fanout_state: if done { v1::FanoutState::Done } else { v1::FanoutState::Pending } as i32,
        matched_subscriptions: text(fields, "m").parse().unwrap_or(0),
        fanout_time: millis(fields, "fa"),
        payload_variants,
    })
}
