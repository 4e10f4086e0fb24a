//! The `SubscriptionStore` contract, checked against every backend: each
//! behaviour below is one generic async function, and `conformance!` makes
//! a test of it for the Redis store on a private `redis-server` and on the
//! embedded backend (`hookline-embedded`, what `hookline dev` uses).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use hookline_domain::{
    EndpointUrl, EventType, EventTypeName, EventTypePattern, ExtraHeaders, Metadata, Ordering, PayloadFormat,
    RetryPolicy, Scope, SecretSet, SigningSecret, Subscription, SubscriptionId, SubscriptionSpec, SubscriptionState,
    TenantId, TenantSettings, limits,
};

use super::{Change, StoreError, StoredSubscription, SubscriptionStore, WriteRules};

const RULES: WriteRules = WriteRules { allow_duplicate_endpoint: false, max_per_tenant: 0 };

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn record(tenant_name: &str, url: &str, event_types: &[&str]) -> StoredSubscription {
    let now = SystemTime::now();
    let spec = SubscriptionSpec {
        name: "crm".into(),
        url: EndpointUrl::parse(url).unwrap(),
        event_types: event_types.iter().map(|t| EventTypePattern::parse(t).unwrap()).collect(),
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
    };
    let subscription = Subscription {
        id: SubscriptionId::generate(),
        tenant: tenant(tenant_name),
        spec,
        state: SubscriptionState::Active,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    StoredSubscription { subscription, secrets: SecretSet::new(SigningSecret::generate()) }
}

fn bumped(rec: &StoredSubscription, name: &str) -> StoredSubscription {
    let mut next = rec.clone();
    next.subscription.spec.name = name.into();
    next.subscription.version += 1;
    next
}

fn ids(list: &[StoredSubscription]) -> Vec<SubscriptionId> {
    list.iter().map(|s| s.subscription.id).collect()
}

pub(super) async fn lists_a_tenants_subscriptions_in_creation_order_by_pages(store: impl SubscriptionStore) {
    let made: Vec<StoredSubscription> =
        (0..5).map(|i| record("acme", &format!("https://example.com/{i}"), &["order.*"])).collect();
    for rec in &made {
        store.create(rec, RULES).await.unwrap();
    }
    store.create(&record("other", "https://example.com/0", &["order.*"]), RULES).await.unwrap();
    let first = store.list(&tenant("acme"), None, 3).await.unwrap();
    let rest = store.list(&tenant("acme"), first.last().map(|s| s.subscription.id), 3).await.unwrap();
    assert_eq!([ids(&first), ids(&rest)].concat(), ids(&made));
    let got = store.get(made[2].subscription.id).await.unwrap().unwrap();
    assert_eq!(got.subscription.spec.url, made[2].subscription.spec.url);
    assert_eq!(got.secrets, made[2].secrets, "secrets come back as stored");
    assert!(store.get(SubscriptionId::generate()).await.unwrap().is_none());
}

pub(super) async fn an_overlapping_endpoint_of_the_same_tenant_conflicts_unless_allowed(store: impl SubscriptionStore) {
    let first = record("acme", "https://example.com/hook", &["order.*"]);
    store.create(&first, RULES).await.unwrap();
    let overlapping = record("acme", "https://example.com/hook", &["order.paid"]);
    match store.create(&overlapping, RULES).await {
        Err(StoreError::Conflict(id)) => assert_eq!(id, first.subscription.id),
        other => panic!("expected a conflict, got {other:?}"),
    }
    store.create(&record("acme", "https://example.com/hook", &["user.created"]), RULES).await.unwrap();
    store.create(&record("other", "https://example.com/hook", &["order.*"]), RULES).await.unwrap();
    let allowed = WriteRules { allow_duplicate_endpoint: true, ..RULES };
    store.create(&overlapping, allowed).await.unwrap();
    assert!(matches!(store.create(&overlapping, allowed).await, Err(StoreError::AlreadyExists)));
}

pub(super) async fn updates_and_deletes_check_the_version(store: impl SubscriptionStore) {
    let rec = record("acme", "https://example.com/hook", &["order.*"]);
    store.create(&rec, RULES).await.unwrap();
    let v2 = bumped(&rec, "v2");
    store.update(&rec, &v2, RULES).await.unwrap();
    assert_eq!(store.get(rec.subscription.id).await.unwrap().unwrap().subscription.spec.name, "v2");
    match store.update(&rec, &bumped(&rec, "stale"), RULES).await {
        Err(StoreError::VersionMismatch(2)) => {}
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    assert!(matches!(store.delete(&rec).await, Err(StoreError::VersionMismatch(2))));
    store.delete(&v2).await.unwrap();
    assert!(store.get(rec.subscription.id).await.unwrap().is_none());
    assert!(matches!(store.delete(&v2).await, Err(StoreError::NotFound)));
    assert!(matches!(store.update(&v2, &bumped(&v2, "gone"), RULES).await, Err(StoreError::NotFound)));
}

pub(super) async fn a_tenant_cannot_pass_its_subscription_limit(store: impl SubscriptionStore) {
    let limited = WriteRules { max_per_tenant: 2, ..RULES };
    for i in 0..2 {
        store.create(&record("acme", &format!("https://example.com/{i}"), &["a"]), limited).await.unwrap();
    }
    let third = record("acme", "https://example.com/2", &["a"]);
    assert!(matches!(store.create(&third, limited).await, Err(StoreError::TenantLimit(_))));
    store.create(&record("other", "https://example.com/2", &["a"]), limited).await.unwrap();
}

pub(super) async fn the_catalog_and_settings_are_per_tenant(store: impl SubscriptionStore) {
    let now = SystemTime::now();
    let paid = EventType::new(EventTypeName::parse("order.paid").unwrap(), "paid".into(), now).unwrap();
    let acme = tenant("acme");
    store.put_event_type(&acme, &paid, true).await.unwrap();
    assert!(matches!(store.put_event_type(&acme, &paid, true).await, Err(StoreError::AlreadyExists)));
    let archived = EventType { archived: true, ..paid.clone() };
    store.put_event_type(&acme, &archived, false).await.unwrap();
    store.put_event_type(&acme, &paid, true).await.unwrap(); // restores an archived one
    let created = EventType::new(EventTypeName::parse("order.created").unwrap(), String::new(), now).unwrap();
    store.put_event_type(&acme, &created, true).await.unwrap();
    let names: Vec<String> =
        store.list_event_types(&acme).await.unwrap().iter().map(|t| t.name.as_str().to_owned()).collect();
    assert_eq!(names, ["order.created", "order.paid"], "sorted by name");
    assert!(store.list_event_types(&tenant("other")).await.unwrap().is_empty());
    assert_eq!(store.get_event_type(&acme, "order.paid").await.unwrap(), Some(paid));

    assert!(!store.get_settings(&acme).await.unwrap().strict_event_types, "default: not strict");
    let strict = TenantSettings { strict_event_types: true, updated_at: now };
    store.put_settings(&acme, &strict).await.unwrap();
    assert!(store.get_settings(&acme).await.unwrap().strict_event_types);
    assert!(!store.get_settings(&tenant("other")).await.unwrap().strict_event_types);
}

pub(super) async fn a_tenant_cannot_pass_its_catalog_limit(store: impl SubscriptionStore) {
    // `store_on` sets the limit to 3 event types per tenant.
    let now = std::time::SystemTime::now();
    let (acme, other) = (tenant("acme"), tenant("other"));
    let event_type = |name: &str| EventType::new(EventTypeName::parse(name).unwrap(), String::new(), now).unwrap();
    for name in ["a", "b", "c"] {
        store.put_event_type(&acme, &event_type(name), true).await.unwrap();
    }
    assert!(matches!(store.put_event_type(&acme, &event_type("d"), true).await, Err(StoreError::CatalogLimit(3))));
    store.put_event_type(&acme, &event_type("a"), false).await.expect("replacing one is not adding one");
    store.put_event_type(&other, &event_type("d"), true).await.expect("the limit is per tenant");
    assert_eq!(store.list_event_types(&acme).await.unwrap().len(), 3);
}

pub(super) async fn the_change_log_replays_every_write_in_order_after_a_snapshot(store: impl SubscriptionStore) {
    let before = store.position().await.unwrap();
    let rec = record("acme", "https://example.com/hook", &["order.*"]);
    let r1 = store.create(&rec, RULES).await.unwrap();
    let snapshot_at = store.position().await.unwrap();
    assert_eq!((snapshot_at.revision, snapshot_at.log_id.clone()), (r1, before.log_id.clone()));
    let snapshot = store.snapshot().await.unwrap();
    assert!(snapshot.iter().any(|c| matches!(c, Change::Subscription(s) if s.subscription.id == rec.subscription.id)));

    let v2 = bumped(&rec, "v2");
    let r2 = store.update(&rec, &v2, RULES).await.unwrap();
    let r3 = store.put_settings(&tenant("acme"), &TenantSettings::default()).await.unwrap();
    let before_delete = store.changes_after(snapshot_at.revision, 100).await.unwrap();
    assert!(matches!(&before_delete[0].1, Change::Subscription(s) if s.subscription.spec.name == "v2"));
    let r4 = store.delete(&v2).await.unwrap();
    assert!(r1 < r2 && r2 < r3 && r3 < r4);
    let changes = store.changes_after(snapshot_at.revision, 100).await.unwrap();
    let revisions: Vec<u64> = changes.iter().map(|(r, _)| *r).collect();
    assert_eq!(revisions, [r2, r3, r4]);
    // A subscription change carries the record as it is when replayed: once
    // deleted, its update replays as a deletion too (the cache ends the same).
    assert!(matches!(&changes[0].1, Change::SubscriptionDeleted { id, .. } if *id == rec.subscription.id));
    assert!(matches!(&changes[1].1, Change::Settings { .. }));
    assert!(matches!(&changes[2].1, Change::SubscriptionDeleted { id, .. } if *id == rec.subscription.id));
    assert_eq!(store.changes_after(r2, 1).await.unwrap().len(), 1, "at most `limit`");
    assert!(store.changes_after(r4, 100).await.unwrap().is_empty(), "nothing after the last");
}

pub(super) async fn a_watcher_wakes_on_a_write_or_at_its_timeout(store: impl SubscriptionStore) {
    let seen = store.position().await.unwrap();
    let idle = store.wait_for_change(&seen, Duration::from_millis(50)).await.unwrap();
    assert_eq!(idle, seen, "nothing moved");
    let store = std::sync::Arc::new(store);
    let waiter = {
        let (store, seen) = (store.clone(), seen.clone());
        tokio::spawn(async move { store.wait_for_change(&seen, Duration::from_secs(10)).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rev = store.create(&record("acme", "https://example.com/hook", &["a"]), RULES).await.unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap();
    assert!(woke.revision >= rev && woke.log_id == seen.log_id, "{woke:?}");
}

/// One test per behaviour and backend.
macro_rules! conformance {
    ($($behaviour:ident),* $(,)?) => {
        mod redis_backend {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let redis = hookline_testkit::RedisServer::start_redis_server();
                    super::$behaviour(super::store_on(&redis).await).await;
                }
            )*
        }
        mod embedded_backend {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let embedded = hookline_testkit::RedisServer::start_embedded();
                    super::$behaviour(super::store_on(&embedded).await).await;
                }
            )*
        }
    };
}

async fn store_on(server: &hookline_testkit::RedisServer) -> crate::store::RedisStore {
    let config = crate::store::RedisStoreConfig {
        url: server.url(),
        key_prefix: "hookline".into(),
        command_timeout: Duration::from_secs(2),
        change_log_len: 10_000,
        max_event_types: 3,
        durability: Default::default(),
    };
    let sealer = crate::store::SecretSealer::new(None).unwrap();
    crate::store::RedisStore::connect(config, sealer).await.unwrap()
}

conformance!(
    lists_a_tenants_subscriptions_in_creation_order_by_pages,
    an_overlapping_endpoint_of_the_same_tenant_conflicts_unless_allowed,
    updates_and_deletes_check_the_version,
    a_tenant_cannot_pass_its_subscription_limit,
    a_tenant_cannot_pass_its_catalog_limit,
    the_catalog_and_settings_are_per_tenant,
    the_change_log_replays_every_write_in_order_after_a_snapshot,
    a_watcher_wakes_on_a_write_or_at_its_timeout,
);
