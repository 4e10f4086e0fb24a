//! The subscription: a tenant's endpoint, what it wants, and how to deliver.
//!
//! [`SubscriptionSpec`] holds what a client sets; [`Subscription`] adds what
//! hookline owns (id, tenant, state, times, version). Secrets live apart, in
//! [`crate::SecretSet`], so a `Subscription` can be logged and cached
//! without ever carrying one.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    EndpointUrl, EventTypePattern, ExtraHeaders, PayloadFilter, RateLimit, RetryPolicy, Scope, SubscriptionId,
    TenantId, ValidationError,
};

/// Bounds on a subscription's fields.
pub mod limits {
    use std::time::Duration;

    pub const MAX_NAME: usize = 256;
    pub const MAX_EVENT_TYPES: usize = 64;
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
    pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_MAX_IN_FLIGHT: u32 = 100;
    pub const MAX_IN_FLIGHT: u32 = 10_000;
    pub const MAX_METADATA: usize = 32;
    /// The most a subscription may weigh ([`super::SubscriptionSpec::size_bytes`])
    /// under any configuration: the subscription service refuses more at
    /// its own, lower, configured limit (default
    /// [`DEFAULT_MAX_SUBSCRIPTION_BYTES`]); this ceiling is what every
    /// reader of a stored subscription accepts, and what keeps one watch
    /// message far below the watch clients' decoding limit.
    pub const MAX_SUBSCRIPTION_BYTES: usize = 1024 * 1024;
    /// The subscription service's default limit on one subscription's size.
    pub const DEFAULT_MAX_SUBSCRIPTION_BYTES: usize = 64 * 1024;
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    /// The published payload, byte for byte.
    #[default]
    Raw,
    /// `{"id", "type", "timestamp", "data": payload}`.
    Envelope,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    #[default]
    Unordered,
    Fifo,
}

/// Free-form caller labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata(BTreeMap<String, String>);

impl Metadata {
    pub fn new(map: BTreeMap<String, String>) -> Result<Self, ValidationError> {
        if map.len() > limits::MAX_METADATA {
            return Err(ValidationError::new("metadata", format!("has more than {} entries", limits::MAX_METADATA)));
        }
        if let Some((k, _)) = map.iter().find(|(k, v)| k.is_empty() || k.len() > 64 || v.len() > 1024) {
            return Err(ValidationError::new(
                "metadata",
                format!("entry `{k}`: keys must be 1 to 64 bytes and values at most 1024 bytes"),
            ));
        }
        Ok(Self(map))
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

/// Everything a client chooses about a subscription.
///
/// Fields are public for reading; build one through the proto conversion or
/// call [`SubscriptionSpec::validated`], which enforces the rules that span
/// fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionSpec {
    pub name: String,
    pub url: EndpointUrl,
    pub event_types: Vec<EventTypePattern>,
    pub scope: Scope,
    pub filters: Vec<PayloadFilter>,
    pub headers: ExtraHeaders,
    pub retry: RetryPolicy,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub max_in_flight: u32,
    pub rate_limit: Option<RateLimit>,
    pub payload_format: PayloadFormat,
    pub payload_variant: Option<String>,
    pub ordering: Ordering,
    pub metadata: Metadata,
}

impl SubscriptionSpec {
    pub fn validated(self) -> Result<Self, ValidationError> {
        self.check_size(limits::MAX_SUBSCRIPTION_BYTES)?;
        if self.name.len() > limits::MAX_NAME {
            return Err(ValidationError::new("name", format!("is longer than {} bytes", limits::MAX_NAME)));
        }
        if self.event_types.is_empty() {
            return Err(ValidationError::new("event_types", "must list at least one event type (or `*` for all)"));
        }
        if self.event_types.len() > limits::MAX_EVENT_TYPES {
            return Err(ValidationError::new("event_types", format!("lists more than {}", limits::MAX_EVENT_TYPES)));
        }
        for (i, p) in self.event_types.iter().enumerate() {
            if self.event_types[..i].contains(p) {
                return Err(ValidationError::new("event_types", format!("`{p}` is listed twice")));
            }
        }
        if self.filters.len() > PayloadFilter::MAX_FILTERS {
            return Err(ValidationError::new("filters", format!("more than {} filters", PayloadFilter::MAX_FILTERS)));
        }
        if !(limits::MIN_TIMEOUT..=limits::MAX_TIMEOUT).contains(&self.timeout) {
            return Err(ValidationError::new(
                "timeout",
                format!("must be between 1s and 60s (got {}s)", self.timeout.as_secs_f64()),
            ));
        }
        if !(1..=limits::MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            return Err(ValidationError::new(
                "max_in_flight",
                format!("must be between 1 and {}", limits::MAX_IN_FLIGHT),
            ));
        }
        if let Some(v) = &self.payload_variant {
            let ok = !v.is_empty()
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                return Err(ValidationError::new("payload_variant", "must be 1 to 64 letters, digits, `_` or `-`"));
            }
        }
        Ok(self)
    }

    /// What the subscription weighs: the bytes of every string it holds
    /// (names, URL, patterns, scope labels and values, filter paths and
    /// operands, headers, metadata) plus a few bytes per entry. Close to
    /// (and never much below) its stored and wire sizes, so bounding it
    /// bounds both.
    pub fn size_bytes(&self) -> usize {
        const ENTRY: usize = 4;
        let scope: usize = self
            .scope
            .labels()
            .iter()
            .map(|(label, values)| label.len() + ENTRY + values.iter().map(|v| v.len() + ENTRY).sum::<usize>())
            .sum();
        let filters: usize = self
            .filters
            .iter()
            .map(|f| 2 * f.path().len() + ENTRY + f.op().values().iter().map(|v| v.len() + ENTRY).sum::<usize>())
            .sum();
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.len() + ENTRY).sum();
        let metadata: usize = self.metadata.as_map().iter().map(|(k, v)| k.len() + v.len() + ENTRY).sum();
        let patterns: usize = self.event_types.iter().map(|p| p.as_str().len() + ENTRY).sum();
        let retry = match self.retry.schedule() {
            crate::RetrySchedule::Fixed(delays) => delays.len() * 12,
            crate::RetrySchedule::Exponential { .. } => 24,
        };
        let variant = self.payload_variant.as_ref().map_or(0, String::len);
        256 + self.name.len()
            + self.url.as_str().len()
            + patterns
            + scope
            + filters
            + headers
            + metadata
            + retry
            + variant
    }

    /// Refuses a subscription heavier than `max` bytes (see
    /// [`Self::size_bytes`]), naming what weighs most.
    pub fn check_size(&self, max: usize) -> Result<(), ValidationError> {
        let size = self.size_bytes();
        if size <= max {
            return Ok(());
        }
        Err(ValidationError::new(
            "subscription",
            format!(
                "is {size} bytes, over the limit of {max} bytes (scope values, filter operands, headers and metadata \
                 count towards it); split it into several subscriptions or use fewer values"
            ),
        ))
    }

    /// Whether an event of this type, attributes and payload is wanted.
    /// The payload is parsed only if some spec has filters, and only once.
    pub fn matches(&self, event_type: &str, attributes: &HashMap<String, String>, payload: &Payload<'_>) -> bool {
        if !self.event_types.iter().any(|p| p.matches(event_type)) || !self.scope.matches(attributes) {
            return false;
        }
        if self.filters.is_empty() {
            return true;
        }
        payload.value().is_some_and(|value| self.filters.iter().all(|f| f.matches(value)))
    }
}

/// An event payload, parsed on first use only: most subscriptions have no
/// filters, and one parse serves all that do.
#[derive(Debug)]
pub struct Payload<'a> {
    raw: &'a [u8],
    parsed: std::sync::OnceLock<Option<Value>>,
}

impl<'a> Payload<'a> {
    pub fn new(raw: &'a [u8]) -> Self {
        Self { raw, parsed: std::sync::OnceLock::new() }
    }

    /// The parsed JSON, or `None` if it is not JSON.
    pub fn value(&self) -> Option<&Value> {
        self.parsed.get_or_init(|| serde_json::from_slice(self.raw).ok()).as_ref()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateCause {
    Manual,
    Failures,
    Gone,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReason {
    pub cause: StateCause,
    pub message: String,
    pub at: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum SubscriptionState {
    Active,
    /// Events still match; their deliveries are held until resume.
    Paused(StateReason),
    /// Events no longer match.
    Disabled(StateReason),
}

impl SubscriptionState {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused(_) => "paused",
            Self::Disabled(_) => "disabled",
        }
    }

    pub fn reason(&self) -> Option<&StateReason> {
        match self {
            Self::Active => None,
            Self::Paused(r) | Self::Disabled(r) => Some(r),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub tenant: TenantId,
    pub spec: SubscriptionSpec,
    pub state: SubscriptionState,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    /// Starts at 1; every change adds 1.
    pub version: i64,
}

impl Subscription {
    /// Whether fan-out should enqueue a delivery for this event: the spec
    /// matches and the subscription is not disabled (paused ones match; their
    /// deliveries wait).
    pub fn wants(&self, event_type: &str, attributes: &HashMap<String, String>, payload: &Payload<'_>) -> bool {
        !matches!(self.state, SubscriptionState::Disabled(_)) && self.spec.matches(event_type, attributes, payload)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{FilterOp, SubscriptionId};

    fn spec(event_types: &[&str]) -> SubscriptionSpec {
        SubscriptionSpec {
            name: "crm".into(),
            url: EndpointUrl::parse("https://example.com/hook").expect("url"),
            event_types: event_types.iter().map(|t| EventTypePattern::parse(t).expect("pattern")).collect(),
            scope: Scope::default(),
            filters: vec![],
            headers: ExtraHeaders::default(),
            retry: RetryPolicy::default(),
            timeout: limits::DEFAULT_TIMEOUT,
            max_in_flight: limits::DEFAULT_MAX_IN_FLIGHT,
            rate_limit: None,
            payload_format: PayloadFormat::Raw,
            payload_variant: None,
            ordering: Ordering::Unordered,
            metadata: Metadata::default(),
        }
    }

    #[test]
    fn cross_field_rules_are_enforced() {
        assert!(spec(&[]).validated().is_err());
        assert!(spec(&["a", "a"]).validated().is_err());
        let mut s = spec(&["a"]);
        s.timeout = Duration::from_secs(61);
        assert!(s.validated().is_err());
        let mut s = spec(&["a"]);
        s.max_in_flight = 0;
        assert!(s.validated().is_err());
        assert!(spec(&["a", "b_*"]).validated().is_ok());
    }

    #[test]
    fn filters_are_only_parsed_when_present_and_all_must_hold() {
        let unparseable = Payload::new(b"not json");
        let plain = spec(&["messages"]);
        assert!(plain.matches("messages", &HashMap::new(), &unparseable), "no filters: payload not needed");

        let mut filtered = spec(&["messages"]);
        filtered.filters = vec![
            PayloadFilter::new("campaign_name", FilterOp::glob("summer-promo-*").expect("glob")).expect("filter"),
            PayloadFilter::new("channel", FilterOp::Equals("whatsapp".into())).expect("filter"),
        ];
        let attrs = HashMap::new();
        let yes = json!({"campaign_name": "summer-promo-1", "channel": "whatsapp"}).to_string();
        let no = json!({"campaign_name": "summer-promo-1", "channel": "sms"}).to_string();
        assert!(filtered.matches("messages", &attrs, &Payload::new(yes.as_bytes())));
        assert!(!filtered.matches("messages", &attrs, &Payload::new(no.as_bytes())));
        assert!(!filtered.matches("messages", &attrs, &unparseable), "unparseable payload does not match filters");
    }

    #[test]
    fn disabled_subscriptions_want_nothing_but_paused_ones_still_match() {
        let now = SystemTime::now();
        let reason = StateReason { cause: StateCause::Manual, message: String::new(), at: now };
        let mut sub = Subscription {
            id: SubscriptionId::generate(),
            tenant: TenantId::parse("acme").expect("tenant"),
            spec: spec(&["*"]),
            state: SubscriptionState::Paused(reason.clone()),
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let payload = Payload::new(b"{}");
        assert!(sub.wants("x", &HashMap::new(), &payload));
        sub.state = SubscriptionState::Disabled(reason);
        assert!(!sub.wants("x", &HashMap::new(), &payload));
    }

    #[test]
    fn subscriptions_round_trip_through_storage_json() {
        let mut s = spec(&["lead_*", "email_sent"]);
        s.retry = RetryPolicy::fixed(0, vec![Duration::from_secs(5)]).expect("policy");
        let text = serde_json::to_string(&s).expect("ser");
        assert_eq!(serde_json::from_str::<SubscriptionSpec>(&text).expect("de"), s);
    }
}
