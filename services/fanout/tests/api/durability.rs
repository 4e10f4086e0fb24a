//! Opt-in durability (`durability.replicas`): a publish, or a subscription
//! change, is acknowledged only once a Redis replica holds it.

use std::time::Duration;

use hookline_proto::v1;
use hookline_queue::{Durability, Partitions};
use tonic::Code;

use crate::support::*;

const ONE_REPLICA: Durability = Durability { replicas: 1, timeout: Duration::from_millis(300) };

async fn holds(replica: &RedisServer, key: &str) -> bool {
    let mut conn = replica.connection().await;
    redis::cmd("EXISTS").arg(key).query_async::<u64>(&mut conn).await.unwrap() == 1
}

#[tokio::test]
async fn a_publish_is_acknowledged_only_once_a_replica_holds_it() {
    let primary = RedisServer::start_redis_server();
    let replica = RedisServer::start_replica_of(&primary);
    let mut stack = Stack::on(primary, |c| hookline_subscriptions::Config { durability: ONE_REPLICA, ..c }).await;
    stack.start_fanout(|c| hookline_fanout::Config { durability: ONE_REPLICA, ..c }).await;
    stack.subscribe(subscription("https://e.com/a", &["order.paid"])).await;
    let mut events = stack.events(ACME).await;
    let keyed = |key: &str| v1::PublishRequest { idempotency_key: key.into(), ..event("order.paid", "{}") };
    let record = |id: &str| Partitions::new("hookline", 1).get(0).event(id);

    // The answer comes once the replica has the event: it holds it now.
    let first = publish(&mut events, keyed("first")).await;
    assert!(holds(&replica, &record(&first.event_id)).await, "acknowledged but not on the replica");

    // A hung replica confirms nothing: the publish is not acknowledged,
    // and the caller is told why and what to do.
    replica.pause();
    let refused = events.publish(keyed("second")).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    for words in ["0 of the 1 replicas", "durability.replicas", "same idempotency_key"] {
        assert!(refused.message().contains(words), "`{}` should say `{words}`", refused.message());
    }
    // The event is on the primary all the same, and fan-out (which does
    // not wait for replicas, on a connection of its own) goes on.
    stack.wait_tasks(2).await;
    // A subscription change is held to the same rule.
    let change = stack
        .subs
        .create_subscription(v1::CreateSubscriptionRequest {
            subscription: Some(subscription("https://e.com/b", &["*"])),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(change.code(), Code::Unavailable, "{change:?}");
    assert!(change.message().contains("read it back"), "{}", change.message());

    // Back: the retry with the same key answers the stored event, now on
    // the replica too.
    replica.resume();
    let again = publish(&mut events, keyed("second")).await;
    assert!(again.duplicate, "the refused publish was stored on the primary: {again:?}");
    assert!(holds(&replica, &record(&again.event_id)).await);
    stack.wait_tasks(2).await;
}
