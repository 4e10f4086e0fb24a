//! Taking over the work of a consumer that is gone, against a real Redis:
//! its pending entries move to a live consumer as soon as it is known to be
//! gone, a live consumer's entries stay where they are however old, and
//! the dead consumer leaves the group once it has nothing pending.

#![allow(clippy::unwrap_used)]

use std::{collections::BTreeSet, time::Duration};

use hookline_queue::ConsumerGroup;
use hookline_testkit::RedisServer;
use redis::streams::StreamPendingReply;

fn live(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

async fn pending_by_consumer(conn: &mut impl redis::aio::ConnectionLike) -> Vec<(String, usize)> {
    let reply: StreamPendingReply = redis::cmd("XPENDING").arg("s").arg("g").query_async(conn).await.unwrap();
    match reply {
        StreamPendingReply::Data(data) => {
            let mut rows: Vec<(String, usize)> = data.consumers.into_iter().map(|c| (c.name, c.pending)).collect();
            rows.sort();
            rows
        }
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn only_the_entries_of_consumers_that_are_gone_are_taken_over() {
    let redis = RedisServer::start();
    let mut conn = redis.connection().await;
    let group = |name: &str| ConsumerGroup::new("s".into(), "g", name);
    group("me").ensure(&mut conn).await.unwrap();
    for n in 0..5 {
        let _: String = redis::cmd("XADD").arg("s").arg("*").arg("n").arg(n).query_async(&mut conn).await.unwrap();
    }
    let block = Duration::from_millis(10);
    let dead = group("dead").read_new(&mut conn, 3, block).await.unwrap();
    let slow = group("slow").read_new(&mut conn, 2, block).await.unwrap();
    assert_eq!((dead.len(), slow.len()), (3, 2));

    let me = group("me");
    let fresh = me.take_over(&mut conn, &live(&["me", "slow"]), Duration::from_secs(3600), 10).await.unwrap();
    assert!(fresh.is_empty(), "entries read moments ago are not taken, even from a consumer that is gone");

    let taken = me.take_over(&mut conn, &live(&["me", "slow"]), Duration::ZERO, 2).await.unwrap();
    assert_eq!(taken.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), [dead[0].id.clone(), dead[1].id.clone()]);
    let rest = me.take_over(&mut conn, &live(&["me", "slow"]), Duration::ZERO, 10).await.unwrap();
    assert_eq!(rest.len(), 1, "then the rest, with their fields");
    assert_eq!(rest[0].id, dead[2].id);
    assert!(rest[0].fields.contains_key("n"));
    assert_eq!(
        pending_by_consumer(&mut conn).await,
        [("me".to_owned(), 3), ("slow".to_owned(), 2)],
        "the live consumer keeps its own, however old"
    );
    assert!(me.take_over(&mut conn, &live(&["me", "slow"]), Duration::ZERO, 10).await.unwrap().is_empty());

    if redis.is_redis_server() {
        let consumers: Vec<redis::Value> =
            redis::cmd("XINFO").arg("CONSUMERS").arg("s").arg("g").query_async(&mut conn).await.unwrap();
        let text = format!("{consumers:?}");
        assert!(!text.contains("\"dead\""), "the dead consumer left the group: {text}");
        assert!(text.contains("\"slow\""));
    }
}
