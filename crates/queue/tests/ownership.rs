//! Partition ownership against a real Redis (and a real Redis Cluster):
//! replicas split the partitions fairly, a newcomer gets its share, a
//! replica that stops hands its partitions over at once, and a dead one's
//! are taken over when its leases expire.

#![allow(clippy::unwrap_used)]

use std::{collections::BTreeSet, time::Duration};

use hookline_queue::{Ownership, OwnershipMode, OwnershipSettings, Partitions, connect};
use hookline_testkit::{RedisCluster, RedisServer, eventually};
use tokio::sync::watch;

const LEASE: Duration = Duration::from_millis(800);
const WAIT: Duration = Duration::from_secs(10);

struct Replica {
    ownership: Ownership,
    stop: watch::Sender<bool>,
}

async fn replica(url: &str, partitions: &Partitions, name: &str) -> Replica {
    let conn = connect(url, Duration::from_secs(2)).await.unwrap();
    let (stop, stop_rx) = watch::channel(false);
    let ownership = Ownership::spawn(
        conn,
        partitions,
        "workers",
        name,
        OwnershipSettings { mode: OwnershipMode::Exclusive, lease: LEASE },
        stop_rx,
    );
    Replica { ownership, stop }
}

fn owned(replicas: &[&Replica]) -> Vec<BTreeSet<u16>> {
    replicas.iter().map(|r| (*r.ownership.owned()).clone()).collect()
}

/// Every partition owned by exactly one replica, `shares` of them each.
fn split_is(replicas: &[&Replica], shares: &[usize], count: u16) -> bool {
    let sets = owned(replicas);
    let all: BTreeSet<u16> = sets.iter().flatten().copied().collect();
    let total: usize = sets.iter().map(BTreeSet::len).sum();
    let mut sizes: Vec<usize> = sets.iter().map(BTreeSet::len).collect();
    sizes.sort_unstable();
    let mut want = shares.to_vec();
    want.sort_unstable();
    total == usize::from(count) && all.len() == usize::from(count) && sizes == want
}

async fn replicas_come_and_go(url: &str) {
    let partitions = Partitions::new("hookline", 5);
    let a = replica(url, &partitions, "a").await;
    eventually(WAIT, || async { split_is(&[&a], &[5], 5) }).await;

    let b = replica(url, &partitions, "b").await;
    eventually(WAIT, || async { split_is(&[&a, &b], &[3, 2], 5) }).await;
    let c = replica(url, &partitions, "c").await;
    eventually(WAIT, || async { split_is(&[&a, &b, &c], &[2, 2, 1], 5) }).await;

    // A clean stop gives its leases back: the others take them within a
    // tick or two, well before the lease would have expired.
    let _ = c.stop.send(true);
    let started = std::time::Instant::now();
    eventually(WAIT, || async { split_is(&[&a, &b], &[3, 2], 5) }).await;
    println!("handed over after a stop in {:?}", started.elapsed());

    // A replica that dies (its runtime gone, nothing given back) keeps its
    // leases until they expire; then the others take its share.
    let (url_owned, parts) = (url.to_owned(), partitions.clone());
    let dying = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let held = runtime.block_on(async {
            let z = replica(&url_owned, &parts, "z").await;
            eventually(WAIT, || async { !z.ownership.owned().is_empty() }).await;
            let held = z.ownership.owned();
            std::mem::forget(z.stop); // no clean stop: the runtime just ends
            held
        });
        drop(runtime);
        held
    });
    // Wait without blocking this runtime: the others must keep renewing.
    while !dying.is_finished() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held = dying.join().unwrap();
    assert!(held.len() < 5, "a newcomer takes only its share: {held:?}");
    println!("a dead replica held {held:?}");
    eventually(WAIT, || async { split_is(&[&a, &b], &[3, 2], 5) }).await;
    // And it is no longer alive (the stopped one, c, still is: its process
    // runs, finishing what it had in hand).
    let alive = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<BTreeSet<String>>();
    eventually(WAIT, || async { a.ownership.live().is_some_and(|v| v.members == alive(&["a", "b", "c"])) }).await;

    // A dropped stop handle counts as a stop.
    drop(b.stop);
    eventually(WAIT, || async { split_is(&[&a], &[5], 5) }).await;
}

#[tokio::test]
async fn replicas_share_partitions_on_one_redis() {
    let redis = RedisServer::start();
    replicas_come_and_go(&redis.url()).await;
}

#[tokio::test]
async fn replicas_share_partitions_on_a_cluster() {
    let cluster = RedisCluster::start();
    replicas_come_and_go(&cluster.url()).await;
}

#[tokio::test]
async fn in_shared_mode_every_replica_works_every_partition() {
    let redis = RedisServer::start();
    let partitions = Partitions::new("hookline", 4);
    let conn = connect(&redis.url(), Duration::from_secs(2)).await.unwrap();
    let (_stop, stop_rx) = watch::channel(false);
    let settings = OwnershipSettings { mode: OwnershipMode::Shared, lease: LEASE };
    let a = Ownership::spawn(conn.clone(), &partitions, "workers", "a", settings, stop_rx.clone());
    let b = Ownership::spawn(conn, &partitions, "workers", "b", settings, stop_rx);
    for replica in [&a, &b] {
        assert_eq!(*replica.owned(), (0..4).collect::<BTreeSet<u16>>());
    }
    // Liveness is kept in shared mode too: each sees both.
    let both: BTreeSet<String> = ["a".to_owned(), "b".to_owned()].into();
    eventually(WAIT, || async { [&a, &b].iter().all(|r| r.live().is_some_and(|v| v.members == both)) }).await;
}

#[tokio::test]
async fn a_replica_that_loses_redis_stops_working_its_partitions() {
    let mut redis = RedisServer::start();
    let partitions = Partitions::new("hookline", 3);
    let a = replica(&redis.url(), &partitions, "a").await;
    eventually(WAIT, || async { split_is(&[&a], &[3], 3) }).await;
    redis.stop();
    // It cannot renew: once a whole lease has passed it owns nothing.
    eventually(WAIT, || async { a.ownership.owned().is_empty() }).await;
    redis.restart();
    eventually(WAIT, || async { split_is(&[&a], &[3], 3) }).await;
}
