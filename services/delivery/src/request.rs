//! Building what is sent: the body in the subscription's format, the
//! Standard Webhooks headers signed with every secret valid now, the
//! subscription's extra headers and the trace context.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hookline_domain::{PayloadFormat, SecretSet, SubscriptionSpec};
use hookline_proto::convert::MAX_UNIX_MS;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

/// The event as delivery needs it, read from the event record.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventData {
    pub(crate) payload: Vec<u8>,
    /// Variant name -> JSON text.
    pub(crate) variants: BTreeMap<String, String>,
    pub(crate) occurred_ms: u64,
    /// When it was published (Unix ms; 0 if unknown), for latency metrics.
    pub(crate) published_ms: u64,
    /// The publish's W3C `traceparent` (empty: none): what an attempt
    /// continues when its task carries none.
    pub(crate) traceparent: String,
}

/// Why a request cannot be built for an event: it can never be delivered,
/// so its task ends as a dead letter with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Undeliverable(pub(crate) String);

/// The body for this subscription: the named variant when the event has
/// it, else the payload; raw, or wrapped in the envelope.
pub(crate) fn body(
    spec: &SubscriptionSpec,
    event_id: &str,
    event_type: &str,
    event: &EventData,
) -> Result<Vec<u8>, Undeliverable> {
    let payload = spec
        .payload_variant
        .as_ref()
        .and_then(|name| event.variants.get(name))
        .map_or(event.payload.as_slice(), |v| v.as_bytes());
    match spec.payload_format {
        PayloadFormat::Raw => Ok(payload.to_vec()),
        PayloadFormat::Envelope => {
            // Publish refuses such times; a record written otherwise (an
            // older build, a hand edit) must not reach the formatter, which
            // panics past year 9999.
            if event.occurred_ms > MAX_UNIX_MS {
                return Err(Undeliverable(format!(
                    "the event's occurred_at ({} ms) is past year 9999 and cannot be written in the envelope",
                    event.occurred_ms
                )));
            }
            let timestamp = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(event.occurred_ms));
            let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
            let mut out = Vec::with_capacity(payload.len() + 128);
            out.extend_from_slice(b"{\"id\":");
            out.extend_from_slice(quote(event_id).as_bytes());
            out.extend_from_slice(b",\"type\":");
            out.extend_from_slice(quote(event_type).as_bytes());
            out.extend_from_slice(b",\"timestamp\":");
            out.extend_from_slice(quote(&timestamp.to_string()).as_bytes());
            out.extend_from_slice(b",\"data\":");
            out.extend_from_slice(payload);
            out.push(b'}');
            Ok(out)
        }
    }
}

/// Every header of the request. `webhook-id` is the event id: the same for
/// every attempt and every subscription, so receivers can dedupe on it.
pub(crate) fn headers(
    spec: &SubscriptionSpec,
    secrets: &SecretSet,
    webhook_id: &str,
    body: &[u8],
    traceparent: &str,
    now: SystemTime,
) -> HeaderMap {
    let timestamp = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let signature = hookline_signing::sign(secrets.valid_at(now), webhook_id, timestamp, body);
    let mut map = HeaderMap::with_capacity(8 + spec.headers.len());
    // Extra headers first: they were validated not to collide with ours.
    for (name, value) in spec.headers.iter() {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            map.insert(n, v);
        }
    }
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            map.insert(HeaderName::from_static(name), v);
        }
    };
    set("webhook-id", webhook_id);
    set("webhook-timestamp", &timestamp.to_string());
    set("webhook-signature", &signature);
    if !traceparent.is_empty() {
        set("traceparent", traceparent);
    }
    map
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use hookline_domain::{
        EndpointUrl, EventTypePattern, ExtraHeaders, Metadata, Ordering, RetryPolicy, Scope, SigningSecret, limits,
    };

    use super::*;

    fn spec() -> SubscriptionSpec {
        SubscriptionSpec {
            name: String::new(),
            url: EndpointUrl::parse("https://e.com/").unwrap(),
            event_types: vec![EventTypePattern::parse("*").unwrap()],
            scope: Scope::default(),
            filters: vec![],
            headers: ExtraHeaders::new([("X-Webhook-Secret", "abc")]).unwrap(),
            retry: RetryPolicy::default(),
            timeout: limits::DEFAULT_TIMEOUT,
            max_in_flight: 10,
            rate_limit: None,
            payload_format: PayloadFormat::Raw,
            payload_variant: None,
            ordering: Ordering::Unordered,
            metadata: Metadata::default(),
        }
    }

    fn event() -> EventData {
        EventData {
            payload: br#"{"a":1}"#.to_vec(),
            variants: [("legacy".to_owned(), r#"{"old":1}"#.to_owned())].into(),
            occurred_ms: 1_700_000_000_000,
            published_ms: 0,
            traceparent: String::new(),
        }
    }

    #[test]
    fn raw_envelope_and_variant_bodies() {
        let mut s = spec();
        assert_eq!(body(&s, "evt_1", "a.b", &event()).unwrap(), br#"{"a":1}"#);
        s.payload_variant = Some("legacy".into());
        assert_eq!(body(&s, "evt_1", "a.b", &event()).unwrap(), br#"{"old":1}"#);
        s.payload_variant = Some("missing".into());
        assert_eq!(body(&s, "evt_1", "a.b", &event()).unwrap(), br#"{"a":1}"#, "falls back to the payload");
        s.payload_format = PayloadFormat::Envelope;
        let wrapped: serde_json::Value = serde_json::from_slice(&body(&s, "evt_1", "a.b", &event()).unwrap()).unwrap();
        assert_eq!(wrapped["id"], "evt_1");
        assert_eq!(wrapped["type"], "a.b");
        assert_eq!(wrapped["timestamp"], "2023-11-14T22:13:20.000Z");
        assert_eq!(wrapped["data"]["a"], 1);
    }

    #[test]
    fn an_envelope_time_past_year_9999_is_undeliverable_not_a_panic() {
        let mut s = spec();
        s.payload_format = PayloadFormat::Envelope;
        for occurred_ms in [MAX_UNIX_MS + 1, u64::MAX] {
            let event = EventData { occurred_ms, ..event() };
            let err = body(&s, "evt_1", "a.b", &event).unwrap_err();
            assert!(err.0.contains("year 9999"), "{err}");
        }
        let last = EventData { occurred_ms: MAX_UNIX_MS, ..event() };
        let wrapped: serde_json::Value = serde_json::from_slice(&body(&s, "evt_1", "a.b", &last).unwrap()).unwrap();
        assert_eq!(wrapped["timestamp"], "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn headers_carry_the_signature_ids_and_extras() {
        let secret = SigningSecret::generate();
        let now = SystemTime::now();
        let map = headers(&spec(), &SecretSet::new(secret.clone()), "evt_1", b"{}", "00-abc-def-01", now);
        let get = |n: &str| map.get(n).unwrap().to_str().unwrap().to_owned();
        assert_eq!(get("webhook-id"), "evt_1");
        assert_eq!(get("content-type"), "application/json");
        assert_eq!(get("x-webhook-secret"), "abc");
        assert_eq!(get("traceparent"), "00-abc-def-01");
        let ts: i64 = get("webhook-timestamp").parse().unwrap();
        assert!(hookline_signing::verify(&secret, "evt_1", ts, b"{}", &get("webhook-signature")));
    }
}
