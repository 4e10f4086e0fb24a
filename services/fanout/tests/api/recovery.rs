//! Crashes and lost state: a consumer that read and died, a deleted
//! stream, a Redis restarted empty.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookline_domain::EventId;
use hookline_proto::v1;
use hookline_queue::{
    ConsumerGroup, EventEntry, FANOUT_GROUP, FanoutItem, FanoutOutcome, FanoutState, Partitions, PublishArgs,
    PublishItem, PublishOutcome, PublishReply, RecordMeta, Scripts,
};

use crate::support::*;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test]
async fn an_entry_read_by_a_consumer_that_died_is_fanned_out_once_by_another() {
    let mut stack = Stack::without_fanout().await;
    let sub = stack.subscribe(subscription("https://e.com/a", &["order.paid"])).await;
    let keys = Partitions::new("hookline", 1).get(0);
    let scripts = Scripts::default();
    let mut conn = stack.redis.connection().await;

    // Publish exactly as the service does, then read the entry as a
    // consumer that crashes before acknowledging it.
    let doomed = ConsumerGroup::new(keys.events(), FANOUT_GROUP, "doomed");
    doomed.ensure(&mut conn).await.unwrap();
    let entry = event_entry(b"{}");
    let record = RecordMeta {
        occurred_ms: now_ms(),
        idempotency_key: String::new(),
        variants: Default::default(),
        fanout: FanoutState::Pending,
    };
    let args = PublishArgs { idempotency_window_secs: 60, retention_secs: 600 };
    let mut pipe = redis::pipe();
    scripts.load(&mut pipe);
    scripts.publish(&mut pipe, &keys, &args, &[PublishItem { entry: &entry, record: &record }]);
    let (reply,): (PublishReply,) = pipe.query_async(&mut conn).await.unwrap();
    let outcome = reply.outcomes([entry.event_id.as_str()]);
    assert_eq!(outcome, [PublishOutcome::Published(entry.event_id.clone())]);
    let taken = doomed.read_new(&mut conn, 10, Duration::from_millis(100)).await.unwrap();
    assert_eq!(taken.len(), 1);

    // A live fanout claims it once it has been idle for claim_idle (1 s).
    stack.start_fanout(|c| c).await;
    let tasks = stack.wait_tasks(1).await;
    assert_eq!(
        (tasks[0].event_id.as_str(), tasks[0].subscription_id.as_str()),
        (entry.event_id.as_str(), sub.as_str())
    );

    // The doomed consumer comes back and finishes its work late: its
    // fan-out step must not enqueue a second time.
    let mut pipe = redis::pipe();
    scripts.load(&mut pipe);
    let tasks = [("dlv_late".to_owned(), sub.clone())];
    let item = FanoutItem { entry_id: &taken[0].id, event: &entry, traceparent: &entry.traceparent, tasks: &tasks };
    scripts.fanout(&mut pipe, &keys, FANOUT_GROUP, now_ms(), &[item]);
    let (late,): (Vec<FanoutOutcome>,) = pipe.query_async(&mut conn).await.unwrap();
    assert_eq!(late, vec![FanoutOutcome::AlreadyDone]);
    stack.wait_tasks(1).await;
    let pending: redis::streams::StreamPendingReply =
        redis::cmd("XPENDING").arg(keys.events()).arg(FANOUT_GROUP).query_async(&mut conn).await.unwrap();
    assert_eq!(pending.count(), 0, "nothing left pending");
}

#[tokio::test]
async fn a_deleted_events_stream_is_recreated_without_a_restart() {
    let mut stack = Stack::start().await;
    let sub = stack.subscribe(subscription("https://e.com/a", &["*"])).await;
    let mut events = stack.events(ACME).await;
    publish(&mut events, event("a", "{}")).await;
    stack.wait_tasks(1).await;

    let keys = Partitions::new("hookline", 1).get(0);
    let mut conn = stack.redis.connection().await;
    let deleted: i64 = redis::cmd("DEL").arg(keys.events()).query_async(&mut conn).await.unwrap();
    assert_eq!(deleted, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let second = publish(&mut events, event("a", "{}")).await;
    stack.wait_tasks(2).await;
    assert_eq!(stack.receivers(&second.event_id).await, vec![sub]);
}

#[tokio::test]
async fn fanout_recovers_by_itself_when_redis_restarts_empty() {
    let mut stack = Stack::start().await;
    stack.subscribe(subscription("https://e.com/a", &["*"])).await;
    stack.redis.restart();
    // Redis lost everything, the subscription too: make a new one, once the
    // services answer again.
    let mut sub = None;
    for _ in 0..100 {
        match stack
            .subs
            .create_subscription(hookline_proto::v1::CreateSubscriptionRequest {
                subscription: Some(subscription("https://e.com/b", &["*"])),
                ..Default::default()
            })
            .await
        {
            Ok(r) => {
                sub = Some(r.into_inner().subscription.unwrap().id);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let sub = sub.expect("subscription service recovered");
    let mut events = stack.events(ACME).await;
    let mut published = None;
    for _ in 0..100 {
        match events.publish(event("a", "{}")).await {
            Ok(r) => {
                published = Some(r.into_inner().event_id);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let event_id = published.expect("publish recovered");
    eventually(WAIT, || async { stack.receivers(&event_id).await == vec![sub.clone()] }).await;
}

/// Puts an `order.paid` event of acme's on the events stream as Publish
/// would, without its record: the entry and its fields.
async fn add_entry(conn: &mut redis::aio::MultiplexedConnection, keys: &hookline_queue::PartitionKeys) -> EventEntry {
    let entry = event_entry(b"{}");
    let fields = entry.fields();
    let fields: Vec<(&str, &[u8])> = fields.iter().map(|(k, v)| (*k, v.as_ref())).collect();
    let _: String = redis::cmd("XADD").arg(keys.events()).arg("*").arg(&fields).query_async(conn).await.unwrap();
    entry
}

fn event_entry(payload: &[u8]) -> EventEntry {
    EventEntry {
        event_id: EventId::generate().to_string(),
        tenant: "acme".into(),
        event_type: "order.paid".into(),
        payload: payload.to_vec(),
        attributes: Default::default(),
        traceparent: String::new(),
        fence: hookline_queue::Fence::default(),
        published_ms: now_ms(),
    }
}

/// An event published by a build that kept its record as a hash, still in
/// the stream when this build takes over (a rolling upgrade): it is fanned
/// out, its record completed, and GetEvent shows it.
#[tokio::test]
async fn an_event_recorded_as_a_hash_by_an_older_build_is_fanned_out_and_shown() {
    let mut stack = Stack::without_fanout().await;
    let sub = stack.subscribe(subscription("https://e.com/a", &["order.paid"])).await;
    let keys = Partitions::new("hookline", 1).get(0);
    let mut conn = stack.redis.connection().await;
    // What the older publish.lua wrote: the entry, in format 1 (a field
    // each), and a hash of its fields plus the record's own.
    let entry = event_entry(br#"{"n":1}"#);
    let published = entry.published_ms.to_string();
    let fields = [
        ("v", "1"),
        ("id", &entry.event_id),
        ("t", &entry.tenant),
        ("et", &entry.event_type),
        ("p", r#"{"n":1}"#),
        ("a", ""),
        ("tp", ""),
        ("f", "0"),
        ("ts", &published),
    ];
    let _: String = redis::cmd("XADD").arg(keys.events()).arg("*").arg(&fields).query_async(&mut conn).await.unwrap();
    let _: i64 = redis::cmd("HSET")
        .arg(keys.event(&entry.event_id))
        .arg(&fields)
        .arg(&[("st", "pending"), ("oa", "1700000000000"), ("ik", "order-7"), ("pv", "")])
        .query_async(&mut conn)
        .await
        .unwrap();

    stack.start_fanout(|c| c).await;
    let tasks = stack.wait_tasks(1).await;
    assert_eq!(tasks[0].subscription_id, sub);
    let mut events = stack.events(ACME).await;
    let got = events.get_event(v1::GetEventRequest { id: entry.event_id.clone() }).await.unwrap().into_inner();
    assert_eq!(got.fanout_state, v1::FanoutState::Done as i32);
    assert_eq!((got.matched_subscriptions, got.idempotency_key.as_str()), (1, "order-7"));
    assert_eq!(got.payload, br#"{"n":1}"#);
}

/// An event whose record expired before it was fanned out (fan-out lagging
/// past the event retention) is still fanned out from its stream entry,
/// and its record is not brought back as a bare fan-out header.
#[tokio::test]
async fn an_event_whose_record_is_gone_is_fanned_out_without_recreating_it() {
    let mut stack = Stack::without_fanout().await;
    let sub = stack.subscribe(subscription("https://e.com/a", &["order.paid"])).await;
    let keys = Partitions::new("hookline", 1).get(0);
    let mut conn = stack.redis.connection().await;
    // The stream entry, and no record.
    let entry = add_entry(&mut conn, &keys).await;

    stack.start_fanout(|c| c).await;
    // fanout.lua enqueues the task and settles the record in one step.
    let tasks = stack.wait_tasks(1).await;
    assert_eq!(tasks[0].subscription_id, sub);
    let exists: i64 = redis::cmd("EXISTS").arg(keys.event(&entry.event_id)).query_async(&mut conn).await.unwrap();
    assert_eq!(exists, 0, "the record stays gone");
}

/// An event entry of a newer format than this build reads (a newer build's
/// Publish during a rolling upgrade) is left pending for a newer build,
/// not acknowledged and skipped; the entries after it are fanned out.
#[tokio::test]
async fn an_event_entry_of_a_newer_format_is_left_pending_and_the_rest_fanned_out() {
    let mut stack = Stack::without_fanout().await;
    let sub = stack.subscribe(subscription("https://e.com/a", &["order.paid"])).await;
    let keys = Partitions::new("hookline", 1).get(0);
    let mut conn = stack.redis.connection().await;
    let newer = hookline_testkit::add_newer_format_entry(&mut conn, &keys.events()).await;
    let entry = add_entry(&mut conn, &keys).await;

    stack.start_fanout(|c| c).await;
    // Read, and still pending: the newer entry alone (the other one is
    // fanned out and acknowledged; nothing is left unread).
    let group = ConsumerGroup::new(keys.events(), FANOUT_GROUP, "test");
    eventually(WAIT, || async {
        let mut conn = conn.clone();
        hookline_testkit::pending_entries(&mut conn, &keys.events(), FANOUT_GROUP).await == (1, Some(newer.clone()))
            && group.backlog(&mut conn).await.unwrap() == 1
    })
    .await;
    let tasks = stack.tasks().await;
    assert_eq!(tasks.len(), 1, "{tasks:#?}");
    assert_eq!(
        (tasks[0].event_id.as_str(), tasks[0].subscription_id.as_str()),
        (entry.event_id.as_str(), sub.as_str())
    );
}
