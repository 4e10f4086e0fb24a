//! hookline's domain: what a subscription is, which inputs are valid, and
//! which events a subscription matches.
//!
//! Architecture invariant: this crate knows nothing of gRPC, Redis or HTTP
//! clients. Services convert wire types into these types at their edge
//! (`hookline-proto`'s `convert`), so a value of a type here has already
//! been validated (through its constructor or `validated`).

mod catalog;
mod error;
mod filter;
mod headers;
mod ids;
mod pattern;
mod payload;
mod retry;
mod secret;
mod subscription;
mod url;

pub use catalog::{EventType, EventTypeName, TenantSettings};
pub use error::ValidationError;
pub use filter::{FilterOp, PayloadFilter, Scope, TextGlob};
pub use headers::ExtraHeaders;
pub use ids::{DeliveryId, EventId, LogEntryPlace, SubscriptionId, TenantId, tenant_tag};
pub use pattern::{EventTypePattern, patterns_overlap};
pub use payload::{MAX_DEPTH as MAX_PAYLOAD_DEPTH, PayloadError, check_json};
pub use retry::{RateLimit, RetryPolicy, RetrySchedule};
pub use secret::{SecretSet, SigningSecret};
pub use subscription::{
    Metadata, Ordering, Payload, PayloadFormat, StateCause, StateReason, Subscription, SubscriptionSpec,
    SubscriptionState, limits,
};
pub use url::EndpointUrl;
