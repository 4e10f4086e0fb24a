//! Publishing: validation, idempotency, batches, GetEvent and isolation.

use hookline_proto::v1;
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn bad_events_are_refused_with_a_clear_status_and_publish_nothing() {
    let mut stack = Stack::start().await;
    stack.subscribe(subscription("https://e.com/a", &["*"])).await;
    let mut events = stack.events(ACME).await;
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(300 * 1024));
    let cases = vec![
        ("invalid json", event("a", "{\"a\":"), Code::InvalidArgument, "not valid JSON"),
        ("empty payload", event("a", ""), Code::InvalidArgument, "payload: is required"),
        ("too large", event("a", &big), Code::InvalidArgument, "over the limit"),
        ("bad event type", event("no spaces", "{}"), Code::InvalidArgument, "event_type"),
        ("bad attribute", with_attributes(event("a", "{}"), &[("bad key", "1")]), Code::InvalidArgument, "attributes"),
        (
            "another tenant",
            v1::PublishRequest { tenant_id: "globex".into(), ..event("a", "{}") },
            Code::NotFound,
            "globex",
        ),
    ];
    for (what, req, code, text) in cases {
        let err = events.publish(req).await.expect_err(what);
        assert_eq!(err.code(), code, "{what}: {err:?}");
        assert!(err.message().contains(text), "{what}: `{}` should mention `{text}`", err.message());
    }
    let mut admin = stack.events(ADMIN).await;
    let unknown =
        admin.publish(v1::PublishRequest { tenant_id: "nobody".into(), ..event("a", "{}") }).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(unknown.message().contains("unknown"), "{}", unknown.message());

    let mut anonymous = hookline_proto::v1::event_service_client::EventServiceClient::new(
        tonic::transport::Channel::from_shared(format!("http://{}", stack.fanout.as_ref().unwrap().addr))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    assert_eq!(anonymous.publish(event("a", "{}")).await.unwrap_err().code(), Code::Unauthenticated);

    // An acknowledged publish is in the events stream when it answers:
    // refused ones left nothing there, so nothing can be fanned out.
    let keys = hookline_queue::Partitions::new("hookline", 1).get(0);
    let mut conn = stack.redis.connection().await;
    let published: usize = redis::cmd("XLEN").arg(keys.events()).query_async(&mut conn).await.unwrap();
    assert_eq!(published, 0, "nothing was published");
    assert!(stack.tasks().await.is_empty());
}

#[tokio::test]
async fn a_strict_catalog_refuses_unknown_and_archived_event_types() {
    let mut stack = Stack::start().await;
    stack
        .subs
        .create_event_type(v1::CreateEventTypeRequest {
            tenant_id: String::new(),
            event_type: Some(v1::EventType { name: "known".into(), ..Default::default() }),
        })
        .await
        .unwrap();
    stack
        .subs
        .create_event_type(v1::CreateEventTypeRequest {
            tenant_id: String::new(),
            event_type: Some(v1::EventType { name: "old".into(), ..Default::default() }),
        })
        .await
        .unwrap();
    stack
        .subs
        .archive_event_type(v1::ArchiveEventTypeRequest { tenant_id: String::new(), name: "old".into() })
        .await
        .unwrap();
    stack
        .subs
        .update_tenant_settings(v1::UpdateTenantSettingsRequest {
            settings: Some(v1::TenantSettings { strict_event_types: true, ..Default::default() }),
            update_mask: None,
        })
        .await
        .unwrap();
    let mut events = stack.events(ACME).await;
    // The settings reach fanout through the watch stream.
    eventually(WAIT, || {
        let mut events = events.clone();
        async move { events.publish(event("unknown", "{}")).await.is_err_and(|e| e.code() == Code::FailedPrecondition) }
    })
    .await;
    let archived = events.publish(event("old", "{}")).await.unwrap_err();
    assert_eq!(archived.code(), Code::FailedPrecondition);
    assert!(archived.message().contains("archived"));
    publish(&mut events, event("known", "{}")).await;
}

#[tokio::test]
async fn concurrent_duplicates_of_one_idempotency_key_publish_exactly_once() {
    let mut stack = Stack::start().await;
    stack.subscribe(subscription("https://e.com/a", &["order.paid"])).await;
    stack.subscribe(subscription("https://e.com/b", &["order.*"])).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut events = stack.events(ACME).await;
        tasks.push(tokio::spawn(async move {
            let req = v1::PublishRequest { idempotency_key: "order-42-paid".into(), ..event("order.paid", "{}") };
            events.publish(req).await.unwrap().into_inner()
        }));
    }
    let replies: Vec<_> = futures::future::join_all(tasks).await.into_iter().map(Result::unwrap).collect();
    let first = &replies.iter().find(|r| !r.duplicate).expect("one publish went through").event_id;
    assert_eq!(replies.iter().filter(|r| !r.duplicate).count(), 1);
    assert!(replies.iter().all(|r| &r.event_id == first), "every duplicate gets the first event's id");
    stack.wait_tasks(2).await;

    // A different tenant may use the same key independently.
    let mut admin = stack.events(ADMIN).await;
    let mut globex_subs = stack.admin_subs.clone();
    globex_subs
        .create_subscription(v1::CreateSubscriptionRequest {
            subscription: Some(v1::Subscription {
                tenant_id: "globex".into(),
                ..subscription("https://g.com/", &["*"])
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let other = admin
        .publish(v1::PublishRequest {
            tenant_id: "globex".into(),
            idempotency_key: "order-42-paid".into(),
            ..event("order.paid", "{}")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!other.duplicate);
    assert_ne!(&other.event_id, first);
}

#[tokio::test]
async fn a_batch_succeeds_or_fails_item_by_item() {
    let mut stack = Stack::start().await;
    stack.subscribe(subscription("https://e.com/a", &["*"])).await;
    let mut events = stack.events(ACME).await;
    let batch = vec![
        event("a", r#"{"n":1}"#),
        event("a", "not json"),
        v1::PublishRequest { idempotency_key: "k1".into(), ..event("a", r#"{"n":2}"#) },
        event("bad type!", "{}"),
        v1::PublishRequest { idempotency_key: "k1".into(), ..event("a", r#"{"n":3}"#) },
    ];
    let results = events.publish_batch(v1::PublishBatchRequest { events: batch }).await.unwrap().into_inner().results;
    let summary: Vec<_> = results
        .iter()
        .map(|r| match r.result.as_ref().unwrap() {
            v1::publish_batch_result::Result::Published(p) => if p.duplicate { "dup" } else { "ok" }.to_owned(),
            v1::publish_batch_result::Result::Error(e) => format!("error {}", e.code),
        })
        .collect();
    let invalid = format!("error {}", Code::InvalidArgument as i32);
    assert_eq!(summary, ["ok", invalid.as_str(), "ok", invalid.as_str(), "dup"]);
    let id = |i: usize| match results[i].result.as_ref().unwrap() {
        v1::publish_batch_result::Result::Published(p) => p.event_id.clone(),
        v1::publish_batch_result::Result::Error(e) => panic!("{e:?}"),
    };
    assert_eq!(id(4), id(2), "the duplicate, placed after events without a key, names the key's first event");
    assert_ne!(id(0), id(2));
    stack.wait_tasks(2).await;

    let too_many = v1::PublishBatchRequest { events: (0..1001).map(|_| event("a", "{}")).collect() };
    assert_eq!(events.publish_batch(too_many).await.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn get_event_shows_the_event_to_its_tenant_only() {
    let mut stack = Stack::start().await;
    stack.subscribe(subscription("https://e.com/a", &["*"])).await;
    let mut events = stack.events(ACME).await;
    let published = publish(
        &mut events,
        v1::PublishRequest {
            idempotency_key: "abc".into(),
            payload_variants: [("legacy".to_owned(), br#"{"old":true}"#.to_vec())].into(),
            ..event("a", r#"{"new":true}"#)
        },
    )
    .await;
    eventually(WAIT, || {
        let mut events = events.clone();
        let id = published.event_id.clone();
        async move {
            let e = events.get_event(v1::GetEventRequest { id }).await.unwrap().into_inner();
            e.fanout_state == v1::FanoutState::Done as i32
        }
    })
    .await;
    let got = events.get_event(v1::GetEventRequest { id: published.event_id.clone() }).await.unwrap().into_inner();
    assert_eq!((got.tenant_id.as_str(), got.event_type.as_str(), got.idempotency_key.as_str()), ("acme", "a", "abc"));
    assert_eq!(got.payload_variants.get("legacy").map(Vec::as_slice), Some(&br#"{"old":true}"#[..]));
    assert!(got.publish_time.is_some() && got.occurred_at.is_some() && got.fanout_time.is_some());

    let mut globex = stack.events(GLOBEX).await;
    let err = globex.get_event(v1::GetEventRequest { id: published.event_id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let mut admin = stack.events(ADMIN).await;
    assert_eq!(admin.get_event(v1::GetEventRequest { id: published.event_id }).await.unwrap().into_inner().id, got.id);
    let bad = events.get_event(v1::GetEventRequest { id: "nope".into() }).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

/// The length of the (single) partition's events stream.
async fn events_published(stack: &Stack) -> usize {
    let keys = hookline_queue::Partitions::new("hookline", 1).get(0);
    let mut conn = stack.redis.connection().await;
    redis::cmd("XLEN").arg(keys.events()).query_async(&mut conn).await.unwrap()
}

#[tokio::test]
async fn timestamps_and_payloads_a_receiver_would_choke_on_are_refused() {
    let stack = Stack::start().await;
    let mut events = stack.events(ACME).await;
    let at = |seconds: i64, nanos: i32| v1::PublishRequest {
        occurred_at: Some(prost_types::Timestamp { seconds, nanos }),
        ..event("a", "{}")
    };
    let raw = |payload: &[u8]| v1::PublishRequest { payload: payload.to_vec(), ..event("a", "{}") };
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    let cases = vec![
        ("year 10000", at(253_402_300_800, 0), "occurred_at"),
        ("i64::MAX seconds", at(i64::MAX, 0), "occurred_at"),
        ("negative nanos", at(1_700_000_000, -1), "occurred_at: nanos"),
        ("a second of nanos", at(1_700_000_000, 1_000_000_000), "occurred_at: nanos"),
        ("invalid UTF-8 in a string", raw(b"{\"a\":\"\xff\"}"), "not valid JSON"),
        ("a lone surrogate", raw(br#"{"a":"\ud800"}"#), "not valid JSON"),
        ("a number no parser holds", raw(br#"{"a":1e999999}"#), "not valid JSON"),
        ("100,000 levels deep", raw(deep.as_bytes()), "deeper than 127 levels"),
    ];
    for (what, req, text) in cases {
        let err = events.publish(req).await.expect_err(what);
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        assert!(err.message().contains(text), "{what}: `{}` should mention `{text}`", err.message());
    }
    assert_eq!(events_published(&stack).await, 0, "nothing was published");
    publish(&mut events, at(253_402_300_799, 999_999_999)).await;
    assert_eq!(events_published(&stack).await, 1, "the last valid instant is fine");
}

#[tokio::test]
async fn a_batch_over_the_request_limit_is_refused_before_it_is_read() {
    let mut stack = Stack::without_fanout().await;
    stack.start_fanout(|c| hookline_fanout::Config { max_request_bytes: 1024 * 1024, ..c }).await;
    let mut events = stack.events(ACME).await;
    let payload = format!("{{\"x\":\"{}\"}}", "a".repeat(100 * 1024));
    let batch = v1::PublishBatchRequest { events: (0..12).map(|_| event("a", &payload)).collect() };
    let err = events.publish_batch(batch).await.unwrap_err();
    // tonic's own answer, before anything is decoded: OUT_OF_RANGE, with
    // the size and the limit in the message.
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("the limit is: 1048576 bytes"), "{}", err.message());
    assert_eq!(events_published(&stack).await, 0);
    let small = v1::PublishBatchRequest { events: (0..5).map(|_| event("a", &payload)).collect() };
    events.publish_batch(small).await.expect("under the limit");
    assert_eq!(events_published(&stack).await, 5);
}

#[tokio::test]
async fn the_service_token_publishes_only_operational_events() {
    let stack = Stack::start().await;
    let mut hookline = stack.events(SERVICE).await;
    let as_acme = |event_type: &str| v1::PublishRequest { tenant_id: "acme".into(), ..event(event_type, "{}") };
    let err = hookline.publish(as_acme("order.paid")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    publish(&mut hookline, as_acme("hookline.subscription.paused")).await;
    let err = hookline.get_event(v1::GetEventRequest { id: hookline_domain::EventId::generate().to_string() }).await;
    assert_eq!(err.unwrap_err().code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_portal_session_cannot_publish() {
    let mut stack = Stack::start().await;
    stack.subscribe(subscription("https://e.com/a", &["*"])).await;
    let mut portal = stack.events(&hookline_testkit::portal_token(PORTAL_KEY, "acme", false)).await;
    let err = portal.publish(event("a", "{}")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("portal session"), "{}", err.message());
    let batch = v1::PublishBatchRequest { events: vec![event("a", "{}")] };
    assert_eq!(portal.publish_batch(batch).await.unwrap_err().code(), Code::PermissionDenied);
    assert!(stack.tasks().await.is_empty(), "nothing was published");
}
