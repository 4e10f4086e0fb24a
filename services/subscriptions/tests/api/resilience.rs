//! Redis outages, secrets at rest, and shutdown.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use hookline_proto::v1;
use redis::AsyncCommands;
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn redis_down_is_unavailable_and_the_service_recovers_by_itself() {
    let (mut redis, service, mut client) = setup().await;
    create(&mut client, subscription("https://e.com/a", &["a"])).await.unwrap();
    redis.stop();
    let err = create(&mut client, subscription("https://e.com/b", &["b"])).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(!err.message().contains("redis://"), "no internals leak: {}", err.message());
    eventually(Duration::from_secs(10), || async { service.health().await == 2 }).await; // NOT_SERVING

    redis.restart();
    eventually(Duration::from_secs(10), || async { service.health().await == 1 }).await;
    eventually(Duration::from_secs(10), || {
        let mut client = client.clone();
        async move { create(&mut client, subscription("https://e.com/b", &["b"])).await.is_ok() }
    })
    .await;
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_with_a_master_key() {
    let redis = RedisServer::start();
    let mut config = config(&redis.url());
    config.secrets.master_key = Some(STANDARD.encode([42u8; 32]));
    let service = Service::start(config).await;
    let mut client = service.client(ACME).await;
    let created = create(&mut client, subscription("https://e.com/a", &["a"])).await.unwrap();
    let id = created.subscription.unwrap().id;

    let mut conn = redis.connection().await;
    let raw: String = conn.hget(format!("{{hookline:subs}}:sub:{id}"), "d").await.unwrap();
    let key_material = &created.secret["whsec_".len()..];
    assert!(raw.contains("\"sealed\""), "{raw}");
    assert!(!raw.contains(key_material), "secret stored in clear: {raw}");
    let changes: Vec<redis::Value> =
        redis::cmd("XRANGE").arg("{hookline:subs}:changes").arg("-").arg("+").query_async(&mut conn).await.unwrap();
    assert!(!format!("{changes:?}").contains(key_material), "secret in clear in the change log");

    let secret = client.get_subscription_secret(v1::GetSubscriptionSecretRequest { id }).await.unwrap().into_inner();
    assert_eq!(secret.secret, created.secret, "still readable through the API");
}

#[tokio::test]
async fn shutdown_ends_open_watch_streams_and_returns() {
    let (_redis, service, _client) = setup().await;
    let mut watcher = service.client(SERVICE).await;
    let mut stream = watcher.watch_subscriptions(v1::WatchSubscriptionsRequest::default()).await.unwrap().into_inner();
    while let Some(msg) = stream.message().await.unwrap() {
        if matches!(msg.change, Some(v1::watch_subscriptions_response::Change::SnapshotEnd(_))) {
            break;
        }
    }
    let stopped = tokio::time::timeout(Duration::from_secs(5), service.shutdown()).await;
    assert!(matches!(stopped, Ok(Ok(()))), "serve returned promptly: {stopped:?}");
    let end = tokio::time::timeout(Duration::from_secs(5), stream.message()).await.unwrap();
    assert!(!matches!(end, Ok(Some(_))), "the stream ended: {end:?}");
}
