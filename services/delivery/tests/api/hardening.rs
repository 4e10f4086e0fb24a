//! Inputs that once hurt: an event no request can be made of ends as a
//! dead letter with its reason (not a panic loop), test events keep the
//! limits of real deliveries, and one replay runs at a time.

use hookline_proto::v1;
use hookline_queue::Partitions;
use tonic::Code;

use crate::support::*;

fn keys() -> hookline_queue::PartitionKeys {
    Partitions::new("hookline", 1).get(0)
}

#[tokio::test]
async fn an_event_that_cannot_be_enveloped_is_dead_lettered_with_its_reason_and_the_fifo_line_moves_on() {
    let mut stack = Stack::start().await;
    let create = |path: &str, format: v1::PayloadFormat, ordering: v1::OrderingMode| v1::CreateSubscriptionRequest {
        subscription: Some(v1::Subscription {
            url: stack.receiver.url(path),
            event_types: vec!["*".into()],
            payload_format: format as i32,
            ordering: ordering as i32,
            retry_policy: Some(quick_retries(0)),
            ..Default::default()
        }),
        allow_duplicate_endpoint: true,
        initial_state: v1::SubscriptionState::Paused as i32,
        ..Default::default()
    };
    let enveloped = create("/envelope", v1::PayloadFormat::Envelope, v1::OrderingMode::Fifo);
    let raw = create("/raw", v1::PayloadFormat::Raw, v1::OrderingMode::Unordered);
    let mut ids = Vec::new();
    for req in [enveloped, raw] {
        ids.push(stack.subs.create_subscription(req).await.unwrap().into_inner().subscription.unwrap().id);
    }
    let (fifo, plain) = (ids[0].clone(), ids[1].clone());
    let first = stack.publish("a", r#"{"n":1}"#).await;
    let second = stack.publish("a", r#"{"n":2}"#).await;
    stack.wait_status(&fifo, v1::DeliveryStatus::Held, 1).await;
    stack.wait_status(&plain, v1::DeliveryStatus::Held, 2).await;
    // As an event stored before publish checked `occurred_at` would be:
    // past year 9999, which no RFC 3339 formatter can write.
    let mut conn = stack.redis.connection().await;
    let key = keys().event(&first);
    let value: Vec<u8> = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
    let mut record = hookline_queue::EventRecord::decode(&key, &value).unwrap();
    record.meta.occurred_ms = u64::MAX;
    let _: () = redis::cmd("SET").arg(&key).arg(record.encode()).query_async(&mut conn).await.unwrap();
    for id in [&fifo, &plain] {
        stack.subs.resume_subscription(v1::ResumeSubscriptionRequest { id: id.clone() }).await.unwrap();
    }

    let dead = stack.wait_status(&fifo, v1::DeliveryStatus::DeadLettered, 1).await;
    assert_eq!(dead[0].event_id, first);
    let last = dead[0].last_attempt.clone().unwrap();
    assert_eq!(last.error, v1::AttemptError::Undeliverable as i32, "{last:?}");
    assert!(last.error_message.contains("year 9999"), "{}", last.error_message);
    assert_eq!(last.response_status_code, 0, "nothing was sent");
    // The FIFO line moves on, and the raw subscription gets both events.
    let got = stack.wait_received("/envelope", 1).await;
    assert_eq!(got[0].headers["webhook-id"], second);
    let raw_got = stack.wait_received("/raw", 2).await;
    assert_eq!(raw_got.len(), 2);
    stack.wait_status(&fifo, v1::DeliveryStatus::Succeeded, 1).await;
}

#[tokio::test]
async fn test_events_keep_the_payload_limit_and_the_rate_limits_of_real_deliveries() {
    let mut stack = Stack::start_with(|c| hookline_delivery::Config {
        max_test_payload_bytes: 1024,
        test_events_per_second: 1,
        test_events_burst: 3,
        ..c
    })
    .await;
    let (limited, _) =
        stack.subscribe("/limited", |s| s.rate_limit = Some(v1::RateLimit { per_second: 1, burst: 1 })).await;
    let (open, _) = stack.subscribe("/open", |_| {}).await;
    let test = |sub: &str, payload: &[u8]| v1::SendTestEventRequest {
        subscription_id: sub.to_owned(),
        payload: payload.to_vec(),
        ..Default::default()
    };
    let mut client = stack.deliveries.clone();

    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(2048));
    let err = client.send_test_event(test(&open, big.as_bytes())).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("over the limit of 1024 bytes"), "{}", err.message());
    let err = client.send_test_event(test(&open, br#"{"a":"\ud800"}"#)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "a lone surrogate");

    client.send_test_event(test(&limited, b"")).await.expect("the subscription's one token");
    let err = client.send_test_event(test(&limited, b"")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("1 per second"), "{}", err.message());

    for _ in 0..3 {
        client.send_test_event(test(&open, b"")).await.expect("within the default burst");
    }
    let err = client.send_test_event(test(&open, b"")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(stack.receiver.received("/open").len(), 3, "only the admitted ones were sent");
    assert_eq!(stack.receiver.received("/limited").len(), 1);
}

#[tokio::test]
async fn a_replay_waits_for_the_one_running_and_each_dead_letter_is_sent_once() {
    let mut stack = Stack::start().await;
    stack.receiver.statuses("/down", &[500]);
    let (sub, _) = stack.subscribe("/down", |s| s.retry_policy = Some(quick_retries(0))).await;
    for n in 0..3 {
        stack.publish("a", &format!("{{\"n\":{n}}}")).await;
    }
    stack.wait_status(&sub, v1::DeliveryStatus::DeadLettered, 3).await;
    stack.receiver.statuses("/down", &[200]);

    // Another replay of this subscription is running (in any replica).
    let lock = keys().replay_lock(&sub);
    let mut conn = stack.redis.connection().await;
    let _: () = redis::cmd("SET").arg(&lock).arg("other").arg("PX").arg(60_000).query_async(&mut conn).await.unwrap();
    let replay = || v1::ReplayDeliveriesRequest { subscription_id: sub.clone(), ..Default::default() };
    let err = stack.deliveries.replay_deliveries(replay()).await.expect_err("refused while one runs");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("already running"), "{}", err.message());
    let _: i64 = redis::cmd("DEL").arg(&lock).query_async(&mut conn).await.unwrap();

    let mut progress = stack.deliveries.replay_deliveries(replay()).await.unwrap().into_inner();
    let mut last = None;
    while let Some(p) = progress.message().await.unwrap() {
        last = Some(p);
    }
    assert_eq!(last.map(|p| p.replayed), Some(3));
    let done = stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 3).await;
    assert!(done.iter().all(|d| d.attempt_count == 2), "{done:#?}");
    let exists: i64 = redis::cmd("EXISTS").arg(&lock).query_async(&mut conn).await.unwrap();
    assert_eq!(exists, 0, "the finished replay let go of its lock");

    // A replay of what is no longer dead sends nothing.
    let mut progress = stack.deliveries.replay_deliveries(replay()).await.unwrap().into_inner();
    let mut last = None;
    while let Some(p) = progress.message().await.unwrap() {
        last = Some(p);
    }
    assert_eq!(last.map(|p| p.replayed), Some(0));
    assert_eq!(stack.receiver.received("/down").len(), 6, "3 failures, 3 replays");
}
