//! Per-subscription FIFO: the next delivery waits until the previous one
//! succeeded or was dead-lettered.

use hookline_proto::v1;

use crate::support::*;

fn body_numbers(stack: &Stack, path: &str) -> Vec<u64> {
    stack
        .receiver
        .received(path)
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["n"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn fifo_keeps_order_through_retries() {
    let mut stack = Stack::start().await;
    stack.receiver.statuses("/ordered", &[500, 503, 200]);
    let (sub, _) = stack
        .subscribe("/ordered", |s| {
            s.ordering = v1::OrderingMode::Fifo as i32;
            s.retry_policy = Some(quick_retries(3));
        })
        .await;
    for n in 0..5 {
        stack.publish("a", &format!("{{\"n\":{n}}}")).await;
    }
    stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 5).await;
    assert_eq!(body_numbers(&stack, "/ordered"), [0, 0, 0, 1, 2, 3, 4], "event 0's retries come before event 1");
}

#[tokio::test]
async fn fifo_moves_on_after_a_dead_letter() {
    let mut stack = Stack::start().await;
    stack.receiver.statuses("/strict", &[500, 500, 200]);
    let (sub, _) = stack
        .subscribe("/strict", |s| {
            s.ordering = v1::OrderingMode::Fifo as i32;
            s.retry_policy = Some(quick_retries(1));
        })
        .await;
    for n in 0..3 {
        stack.publish("a", &format!("{{\"n\":{n}}}")).await;
    }
    stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 2).await;
    stack.wait_status(&sub, v1::DeliveryStatus::DeadLettered, 1).await;
    assert_eq!(
        body_numbers(&stack, "/strict"),
        [0, 0, 1, 2],
        "0 is dead-lettered after 2 attempts, then 1 and 2 in order"
    );
}

#[tokio::test]
async fn without_fifo_later_events_overtake_a_retrying_one() {
    let mut stack = Stack::start().await;
    stack.receiver.statuses("/unordered", &[500, 200]);
    let (sub, _) = stack.subscribe("/unordered", |s| s.retry_policy = Some(quick_retries(3))).await;
    for n in 0..3 {
        stack.publish("a", &format!("{{\"n\":{n}}}")).await;
    }
    stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 3).await;
    let order = body_numbers(&stack, "/unordered");
    assert_eq!(order.last(), Some(&0), "the retried event arrives last: {order:?}");
}
