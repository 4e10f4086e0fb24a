//! Faults a production system meets, on the real binaries: processes
//! killed without warning at random points, receivers failing for a while,
//! receivers that hang. Every test ends with every event delivered to every
//! matching subscription, and reports duplicates.

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashSet,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hookline_e2e::*;
use hookline_proto::v1::{self, event_service_client::EventServiceClient};
use hookline_testkit::{RedisServer, eventually};

const DRAIN: Duration = Duration::from_secs(90);

fn quick_retries(attempts: usize) -> Option<v1::RetryPolicy> {
    Some(v1::RetryPolicy {
        schedule: vec![hookline_proto::Duration { seconds: 1, nanos: 0 }; attempts],
        ..Default::default()
    })
}

/// Publishes events `range` in batches of 50; the event ids.
async fn publish(stack: &Stack, range: std::ops::Range<usize>) -> Vec<String> {
    let mut events = stack.client(stack.fanout.addr(), EventServiceClient::with_interceptor).await;
    let mut ids = Vec::new();
    let all: Vec<usize> = range.collect();
    for chunk in all.chunks(50) {
        let batch = v1::PublishBatchRequest { events: chunk.iter().map(|n| publish_request(*n)).collect() };
        for result in events.publish_batch(batch).await.unwrap().into_inner().results {
            match result.result.unwrap() {
                v1::publish_batch_result::Result::Published(p) => ids.push(p.event_id),
                v1::publish_batch_result::Result::Error(e) => panic!("publish failed: {e:?}"),
            }
        }
    }
    ids
}

/// Waits until every receiver has accepted (2xx) every event; the
/// duplicates (events accepted more than once) each got.
async fn all_delivered(receivers: &[Receiver], expected: &[String]) -> Vec<usize> {
    eventually(DRAIN, || async {
        receivers.iter().all(|r| {
            let got: HashSet<String> = r.delivered_ids().into_iter().collect();
            expected.iter().all(|id| got.contains(id))
        })
    })
    .await;
    receivers.iter().map(|r| r.delivered_ids().len() - expected.len()).collect()
}

#[tokio::test]
async fn kill_9_of_fanout_and_of_delivery_at_random_points_loses_no_delivery() {
    let mut stack = Stack::start().await;
    let mut receivers = Vec::new();
    for _ in 0..3 {
        let (receiver, port) = Receiver::start(&[200], Duration::from_millis(1)).await;
        stack.subscribe(format!("http://127.0.0.1:{port}/hook"), None, 16).await;
        receivers.push(receiver);
    }
    let total = 2_000;
    // Random kill points (printed, so a failure can be replayed).
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos() as usize;
    let fanout_kill = 200 + seed % 600;
    let delivery_kill = fanout_kill + 200 + (seed / 1000) % 600;
    println!("{total} events; fanout killed after {fanout_kill}, delivery after {delivery_kill}");

    let mut expected = publish(&stack, 0..fanout_kill).await;
    stack.fanout.kill9();
    stack.fanout = stack.fanout.restart();
    stack.fanout.serving().await;
    expected.extend(publish(&stack, fanout_kill..delivery_kill).await);
    let delivered = receivers[0].ids().len();
    stack.delivery.kill9();
    stack.delivery = stack.delivery.restart();
    stack.delivery.serving().await;
    expected.extend(publish(&stack, delivery_kill..total).await);
    assert!(delivered < delivery_kill * 3, "the delivery kill came with work outstanding");

    let duplicates = all_delivered(&receivers, &expected).await;
    println!("kill -9: {total} events x 3 subscriptions delivered; duplicates per subscription {duplicates:?}");
}

#[tokio::test]
async fn a_receiver_failing_for_a_while_gets_everything_once_it_recovers() {
    // No auto-pause, and short circuit-breaker cooldowns: while it fails,
    // the open circuit lets only a probe through now and then.
    let extra = [
        ("HOOKLINE_AUTO_PAUSE_AFTER", "0".to_owned()),
        ("HOOKLINE_BREAKER_COOLDOWN", "1s".to_owned()),
        ("HOOKLINE_BREAKER_MAX_COOLDOWN", "2s".to_owned()),
    ];
    let stack = Stack::with_env(RedisServer::start(), &extra).await;
    let mut script = vec![500; 30];
    script.push(200);
    let (failing, port) = Receiver::start(&script, Duration::ZERO).await;
    stack.subscribe(format!("http://127.0.0.1:{port}/hook"), quick_retries(20), 0).await;
    let expected = publish(&stack, 0..300).await;

    let duplicates = all_delivered(std::slice::from_ref(&failing), &expected).await;
    assert_eq!(failing.failed_requests(), 30, "every failure was answered, then retried");
    println!("500 x30 then 200: 300 events delivered after 30 failed requests; duplicates {}", duplicates[0]);
}

/// An endpoint down long enough for its circuit's cooldown to have grown
/// (here set to a minute from the start) gets its deliveries within
/// seconds of recovering: open circuits probe every `breaker_probe_every`
/// (5 s by default), and the probe that succeeds brings every deferred
/// delivery back. Before, they waited out the cooldown (~50 s here, up to
/// `breaker_max_cooldown`, 5 min, in a long outage).
#[tokio::test]
async fn a_recovered_endpoint_gets_its_deliveries_within_seconds_however_long_the_cooldown() {
    let extra = [("HOOKLINE_AUTO_PAUSE_AFTER", "0".to_owned()), ("HOOKLINE_BREAKER_COOLDOWN", "60s".to_owned())];
    let stack = Stack::with_env(RedisServer::start(), &extra).await;
    let (receiver, port) = Receiver::start(&[500], Duration::ZERO).await;
    stack.subscribe(format!("http://127.0.0.1:{port}/hook"), quick_retries(20), 0).await;
    let expected = publish(&stack, 0..200).await;
    // The circuit opens after 5 failures; the first attempts in flight
    // fail too, and their retries (1 s later) are deferred, not sent.
    let deferred = |metrics: String| {
        let line = metrics.lines().find(|l| l.starts_with("hookline_deliveries_parked_total{reason=\"circuit_open\"}"));
        line.and_then(|l| l.rsplit(' ').next()).and_then(|n| n.parse::<f64>().ok()).unwrap_or(0.0)
    };
    eventually(DRAIN, || async { deferred(stack.delivery.metrics().await) >= 150.0 }).await;
    let opened = std::time::Instant::now();
    // Then only probes reach it, every 5 s although the cooldown is 60 s.
    let before_probe = receiver.failed_requests();
    eventually(DRAIN, || async { receiver.failed_requests() > before_probe }).await;
    *receiver.statuses() = vec![200];
    let recovered = std::time::Instant::now();
    let duplicates = all_delivered(std::slice::from_ref(&receiver), &expected).await;
    let took = recovered.elapsed();
    println!(
        "endpoint down {:.1} s with its circuit open (cooldown 60 s), then healthy: all 200 delivered {:.1} s after \
         it recovered; duplicates {}",
        (recovered - opened).as_secs_f64(),
        took.as_secs_f64(),
        duplicates[0]
    );
    assert!(took < Duration::from_secs(30), "deliveries waited out the cooldown: {took:?}");
}

/// The settings these recovery figures are for: the defaults (the shared
/// environment of the e2e stack shortens them for the other tests).
fn default_takeover_settings() -> [(&'static str, String); 2] {
    [("HOOKLINE_CLAIM_IDLE", "90s".to_owned()), ("HOOKLINE_PARTITION_LEASE", "4s".to_owned())]
}

/// Two delivery replicas; one is killed with ~half the tasks in flight.
/// Its tasks are taken over once its liveness expires (a lease, 4 s), not
/// after `claim_idle` (90 s: before, the last delivery came 96 s after the
/// kill), and the live replica's own slow attempts are not taken from it.
#[tokio::test]
async fn a_killed_delivery_replicas_tasks_move_to_a_live_one_within_seconds() {
    let mut stack = Stack::with_env(RedisServer::start(), &default_takeover_settings()).await;
    let survivor = stack.delivery.sibling();
    survivor.serving().await;
    // Every request takes 2 s: the tasks are in the replicas' hands.
    let (receiver, port) = Receiver::start(&[200], Duration::from_secs(2)).await;
    stack.subscribe(format!("http://127.0.0.1:{port}/hook"), None, 1000).await;
    let expected = publish(&stack, 0..300).await;
    eventually(DRAIN, || async { receiver.arrived() >= 250 }).await;
    let unanswered = receiver.arrived().saturating_sub(receiver.ids().len());
    stack.delivery.kill9();
    let killed = std::time::Instant::now();
    let duplicates = all_delivered(std::slice::from_ref(&receiver), &expected).await;
    let took = killed.elapsed();
    println!(
        "kill -9 of one of two delivery replicas with {} requests unanswered: every delivery done {:.1} s after the kill \
         (the receiver answers in 2 s); duplicates {}",
        unanswered,
        took.as_secs_f64(),
        duplicates[0]
    );
    assert!(took < Duration::from_secs(45), "the dead replica's tasks waited for claim_idle: {took:?}");
}

/// Two fanout replicas (one owns the partition); the owner is killed.
/// The other takes the partition over when the owner's lease expires
/// (4 s by default) and fans out what was published meanwhile.
#[tokio::test]
async fn a_killed_fanout_owner_is_replaced_within_seconds() {
    let mut stack = Stack::with_env(RedisServer::start(), &default_takeover_settings()).await;
    let other = stack.fanout.sibling();
    other.serving().await;
    let (receiver, port) = Receiver::start(&[200], Duration::ZERO).await;
    stack.subscribe(format!("http://127.0.0.1:{port}/hook"), None, 0).await;
    let owns = |metrics: &str| metrics.contains("hookline_partitions_owned{group=\"fanout\"} 1");
    eventually(DRAIN, || async { owns(&stack.fanout.metrics().await) || owns(&other.metrics().await) }).await;
    let (mut owner, survivor) =
        if owns(&stack.fanout.metrics().await) { (stack.fanout, other) } else { (other, stack.fanout) };
    stack.fanout = survivor;
    owner.kill9();
    let killed = std::time::Instant::now();
    let expected = publish(&stack, 0..100).await;
    all_delivered(std::slice::from_ref(&receiver), &expected).await;
    let took = killed.elapsed();
    println!(
        "kill -9 of the fanout replica owning the partition: 100 events published after it delivered {:.1} s after the kill",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[tokio::test]
async fn a_hanging_receiver_does_not_hold_up_a_fast_one() {
    let stack = Stack::start().await;
    let (hanging, hanging_port) = Receiver::start(&[200], Duration::from_secs(600)).await;
    let (fast, fast_port) = Receiver::start(&[200], Duration::ZERO).await;
    let timeout = Some(hookline_proto::Duration { seconds: 2, nanos: 0 });
    for port in [hanging_port, fast_port] {
        let url = format!("http://127.0.0.1:{port}/hook");
        stack.subscribe_with(v1::Subscription { url, timeout, ..Default::default() }).await;
    }
    let expected = publish(&stack, 0..500).await;
    // Within DRAIN: were the fast receiver's deliveries queued behind the
    // hanging ones (2 s timeout each), 500 events would take many minutes.
    all_delivered(std::slice::from_ref(&fast), &expected).await;
    assert!(hanging.got.lock().unwrap().is_empty(), "the hanging receiver never finished a request");
}
