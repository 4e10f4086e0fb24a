//! Subscription state and delivery: auto-pause after failures (with the
//! operational event), held deliveries, resume, deletion.

use std::time::Duration;

use hookline_proto::v1;

use crate::support::*;

async fn summary(stack: &mut Stack, subscription_id: &str) -> v1::DeliverySummary {
    let req = v1::GetDeliverySummaryRequest { subscription_id: subscription_id.into(), ..Default::default() };
    stack.deliveries.get_delivery_summary(req).await.unwrap().into_inner()
}

/// Waits until the subscription's summary satisfies `done`.
async fn wait_summary(stack: &Stack, subscription_id: &str, done: impl Fn(&v1::DeliverySummary) -> bool) {
    eventually(WAIT, || {
        let mut deliveries = stack.deliveries.clone();
        let req = v1::GetDeliverySummaryRequest { subscription_id: subscription_id.into(), ..Default::default() };
        let done = &done;
        async move { done(&deliveries.get_delivery_summary(req).await.unwrap().into_inner()) }
    })
    .await;
}

/// Waits until the subscription is paused for its failures, the reason
/// saying `says`.
async fn wait_paused_for_failures(stack: &Stack, subscription_id: &str, says: &str) {
    stack
        .wait_subscription(subscription_id, |s| {
            s.state == v1::SubscriptionState::Paused as i32
                && s.state_reason
                    .as_ref()
                    .is_some_and(|r| r.cause == v1::StateCause::Failures as i32 && r.message.contains(says))
        })
        .await;
}

async fn publish_many(stack: &mut Stack, n: usize) {
    let events = (0..n)
        .map(|i| v1::PublishRequest {
            event_type: "order.paid".into(),
            payload: format!("{{\"n\":{i}}}").into_bytes(),
            ..Default::default()
        })
        .collect();
    stack.events.publish_batch(v1::PublishBatchRequest { events }).await.unwrap();
}

/// With the default settings, a burst of events to an endpoint that fails
/// them all (hundreds of failures in a second or two) is retried and
/// dead-lettered, but the subscription stays active: auto-pause is for an
/// endpoint that has been failing for a day, not for a bad minute.
#[tokio::test]
async fn a_burst_of_failures_never_pauses_the_subscription() {
    // The breaker off, so that every task is really attempted.
    let mut stack = Stack::start_with(|c| hookline_delivery::Config { breaker_threshold: 0, ..c }).await;
    stack.receiver.statuses("/down", &[500]);
    let (sub, _) = stack.subscribe("/down", |s| s.retry_policy = Some(quick_retries(1))).await;
    publish_many(&mut stack, 200).await;
    wait_summary(&stack, &sub, |s| s.dead_lettered == 200).await;
    let summary = summary(&mut stack, &sub).await;
    assert_eq!((summary.failed_attempts, summary.consecutive_failures), (400, 400));
    assert!(summary.failing_since.is_some(), "the streak's start is shown");
    assert_eq!(stack.subscription(&sub).await.state, v1::SubscriptionState::Active as i32);
}

/// A streak pauses once it is both long enough and old enough: ten
/// failures at once do not (3 are enough by count, but they are not 3 s
/// old), the retries that go on failing past 3 s do.
#[tokio::test]
async fn a_failing_streak_that_lasts_pauses_the_subscription() {
    let mut stack = Stack::start_with(|c| hookline_delivery::Config {
        auto_pause_after: 3,
        auto_pause_failing_for: Duration::from_secs(3),
        breaker_threshold: 0,
        ..c
    })
    .await;
    stack.receiver.statuses("/down", &[500]);
    let (sub, _) = stack.subscribe("/down", |s| s.retry_policy = Some(quick_retries(20))).await;
    publish_many(&mut stack, 10).await;
    wait_summary(&stack, &sub, |s| s.failed_attempts >= 10).await;
    assert_eq!(stack.subscription(&sub).await.state, v1::SubscriptionState::Active as i32, "not after a burst");
    wait_paused_for_failures(&stack, &sub, " since ").await;
    let summary = summary(&mut stack, &sub).await;
    let since = summary.failing_since.expect("failing");
    let first = summary.last_attempt_time.expect("attempted");
    assert!(first.seconds - since.seconds >= 3, "paused only once the streak was 3 s old: {since:?} .. {first:?}");
}

/// `auto_pause_failing_for = 0`: the count alone pauses.
#[tokio::test]
async fn a_run_of_failures_auto_pauses_holds_deliveries_and_resume_releases_them() {
    let mut stack = Stack::start_with(|c| hookline_delivery::Config {
        auto_pause_after: 3,
        auto_pause_failing_for: Duration::ZERO,
        ..c
    })
    .await;
    stack.receiver.statuses("/failing", &[500]);
    let (failing, _) = stack
        .subscribe("/failing", |s| {
            s.event_types = vec!["order.*".into()];
            s.retry_policy = Some(quick_retries(5));
        })
        .await;
    // The tenant's own monitor of hookline's operational events.
    let (_monitor, _) = stack.subscribe("/ops", |s| s.event_types = vec!["hookline.*".into()]).await;

    stack.publish("order.paid", r#"{"n":1}"#).await;
    wait_paused_for_failures(&stack, &failing, "3 consecutive").await;
    let ops = stack.wait_received("/ops", 1).await;
    let event: serde_json::Value = serde_json::from_slice(&ops[0].body).unwrap();
    assert_eq!(event["subscription_id"], failing.as_str());
    assert_eq!(event["consecutive_failures"], 3);

    // While paused, new events are held, not sent and not dropped.
    let attempts_before = stack.receiver.received("/failing").len();
    stack.publish("order.paid", r#"{"n":2}"#).await;
    stack.publish("order.paid", r#"{"n":3}"#).await;
    // The two new ones, and the retrying one once its retry comes due.
    stack.wait_status(&failing, v1::DeliveryStatus::Held, 3).await;
    assert_eq!(stack.receiver.received("/failing").len(), attempts_before, "nothing sent while paused");
    let summary = stack
        .deliveries
        .get_delivery_summary(v1::GetDeliverySummaryRequest { subscription_id: failing.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.in_progress, 3);

    stack.receiver.statuses("/failing", &[200]);
    stack.subs.resume_subscription(v1::ResumeSubscriptionRequest { id: failing.clone() }).await.unwrap();
    stack.wait_status(&failing, v1::DeliveryStatus::Succeeded, 3).await;
    let bodies: std::collections::HashSet<_> = stack
        .receiver
        .received("/failing")
        .into_iter()
        .filter(|r| r.headers.contains_key("webhook-id"))
        .map(|r| r.body)
        .collect();
    for n in 1..=3 {
        assert!(bodies.contains(format!(r#"{{"n":{n}}}"#).as_bytes()), "event {n} delivered after resume");
    }
}

#[tokio::test]
async fn deliveries_for_a_deleted_subscription_are_cancelled_not_sent() {
    let mut stack = Stack::without_delivery().await;
    let (sub, _) = stack.subscribe("/deleted", |_| {}).await;
    stack.publish("a", "{}").await;
    // The task waits in the stream (no delivery service yet); then the
    // subscription goes away.
    stack.subs.delete_subscription(v1::DeleteSubscriptionRequest { id: sub.clone(), version: 0 }).await.unwrap();
    let config = delivery_config(&stack.redis, &stack.subscriptions, &stack.fanout);
    stack.start_delivery(config).await;
    let (_other, _) = stack.subscribe("/alive", |_| {}).await;
    stack.publish("b", "{}").await;
    stack.wait_received("/alive", 1).await;
    assert!(stack.receiver.received("/deleted").is_empty());
}

#[tokio::test]
async fn a_subscription_created_just_before_a_publish_is_delivered_not_cancelled() {
    let mut stack = Stack::start().await;
    let mut paths = Vec::new();
    for i in 0..25 {
        let path = format!("/fresh/{i}");
        let event_type = format!("fresh_{i}");
        stack.subscribe(&path, |s| s.event_types = vec![event_type.clone()]).await;
        stack.publish(&event_type, "{}").await;
        paths.push(path);
    }
    for path in paths {
        stack.wait_received(&path, 1).await;
    }
}

/// A delivery log expires by itself unless its subscription lives: the
/// write that makes a log gives it the delivery retention plus a margin,
/// and the retention worker (first run when delivery takes the partition)
/// renews the logs of live subscriptions and their tenants, not those of
/// deleted ones, nor logs older builds left without a TTL for them.
#[tokio::test]
async fn delivery_logs_live_as_long_as_their_subscription_and_the_retention() {
    let retention = Duration::from_secs(86_400);
    let mut stack = Stack::start_with(|c| hookline_delivery::Config { delivery_retention: retention, ..c }).await;
    let (kept, _) = stack.subscribe("/kept", |_| {}).await;
    let (deleted, _) = stack.subscribe("/deleted", |_| {}).await;
    stack.publish("a", "{}").await;
    stack.wait_received("/kept", 1).await;
    stack.wait_received("/deleted", 1).await;

    let keys = hookline_queue::Partitions::new("hookline", 1).get(0);
    let logs = [
        hookline_queue::DeliveryLog::of_subscription(&keys, "acme", &kept),
        hookline_queue::DeliveryLog::of_subscription(&keys, "acme", &deleted),
        hookline_queue::DeliveryLog::of_tenant(&keys, "acme"),
    ];
    let mut conn = stack.redis.connection().await;
    let full = hookline_queue::log_ttl_secs(retention.as_secs()) as i64;
    // Both deliveries are listed once their completions are written.
    for sub in [&kept, &deleted] {
        stack.wait_status(sub, v1::DeliveryStatus::Succeeded, 1).await;
    }
    for log in &logs {
        let ttl: i64 = redis::cmd("TTL").arg(log.key()).query_async(&mut conn).await.unwrap();
        assert!(full - 60 <= ttl && ttl <= full, "{}: TTL {ttl}, not ~{full}", log.key());
    }

    // As older builds left them: no TTL. Then `deleted` goes, and a
    // delivery service starts again.
    for log in &logs {
        let _: i64 = redis::cmd("PERSIST").arg(log.key()).query_async(&mut conn).await.unwrap();
    }
    stack.subs.delete_subscription(v1::DeleteSubscriptionRequest { id: deleted.clone(), version: 0 }).await.unwrap();
    stack.delivery.take().unwrap().halt().await;
    let config = delivery_config(&stack.redis, &stack.subscriptions, &stack.fanout);
    stack.start_delivery(hookline_delivery::Config { delivery_retention: retention, ..config }).await;

    let ttl = |key: String| {
        let mut conn = conn.clone();
        async move { redis::cmd("TTL").arg(key).query_async::<i64>(&mut conn).await.unwrap() }
    };
    let (kept_log, deleted_log, tenant_log) = (logs[0].key(), logs[1].key(), logs[2].key());
    // One pipeline renews them all, the tenants' logs last: once the
    // tenant's is renewed, every subscription's renewal has run.
    eventually(WAIT, || async { ttl(tenant_log.to_string()).await > full - 60 }).await;
    assert!(ttl(kept_log.to_string()).await > full - 60, "the live subscription's log is renewed");
    assert_eq!(ttl(deleted_log.to_string()).await, -1, "the deleted subscription's log is not renewed");
}

/// A task of a newer format than this build reads (written by a newer
/// build during a rolling upgrade) is left pending for a newer build to
/// take over, not acknowledged and skipped; the tasks after it go on.
#[tokio::test]
async fn a_task_of_a_newer_format_is_left_pending_and_the_rest_delivered() {
    let mut stack = Stack::without_delivery().await;
    stack.subscribe("/alive", |_| {}).await;
    let keys = hookline_queue::Partitions::new("hookline", 1).get(0);
    let mut conn = stack.redis.connection().await;
    let newer = hookline_testkit::add_newer_format_entry(&mut conn, &keys.deliveries()).await;
    let event = stack.publish("b", "{}").await;
    let config = delivery_config(&stack.redis, &stack.subscriptions, &stack.fanout);
    stack.start_delivery(config).await;
    let got = stack.wait_received("/alive", 1).await;
    assert_eq!(got[0].headers["webhook-id"], event);
    // Read, and still pending: the newer task alone.
    let pending = || {
        let mut conn = conn.clone();
        let stream = keys.deliveries();
        async move { hookline_testkit::pending_entries(&mut conn, &stream, hookline_queue::DELIVERY_GROUP).await }
    };
    eventually(WAIT, || async { pending().await == (1, Some(newer.clone())) }).await;
}

/// Waits for fan-out's task of the one published event, so a test can
/// change what the delivery service will find before it starts.
async fn wait_for_the_task(conn: &mut redis::aio::MultiplexedConnection, keys: &hookline_queue::PartitionKeys) {
    eventually(WAIT, || {
        let mut conn = conn.clone();
        let stream = keys.deliveries();
        async move { redis::cmd("XLEN").arg(stream).query_async::<u64>(&mut conn).await.unwrap() == 1 }
    })
    .await;
}

/// A task written by an older build (format 1, a field each), still in the
/// stream when this build takes over, is delivered like one of this build.
#[tokio::test]
async fn a_task_of_the_older_format_is_delivered() {
    let mut stack = Stack::without_delivery().await;
    stack.subscribe("/alive", |_| {}).await;
    let keys = hookline_queue::Partitions::new("hookline", 1).get(0);
    let mut conn = stack.redis.connection().await;
    let event = stack.publish("b", "{}").await;
    // Fan-out's task, rewritten as an older build wrote it.
    wait_for_the_task(&mut conn, &keys).await;
    let mut entries: Vec<(String, std::collections::HashMap<String, redis::Value>)> =
        redis::cmd("XRANGE").arg(keys.deliveries()).arg("-").arg("+").query_async(&mut conn).await.unwrap();
    let (id, fields) = entries.remove(0);
    let task = hookline_queue::DeliveryTask::parse(&id, fields).unwrap();
    let (enqueued, attempt, fence) = (task.enqueued_ms.to_string(), task.attempt.to_string(), task.fence.encode());
    let v1 = [
        ("v", "1"),
        ("id", task.delivery_id.as_str()),
        ("evt", &task.event_id),
        ("sub", &task.subscription_id),
        ("t", &task.tenant),
        ("et", &task.event_type),
        ("tp", &task.traceparent),
        ("ts", &enqueued),
        ("n", &attempt),
        ("f", &fence),
    ];
    let _: () = redis::pipe()
        .cmd("XDEL")
        .arg(keys.deliveries())
        .arg(&id)
        .ignore()
        .cmd("XADD")
        .arg(keys.deliveries())
        .arg("*")
        .arg(&v1)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    start_delivery_and_receive(&mut stack, &event).await;
}

/// Starts the delivery service and waits for `event`'s delivery at
/// `/alive`, the only one the test expects.
async fn start_delivery_and_receive(stack: &mut Stack, event: &str) -> crate::receiver::Received {
    let config = delivery_config(&stack.redis, &stack.subscriptions, &stack.fanout);
    stack.start_delivery(config).await;
    let mut got = stack.wait_received("/alive", 1).await;
    assert_eq!(got[0].headers["webhook-id"], event);
    got.remove(0)
}

/// An event gone past its retention before its delivery's attempt: the
/// delivery is dead-lettered as `EVENT_EXPIRED`, and nothing is sent.
#[tokio::test]
async fn a_delivery_whose_event_is_gone_is_dead_lettered_without_a_send() {
    let mut stack = Stack::without_delivery().await;
    let (sub, _) = stack.subscribe("/alive", |_| {}).await;
    let keys = hookline_queue::Partitions::new("hookline", 1).get(0);
    let mut conn = stack.redis.connection().await;
    let event = stack.publish("b", "{}").await;
    wait_for_the_task(&mut conn, &keys).await;
    let _: i64 = redis::cmd("DEL").arg(keys.event(&event)).query_async(&mut conn).await.unwrap();
    let config = delivery_config(&stack.redis, &stack.subscriptions, &stack.fanout);
    stack.start_delivery(config).await;
    let dead = stack.wait_status(&sub, v1::DeliveryStatus::DeadLettered, 1).await;
    let attempt = dead[0].last_attempt.as_ref().unwrap();
    assert_eq!(attempt.error, v1::AttemptError::EventExpired as i32, "{attempt:?}");
    assert!(stack.receiver.received("/alive").is_empty(), "nothing was sent");
}

/// An event whose record an older build wrote as a hash (a rolling
/// upgrade) is delivered with its payload like one of this build.
#[tokio::test]
async fn a_delivery_whose_event_record_is_an_older_builds_hash_is_sent() {
    let mut stack = Stack::without_delivery().await;
    stack.subscribe("/alive", |_| {}).await;
    let keys = hookline_queue::Partitions::new("hookline", 1).get(0);
    let mut conn = stack.redis.connection().await;
    let event = stack.publish("b", r#"{"n":7}"#).await;
    wait_for_the_task(&mut conn, &keys).await;
    let record = keys.event(&event);
    let fields = [
        ("v", "1"),
        ("id", event.as_str()),
        ("t", "acme"),
        ("et", "b"),
        ("p", r#"{"n":7}"#),
        ("a", ""),
        ("tp", ""),
        ("f", "0"),
        ("ts", "1700000000000"),
        ("st", "done"),
        ("m", "1"),
        ("fa", "1700000000001"),
        ("oa", "1700000000000"),
        ("pv", ""),
    ];
    let _: () = redis::pipe()
        .cmd("DEL")
        .arg(&record)
        .ignore()
        .cmd("HSET")
        .arg(&record)
        .arg(&fields)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let got = start_delivery_and_receive(&mut stack, &event).await;
    assert_eq!(got.body, br#"{"n":7}"#);
}
