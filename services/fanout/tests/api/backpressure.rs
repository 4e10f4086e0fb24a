//! Fan-out slows down instead of growing Redis without bound.

use std::time::Duration;

use hookline_proto::v1;
use hookline_queue::{ConsumerGroup, DELIVERY_GROUP, Partitions};

use crate::support::*;

#[tokio::test]
async fn fan_out_waits_while_the_delivery_backlog_is_at_its_limit() {
    let mut stack = Stack::without_fanout().await;
    stack.subscribe(subscription("https://e.com/a", &["*"])).await;
    let admin = hookline_testkit::free_port();
    stack
        .start_fanout(|c| hookline_fanout::Config {
            max_delivery_backlog: 3,
            batch_size: 1,
            admin_addr: Some(([127, 0, 0, 1], admin).into()),
            ..c
        })
        .await;
    let mut events = stack.events(ACME).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(publish(&mut events, event("a", &format!("{{\"n\":{i}}}"))).await.event_id);
    }
    // Publish kept answering; fan-out stopped at the limit, and stays
    // stopped: once it has checked the backlog and waited twice more
    // (its own count of waits), there are still three tasks.
    eventually(WAIT, || async { stack.tasks().await.len() >= 3 }).await;
    let waited = backlog_waits(admin).await;
    eventually(WAIT, || async { backlog_waits(admin).await >= waited + 2 }).await;
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

/// Fan-out's count of steps that waited for the delivery backlog, from its
/// `/metrics` (0 before the first).
async fn backlog_waits(admin: u16) -> u64 {
    let Ok(reply) = reqwest::get(format!("http://127.0.0.1:{admin}/metrics")).await else { return 0 };
    let text = reply.text().await.unwrap_or_default();
    text.lines()
        .filter(|line| line.starts_with("hookline_fanout_backlog_waits_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
