//! Create, get, list, update, delete: the happy paths, conflicts and
//! optimistic concurrency.

use std::collections::HashMap;

use hookline_proto::v1;
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn create_then_get_returns_the_same_subscription_with_a_generated_secret() {
    let (_redis, service, mut client) = setup().await;
    let mut sub = subscription("https://example.com/hook", &["messages", "transfers"]);
    sub.headers = HashMap::from([("Authorization".into(), "Bearer abc".into())]);
    sub.metadata = HashMap::from([("type".into(), "zapier".into())]);
    let created = create(&mut client, sub).await.unwrap();
    assert!(created.secret.starts_with("whsec_"), "{}", created.secret);
    let s = created.subscription.unwrap();
    assert!(s.id.starts_with("sub_") && s.id.len() == 30);
    assert_eq!((s.tenant_id.as_str(), s.version), ("acme", 1));
    assert_eq!(s.state, v1::SubscriptionState::Active as i32);
    assert_eq!(s.headers.get("authorization").map(String::as_str), Some("Bearer abc"));
    assert_eq!(s.timeout.unwrap().seconds, 15, "default timeout");
    assert_eq!(s.retry_policy.as_ref().unwrap().max_attempts, 15, "default retry policy");

    let got = client.get_subscription(v1::GetSubscriptionRequest { id: s.id.clone() }).await.unwrap().into_inner();
    assert_eq!(got, s);
    let secret =
        client.get_subscription_secret(v1::GetSubscriptionSecretRequest { id: s.id }).await.unwrap().into_inner();
    assert_eq!(secret.secret, created.secret);
    drop(service);
}

#[tokio::test]
async fn a_caller_chosen_secret_is_kept() {
    let (_redis, _service, mut client) = setup().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"; // 24 bytes
    let created = client
        .create_subscription(v1::CreateSubscriptionRequest {
            subscription: Some(subscription("https://example.com/h", &["*"])),
            secret: secret.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.secret, secret);
}

#[tokio::test]
async fn same_url_with_overlapping_event_types_conflicts_unless_allowed() {
    let (_redis, _service, mut client) = setup().await;
    let first = create(&mut client, subscription("https://example.com/hook", &["lead_*"])).await.unwrap();
    let first_id = first.subscription.unwrap().id;

    let err = create(&mut client, subscription("https://example.com/hook", &["lead_closed"])).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains(&first_id), "names the existing subscription: {}", err.message());

    create(&mut client, subscription("https://example.com/hook", &["email_sent"]))
        .await
        .expect("disjoint types are fine");
    create(&mut client, subscription("https://example.com/other", &["lead_closed"])).await.expect("other url is fine");
    client
        .create_subscription(v1::CreateSubscriptionRequest {
            subscription: Some(subscription("https://example.com/hook", &["lead_closed"])),
            allow_duplicate_endpoint: true,
            ..Default::default()
        })
        .await
        .expect("explicitly allowed");
}

#[tokio::test]
async fn concurrent_creates_of_one_endpoint_let_exactly_one_through() {
    let (_redis, service, _client) = setup().await;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let mut client = service.client(ACME).await;
        tasks.push(tokio::spawn(async move {
            create(&mut client, subscription("https://example.com/race", &["messages"]))
                .await
                .map(|_| ())
                .map_err(|s| s.code())
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(code) => assert!(matches!(code, Code::AlreadyExists | Code::Aborted), "{code:?}"),
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn update_changes_only_the_masked_fields_and_bumps_the_version() {
    let (_redis, _service, mut client) = setup().await;
    let mut sub = subscription("https://example.com/hook", &["messages"]);
    sub.name = "before".into();
    sub.headers = HashMap::from([("x-a".into(), "1".into())]);
    let s = create(&mut client, sub).await.unwrap().subscription.unwrap();

    let patch = v1::Subscription {
        id: s.id.clone(),
        name: "after".into(),
        url: "https://ignored.example.com/".into(),
        event_types: vec!["messages".into(), "transfers".into()],
        version: 1,
        ..Default::default()
    };
    let updated = client
        .update_subscription(v1::UpdateSubscriptionRequest {
            subscription: Some(patch),
            update_mask: mask(&["name", "event_types"]),
            allow_duplicate_endpoint: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.name, "after");
    assert_eq!(updated.event_types, ["messages", "transfers"]);
    assert_eq!(updated.url, s.url, "url was not in the mask");
    assert_eq!(updated.headers, s.headers);
    assert_eq!(updated.version, 2);
    let secs = |t: &Option<prost_types::Timestamp>| t.map(|t| (t.seconds, t.nanos));
    assert!(secs(&updated.update_time) > secs(&s.update_time));
}

#[tokio::test]
async fn update_with_a_stale_version_is_aborted_and_changes_nothing() {
    let (_redis, _service, mut client) = setup().await;
    let s = create(&mut client, subscription("https://example.com/hook", &["a"])).await.unwrap().subscription.unwrap();
    let rename = |name: &str, version| v1::UpdateSubscriptionRequest {
        subscription: Some(v1::Subscription { id: s.id.clone(), name: name.into(), version, ..Default::default() }),
        update_mask: mask(&["name"]),
        allow_duplicate_endpoint: false,
    };
    client.update_subscription(rename("one", 1)).await.unwrap();
    let err = client.update_subscription(rename("two", 1)).await.unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert!(err.message().contains("version 2"), "{}", err.message());
    let now = client.get_subscription(v1::GetSubscriptionRequest { id: s.id.clone() }).await.unwrap().into_inner();
    assert_eq!((now.name.as_str(), now.version), ("one", 2));
}

#[tokio::test]
async fn concurrent_updates_pinned_to_one_version_let_exactly_one_win() {
    let (_redis, service, mut client) = setup().await;
    let s = create(&mut client, subscription("https://example.com/hook", &["a"])).await.unwrap().subscription.unwrap();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let mut client = service.client(ACME).await;
        let id = s.id.clone();
        tasks.push(tokio::spawn(async move {
            client
                .update_subscription(v1::UpdateSubscriptionRequest {
                    subscription: Some(v1::Subscription {
                        id,
                        name: format!("writer-{i}"),
                        version: 1,
                        ..Default::default()
                    }),
                    update_mask: mask(&["name"]),
                    allow_duplicate_endpoint: false,
                })
                .await
                .map(|_| ())
                .map_err(|s| s.code())
        }));
    }
    let results: Vec<_> = futures::future::join_all(tasks).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().filter_map(|r| r.err()).all(|c| c == Code::Aborted));
    let now = client.get_subscription(v1::GetSubscriptionRequest { id: s.id }).await.unwrap().into_inner();
    assert_eq!(now.version, 2);
}

#[tokio::test]
async fn delete_removes_it_and_a_second_delete_is_not_found() {
    let (_redis, _service, mut client) = setup().await;
    let s = create(&mut client, subscription("https://example.com/hook", &["a"])).await.unwrap().subscription.unwrap();
    let stale =
        client.delete_subscription(v1::DeleteSubscriptionRequest { id: s.id.clone(), version: 7 }).await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    client.delete_subscription(v1::DeleteSubscriptionRequest { id: s.id.clone(), version: 1 }).await.unwrap();
    let get = client.get_subscription(v1::GetSubscriptionRequest { id: s.id.clone() }).await.unwrap_err();
    assert_eq!(get.code(), Code::NotFound);
    let again = client.delete_subscription(v1::DeleteSubscriptionRequest { id: s.id, version: 0 }).await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    // The endpoint is free again.
    create(&mut client, subscription("https://example.com/hook", &["a"])).await.expect("no conflict after delete");
}

#[tokio::test]
async fn list_pages_through_everything_in_creation_order() {
    let (_redis, _service, mut client) = setup().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let s = create(&mut client, subscription(&format!("https://example.com/{i}"), &["a"])).await.unwrap();
        ids.push(s.subscription.unwrap().id);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_subscriptions(v1::ListSubscriptionsRequest { page_size: 3, page_token: token, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(page.subscriptions.into_iter().map(|s| s.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);
    let bad = client
        .list_subscriptions(v1::ListSubscriptionsRequest { page_token: "not-a-token!".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn list_filters_by_event_type_state_and_scope() {
    let (_redis, _service, mut client) = setup().await;
    let scoped = |url: &str, types: &[&str], label: &str, values: &[&str]| {
        let mut s = subscription(url, types);
        s.scope = HashMap::from([(
            label.to_owned(),
            v1::ScopeValues { values: values.iter().map(|v| (*v).into()).collect() },
        )]);
        s
    };
    let a = create(&mut client, scoped("https://e.com/a", &["lead_*"], "team_id", &["1", "2"])).await.unwrap();
    let b = create(&mut client, scoped("https://e.com/b", &["email_sent"], "sequence_id", &["9"])).await.unwrap();
    let c = create(&mut client, subscription("https://e.com/c", &["*"])).await.unwrap();
    let (a, b, c) = (a.subscription.unwrap().id, b.subscription.unwrap().id, c.subscription.unwrap().id);
    client.pause_subscription(v1::PauseSubscriptionRequest { id: c.clone(), ..Default::default() }).await.unwrap();

    let ids = |r: v1::ListSubscriptionsResponse| r.subscriptions.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let by_type = client
        .list_subscriptions(v1::ListSubscriptionsRequest { event_type: "lead_closed".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(ids(by_type.into_inner()), [a.clone(), c.clone()]);
    let paused = client
        .list_subscriptions(v1::ListSubscriptionsRequest {
            state: v1::SubscriptionState::Paused as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(paused.into_inner()), std::slice::from_ref(&c));
    let team = client
        .list_subscriptions(v1::ListSubscriptionsRequest {
            scope_label: "team_id".into(),
            scope_value: "2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(team.into_inner()), [a]);
    let seq = client
        .list_subscriptions(v1::ListSubscriptionsRequest { scope_label: "sequence_id".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(ids(seq.into_inner()), [b]);
}
