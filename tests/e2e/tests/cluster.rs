//! hookline on a Redis Cluster: the same binaries as on one Redis, chosen
//! by the URL alone (`redis+cluster://…`), with two replicas each of
//! fanout and delivery sharing the partitions out through leases (both
//! in exclusive ownership here; delivery's default, shared, is what the
//! other e2e tests run). One replica
//! of each is killed (`kill -9`) mid-run and not restarted: its partitions
//! and pending entries are taken over, and every event still reaches every
//! matching subscription. A second test runs every delivery state step
//! (retry, dead letter, replay, hold, FIFO, rate limit) on a cluster.

#![allow(clippy::unwrap_used)]

use std::{collections::HashSet, net::SocketAddr, time::Duration};

use hookline_auth::BearerToken;
use hookline_e2e::*;
use hookline_proto::v1::{
    self, delivery_service_client::DeliveryServiceClient, event_service_client::EventServiceClient,
    subscription_service_client::SubscriptionServiceClient,
};
use hookline_testkit::{RedisCluster, eventually, free_port};
use tonic::transport::Channel;

const TENANTS: usize = 6;
const PARTITIONS: u16 = 6;
const EVENTS_PER_TENANT: usize = 400;
const DRAIN: Duration = Duration::from_secs(120);

fn token(tenant: usize) -> String {
    format!("cluster-tenant-token-{tenant:04}")
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap()
}

/// `hookline_partitions_owned{group=…}` as the replica's admin port serves it.
async fn partitions_owned(process: &Process, group: &str) -> Option<u64> {
    let text = reqwest::get(format!("{}/metrics", process.admin_url())).await.ok()?.text().await.ok()?;
    let prefix = format!("hookline_partitions_owned{{group=\"{group}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
}

/// Waits until the replicas' owned partitions add up to all of them and
/// each live replica has its fair share.
async fn shared_fairly(replicas: &[&Process], group: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut counts = Vec::new();
        for replica in replicas {
            counts.push(partitions_owned(replica, group).await);
        }
        let fair = u64::from(PARTITIONS) / replicas.len() as u64;
        let owned: Vec<u64> = counts.iter().map(|c| c.unwrap_or(0)).collect();
        if owned.iter().sum::<u64>() == u64::from(PARTITIONS) && owned.iter().all(|c| *c >= fair) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{group} partitions owned per replica: {counts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_three_node_cluster_with_replicas_killed_mid_run_delivers_everything() {
    let cluster = RedisCluster::start();
    let tokens: Vec<String> =
        (0..TENANTS).map(|t| format!("{{token=\"{}\",tenant=\"tenant-{t}\"}}", token(t))).collect();
    let extra = [
        ("HOOKLINE_PARTITIONS", PARTITIONS.to_string()),
        ("HOOKLINE_PARTITION_OWNERSHIP", "exclusive".into()),
        ("HOOKLINE_AUTH__TOKENS", format!("[{}]", tokens.join(","))),
    ];
    let (subs_port, fanout_ports, delivery_ports) =
        (free_port(), [free_port(), free_port()], [free_port(), free_port()]);
    let env = |port| service_env(&cluster.url(), port, subs_port, fanout_ports[0], &extra);
    let subscriptions = Process::start("hookline-subscriptions", env(subs_port));
    subscriptions.serving().await;
    let mut fanouts: Vec<Process> = fanout_ports.iter().map(|p| Process::start("hookline-fanout", env(*p))).collect();
    let mut deliveries: Vec<Process> =
        delivery_ports.iter().map(|p| Process::start("hookline-delivery", env(*p))).collect();
    for process in fanouts.iter().chain(&deliveries) {
        process.serving().await;
    }
    shared_fairly(&[&fanouts[0], &fanouts[1]], "fanout").await;
    shared_fairly(&[&deliveries[0], &deliveries[1]], "delivery").await;

    // Two subscriptions per tenant, each with its own receiver, slow
    // enough that deliveries are still in flight when replicas die.
    let mut receivers = Vec::new();
    for tenant in 0..TENANTS {
        let auth = BearerToken::new(&token(tenant)).unwrap();
        let mut subs = SubscriptionServiceClient::with_interceptor(channel(subscriptions.addr()).await, auth);
        for event_types in [vec!["order.*".to_owned()], vec!["order.paid".to_owned()]] {
            let (receiver, port) = Receiver::start(&[200], Duration::ZERO).await;
            let subscription = v1::Subscription {
                url: format!("http://127.0.0.1:{port}/t{tenant}"),
                event_types,
                ..Default::default()
            };
            subs.create_subscription(v1::CreateSubscriptionRequest {
                subscription: Some(subscription),
                allow_duplicate_endpoint: true,
                ..Default::default()
            })
            .await
            .unwrap();
            receivers.push((tenant, receiver));
        }
    }

    // Publish in rounds, every tenant in each, alternating fanout replicas;
    // kill one fanout replica a third of the way and one delivery replica
    // two thirds of the way; neither comes back.
    let mut expected: Vec<Vec<String>> = vec![Vec::new(); TENANTS];
    let rounds = EVENTS_PER_TENANT / 50;
    for round in 0..rounds {
        if round == rounds / 3 {
            fanouts[1].kill9();
            println!("fanout replica 2 killed after {} events", round * 50 * TENANTS);
        }
        if round == 2 * rounds / 3 {
            deliveries[1].kill9();
            let arrived: usize = receivers.iter().map(|(_, r)| r.delivered_ids().len()).sum();
            println!(
                "delivery replica 2 killed after {} events, {arrived} of {} deliveries made so far",
                round * 50 * TENANTS,
                round * 50 * TENANTS * 2
            );
        }
        let alive = if round >= rounds / 3 { 0 } else { round % 2 };
        for (tenant, ids) in expected.iter_mut().enumerate() {
            let auth = BearerToken::new(&token(tenant)).unwrap();
            let mut events = EventServiceClient::with_interceptor(channel(fanouts[alive].addr()).await, auth);
            let batch = v1::PublishBatchRequest { events: (0..50).map(|i| publish_request(round * 50 + i)).collect() };
            for result in events.publish_batch(batch).await.unwrap().into_inner().results {
                match result.result.unwrap() {
                    v1::publish_batch_result::Result::Published(p) => ids.push(p.event_id),
                    v1::publish_batch_result::Result::Error(e) => panic!("publish failed: {e:?}"),
                }
            }
        }
    }

    eventually(DRAIN, || async {
        receivers.iter().all(|(tenant, r)| {
            let got: HashSet<String> = r.delivered_ids().into_iter().collect();
            expected[*tenant].iter().all(|id| got.contains(id))
        })
    })
    .await;
    let duplicates: Vec<usize> =
        receivers.iter().map(|(tenant, r)| r.delivered_ids().len() - expected[*tenant].len()).collect();
    println!(
        "{} events x 2 subscriptions delivered; duplicates per subscription: {duplicates:?}",
        TENANTS * EVENTS_PER_TENANT
    );

    // The survivors took over every partition, and the data really is
    // spread over the three nodes.
    shared_fairly(&[&fanouts[0]], "fanout").await;
    shared_fairly(&[&deliveries[0]], "delivery").await;
    let keys = cluster.keys_per_node();
    assert!(keys.iter().all(|n| *n > 0), "every node holds hookline keys: {keys:?}");
}

/// Every delivery state step on a cluster (each script runs in one slot):
/// retries until success, dead letters and their replay, deliveries held
/// while paused and released on resume, FIFO order, and a rate limit.
#[tokio::test]
async fn retries_dead_letters_holds_fifo_and_rate_limits_work_on_a_cluster() {
    let stack = Stack::on_backend(
        Backend::Cluster(RedisCluster::start()),
        &[
            ("HOOKLINE_PARTITIONS", PARTITIONS.to_string()),
            // The failing endpoint must reach its dead letters, not a pause
            // or an open circuit.
            ("HOOKLINE_AUTO_PAUSE_AFTER", "0".into()),
            ("HOOKLINE_BREAKER_THRESHOLD", "1000".into()),
        ],
    )
    .await;
    let quick = |n: usize| {
        Some(v1::RetryPolicy {
            schedule: vec![hookline_proto::Duration { seconds: 1, nanos: 0 }; n],
            ..Default::default()
        })
    };
    let (flaky, flaky_port) = Receiver::start(&[500, 500, 200], Duration::ZERO).await;
    let (dead, dead_port) = Receiver::start(&[500], Duration::ZERO).await;
    let (ordered, ordered_port) = Receiver::start(&[200], Duration::ZERO).await;
    let (held, held_port) = Receiver::start(&[200], Duration::ZERO).await;
    let url = |port: u16| format!("http://127.0.0.1:{port}/hook");
    stack.subscribe(url(flaky_port), quick(3), 0).await;
    stack.subscribe(url(dead_port), quick(1), 0).await;
    stack
        .subscribe_with(v1::Subscription {
            url: url(ordered_port),
            ordering: v1::OrderingMode::Fifo as i32,
            rate_limit: Some(v1::RateLimit { per_second: 10, burst: 1 }),
            ..Default::default()
        })
        .await;
    stack.subscribe(url(held_port), None, 0).await;

    let mut subs = stack.client(stack.subscriptions.addr(), SubscriptionServiceClient::with_interceptor).await;
    let listed = subs.list_subscriptions(v1::ListSubscriptionsRequest::default()).await.unwrap().into_inner();
    let id_of = |port: u16| listed.subscriptions.iter().find(|s| s.url == url(port)).unwrap().id.clone();
    let (dead_sub, held_sub) = (id_of(dead_port), id_of(held_port));
    subs.pause_subscription(v1::PauseSubscriptionRequest { id: held_sub.clone(), ..Default::default() }).await.unwrap();

    let mut events = stack.client(stack.fanout.addr(), EventServiceClient::with_interceptor).await;
    let mut published = Vec::new();
    for n in 0..20 {
        published.push(events.publish(publish_request(n)).await.unwrap().into_inner().event_id);
    }
    let all_of = |r: &Receiver| {
        let got: HashSet<String> = r.delivered_ids().into_iter().collect();
        published.iter().all(|id| got.contains(id))
    };
    eventually(DRAIN, || async { all_of(&flaky) }).await;
    assert_eq!(flaky.failed_requests(), 2, "two 500s, then retried to success");
    eventually(DRAIN, || async { all_of(&ordered) }).await;
    assert_eq!(ordered.delivered_ids(), published, "FIFO: in publish order, one at a time under the rate limit");

    // Dead letters: every event failed twice; fixed, then replayed.
    let mut deliveries = stack.client(stack.delivery.addr(), DeliveryServiceClient::with_interceptor).await;
    eventually(DRAIN, || {
        let mut deliveries = deliveries.clone();
        let sub = dead_sub.clone();
        async move {
            let listed = deliveries
                .list_deliveries(v1::ListDeliveriesRequest {
                    subscription_id: sub,
                    page_size: 100,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .deliveries;
            listed.len() == 20 && listed.iter().all(|d| d.status == v1::DeliveryStatus::DeadLettered as i32)
        }
    })
    .await;
    assert_eq!(dead.failed_requests(), 40);
    *dead.statuses() = vec![200];
    let mut progress = deliveries
        .replay_deliveries(v1::ReplayDeliveriesRequest { subscription_id: dead_sub, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let mut replayed = 0;
    while let Some(p) = progress.message().await.unwrap() {
        replayed = p.replayed;
    }
    assert_eq!(replayed, 20);
    eventually(DRAIN, || async { all_of(&dead) }).await;

    // Held while paused, all of it delivered on resume.
    assert!(held.ids().is_empty(), "nothing reaches a paused subscription");
    subs.resume_subscription(v1::ResumeSubscriptionRequest { id: held_sub }).await.unwrap();
    eventually(DRAIN, || async { all_of(&held) }).await;
}

/// Durability on (`durability.replicas` = 1) on a cluster with a replica
/// per master: the master holding the tenant's events is killed (`kill -9`)
/// mid-publish and fails over to its replica. Every publish that was
/// acknowledged is delivered; the ones refused meanwhile (UNAVAILABLE: not
/// confirmed by a replica) are retried with their idempotency key until
/// acknowledged, once the killed node is back as the new master's replica.
#[tokio::test]
async fn acknowledged_events_survive_the_failover_of_their_master() {
    const EVENTS: usize = 300;
    let mut stack = Stack::on_backend(
        Backend::Cluster(RedisCluster::start_with_replicas(1)),
        &[
            ("HOOKLINE_PARTITIONS", "3".into()),
            ("HOOKLINE_DURABILITY__REPLICAS", "1".into()),
            ("HOOKLINE_DURABILITY__TIMEOUT", "500ms".into()),
        ],
    )
    .await;
    let (receiver, port) = Receiver::start(&[200], Duration::ZERO).await;
    stack.subscribe(format!("http://127.0.0.1:{port}/hook"), None, 0).await;
    let mut events = stack.client(stack.fanout.addr(), EventServiceClient::with_interceptor).await;
    let events_key = hookline_queue::Partitions::new("hookline", 3).of_tenant("acme").events().to_owned();
    let Backend::Cluster(cluster) = &mut stack.redis else { unreachable!("started on a cluster") };
    let doomed = cluster.master_of(&events_key).expect("a master serves the events stream");

    let mut acknowledged = Vec::new();
    let (mut refused, mut killed_at, mut back, mut first_after) = (0, None, false, None);
    let deadline = std::time::Instant::now() + DRAIN;
    for n in 0..EVENTS {
        if n == EVENTS / 3 {
            cluster.kill(doomed);
            killed_at = Some(std::time::Instant::now());
        }
        loop {
            match events.publish(publish_request(n)).await {
                Ok(reply) => {
                    acknowledged.push(reply.into_inner().event_id);
                    if killed_at.is_some() && first_after.is_none() {
                        first_after = killed_at.map(|at| at.elapsed());
                    }
                    break;
                }
                Err(status) => {
                    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                    refused += 1;
                    // Once a replica has taken over, the killed node comes
                    // back as its replica, so writes can be confirmed again.
                    if !back && cluster.master_of(&events_key).is_some_and(|p| p != doomed) {
                        cluster.restart(doomed);
                        back = true;
                    }
                    assert!(std::time::Instant::now() < deadline, "event {n} never acknowledged: {status:?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    assert!(back, "the killed master was replaced by its replica");
    eventually(DRAIN, || async {
        let got: HashSet<String> = receiver.delivered_ids().into_iter().collect();
        acknowledged.iter().all(|id| got.contains(id))
    })
    .await;
    println!(
        "{EVENTS} events acknowledged and delivered across the failover; {refused} publishes refused meanwhile; \
         first acknowledgement {:?} after the kill; all delivered {:?} after it",
        first_after.unwrap_or_default(),
        killed_at.map(|at| at.elapsed()).unwrap_or_default()
    );
}
