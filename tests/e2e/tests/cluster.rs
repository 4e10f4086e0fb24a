//! hookline on a Redis Cluster: the same binaries as on one Redis, chosen
//! by the URL alone (`redis+cluster://…`), with two replicas each of
//! fanout and delivery sharing the partitions out through leases (both
//! in exclusive ownership here; delivery's default, shared, is what the
//! other e2e tests run). One replica
//! of each is killed (`kill -9`) mid-run and not restarted: its partitions
//! and pending entries are taken over, and every event still reaches every
//! matching subscription.

#![allow(clippy::unwrap_used)]

use std::{collections::HashSet, net::SocketAddr, time::Duration};

use hookline_auth::BearerToken;
use hookline_e2e::*;
use hookline_proto::v1::{
    self, event_service_client::EventServiceClient, subscription_service_client::SubscriptionServiceClient,
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
