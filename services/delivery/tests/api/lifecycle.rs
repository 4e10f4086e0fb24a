//! Subscription state and delivery: auto-pause after failures (with the
//! operational event), held deliveries, resume, deletion.

use hookline_proto::v1;

use crate::support::*;

#[tokio::test]
async fn a_run_of_failures_auto_pauses_holds_deliveries_and_resume_releases_them() {
    let mut stack = Stack::start_with(|c| hookline_delivery::Config { auto_pause_after: 3, ..c }).await;
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
    eventually(WAIT, || {
        let mut subs = stack.subs.clone();
        let id = failing.clone();
        async move {
            let s = subs.get_subscription(v1::GetSubscriptionRequest { id }).await.unwrap().into_inner();
            s.state == v1::SubscriptionState::Paused as i32
                && s.state_reason
                    .is_some_and(|r| r.cause == v1::StateCause::Failures as i32 && r.message.contains("3 consecutive"))
        }
    })
    .await;
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
