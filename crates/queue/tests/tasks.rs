//! The Lua that writes delivery tasks (`with_task_functions`, used by
//! fan-out and every delivery script) writes what `DeliveryTask::parse`
//! reads: one format, pinned here against a real Redis.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hookline_queue::{ConsumerGroup, DeliveryTask, Fence, with_task_functions};
use hookline_testkit::RedisServer;

#[tokio::test]
async fn lua_tasks_are_what_delivery_task_reads() {
    let redis = RedisServer::start();
    let mut conn = redis.connection().await;
    let group = ConsumerGroup::new("tasks".into(), "g", "me");
    group.ensure(&mut conn).await.unwrap();
    let script = redis::Script::new(&with_task_functions(
        r"
enqueue_task(KEYS[1], 'dlv_1', 'evt_1', 'sub_1', 'acme', 'order.paid', '00-tp-01', '1700000000000', '1', '',
  '7:01JLOG')
redis.call('HSET', KEYS[2], 'evt', 'evt_2', 'sub', 'sub_2', 't', 'acme', 'et', 'lead.won', 'tp', '', 'n', '2')
enqueue_from_record(KEYS[1], ARGV[1], 'dlv_2', '1700000000001', 'replay')
return enqueue_from_record(KEYS[1], ARGV[1], 'dlv_gone', '1', '') and 1 or 0
",
    ));
    let gone: i64 = script.key("tasks").key("record:dlv_2").arg("record:").invoke_async(&mut conn).await.unwrap();
    assert_eq!(gone, 0, "no record, no task");
    let read = group.read_new(&mut conn, 10, Duration::from_millis(10)).await.unwrap();
    let tasks: Vec<DeliveryTask> = read.iter().map(|m| DeliveryTask::parse(&m.id, &m.fields).unwrap()).collect();
    assert_eq!(
        tasks,
        [
            DeliveryTask {
                delivery_id: "dlv_1".into(),
                event_id: "evt_1".into(),
                subscription_id: "sub_1".into(),
                tenant: "acme".into(),
                event_type: "order.paid".into(),
                traceparent: "00-tp-01".into(),
                enqueued_ms: 1_700_000_000_000,
                attempt: 1,
                trigger: String::new(),
                fence: Fence::new("01JLOG", 7),
            },
            DeliveryTask {
                delivery_id: "dlv_2".into(),
                event_id: "evt_2".into(),
                subscription_id: "sub_2".into(),
                tenant: "acme".into(),
                event_type: "lead.won".into(),
                traceparent: String::new(),
                enqueued_ms: 1_700_000_000_001,
                attempt: 3,
                trigger: "replay".into(),
                fence: Fence::default(),
            },
        ]
    );
}
