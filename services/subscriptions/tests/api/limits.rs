//! Every size and count a tenant controls is bounded, and nothing one
//! tenant stores can stall the watch for the others.

use std::{collections::HashMap, time::Duration};

use hookline_domain::SubscriptionId;
use hookline_proto::v1;
use hookline_subscriptions::Config;
use hookline_watch::{SubscriptionCache, WatchConfig};
use redis::AsyncCommands;
use tonic::Code;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(10);

/// A scope label `label` with `n` distinct values of `len` bytes.
fn scope(label: &str, n: usize, len: usize) -> HashMap<String, v1::ScopeValues> {
    let values = (0..n).map(|i| format!("{i:0len$}")).collect();
    HashMap::from([(label.to_owned(), v1::ScopeValues { values })])
}

fn cache(service: &Service) -> SubscriptionCache {
    let mut config = WatchConfig::new(service.endpoint(), SERVICE);
    config.max_backoff = Duration::from_millis(300);
    SubscriptionCache::spawn(config).unwrap().0
}

#[tokio::test]
async fn a_subscription_over_the_size_limit_is_refused_on_create_and_on_the_merged_update() {
    let (_redis, _service, mut client) = setup().await;

    let mut long_operand = subscription("https://example.com/a", &["a"]);
    long_operand.filters = vec![v1::PayloadFilter {
        path: "campaign".into(),
        operator: v1::FilterOperator::Equals as i32,
        values: vec!["x".repeat(2048)],
    }];
    let err = create(&mut client, long_operand).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("filters[0].values:") && err.message().contains("1024"), "{}", err.message());

    // 1,000 values of 100 bytes: each within its own bound, 100 KB in all.
    let mut heavy = subscription("https://example.com/b", &["b"]);
    heavy.scope = scope("team_id", 1000, 100);
    let err = create(&mut client, heavy).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("over the limit of 65536 bytes"), "{}", err.message());

    // 40 KB now, and an update that adds 30 KB more: the merged result is
    // what is checked.
    let mut sub = subscription("https://example.com/c", &["c"]);
    sub.scope = scope("team_id", 400, 100);
    let created = create(&mut client, sub).await.unwrap().subscription.unwrap();
    let mut more = v1::Subscription { id: created.id.clone(), ..Default::default() };
    more.filters = vec![v1::PayloadFilter {
        path: "account".into(),
        operator: v1::FilterOperator::In as i32,
        values: (0..300).map(|i| format!("{i:0100}")).collect(),
    }];
    let err = client
        .update_subscription(v1::UpdateSubscriptionRequest {
            subscription: Some(more),
            update_mask: mask(&["filters"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("over the limit"), "{}", err.message());
    let stored = client.get_subscription(v1::GetSubscriptionRequest { id: created.id }).await.unwrap().into_inner();
    assert_eq!((stored.version, stored.filters.len()), (1, 0), "the refused update changed nothing");
}

#[tokio::test]
async fn the_change_log_names_subscriptions_so_updates_of_big_ones_do_not_pile_up() {
    let (redis, service, mut client) = setup().await;
    let mut sub = subscription("https://example.com/big", &["a"]);
    sub.scope = scope("team_id", 500, 100);
    let created = create(&mut client, sub).await.unwrap().subscription.unwrap();
    let id = SubscriptionId::parse(&created.id, "id").unwrap();
    let cache = cache(&service);
    cache.ready(WAIT).await.unwrap();
    for n in 1..=20 {
        let rename = v1::Subscription { id: created.id.clone(), name: format!("v{n}"), ..Default::default() };
        client
            .update_subscription(v1::UpdateSubscriptionRequest {
                subscription: Some(rename),
                update_mask: mask(&["name"]),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    // Replayed from the log (no new snapshot), the cache has the last one.
    cache.wait(WAIT, |s| s.get(id).is_some_and(|c| c.subscription.spec.name == "v20")).await.expect("v20 seen");

    let mut conn = redis.connection().await;
    let entries: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg("{hookline:subs}:changes").arg("-").arg("+").query_async(&mut conn).await.unwrap();
    assert_eq!(entries.len(), 21);
    let bytes: usize = entries.iter().flat_map(|(_, fields)| fields).map(|(k, v)| k.len() + v.len()).sum();
    // Before: each entry held the 50 KB record (over 1 MB in all).
    assert!(bytes < 21 * 200, "the log holds {bytes} bytes for 21 entries");
}

#[tokio::test]
async fn list_pages_end_early_rather_than_pass_the_byte_limit() {
    let redis = RedisServer::start();
    let service = Service::start(Config { max_page_bytes: 64 * 1024, ..config(&redis.url()) }).await;
    let mut client = service.client(ACME).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut sub = subscription(&format!("https://example.com/{i}"), &["a"]);
        sub.scope = scope("team_id", 200, 100);
        ids.push(create(&mut client, sub).await.unwrap().subscription.unwrap().id);
    }
    let (mut seen, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = client
            .list_subscriptions(v1::ListSubscriptionsRequest {
                page_size: 100,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let size: usize = page.subscriptions.iter().map(prost::Message::encoded_len).sum();
        assert!(size <= 64 * 1024, "a page of {size} bytes");
        assert!(!page.subscriptions.is_empty());
        seen.extend(page.subscriptions.into_iter().map(|s| s.id));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert!(pages >= 2, "20 KB each: more than one page");
    assert_eq!(seen, ids, "every one once, in order");
}

#[tokio::test]
async fn a_tenant_catalog_is_bounded() {
    let redis = RedisServer::start();
    let service = Service::start(Config { max_event_types_per_tenant: 2, ..config(&redis.url()) }).await;
    let mut client = service.client(ACME).await;
    let mut add = async |name: &str| {
        client
            .create_event_type(v1::CreateEventTypeRequest {
                tenant_id: String::new(),
                event_type: Some(v1::EventType { name: name.into(), ..Default::default() }),
            })
            .await
    };
    add("a").await.unwrap();
    add("b").await.unwrap();
    let err = add("c").await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("limit of 2 event types"), "{}", err.message());
}

#[tokio::test]
async fn the_service_token_cannot_act_as_an_admin() {
    let (_redis, service, mut client) = setup().await;
    let created = create(&mut client, subscription("https://example.com/a", &["a"])).await.unwrap();
    let id = created.subscription.unwrap().id;
    let mut hookline = service.client(SERVICE).await;
    let secret = hookline.get_subscription_secret(v1::GetSubscriptionSecretRequest { id: id.clone() }).await;
    assert_eq!(secret.unwrap_err().code(), Code::PermissionDenied);
    let list = hookline
        .list_subscriptions(v1::ListSubscriptionsRequest { tenant_id: "acme".into(), ..Default::default() })
        .await;
    assert_eq!(list.unwrap_err().code(), Code::PermissionDenied);
    // What the services need still works: auto-pause.
    let paused = hookline
        .pause_subscription(v1::PauseSubscriptionRequest {
            id,
            reason: "50 consecutive failures".into(),
            cause: v1::StateCause::Failures as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paused.state, v1::SubscriptionState::Paused as i32);
}

#[tokio::test]
async fn a_stored_subscription_too_large_for_the_watch_is_left_out_and_every_other_change_flows() {
    let (redis, service, mut client) = setup().await;
    let big = create(&mut client, subscription("https://example.com/big", &["a"])).await.unwrap();
    let big_id = SubscriptionId::parse(&big.subscription.unwrap().id, "id").unwrap();
    // As an older build, without the size limit, could have stored it: a
    // 5 MB scope, more than a watcher decodes.
    let mut conn = redis.connection().await;
    let key = format!("{{hookline:subs}}:sub:{big_id}");
    let json: String = conn.hget(&key, "d").await.unwrap();
    let mut record: serde_json::Value = serde_json::from_str(&json).unwrap();
    let values: Vec<String> = (0..20_000).map(|i| format!("{i:0256}")).collect();
    record["subscription"]["spec"]["scope"] = serde_json::json!({ "team_id": values });
    let _: () = conn.hset(&key, "d", record.to_string()).await.unwrap();

    let cache = cache(&service);
    let state = cache.ready(WAIT).await.expect("the snapshot completes without it");
    assert!(state.get(big_id).is_none());
    let other = create(&mut client, subscription("https://example.com/other", &["a"])).await.unwrap();
    let other_id = SubscriptionId::parse(&other.subscription.unwrap().id, "id").unwrap();
    cache.wait(WAIT, |s| s.get(other_id).is_some()).await.expect("later changes still arrive");
}
