//! Conversions between wire types (`v1::*`) and `hookline-domain` types.
//!
//! Requests come in through `TryFrom`-style functions that validate
//! everything and name the offending field; responses go out through plain
//! functions that cannot fail. Both directions live here so the
//! subscription service, the watch client and the CLI agree on them.

mod catalog;
mod subscription;
mod time;

pub use catalog::{event_type_to_proto, settings_to_proto};
pub use subscription::{
    scope_from_proto, scope_to_proto, secrets_from_proto, secrets_to_proto, spec_from_proto, state_cause_from_proto,
    state_to_proto, subscription_from_proto, subscription_to_proto,
};
pub use time::{MAX_UNIX_MS, duration_from_proto, timestamp, timestamp_from_proto, timestamp_from_unix_ms};
