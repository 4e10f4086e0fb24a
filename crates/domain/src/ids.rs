//! Identifiers: a short type prefix and a ULID (`sub_01H...`), so ids sort by
//! creation time, are unique without coordination, and say what they name.
//!
//! Ids made by one process are strictly increasing, also within a
//! millisecond (a monotonic ULID generator): FIFO delivery breaks ties
//! between tasks fanned out in the same millisecond by delivery id, so ids
//! must sort in the order they were made.

use std::fmt;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::ValidationError;

/// The next ULID of this process: the current time, and within one
/// millisecond the previous one plus one.
fn next_ulid() -> Ulid {
    static GENERATOR: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Overflow needs 2^80 ids in one millisecond; a random one is fine then.
    generator.generate().unwrap_or_else(|_| Ulid::new())
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Ulid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id for the current time, after every id this process
            /// made before.
            pub fn generate() -> Self {
                Self(next_ulid())
            }

            /// Parses `prefix_ULID`; `field` names the input in the error.
            pub fn parse(text: &str, field: &str) -> Result<Self, ValidationError> {
                text.strip_prefix($prefix)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .and_then(|ulid| Ulid::from_string(ulid).ok())
                    .map(Self)
                    .ok_or_else(|| {
                        ValidationError::new(
                            field,
                            format!("`{text}` is not a {} id (expected `{}_` + 26 characters)", $prefix, $prefix),
                        )
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Piece by piece (ids are written for every delivery).
                f.write_str($prefix)?;
                f.write_str("_")?;
                f.write_str(self.0.array_to_str(&mut [0; ulid::ULID_LEN]))
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(text: String) -> Result<Self, Self::Error> {
                Self::parse(&text, "id")
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.to_string()
            }
        }
    };
}

prefixed_id!(
    /// A subscription: `sub_` + ULID.
    SubscriptionId,
    "sub"
);
prefixed_id!(
    /// A published event: `evt_` + ULID. Receivers see it as `webhook-id`.
    EventId,
    "evt"
);

prefixed_id!(
    /// One event for one subscription: `dlv_` + ULID.
    DeliveryId,
    "dlv"
);

/// Where a delivery finished at its first attempt is kept: an entry of its
/// tenant's delivery log (`hookline_queue::DeliveryLog`), which is all it
/// has (no record of its own). Its public id is that place, written as a
/// ULID: the entry's millisecond as the time, then a marker byte, the
/// tenant's tag and the entry's sequence number as the "random" part.
/// The tag lets a caller who may see several tenants find the log to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogEntryPlace {
    /// [`tenant_tag`] of its tenant.
    pub tenant_tag: u32,
    pub ms: u64,
    pub seq: u64,
}

/// The marker byte that tells a [`LogEntryPlace`]'s id from a generated
/// one. A generated ULID carries it by chance once in 256; such an id is
/// looked up as a record first (every generated id the API shows has
/// one), and as a place it names no entry (its sequence would be ~2^39).
const LOG_ENTRY_MARKER: u128 = 0xFF;
const SEQ_BITS: u32 = 40;

/// A tenant's 32-bit tag in [`LogEntryPlace`] ids: FNV-1a of its name.
pub fn tenant_tag(tenant: &str) -> u32 {
    tenant.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

impl DeliveryId {
    /// The id of the delivery kept as entry `ms-seq` of `tenant`'s log.
    pub fn of_log_entry(tenant: &str, ms: u64, seq: u64) -> Self {
        let random = (LOG_ENTRY_MARKER << 72)
            | (u128::from(tenant_tag(tenant)) << SEQ_BITS)
            | u128::from(seq & ((1 << SEQ_BITS) - 1));
        Self(Ulid::from_parts(ms, random))
    }

    /// The log entry this id names, if it has the form
    /// [`Self::of_log_entry`] makes.
    pub fn log_entry(&self) -> Option<LogEntryPlace> {
        let random = self.0.random();
        (random >> 72 == LOG_ENTRY_MARKER).then(|| LogEntryPlace {
            tenant_tag: (random >> SEQ_BITS) as u32,
            ms: self.0.timestamp_ms(),
            seq: (random & ((1 << SEQ_BITS) - 1)) as u64,
        })
    }
}

/// A tenant: the owner of subscriptions and events. Tenants are named by
/// the operator in the auth configuration (`acme`, `org-42`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let ok = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(ValidationError::new(
                "tenant_id",
                format!("`{text}` is not a tenant id (1 to 64 letters, digits, `_`, `-` or `.`)"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TenantId {
    type Error = ValidationError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_in_a_row_sort_in_that_order_even_within_a_millisecond() {
        let ids: Vec<String> = (0..10_000).map(|_| DeliveryId::generate().to_string()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids must sort in creation order");
    }

    #[test]
    fn a_log_entry_id_names_its_entry_and_its_tenant() {
        let id = DeliveryId::of_log_entry("acme", 1_764_000_000_123, 7);
        let text = id.to_string();
        assert!(text.starts_with("dlv_") && text.len() == 30, "{text}");
        let place = DeliveryId::parse(&text, "id").ok().and_then(|id| id.log_entry());
        assert_eq!(place, Some(LogEntryPlace { tenant_tag: tenant_tag("acme"), ms: 1_764_000_000_123, seq: 7 }));
        assert_ne!(tenant_tag("acme"), tenant_tag("acmf"));
        // Ids of two places differ, and sort by time.
        let later = DeliveryId::of_log_entry("acme", 1_764_000_000_124, 0);
        assert!(id < later && id != DeliveryId::of_log_entry("acme", 1_764_000_000_123, 8));
        // FNV-1a 32 of "a" (the published test vector).
        assert_eq!(tenant_tag("a"), 0xe40c_292c);
    }

    #[test]
    fn subscription_id_round_trips_through_text() {
        let id = SubscriptionId::generate();
        let text = id.to_string();
        assert!(text.starts_with("sub_") && text.len() == 30, "{text}");
        assert_eq!(SubscriptionId::parse(&text, "id"), Ok(id));
    }

    #[test]
    fn ids_of_another_kind_or_garbage_are_refused() {
        let evt = EventId::generate().to_string();
        assert!(SubscriptionId::parse(&evt, "id").is_err());
        assert!(SubscriptionId::parse("sub_nope", "id").is_err());
        assert!(SubscriptionId::parse("", "id").is_err());
    }

    #[test]
    fn tenant_ids_are_short_and_plain() {
        assert!(TenantId::parse("acme-42").is_ok());
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse("a b").is_err());
        assert!(TenantId::parse(&"x".repeat(65)).is_err());
    }
}
