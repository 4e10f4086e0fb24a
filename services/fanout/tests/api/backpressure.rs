//! Fan-out slows down instead of growing Redis without bound.

use std::time::Duration;

use hookline_proto::v1;
use hookline_queue::{ConsumerGroup, DELIVERY_GROUP, Partitions};

use crate::support::*;

#[tokio::test]
async fn fan_out_waits_while_the_delivery_backlog_is_at_its_limit() {
    let mut stack = Stack::without_fanout().await;
    stack.subscribe(subscription("https://e.com/a", &["*"])).await;
    stack.start_fanout(|c| hookline_fanout::Config { max_delivery_backlog: 3, batch_size: 1, ..c }).await;
    let mut events = stack.events(ACME).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(publish(&mut events, event("a", &format!("{{\"n\":{i}}}"))).await.event_id);
    }
    // Publish kept answering; fan-out stopped at the limit (and stays
    // stopped: its group never drains here, so this one watches a while).
    eventually(WAIT, || async { stack.tasks().await.len() >= 3 }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stack.tasks().await.len(), 3);
    let last = events.get_event(v1::GetEventRequest { id: ids[9].clone() }).await.unwrap().into_inner();
    assert_eq!(last.fanout_state, v1::FanoutState::Pending as i32);

    // Delivery drains its stream: fan-out resumes until every event is out.
    let keys = Partitions::new("hookline", 1).get(0);
    let delivery = ConsumerGroup::new(keys.deliveries(), DELIVERY_GROUP, "test-delivery");
    let mut conn = stack.redis.connection().await;
    delivery.ensure(&mut conn).await.unwrap();
    eventually(WAIT, || {
        let delivery = delivery.clone();
        let mut conn = conn.clone();
        let stack = &stack;
        async move {
            let taken = delivery.read_new(&mut conn, 100, Duration::from_millis(50)).await.unwrap();
            for m in &taken {
                let _: i64 = redis::cmd("XACK")
                    .arg(&delivery.stream)
                    .arg(DELIVERY_GROUP)
                    .arg(&m.id)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
            stack.tasks().await.len() == 10
        }
    })
    .await;
}
