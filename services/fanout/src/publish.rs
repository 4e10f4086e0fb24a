//! Turning a `PublishRequest` into an event entry: every check a publish
//! must pass before anything is written.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{SystemTime, UNIX_EPOCH},
};

use hookline_auth::Principal;
use hookline_domain::{EventId, EventTypeName, TenantId};
use hookline_proto::{convert::timestamp_from_proto, v1};
use hookline_queue::{EventEntry, FanoutState, PartitionKeys, Partitions, RecordMeta};
use hookline_watch::CacheState;

use crate::error::ServiceError;

const MAX_ATTRIBUTES: usize = 32;
const MAX_ATTRIBUTE_VALUE: usize = 256;
const MAX_IDEMPOTENCY_KEY: usize = 256;
const MAX_VARIANTS: usize = 8;
/// The event types of hookline's own operational events (published by
/// delivery with the service token).
const OPERATIONAL_PREFIX: &str = "hookline.";

/// What publishing checks against, besides the request.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) max_payload_bytes: usize,
    pub(crate) accept_unknown_tenants: bool,
    pub(crate) token_tenants: HashSet<TenantId>,
}

/// A validated event, ready for the publish script.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) keys: PartitionKeys,
    pub(crate) entry: EventEntry,
    /// The record's other fields, fan-out pending.
    pub(crate) record: RecordMeta,
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Validates `req` for `who`. The entry's `fence` is left at 0 for the
/// caller to set.
pub(crate) fn prepare(
    who: &Principal,
    req: v1::PublishRequest,
    state: &CacheState,
    rules: &Rules,
    partitions: &Partitions,
    traceparent: &str,
    now: SystemTime,
) -> Result<Prepared, ServiceError> {
    let tenant = who.tenant_for(&req.tenant_id).map_err(|s| ServiceError::from_status(&s))?;
    if !(rules.accept_unknown_tenants || rules.token_tenants.contains(&tenant) || state.knows_tenant(&tenant)) {
        return Err(ServiceError::NotFound(format!(
            "tenant `{tenant}` is unknown: it has no token, subscription or event-type catalog"
        )));
    }
    let event_type = EventTypeName::parse(&req.event_type)?;
    if who.is_service() && !event_type.as_str().starts_with(OPERATIONAL_PREFIX) {
        return Err(ServiceError::PermissionDenied(format!(
            "the service token publishes only hookline's operational events ({OPERATIONAL_PREFIX}*)"
        )));
    }
    if state.settings(&tenant).strict_event_types {
        match state.event_type(&tenant, event_type.as_str()) {
            Some(t) if !t.archived => {}
            Some(_) => {
                return Err(ServiceError::FailedPrecondition(format!(
                    "event type `{event_type}` is archived in the catalog of tenant {tenant}"
                )));
            }
            None => {
                return Err(ServiceError::FailedPrecondition(format!(
                    "event type `{event_type}` is not in the catalog of tenant {tenant}, which is strict; create it with CreateEventType first"
                )));
            }
        }
    }
    check_json("payload", &req.payload, rules.max_payload_bytes)?;
    check_attributes(&req.attributes)?;
    let key = &req.idempotency_key;
    if key.len() > MAX_IDEMPOTENCY_KEY || key.chars().any(char::is_control) {
        return Err(ServiceError::BadRequest(format!(
            "idempotency_key: must be at most {MAX_IDEMPOTENCY_KEY} bytes without control characters"
        )));
    }
    let occurred_ms = match &req.occurred_at {
        Some(t) => unix_ms(timestamp_from_proto("occurred_at", t)?),
        None => unix_ms(now),
    };
    let variants = variants(&req.payload_variants, rules.max_payload_bytes)?;
    let keys = partitions.of_tenant(tenant.as_str());
    Ok(Prepared {
        keys,
        entry: EventEntry {
            event_id: EventId::generate().to_string(),
            tenant: tenant.to_string(),
            event_type: event_type.to_string(),
            payload: req.payload,
            attributes: req.attributes,
            traceparent: traceparent.to_owned(),
            fence: hookline_queue::Fence::default(),
            published_ms: unix_ms(now),
        },
        record: RecordMeta {
            occurred_ms,
            idempotency_key: req.idempotency_key,
            variants,
            fanout: FanoutState::Pending,
        },
    })
}

fn check_json(field: &str, bytes: &[u8], max: usize) -> Result<(), ServiceError> {
    hookline_domain::check_json(bytes, max).map_err(|e| ServiceError::BadRequest(format!("{field}: {e}")))
}

fn check_attributes(attributes: &HashMap<String, String>) -> Result<(), ServiceError> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(ServiceError::BadRequest(format!("attributes: more than {MAX_ATTRIBUTES}")));
    }
    for (key, value) in attributes {
        let key_ok = !key.is_empty()
            && key.len() <= 64
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !key_ok {
            return Err(ServiceError::BadRequest(format!(
                "attributes: key `{key}` must be 1 to 64 letters, digits, `_`, `-` or `.`"
            )));
        }
        if value.is_empty() || value.len() > MAX_ATTRIBUTE_VALUE {
            return Err(ServiceError::BadRequest(format!(
                "attributes.{key}: value must be 1 to {MAX_ATTRIBUTE_VALUE} bytes"
            )));
        }
    }
    Ok(())
}

/// The variants: name -> JSON text.
fn variants(variants: &HashMap<String, Vec<u8>>, max: usize) -> Result<BTreeMap<String, String>, ServiceError> {
    if variants.len() > MAX_VARIANTS {
        return Err(ServiceError::BadRequest(format!("payload_variants: more than {MAX_VARIANTS}")));
    }
    let mut out = BTreeMap::new();
    for (name, body) in variants {
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(ServiceError::BadRequest(format!(
                "payload_variants: name `{name}` must be 1 to 64 letters, digits, `_` or `-`"
            )));
        }
        check_json(&format!("payload_variants.{name}"), body, max)?;
        out.insert(name.clone(), String::from_utf8_lossy(body).into_owned());
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_checks_name_the_problem() {
        let too_big = check_json("payload", &[b' '; 11], 10).unwrap_err().to_string();
        assert!(too_big.contains("11 bytes") && too_big.contains("10 bytes"), "{too_big}");
        let bad = check_json("payload", b"{\"a\":", 100).unwrap_err().to_string();
        assert!(bad.contains("not valid JSON"), "{bad}");
        assert!(check_json("payload", b"", 100).unwrap_err().to_string().contains("required"));
        assert!(check_json("payload", br#"{"nested":{"a":[1,2,{"b":null}]}}"#, 100).is_ok());
        let lone = check_json("payload", br#"{"a":"\ud800"}"#, 100).unwrap_err().to_string();
        assert!(lone.starts_with("payload: is not valid JSON"), "{lone}");
        let deep = check_json("payload", "[".repeat(200).as_bytes(), 1000).unwrap_err().to_string();
        assert!(deep.contains("deeper than 127"), "{deep}");
    }

    #[test]
    fn attribute_keys_and_values_are_bounded() {
        assert!(check_attributes(&HashMap::from([("team_id".into(), "7".into())])).is_ok());
        assert!(check_attributes(&HashMap::from([("bad key".into(), "7".into())])).is_err());
        assert!(check_attributes(&HashMap::from([("k".into(), String::new())])).is_err());
    }

    #[test]
    fn variants_are_json_keyed_by_name() {
        let named = variants(&HashMap::from([("legacy".into(), br#"{"x":1}"#.to_vec())]), 100).unwrap();
        assert_eq!(named, BTreeMap::from([("legacy".into(), r#"{"x":1}"#.into())]));
        assert!(variants(&HashMap::from([("legacy".into(), b"nope".to_vec())]), 100).is_err());
    }
}
