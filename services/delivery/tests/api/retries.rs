//! Failures: retries on the schedule, Retry-After, dead letters and
//! replay, 410 Gone.

use std::time::Duration;

use hookline_proto::v1;

use crate::support::*;

#[tokio::test]
async fn failed_attempts_are_retried_with_the_same_webhook_id_until_success() {
    let mut stack = Stack::start().await;
    stack.receiver.statuses("/flaky", &[500, 503, 200]);
    let (sub, secret) = stack.subscribe("/flaky", |s| s.retry_policy = Some(quick_retries(3))).await;
    let event_id = stack.publish("a", r#"{"n":1}"#).await;

    let got = stack.wait_received("/flaky", 3).await;
    assert!(got.iter().all(|r| r.headers["webhook-id"] == event_id), "stable across retries");
    assert!(got.iter().all(|r| verified_by_reference(&secret, r)), "every attempt is signed afresh");
    assert!(got[1].at - got[0].at >= Duration::from_millis(900), "the schedule's 1 s delay is kept");

    let done = stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 1).await;
    assert_eq!(done[0].attempt_count, 3);
    let attempts = stack
        .deliveries
        .list_attempts(v1::ListAttemptsRequest { delivery_id: done[0].id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .attempts;
    let codes: Vec<_> = attempts.iter().map(|a| (a.attempt_number, a.response_status_code)).collect();
    assert_eq!(codes, [(1, 500), (2, 503), (3, 200)]);
    assert_eq!(attempts[0].error, v1::AttemptError::HttpStatus as i32);
    assert_eq!(attempts[0].response_body, b"answered 500");

    let summary = stack
        .deliveries
        .get_delivery_summary(v1::GetDeliverySummaryRequest { subscription_id: sub.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((summary.attempts, summary.succeeded, summary.failed_attempts), (3, 1, 2));
    assert_eq!(summary.consecutive_failures, 0);
}

#[tokio::test]
async fn retry_after_pushes_the_next_attempt_back() {
    let mut stack = Stack::start().await;
    stack
        .receiver
        .set("/busy", Behaviour { statuses: [429, 200].into(), retry_after: Some("3".into()), ..Default::default() });
    stack.subscribe("/busy", |s| s.retry_policy = Some(quick_retries(2))).await;
    stack.publish("a", "{}").await;
    let got = stack.wait_received("/busy", 2).await;
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_millis(2900), "Retry-After: 3 beats the 1 s schedule: {gap:?}");
}

#[tokio::test]
async fn the_last_failure_dead_letters_and_replay_delivers_it() {
    let mut stack = Stack::start().await;
    stack.receiver.statuses("/down", &[500]);
    let (sub, _) = stack.subscribe("/down", |s| s.retry_policy = Some(quick_retries(1))).await;
    let event_id = stack.publish("a", "{}").await;
    let dead = stack.wait_status(&sub, v1::DeliveryStatus::DeadLettered, 1).await;
    assert_eq!((dead[0].attempt_count, dead[0].event_id.as_str()), (2, event_id.as_str()));
    let listed = stack
        .deliveries
        .list_deliveries(v1::ListDeliveriesRequest {
            subscription_id: sub.clone(),
            status: v1::DeliveryStatus::DeadLettered as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.deliveries.len(), 1);

    stack.receiver.statuses("/down", &[200]);
    let mut progress = stack
        .deliveries
        .replay_deliveries(v1::ReplayDeliveriesRequest { subscription_id: sub.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(p) = progress.message().await.unwrap() {
        last = Some(p);
    }
    let last = last.unwrap();
    assert!(last.done && last.replayed == 1, "{last:?}");
    let done = stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 1).await;
    assert_eq!(done[0].attempt_count, 3);
    assert_eq!(done[0].last_attempt.as_ref().unwrap().trigger, v1::AttemptTrigger::Replay as i32);
    assert_eq!(stack.receiver.received("/down").len(), 3);
}

#[tokio::test]
async fn retry_delivery_sends_it_again_now() {
    let mut stack = Stack::start().await;
    let (sub, _) = stack.subscribe("/once", |_| {}).await;
    stack.publish("a", "{}").await;
    let done = stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 1).await;
    let attempts_of = |stack: &Stack, id: String| {
        let mut client = stack.deliveries.clone();
        async move {
            let request = v1::ListAttemptsRequest { delivery_id: id, ..Default::default() };
            let attempts = client.list_attempts(request).await.unwrap().into_inner().attempts;
            attempts.iter().map(|a| (a.attempt_number, a.trigger)).collect::<Vec<_>>()
        }
    };
    let scheduled = v1::AttemptTrigger::Scheduled as i32;
    assert_eq!(attempts_of(&stack, done[0].id.clone()).await, [(1, scheduled)], "a first-time success is logged");
    let again = stack
        .deliveries
        .retry_delivery(v1::RetryDeliveryRequest { id: done[0].id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.status, v1::DeliveryStatus::Pending as i32);
    let got = stack.wait_received("/once", 2).await;
    assert_eq!(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);
    eventually(WAIT, || {
        let mut client = stack.deliveries.clone();
        let id = done[0].id.clone();
        async move {
            let d = client.get_delivery(v1::GetDeliveryRequest { id }).await.unwrap().into_inner();
            d.attempt_count == 2 && d.last_attempt.is_some_and(|a| a.trigger == v1::AttemptTrigger::ManualRetry as i32)
        }
    })
    .await;
    let manual = v1::AttemptTrigger::ManualRetry as i32;
    assert_eq!(attempts_of(&stack, done[0].id.clone()).await, [(1, scheduled), (2, manual)], "both attempts logged");
    // Listed once still, as it is now (a first-time success is kept in its
    // tenant's log; the retry gave it a record, which the listing reads).
    let listed = stack.deliveries_of(&sub).await;
    assert_eq!(listed.iter().map(|d| (d.id.clone(), d.attempt_count)).collect::<Vec<_>>(), [(done[0].id.clone(), 2)]);
}

#[tokio::test]
async fn gone_disables_the_subscription_after_one_attempt() {
    let mut stack = Stack::start().await;
    stack.receiver.statuses("/gone", &[410]);
    let (sub, _) = stack.subscribe("/gone", |s| s.retry_policy = Some(quick_retries(5))).await;
    stack.publish("a", "{}").await;
    stack.wait_status(&sub, v1::DeliveryStatus::DeadLettered, 1).await;
    stack
        .wait_subscription(&sub, |s| {
            s.state == v1::SubscriptionState::Disabled as i32
                && s.state_reason.as_ref().is_some_and(|r| r.cause == v1::StateCause::Gone as i32)
        })
        .await;
    assert_eq!(stack.receiver.received("/gone").len(), 1, "no retries after 410");
}
