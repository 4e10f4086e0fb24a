//! An event record (`hookline_queue::EventRecord`, written by
//! `publish.lua` and completed by `fanout.lua`) as the wire `Event`.

use hookline_proto::{convert::timestamp_from_unix_ms, v1};
use hookline_queue::{EventRecord, FanoutState};

pub(crate) fn to_proto(record: EventRecord) -> v1::Event {
    let EventRecord { entry, meta } = record;
    let (fanout_state, matched_subscriptions, fanout_time) = match meta.fanout {
        FanoutState::Pending => (v1::FanoutState::Pending, 0, None),
        FanoutState::Done { matched, at_ms } => {
            (v1::FanoutState::Done, matched as u32, Some(timestamp_from_unix_ms(at_ms)))
        }
    };
    v1::Event {
        id: entry.event_id,
        tenant_id: entry.tenant,
        event_type: entry.event_type,
        payload: entry.payload,
        attributes: entry.attributes,
        idempotency_key: meta.idempotency_key,
        occurred_at: Some(timestamp_from_unix_ms(meta.occurred_ms)),
        publish_time: Some(timestamp_from_unix_ms(entry.published_ms)),
        fanout_state: fanout_state as i32,
        matched_subscriptions,
        fanout_time,
        payload_variants: meta.variants.into_iter().map(|(name, body)| (name, body.into_bytes())).collect(),
    }
}
