//! `kill -9` of a delivery process mid-flight loses nothing; Redis restarted
//! empty under running services sends nothing to what it no longer has.

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    time::Duration,
};

use hookline_proto::v1;

use crate::support::*;

fn spawn_binary(stack: &Stack, port: u16) -> Child {
    let env: HashMap<&str, String> = HashMap::from([
        ("HOOKLINE_LISTEN_ADDR", format!("127.0.0.1:{port}")),
        ("HOOKLINE_REDIS_URL", stack.redis.url()),
        ("HOOKLINE_SUBSCRIPTIONS_URL", stack.subscriptions.url()),
        ("HOOKLINE_FANOUT_URL", stack.fanout.url()),
        ("HOOKLINE_ALLOW_CIDRS", "[\"127.0.0.0/8\"]".into()),
        ("HOOKLINE_CLAIM_IDLE", "3s".into()),
        ("HOOKLINE_AUTH__TOKENS", format!("[{{token=\"{ACME}\",tenant=\"acme\"}}]")),
        ("HOOKLINE_AUTH__SERVICE_TOKEN", SERVICE.into()),
        ("HOOKLINE_LOG", "warn".into()),
    ]);
    Command::new(env!("CARGO_BIN_EXE_hookline-delivery"))
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the hookline-delivery binary")
}

#[tokio::test]
async fn kill_9_mid_flight_loses_no_delivery() {
    let mut stack = Stack::without_delivery().await;
    stack.receiver.set("/slow", Behaviour { delay: Duration::from_millis(200), ..Default::default() });
    let (sub, _) = stack.subscribe("/slow", |s| s.max_in_flight = 5).await;
    let mut first = spawn_binary(&stack, hookline_testkit::free_port());
    let mut expected = Vec::new();
    for i in 0..60 {
        expected.push(stack.publish("a", &format!("{{\"n\":{i}}}")).await);
    }
    // Let it deliver some, then kill it without warning.
    eventually(WAIT, || async { stack.receiver.received("/slow").len() >= 10 }).await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let at_kill = stack.receiver.received("/slow").len();
    assert!(at_kill < 60, "killed mid-run ({at_kill} received)");

    let mut second = spawn_binary(&stack, hookline_testkit::free_port());
    let result = async {
        eventually(Duration::from_secs(60), || async {
            let got: std::collections::HashSet<String> =
                stack.receiver.received("/slow").into_iter().map(|r| r.headers["webhook-id"].clone()).collect();
            expected.iter().all(|e| got.contains(e))
        })
        .await;
    };
    result.await;
    second.kill().unwrap();
    second.wait().unwrap();
    let received = stack.receiver.received("/slow").len();
    let duplicates = received - 60;
    // Reported, not asserted away: at-least-once means a few attempts that
    // were in flight at the kill are sent again.
    println!("kill -9: 60 events, {received} requests received, {duplicates} duplicates (in flight at the kill)");
    assert!(duplicates <= 5, "at most the in-flight limit is re-sent: {duplicates}");
    let _ = sub;
    let _ = v1::DeliveryStatus::Succeeded;
}

/// Redis restarted empty under running services, while the subscription
/// service is down (so the caches cannot reload yet): the subscriptions
/// went with Redis. Events published meanwhile wait; once the service is
/// back they are matched against what its store holds now (nothing, then
/// a new subscription), never against the caches of before: nothing goes
/// to the old endpoint with the old secret. (Before, fan-out matched them
/// against its old cache, revisions restarting at 1, and delivery sent
/// them.)
#[tokio::test]
async fn after_redis_restarts_empty_nothing_is_sent_to_subscriptions_it_no_longer_has() {
    let mut stack = Stack::start().await;
    stack.subscribe("/old", |_| {}).await;
    stack.publish("a", "{}").await;
    stack.wait_received("/old", 1).await;

    stack.stop_subscriptions().await;
    stack.redis.restart();
    let mut published = Vec::new();
    while published.len() < 5 {
        let req = v1::PublishRequest { event_type: "a".into(), payload: b"{}".to_vec(), ..Default::default() };
        match stack.events.publish(req).await {
            Ok(reply) => published.push(reply.into_inner().event_id),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    // Fan-out has read them and holds them: its cache is of the old log.
    let keys = hookline_queue::Partitions::new("hookline", 1).get(0);
    eventually(WAIT, || async {
        let mut conn = stack.redis.connection().await;
        let pending: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
            .arg(keys.events())
            .arg(hookline_queue::FANOUT_GROUP)
            .query_async(&mut conn)
            .await
            .unwrap_or(redis::streams::StreamPendingReply::Empty);
        pending.count() > 0
    })
    .await;
    for id in &published {
        let event = stack.events.get_event(v1::GetEventRequest { id: id.clone() }).await.unwrap().into_inner();
        assert_eq!(event.fanout_state, v1::FanoutState::Pending as i32, "fanned out with the cache of before");
    }
    stack.start_subscriptions_again().await;
    for id in &published {
        let id = id.clone();
        eventually(WAIT, || {
            let (mut events, id) = (stack.events.clone(), id.clone());
            async move {
                let event = events.get_event(v1::GetEventRequest { id }).await.map(|r| r.into_inner());
                event.is_ok_and(|e| e.fanout_state == v1::FanoutState::Done as i32)
            }
        })
        .await;
        let event = stack.events.get_event(v1::GetEventRequest { id: id.clone() }).await.unwrap().into_inner();
        assert_eq!(event.matched_subscriptions, 0, "matched against the subscriptions of before the restart");
    }
    // A new subscription gets what comes next.
    stack.subscribe("/new", |_| {}).await;
    stack.publish("a", "{}").await;
    stack.wait_received("/new", 1).await;
    assert_eq!(stack.receiver.received("/old").len(), 1, "only the event of before the restart");
}

/// Delivery's watch cut off while fan-out's goes on (each watching its own
/// subscription service on the same Redis): a task for a subscription
/// delivery's cache has not seen waits in the retry set (`cache_behind`),
/// is never cancelled on a guess, and goes once the watch is back.
#[tokio::test]
async fn a_subscription_the_delivery_cache_has_not_seen_is_waited_for_not_cancelled() {
    let mut stack = Stack::start().await;
    let config = subscriptions_config(&stack.redis);
    let other = Running::start(|l, stop| hookline_subscriptions::serve(config, l, stop)).await;
    other.wait_serving().await;
    stack.move_fanout_to(&other).await;
    stack.stop_subscriptions().await;
    let (sub, _) = stack.subscribe("/late", |_| {}).await;
    stack.publish("a", "{}").await;

    // Delivery waits for its cache (5 s for the task's fence, 5 s for the
    // log's position), then puts the task back to wait, as it is (in the
    // deferred set, or on the stream again once due: it goes round until
    // the cache catches up), not cancelled: the old routing cancelled it
    // here, which would have given it a record.
    let keys = hookline_queue::Partitions::new("hookline", 1).get(0);
    let conn = stack.redis.connection().await;
    let deferred = || async {
        let mut conn = conn.clone();
        let tasks: Vec<String> =
            redis::cmd("ZRANGE").arg(keys.deferred()).arg(0).arg(-1).query_async(&mut conn).await.unwrap();
        tasks.iter().filter(|task| task.contains(&sub)).count()
    };
    eventually(Duration::from_secs(30), || async { deferred().await == 1 }).await;
    let listed = || async {
        let mut conn = conn.clone();
        let log = hookline_queue::DeliveryLog::of_subscription(&keys, "acme", &sub);
        let everything = hookline_queue::TimeRange { start_ms: 0, end_ms: u64::MAX / 2 };
        log.newer(&mut conn, everything, None, 10).await.unwrap().items
    };
    assert!(listed().await.is_empty(), "a delivery waiting for the cache has no record (cancelled or other)");
    assert!(stack.receiver.received("/late").is_empty());

    stack.start_subscriptions_again().await;
    eventually(Duration::from_secs(30), || async { !stack.receiver.received("/late").is_empty() }).await;
    // Its first attempt succeeded: it is listed as such, once.
    eventually(WAIT, || async {
        let items = listed().await;
        items.len() == 1 && items[0].finished.as_ref().is_some_and(|f| f.status_code == 200)
    })
    .await;
}

/// Two live delivery replicas (`claim_idle` 3 s) whose watches are cut
/// off while fan-out's goes on: the tasks of a new subscription wait for
/// the caches to catch up, their idle clocks (started when they were read)
/// running past `claim_idle`, so the other replica claims them meanwhile.
/// When the watches come back (after 3.5 s, inside the 5 s fence wait) the
/// task is sent once: a replica holding a task with too little time left
/// before its claim leaves it to that claim, and a request is cut 1 s
/// before it. The receiver (1 s a request) sees no message twice at once.
#[tokio::test]
async fn tasks_held_past_their_claim_are_never_sent_twice_at_once() {
    let settings = |c: hookline_delivery::Config| hookline_delivery::Config { claim_idle: Duration::from_secs(3), ..c };
    let mut stack = Stack::start_with(settings).await;
    let second = settings(delivery_config(&stack.redis, &stack.subscriptions, &stack.fanout));
    let second = Running::start(|l, stop| hookline_delivery::serve(second, l, stop)).await;
    second.wait_serving().await;
    let config = subscriptions_config(&stack.redis);
    let other = Running::start(|l, stop| hookline_subscriptions::serve(config, l, stop)).await;
    other.wait_serving().await;
    stack.move_fanout_to(&other).await;
    stack.stop_subscriptions().await;

    stack.receiver.set("/slow", crate::receiver::Behaviour { delay: Duration::from_secs(1), ..Default::default() });
    // A cut attempt's retry comes long after the test.
    let later =
        v1::RetryPolicy { schedule: vec![hookline_proto::Duration { seconds: 60, nanos: 0 }], ..Default::default() };
    stack.subscribe("/slow", |s| s.retry_policy = Some(later)).await;
    let mut events = Vec::new();
    for n in 0..10 {
        events.push(stack.publish("a", &format!("{{\"n\":{n}}}")).await);
    }
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    stack.start_subscriptions_again().await;

    let arrived = |stack: &Stack| -> std::collections::HashSet<String> {
        stack.receiver.received("/slow").iter().filter_map(|r| r.headers.get("webhook-id").cloned()).collect()
    };
    eventually(Duration::from_secs(60), || async { events.iter().all(|id| arrived(&stack).contains(id)) }).await;
    assert_eq!(stack.receiver.max_concurrent_per_message(), 1, "an event was being sent twice at once");
}
