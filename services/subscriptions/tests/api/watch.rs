//! The watch stream, through the reconnecting cache client fanout and
//! delivery use.

use std::time::Duration;

use hookline_domain::{SubscriptionId, SubscriptionState, TenantId};
use hookline_proto::v1::{self, watch_subscriptions_response::Change};
use hookline_watch::{SubscriptionCache, WatchConfig};

use crate::support::*;

const WAIT: Duration = Duration::from_secs(10);

fn cache(service: &Service) -> SubscriptionCache {
    let mut config = WatchConfig::new(service.endpoint(), SERVICE);
    config.max_backoff = Duration::from_millis(300);
    SubscriptionCache::spawn(config).unwrap().0
}

#[tokio::test]
async fn the_cache_loads_a_snapshot_then_follows_every_change() {
    let (_redis, service, mut client) = setup().await;
    let before = create(&mut client, subscription("https://e.com/a", &["a"])).await.unwrap();
    let before_id = SubscriptionId::parse(&before.subscription.unwrap().id, "id").unwrap();
    client
        .create_event_type(v1::CreateEventTypeRequest {
            tenant_id: String::new(),
            event_type: Some(v1::EventType { name: "a".into(), ..Default::default() }),
        })
        .await
        .unwrap();

    let cache = cache(&service);
    let state = cache.ready(WAIT).await.unwrap();
    let cached = state.get(before_id).expect("in the snapshot");
    assert_eq!(cached.secrets.current.expose(), before.secret, "secrets travel to the cache");
    assert!(state.event_type(&TenantId::parse("acme").unwrap(), "a").is_some());

    let after = create(&mut client, subscription("https://e.com/b", &["b"])).await.unwrap().subscription.unwrap();
    let after_id = SubscriptionId::parse(&after.id, "id").unwrap();
    cache.wait(WAIT, |s| s.get(after_id).is_some()).await.expect("create seen");

    client
        .pause_subscription(v1::PauseSubscriptionRequest { id: after.id.clone(), ..Default::default() })
        .await
        .unwrap();
    cache
        .wait(WAIT, |s| s.get(after_id).is_some_and(|c| matches!(c.subscription.state, SubscriptionState::Paused(_))))
        .await
        .expect("pause seen");

    let rotated = client
        .rotate_secret(v1::RotateSecretRequest { id: after.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let state = cache
        .wait(WAIT, |s| s.get(after_id).is_some_and(|c| c.secrets.current.expose() == rotated.secret))
        .await
        .expect("rotation seen");
    assert!(state.get(after_id).unwrap().secrets.previous.is_some(), "old secret kept during grace");

    client.delete_subscription(v1::DeleteSubscriptionRequest { id: after.id, version: 0 }).await.unwrap();
    cache.wait(WAIT, |s| s.get(after_id).is_none()).await.expect("delete seen");
    client
        .update_tenant_settings(v1::UpdateTenantSettingsRequest {
            settings: Some(v1::TenantSettings { strict_event_types: true, ..Default::default() }),
            update_mask: None,
        })
        .await
        .unwrap();
    cache
        .wait(WAIT, |s| s.settings(&TenantId::parse("acme").unwrap()).strict_event_types)
        .await
        .expect("settings seen");
}

#[tokio::test]
async fn revisions_increase_and_a_watcher_resumes_without_a_new_snapshot() {
    let (_redis, service, mut client) = setup().await;
    create(&mut client, subscription("https://e.com/a", &["a"])).await.unwrap();
    let mut watcher = service.client(SERVICE).await;
    let mut stream = watcher.watch_subscriptions(v1::WatchSubscriptionsRequest::default()).await.unwrap().into_inner();
    let mut log_id = String::new();
    let snapshot_revision = loop {
        let msg = stream.message().await.unwrap().unwrap();
        match msg.change.unwrap() {
            Change::SnapshotStart(start) => log_id = start.log_id,
            Change::SnapshotEnd(_) => break msg.revision,
            _ => {}
        }
    };
    assert!(!log_id.is_empty());
    assert_eq!(snapshot_revision, 1);
    drop(stream);

    for i in 0..3 {
        create(&mut client, subscription(&format!("https://e.com/x{i}"), &["a"])).await.unwrap();
    }
    let mut resumed = watcher
        .watch_subscriptions(v1::WatchSubscriptionsRequest {
            after_revision: snapshot_revision,
            log_id: log_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut revisions = Vec::new();
    while revisions.len() < 3 {
        let msg = tokio::time::timeout(WAIT, resumed.message()).await.unwrap().unwrap().unwrap();
        assert!(matches!(msg.change, Some(Change::SubscriptionUpserted(_))), "no snapshot on resume: {msg:?}");
        revisions.push(msg.revision);
    }
    assert_eq!(revisions, [2, 3, 4]);

    let mut foreign = watcher
        .watch_subscriptions(v1::WatchSubscriptionsRequest { after_revision: 2, log_id: "some-other-log".into() })
        .await
        .unwrap()
        .into_inner();
    let first = foreign.message().await.unwrap().unwrap();
    assert!(matches!(first.change, Some(Change::SnapshotStart(_))), "unknown log id means a snapshot");
}

#[tokio::test]
async fn the_cache_recovers_when_redis_restarts_empty() {
    let (mut redis, service, mut client) = setup().await;
    let old = create(&mut client, subscription("https://e.com/a", &["a"])).await.unwrap().subscription.unwrap();
    let old_id = SubscriptionId::parse(&old.id, "id").unwrap();
    let cache = cache(&service);
    cache.wait(WAIT, |s| s.get(old_id).is_some()).await.unwrap();

    redis.restart();
    let mut made = None;
    for _ in 0..100 {
        match create(&mut client, subscription("https://e.com/b", &["b"])).await {
            Ok(r) => {
                made = Some(r.subscription.unwrap());
                break;
            }
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let new_id = SubscriptionId::parse(&made.expect("service recovers by itself").id, "id").unwrap();
    let state = cache.wait(WAIT, |s| s.get(new_id).is_some()).await.expect("cache follows the new log");
    assert!(state.get(old_id).is_none(), "what Redis lost is gone from the cache too");
}

#[tokio::test]
async fn the_cache_reconnects_to_a_restarted_service() {
    let redis = RedisServer::start();
    let service = Service::start(config(&redis.url())).await;
    let addr = service.addr;
    let cache = cache(&service);
    cache.ready(WAIT).await.unwrap();
    service.shutdown().await.unwrap();

    // Same port, new process-equivalent: the cache reconnects and catches up.
    let listener = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(hookline_subscriptions::serve(config(&redis.url()), listener, async move {
        let _ = stopped.await;
    }));
    let mut client = {
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect_lazy();
        hookline_proto::v1::subscription_service_client::SubscriptionServiceClient::with_interceptor(
            channel,
            hookline_auth::BearerToken::new(ACME).unwrap(),
        )
    };
    let made = loop {
        match create(&mut client, subscription("https://e.com/late", &["a"])).await {
            Ok(r) => break r.subscription.unwrap(),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let id = SubscriptionId::parse(&made.id, "id").unwrap();
    cache.wait(WAIT, |s| s.get(id).is_some()).await.expect("reconnected and caught up");
}
