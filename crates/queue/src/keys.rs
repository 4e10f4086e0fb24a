//! Key names and partitioning.
//!
//! | key | type | written by | holds |
//! |---|---|---|---|
//! | `{p:pN}:events` | stream | fanout (Publish) | one [`crate::EventEntry`] per published event |
//! | `{p:pN}:event:<event id>` | hash | fanout | the event record (GetEvent, delivery's payload source); expires after the event retention |
//! | `{p:pN}:idem:<tenant>:<sha-less key>` | string | fanout | first event id of an idempotency key; expires after the window |
//! | `{p:pN}:deliveries` | stream | fanout (fan-out) | one [`crate::DeliveryTask`] per (event, subscription) |
//! | `{p:pN}:retry` | zset | delivery | delivery ids waiting for a retry, scored by due time (ms) |
//! | `{p:pN}:dlv:<delivery id>` | hash | delivery | the delivery record: status, attempt count, last attempt |
//! | `{p:pN}:attempts:<delivery id>` | list | delivery | every attempt, as JSON |
//! | `{p:pN}:sub:<sub id>:dlv` | zset | delivery | the subscription's deliveries by creation time |
//! | `{p:pN}:sub:<sub id>:dead` | zset | delivery | its dead-lettered deliveries by time |
//! | `{p:pN}:tenant:<tenant>:dlv` | zset | delivery | the tenant's deliveries by creation time |
//! | `{p:pN}:held:<sub id>` | list | delivery | deliveries held while the subscription is paused |
//! | `{p:pN}:held` | set | delivery | subscriptions with held deliveries |
//! | `{p:pN}:stats:<sub id>` | hash | delivery | totals: attempts, succeeded, failed, dead, consecutive failures |
//! | `{p:pN}:stats:<sub id>:h:<unix hour>` | hash | delivery | the same per hour, plus summed duration |
//! | `{p:pN}:inflight:<sub id>` | zset | delivery | leases of deliveries in flight, scored by expiry (ms) |
//! | `{p:pN}:rate:<sub id>` | hash | delivery | the rate limit's token bucket: `tokens`, `ts` |
//! | `{p:pN}:fifo:<sub id>:head` | string | delivery | FIFO: the delivery whose turn it is |
//! | `{p:pN}:fifo:<sub id>` | zset | delivery | FIFO: deliveries waiting their turn, by fan-out time |
//! | `{p:pN}:fifo` | set | delivery | FIFO subscriptions with waiting deliveries |
//! | `{p:owners:<group>}:members` | zset | fanout, delivery | live replicas of a consumer group, scored by expiry (ms) |
//! | `{p:owners:<group>}:leases` | hash | fanout, delivery | partition → `<consumer> <expiry ms>`: which replica works it |
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

    /// The keys sharing out the partitions among a group's replicas
    /// (members, leases), in one slot of their own.
    pub fn ownership(&self, group: &str) -> (String, String) {
        let tag = format!("{{{}:owners:{group}}}", self.prefix);
        (format!("{tag}:members"), format!("{tag}:leases"))
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

    /// The hash tag itself, for scripts that derive a record key from an id.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn retry(&self) -> String {
        format!("{}:retry", self.tag)
    }

    pub fn delivery(&self, delivery_id: &str) -> String {
        format!("{}:dlv:{delivery_id}", self.tag)
    }

    pub fn attempts(&self, delivery_id: &str) -> String {
        format!("{}:attempts:{delivery_id}", self.tag)
    }

    pub fn subscription_deliveries(&self, subscription_id: &str) -> String {
        format!("{}:sub:{subscription_id}:dlv", self.tag)
    }

    pub fn dead_letters(&self, subscription_id: &str) -> String {
        format!("{}:sub:{subscription_id}:dead", self.tag)
    }

    pub fn tenant_deliveries(&self, tenant: &str) -> String {
        format!("{}:tenant:{tenant}:dlv", self.tag)
    }

    pub fn held(&self, subscription_id: &str) -> String {
        format!("{}:held:{subscription_id}", self.tag)
    }

    pub fn held_subscriptions(&self) -> String {
        format!("{}:held", self.tag)
    }

    pub fn stats(&self, subscription_id: &str) -> String {
        format!("{}:stats:{subscription_id}", self.tag)
    }

    pub fn stats_hour(&self, subscription_id: &str, unix_hour: u64) -> String {
        format!("{}:stats:{subscription_id}:h:{unix_hour}", self.tag)
    }

    pub fn in_flight(&self, subscription_id: &str) -> String {
        format!("{}:inflight:{subscription_id}", self.tag)
    }

    pub fn fifo_head(&self, subscription_id: &str) -> String {
        format!("{}:fifo:{subscription_id}:head", self.tag)
    }

    pub fn fifo_waiting(&self, subscription_id: &str) -> String {
        format!("{}:fifo:{subscription_id}", self.tag)
    }

    pub fn fifo_subscriptions(&self) -> String {
        format!("{}:fifo", self.tag)
    }

    pub fn rate(&self, subscription_id: &str) -> String {
        format!("{}:rate:{subscription_id}", self.tag)
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
