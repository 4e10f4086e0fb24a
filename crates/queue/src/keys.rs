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

/// Redis Cluster's hash slots.
const SLOTS: u32 = 16_384;

/// How streams are split.
#[derive(Debug, Clone)]
pub struct Partitions {
    prefix: String,
    count: u16,
    /// The hash tag of each partition (see [`partition_tag`]).
    tags: std::sync::Arc<[String]>,
}

impl Partitions {
    /// `count` is clamped to 1..=1024.
    pub fn new(prefix: &str, count: u16) -> Self {
        let count = count.clamp(1, 1024);
        let tags = (0..count).map(|index| partition_tag(prefix, index, count)).collect();
        Self { prefix: prefix.to_owned(), count, tags }
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
        let tag = self
            .tags
            .get(usize::from(index))
            .cloned()
            .unwrap_or_else(|| partition_tag(&self.prefix, index, self.count));
        PartitionKeys { tag, index }
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

/// The hash tag of partition `index` of `count`: `{<prefix>:p<index>.<n>}`
/// with the smallest `n` whose Cluster slot falls in the middle half of the
/// `index`-th of `count` equal slot ranges. Plain `{prefix:pN}` tags hash
/// close together (CRC16 of near-identical strings) and would pile most
/// partitions onto one node; these spread them the way `redis-cli
/// --cluster create` spreads slots over nodes, so with a partition count
/// that is a multiple of the masters each master works the same share.
/// Part of the contract: the same inputs must always give the same tag.
fn partition_tag(prefix: &str, index: u16, count: u16) -> String {
    let width = SLOTS / u32::from(count);
    let low = u32::from(index) * width + width / 4;
    let high = low + (width / 2).max(1);
    (0u32..)
        .map(|n| format!("{prefix}:p{index}.{n}"))
        .find(|tag| (low..high).contains(&slot(tag.as_bytes())))
        .map(|tag| format!("{{{tag}}}"))
        .unwrap_or_default()
}

/// The Redis Cluster slot of a hash tag's content.
fn slot(tag: &[u8]) -> u32 {
    u32::from(crc16::State::<crc16::XMODEM>::calculate(tag)) % SLOTS
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
        assert!(p.tag().starts_with("{hookline:p3.") && p.tag().ends_with('}'), "{}", p.tag());
        for key in [p.events(), p.deliveries(), p.event("evt_x"), p.idempotency("acme", "k")] {
            assert!(key.starts_with(&format!("{}:", p.tag())), "{key}");
        }
    }

    #[test]
    fn partition_tags_never_change() {
        // Renaming them would orphan every key already written.
        assert_eq!(Partitions::new("hookline", 1).get(0).tag(), "{hookline:p0.0}");
        assert_eq!(Partitions::new("hookline", 6).get(5).tag(), "{hookline:p5.0}");
        // Slot 15096 (CRC16/XMODEM, checked apart from this code), in the
        // middle half of 12288..16384.
        assert_eq!(Partitions::new("hookline", 4).get(3).tag(), "{hookline:p3.3}");
    }

    #[test]
    fn partitions_spread_evenly_over_the_slots_of_three_masters() {
        // redis-cli --cluster create gives 3 masters 0-5460, 5461-10922, 10923-16383.
        let master = |slot: u32| (slot * 3 / SLOTS) as usize;
        for count in [3u16, 6, 12, 24, 96] {
            let parts = Partitions::new("hookline", count);
            let mut per_master = [0u16; 3];
            for keys in parts.all() {
                let tag = keys.tag().trim_start_matches('{').trim_end_matches('}');
                per_master[master(slot(tag.as_bytes()))] += 1;
            }
            assert_eq!(per_master, [count / 3; 3], "{count} partitions");
        }
        assert_eq!(Partitions::new("hookline", 1024).all().count(), 1024);
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
