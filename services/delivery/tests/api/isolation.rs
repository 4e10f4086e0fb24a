//! One endpoint's trouble stays its own: circuit breaker, in-flight limits
//! shared by replicas, hanging endpoints.

use std::time::Duration;

use hookline_proto::v1;

use crate::support::*;

#[tokio::test]
async fn an_open_circuit_defers_deliveries_without_spending_attempts() {
    let mut stack = Stack::start_with(|c| hookline_delivery::Config {
        breaker_threshold: 2,
        breaker_cooldown: Duration::from_secs(3),
        auto_pause_after: 0,
        ..c
    })
    .await;
    stack.receiver.statuses("/broken", &[503]);
    let (sub, _) = stack.subscribe("/broken", |s| s.retry_policy = Some(quick_retries(10))).await;
    for i in 0..10 {
        stack.publish("a", &format!("{{\"n\":{i}}}")).await;
    }
    // Two failures open the circuit; the other tasks are deferred, not
    // sent: once every delivery waits (scheduled), count what was sent.
    stack.wait_received("/broken", 2).await;
    stack.wait_status(&sub, v1::DeliveryStatus::Scheduled, 10).await;
    let sent = stack.receiver.received("/broken").len();
    assert!(sent <= 3, "circuit open: {sent} requests reached the endpoint");
    let deliveries = stack.deliveries_of(&sub).await;
    assert_eq!(deliveries.len(), 10, "every delivery is accounted for");
    assert!(deliveries.iter().all(|d| d.status == v1::DeliveryStatus::Scheduled as i32), "{deliveries:#?}");
    let attempts: u32 = deliveries.iter().map(|d| d.attempt_count).sum();
    assert!(attempts <= 3, "deferred deliveries spent no attempts: {attempts}");

    // The endpoint recovers: after the cooldown one probe closes the
    // circuit and everything goes through.
    stack.receiver.statuses("/broken", &[200]);
    stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 10).await;
}

#[tokio::test]
async fn max_in_flight_holds_across_two_delivery_processes() {
    let mut stack = Stack::start().await;
    let second = delivery_config(&stack.redis, &stack.subscriptions, &stack.fanout);
    let other = Running::start(|l, stop| hookline_delivery::serve(second, l, stop)).await;
    other.wait_serving().await;
    stack.receiver.set("/slow", Behaviour { delay: Duration::from_millis(300), ..Default::default() });
    let (sub, _) = stack.subscribe("/slow", |s| s.max_in_flight = 2).await;
    for i in 0..12 {
        stack.publish("a", &format!("{{\"n\":{i}}}")).await;
    }
    stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 12).await;
    assert_eq!(stack.receiver.max_concurrent("/slow"), 2, "never more than 2 at once, across both processes");
}

#[tokio::test]
async fn a_hanging_endpoint_does_not_hold_up_the_others() {
    // 20 worker slots; without a fair share the hanging subscription would
    // hold all of them for its 30 s timeout, longer than this test waits.
    let mut stack = Stack::start_with(|c| hookline_delivery::Config {
        max_concurrency: 20,
        subscription_share_percent: 25,
        breaker_threshold: 0,
        ..c
    })
    .await;
    stack.receiver.set("/hang", Behaviour { delay: Duration::from_secs(60), ..Default::default() });
    let (_hang, _) =
        stack.subscribe("/hang", |s| s.timeout = Some(prost_types::Duration { seconds: 30, nanos: 0 })).await;
    let (fast, _) = stack.subscribe("/fast", |_| {}).await;
    for i in 0..40 {
        stack.publish("a", &format!("{{\"n\":{i}}}")).await;
    }
    // All 40 fast deliveries complete while the hanging ones wait for their
    // first answer.
    stack.wait_status(&fast, v1::DeliveryStatus::Succeeded, 40).await;
    let hanging = stack.receiver.received("/hang").len();
    assert!((1..20).contains(&hanging), "the hanging endpoint holds only part of the slots: {hanging}");
}

#[tokio::test]
async fn a_rate_limit_spreads_deliveries_out_across_two_processes() {
    let mut stack = Stack::start().await;
    let second = delivery_config(&stack.redis, &stack.subscriptions, &stack.fanout);
    let other = Running::start(|l, stop| hookline_delivery::serve(second, l, stop)).await;
    other.wait_serving().await;
    let (sub, _) =
        stack.subscribe("/limited", |s| s.rate_limit = Some(v1::RateLimit { per_second: 4, burst: 1 })).await;
    for i in 0..9 {
        stack.publish("a", &format!("{{\"n\":{i}}}")).await;
    }
    stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 9).await;
    let got = stack.receiver.received("/limited");
    let spread = got.last().unwrap().at - got[0].at;
    // 1 token of burst, then 4 per second: 8 more take at least ~2 s.
    assert!(spread >= Duration::from_millis(1800), "9 deliveries at 4/s took only {spread:?}");
    let attempts: u32 = stack.deliveries_of(&sub).await.iter().map(|d| d.attempt_count).sum();
    assert_eq!(attempts, 9, "waiting for a token spends no attempt");
}

#[tokio::test]
async fn tasks_over_the_in_flight_limit_wait_in_the_process_not_through_redis() {
    // Small batches (a room of 2 x 4 per subscription) and many tasks: the
    // room fills and empties many times over, with admission rounds
    // running while the consumer reads.
    let mut stack = Stack::start_with(|c| hookline_delivery::Config { batch_size: 4, ..c }).await;
    stack.receiver.set("/one", Behaviour { delay: Duration::from_millis(5), ..Default::default() });
    let (sub, _) = stack.subscribe("/one", |s| s.max_in_flight = 1).await;
    // One first, so delivery knows this endpoint answers quickly (tasks of
    // one whose attempts have not finished yet are parked, not kept).
    stack.publish("a", "{}").await;
    stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 1).await;
    let batch = v1::PublishBatchRequest {
        events: (0..40)
            .map(|i| v1::PublishRequest {
                event_type: "a".into(),
                payload: format!("{{\"n\":{i}}}").into_bytes(),
                ..Default::default()
            })
            .collect(),
    };
    stack.events.publish_batch(batch).await.unwrap();
    let done = stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 41).await;
    assert_eq!(stack.receiver.max_concurrent("/one"), 1);
    // Turned away by the limit, each waited here for the slot: no task was
    // parked and queued again (a second stream entry), and every first
    // attempt is the record's own (no attempt log written for it).
    let keys = hookline_queue::Partitions::new("hookline", 1).get(0);
    let mut conn = stack.redis.connection().await;
    let entries: usize = redis::cmd("XLEN").arg(keys.deliveries()).query_async(&mut conn).await.unwrap();
    assert_eq!(entries, 41, "one stream entry per delivery");
    for delivery in &done {
        assert_eq!(delivery.attempt_count, 1);
        let logged: i64 = redis::cmd("EXISTS").arg(keys.attempts(&delivery.id)).query_async(&mut conn).await.unwrap();
        assert_eq!(logged, 0, "{} took a detour", delivery.id);
    }
}
