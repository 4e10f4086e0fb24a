//! Key names and partitioning.
//!
//! Below, `{p:pN}` stands for the start every key of partition N shares:
//! `<prefix>:p<N>:{s<k>}`, its hash tag picked so that partitions sit on
//! evenly spaced Redis Cluster slots (see [`partition_base`]).
//!
//! | key | type | written by | holds |
//! |---|---|---|---|
//! | `{p:pN}:events` | stream | fanout (Publish) | one [`crate::EventEntry`] per published event |
//! | `{p:pN}:event:<event id>` | string | fanout | the event record ([`crate::EventRecord`]: GetEvent, delivery's payload source); expires after the event retention |
//! | `{p:pN}:idem:<tenant>:<sha-less key>` | string | fanout | first event id of an idempotency key; expires after the window |
//! | `{p:pN}:deliveries` | stream | fanout (fan-out) | one [`crate::DeliveryTask`] per (event, subscription) |
//! | `{p:pN}:retry` | zset | delivery | delivery ids waiting for a retry, scored by due time (ms) |
//! | `{p:pN}:deferred` | zset | delivery | tasks turned away before their first attempt (in-flight limit, rate, fair share, cache behind), each its packed stream value ([`crate::DeliveryTask::packed`]), scored by due time (ms); put back on the stream as they are |
//! | `{p:pN}:dlv:<delivery id>` | hash | delivery | the delivery record: status, attempt count, last attempt |
//! | `{p:pN}:attempts:<delivery id>` | list | delivery | every attempt, as JSON |
//! | `{p:pN}:sub:<sub id>:log` | stream | delivery | the subscription's deliveries, in the order they were recorded ([`crate::DeliveryLog`]) |
//! | `{p:pN}:sub:<sub id>:dlv` | zset | (older builds) | the same by creation time; read until the retention empties it |
//! | `{p:pN}:sub:<sub id>:dead` | zset | delivery | its dead-lettered deliveries by time |
//! | `{p:pN}:tenant:<tenant>:log` | stream | delivery | the tenant's deliveries, as the subscription's |
//! | `{p:pN}:tenant:<tenant>:dlv` | zset | (older builds) | the same by creation time; read until the retention empties it |
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
//! | `{p:subs}:portal:ended:<tenant>:<session>` | string | subscriptions | a portal session ended early (EndPortalSession); subscriptions and delivery refuse its token while the key lives (as long as the session could) |

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

/// A portal session ended before its token expired. Namespaced by tenant,
/// so a tenant can end only its own customers' sessions.
pub fn portal_session_ended_key(prefix: &str, tenant: &str, session: &str) -> String {
    format!("{{{prefix}:subs}}:portal:ended:{tenant}:{session}")
}

/// Whether a portal session was ended (see [`portal_session_ended_key`]).
pub async fn portal_session_ended(
    conn: &mut impl redis::aio::ConnectionLike,
    prefix: &str,
    tenant: &str,
    session: &str,
) -> redis::RedisResult<bool> {
    redis::cmd("EXISTS").arg(portal_session_ended_key(prefix, tenant, session)).query_async(conn).await
}

/// The identity of the subscription service's change log: a random id,
/// new whenever the store starts empty (see [`crate::Fence`]).
pub fn subscriptions_log_id_key(prefix: &str) -> String {
    format!("{{{prefix}:subs}}:log_id")
}

/// Redis Cluster's hash slots.
const SLOTS: u32 = 16_384;

/// How streams are split.
#[derive(Debug, Clone)]
pub struct Partitions {
    prefix: String,
    count: u16,
    /// The start of each partition's keys (see [`partition_base`]).
    bases: std::sync::Arc<[String]>,
}

impl Partitions {
    /// `count` is clamped to 1..=1024.
    pub fn new(prefix: &str, count: u16) -> Self {
        let count = count.clamp(1, 1024);
        let bases = (0..count).map(|index| partition_base(prefix, index, count)).collect();
        Self { prefix: prefix.to_owned(), count, bases }
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

    /// The keys of partition `index`, which must be below [`Self::count`].
    pub fn get(&self, index: u16) -> PartitionKeys {
        PartitionKeys { tag: self.bases[usize::from(index)].clone(), index }
    }

    pub fn all(&self) -> impl Iterator<Item = PartitionKeys> + '_ {
        (0..self.count).map(|i| self.get(i))
    }

    /// The keys sharing out the partitions among a group's replicas
    /// (members taking a share, leases) and the group's live replicas, in
    /// one slot of their own.
    pub fn ownership(&self, group: &str) -> OwnershipKeys {
        let tag = format!("{{{}:owners:{group}}}", self.prefix);
        OwnershipKeys {
            members: format!("{tag}:members"),
            leases: format!("{tag}:leases"),
            alive: format!("{tag}:alive"),
        }
    }
}

/// See [`Partitions::ownership`].
#[derive(Debug, Clone)]
pub struct OwnershipKeys {
    /// zset: consumer -> membership expiry (ms); replicas taking a share.
    pub members: String,
    /// hash: partition -> `<consumer> <lease expiry ms>`.
    pub leases: String,
    /// zset: consumer -> liveness expiry (ms); every running replica.
    pub alive: String,
}

/// Slot groups: Redis Cluster's slots in 1,024 runs of 16.
const SLOT_GROUPS: u32 = 1024;

/// For every slot group, in order, the first of `s0`, `s1`, `s2`, … whose
/// Cluster slot lies in it: hash tags that land where we choose. The chart
/// ships the same table (`helm/hookline/files/slot-tags.json`) to name the
/// streams in KEDA triggers. Part of the contract: it never changes.
pub fn slot_tags() -> &'static [String] {
    static TAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    TAGS.get_or_init(|| {
        let mut tags = vec![String::new(); SLOT_GROUPS as usize];
        let mut left = tags.len();
        for n in 0u32.. {
            let tag = format!("s{n}");
            let group = &mut tags[(slot(tag.as_bytes()) / (SLOTS / SLOT_GROUPS)) as usize];
            if group.is_empty() {
                *group = tag;
                left -= 1;
                if left == 0 {
                    break;
                }
            }
        }
        tags
    })
}

/// The common start of partition `index`'s keys (of `count`):
/// `<prefix>:p<index>:{<slot tag>}`, where the slot tag puts the partition
/// in the middle of the `index`-th of `count` equal runs of slots. Plain
/// tags such as `{prefix:pN}` hash close together (CRC16 of near-identical
/// strings: 14 of 24 partitions on one of three masters); these spread the
/// way `redis-cli --cluster create` spreads slots over masters, so with a
/// partition count that is a multiple of the masters each works the same
/// share.
fn partition_base(prefix: &str, index: u16, count: u16) -> String {
    let group = (2 * u32::from(index) + 1) * SLOT_GROUPS / (2 * u32::from(count));
    format!("{prefix}:p{index}:{{{}}}", slot_tags()[group as usize])
}

/// The Redis Cluster slot of a hash tag's content (CRC16/XMODEM).
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

    /// The partition's tag followed by `parts`. (Keys are made for every
    /// event, task and completion: one allocation, no `format!`.)
    fn key(&self, parts: &[&str]) -> String {
        let mut key = String::with_capacity(self.tag.len() + parts.iter().map(|p| p.len()).sum::<usize>());
        key.push_str(&self.tag);
        for part in parts {
            key.push_str(part);
        }
        key
    }

    pub fn events(&self) -> String {
        self.key(&[":events"])
    }

    pub fn deliveries(&self) -> String {
        self.key(&[":deliveries"])
    }

    pub fn event(&self, event_id: &str) -> String {
        self.key(&[":event:", event_id])
    }

    /// The start every key of the partition shares (`<prefix>:p<N>:{<slot
    /// tag>}`, hash tag included).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn retry(&self) -> String {
        self.key(&[":retry"])
    }

    pub fn deferred(&self) -> String {
        self.key(&[":deferred"])
    }

    pub fn delivery(&self, delivery_id: &str) -> String {
        self.key(&[":dlv:", delivery_id])
    }

    pub fn attempts(&self, delivery_id: &str) -> String {
        self.key(&[":attempts:", delivery_id])
    }

    /// A subscription's delivery log (`DeliveryLog`).
    pub fn subscription_log(&self, subscription_id: &str) -> String {
        self.key(&[":sub:", subscription_id, ":log"])
    }

    /// The sorted set older builds listed a subscription's deliveries in,
    /// read until the retention empties it (`DeliveryLog`).
    pub fn legacy_subscription_index(&self, subscription_id: &str) -> String {
        self.key(&[":sub:", subscription_id, ":dlv"])
    }

    pub fn dead_letters(&self, subscription_id: &str) -> String {
        self.key(&[":sub:", subscription_id, ":dead"])
    }

    /// A tenant's delivery log (`DeliveryLog`).
    pub fn tenant_log(&self, tenant: &str) -> String {
        self.key(&[":tenant:", tenant, ":log"])
    }

    /// The sorted set older builds listed a tenant's deliveries in.
    pub fn legacy_tenant_index(&self, tenant: &str) -> String {
        self.key(&[":tenant:", tenant, ":dlv"])
    }

    pub fn held(&self, subscription_id: &str) -> String {
        self.key(&[":held:", subscription_id])
    }

    pub fn held_subscriptions(&self) -> String {
        self.key(&[":held"])
    }

    pub fn stats(&self, subscription_id: &str) -> String {
        self.key(&[":stats:", subscription_id])
    }

    pub fn stats_hour(&self, subscription_id: &str, unix_hour: u64) -> String {
        self.key(&[":stats:", subscription_id, ":h:", itoa::Buffer::new().format(unix_hour)])
    }

    /// Held while a replay of the subscription's deliveries runs (one at a
    /// time), with a TTL so a crashed replay frees it.
    pub fn replay_lock(&self, subscription_id: &str) -> String {
        self.key(&[":replay:", subscription_id])
    }

    pub fn in_flight(&self, subscription_id: &str) -> String {
        self.key(&[":inflight:", subscription_id])
    }

    pub fn fifo_head(&self, subscription_id: &str) -> String {
        self.key(&[":fifo:", subscription_id, ":head"])
    }

    pub fn fifo_waiting(&self, subscription_id: &str) -> String {
        self.key(&[":fifo:", subscription_id])
    }

    pub fn fifo_subscriptions(&self) -> String {
        self.key(&[":fifo"])
    }

    /// The subscription's deliveries deferred because its endpoint's
    /// circuit is open (zset: id -> due), brought forward when it closes.
    pub fn endpoint_wait(&self, subscription_id: &str) -> String {
        self.key(&[":epwait:", subscription_id])
    }

    pub fn rate(&self, subscription_id: &str) -> String {
        self.key(&[":rate:", subscription_id])
    }

    /// Idempotency keys are the caller's text: the tenant and the key are
    /// length-prefixed so no two pairs share a Redis key.
    pub fn idempotency(&self, tenant: &str, key: &str) -> String {
        self.key(&[":idem:", itoa::Buffer::new().format(tenant.len()), ":", tenant, ":", key])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The slot of a key as Redis Cluster computes it (the hash tag).
    fn key_slot(key: &str) -> u32 {
        let open = key.find('{').unwrap();
        let close = open + key[open..].find('}').unwrap();
        slot(&key.as_bytes()[open + 1..close])
    }

    #[test]
    fn partition_keys_read_as_the_layout_says() {
        let p = Partitions::new("hookline", 1).get(0);
        let tag = p.tag();
        assert_eq!(p.events(), format!("{tag}:events"));
        assert_eq!(p.event("evt_1"), format!("{tag}:event:evt_1"));
        assert_eq!(p.subscription_log("sub_1"), format!("{tag}:sub:sub_1:log"));
        assert_eq!(p.tenant_log("acme"), format!("{tag}:tenant:acme:log"));
        assert_eq!(p.stats_hour("sub_1", 493_000), format!("{tag}:stats:sub_1:h:493000"));
        assert_eq!(p.in_flight("sub_1"), format!("{tag}:inflight:sub_1"));
        assert_eq!(p.idempotency("acme", "k:1"), format!("{tag}:idem:4:acme:k:1"));
    }

    #[test]
    fn keys_of_a_partition_share_one_hash_tag() {
        let p = Partitions::new("hookline", 4).get(3);
        assert!(p.tag().starts_with("hookline:p3:{s") && p.tag().ends_with('}'), "{}", p.tag());
        for key in [p.events(), p.deliveries(), p.event("evt_x"), p.idempotency("acme", "k")] {
            assert!(key.starts_with(&format!("{}:", p.tag())), "{key}");
            assert_eq!(key_slot(&key), key_slot(p.tag()));
        }
    }

    #[test]
    fn partition_keys_never_change() {
        // Renaming them would orphan every key already written. Slots
        // checked apart from this code (CRC16/XMODEM in Python): s820 is
        // slot 8201, in the middle of the range; 3 of 4 lands at 14,336±16.
        assert_eq!(Partitions::new("hookline", 1).get(0).events(), "hookline:p0:{s820}:events");
        assert_eq!(key_slot("hookline:p0:{s820}:events"), 8201);
        // tests/helm.sh checks the chart renders these for KEDA.
        let six = Partitions::new("hookline", 6);
        assert_eq!(six.get(0).deliveries(), "hookline:p0:{s2739}:deliveries");
        assert_eq!(six.get(5).events(), "hookline:p5:{s480}:events");
        let last = Partitions::new("hookline", 4).get(3);
        assert!((14_336..14_352).contains(&key_slot(last.tag())), "{}", last.tag());
    }

    #[test]
    fn every_slot_group_has_a_tag() {
        let tags = slot_tags();
        assert_eq!(tags.len(), 1024);
        for (group, tag) in tags.iter().enumerate() {
            assert_eq!(slot(tag.as_bytes()) / 16, group as u32, "{tag}");
        }
    }

    #[test]
    fn the_charts_copy_of_the_slot_tags_is_the_same() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../helm/hookline/files/slot-tags.json");
        let chart: Vec<String> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(chart, slot_tags(), "regenerate {path} from hookline_queue::slot_tags()");
    }

    #[test]
    fn partitions_spread_evenly_over_the_slots_of_three_masters() {
        // redis-cli --cluster create gives 3 masters 0-5460, 5461-10922, 10923-16383.
        let master = |slot: u32| (slot * 3 / SLOTS) as usize;
        for count in [3u16, 6, 12, 24, 96, 1023] {
            let parts = Partitions::new("hookline", count);
            let mut per_master = [0u16; 3];
            for keys in parts.all() {
                per_master[master(key_slot(keys.tag()))] += 1;
            }
            assert_eq!(per_master, [count / 3; 3], "{count} partitions");
        }
        let all: std::collections::HashSet<String> = Partitions::new("h", 1024).all().map(|k| k.events()).collect();
        assert_eq!(all.len(), 1024);
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
    fn the_tenant_to_partition_mapping_has_these_values() {
        // Stable across versions (a tenant moving partition would reorder
        // its events): FNV-1a 64 of the tenant id modulo the count, values
        // computed apart from this code (Python, the published FNV
        // constants).
        assert_eq!(fnv1a(b"acme"), 0x0724_d383_f4f6_de0f);
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        let of = |count: u16, tenant: &str| Partitions::new("hookline", count).of_tenant(tenant).index();
        assert_eq!([of(8, "acme"), of(8, "globex"), of(8, "bench-0"), of(8, "bench-1")], [7, 6, 4, 7]);
        assert_eq!([of(6, "acme"), of(6, "globex"), of(6, "bench-0"), of(6, "bench-1")], [5, 2, 4, 5]);
        assert_eq!([of(1024, "acme"), of(1024, "globex"), of(1024, "")], [527, 558, 805]);
    }

    #[test]
    fn idempotency_keys_cannot_collide_across_tenants() {
        let p = Partitions::new("h", 1).get(0);
        assert_ne!(p.idempotency("a:b", "c"), p.idempotency("a", "b:c"));
    }
}
