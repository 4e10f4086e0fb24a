//! Key names and partitioning.
//!
//! | key | type | written by | holds |
//! |---|---|---|---|
//! | `{p:pN}:events` | stream | fanout (Publish) | one [`crate::EventEntry`] per published event |
//! | `{p:pN}:event:<event id>` | hash | fanout | the event record (GetEvent, delivery's payload source); expires after the event retention |
//! | `{p:pN}:idem:<tenant>:<sha-less key>` | string | fanout | first event id of an idempotency key; expires after the window |
//! | `{p:pN}:deliveries` | stream | fanout (fan-out) | one [`crate::DeliveryTask`] per (event, subscription) |
//! | `{p:subs}:revision` | counter | subscriptions | the subscription change-log revision (read by fanout to fence) |

/// The consumer group of fan-out workers on each events stream.
pub const FANOUT_GROUP: &str = "fanout";
/// The consumer group of delivery workers on each deliveries stream.
pub const DELIVERY_GROUP: &str = "delivery";

/// The subscription service's revision counter. Publish reads it so that
/// fan-out waits until its cache has seen every subscription written before
/// the event was published.
pub fn subscriptions_revision_key(prefix: &str) -> String {
    format!("{{{prefix}:subs}}:revision")
}

/// How streams are split.
#[derive(Debug, Clone)]
pub struct Partitions {
    prefix: String,
    count: u16,
}

impl Partitions {
    /// `count` is clamped to 1..=1024.
    pub fn new(prefix: &str, count: u16) -> Self {
        Self { prefix: prefix.to_owned(), count: count.clamp(1, 1024) }
    }

    pub fn count(&self) -> u16 {
        self.count
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The partition of a tenant: stable across processes and versions
    /// (FNV-1a of the tenant id), so a tenant's events keep their order.
    pub fn of_tenant(&self, tenant: &str) -> PartitionKeys {
        self.get((fnv1a(tenant.as_bytes()) % u64::from(self.count)) as u16)
    }

    pub fn get(&self, index: u16) -> PartitionKeys {
        PartitionKeys { tag: format!("{{{}:p{index}}}", self.prefix), index }
    }

    pub fn all(&self) -> impl Iterator<Item = PartitionKeys> + '_ {
        (0..self.count).map(|i| self.get(i))
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The keys of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionKeys {
    tag: String,
    index: u16,
}

impl PartitionKeys {
    pub fn index(&self) -> u16 {
        self.index
    }

    pub fn events(&self) -> String {
        format!("{}:events", self.tag)
    }

    pub fn deliveries(&self) -> String {
        format!("{}:deliveries", self.tag)
    }

    pub fn event(&self, event_id: &str) -> String {
        format!("{}:event:{event_id}", self.tag)
    }

    /// Idempotency keys are the caller's text: the tenant and the key are
    /// length-prefixed so no two pairs share a Redis key.
    pub fn idempotency(&self, tenant: &str, key: &str) -> String {
        format!("{}:idem:{}:{tenant}:{key}", self.tag, tenant.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_a_partition_share_one_hash_tag() {
        let p = Partitions::new("hookline", 4).get(3);
        for key in [p.events(), p.deliveries(), p.event("evt_x"), p.idempotency("acme", "k")] {
            assert!(key.starts_with("{hookline:p3}:"), "{key}");
        }
    }

    #[test]
    fn a_tenant_always_maps_to_the_same_partition() {
        let parts = Partitions::new("hookline", 8);
        assert_eq!(parts.of_tenant("acme"), parts.of_tenant("acme"));
        let spread: std::collections::HashSet<_> =
            (0..100).map(|i| parts.of_tenant(&format!("t{i}")).index()).collect();
        assert!(spread.len() >= 6, "tenants spread over partitions: {spread:?}");
        assert_eq!(Partitions::new("hookline", 1).of_tenant("anything").index(), 0);
    }

    #[test]
    fn idempotency_keys_cannot_collide_across_tenants() {
        let p = Partitions::new("h", 1).get(0);
        assert_ne!(p.idempotency("a:b", "c"), p.idempotency("a", "b:c"));
    }
}
