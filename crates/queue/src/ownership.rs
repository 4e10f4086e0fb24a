//! Which replica works which partition, and which replicas are alive.
//!
//! Two modes ([`OwnershipMode`]). **Shared**: every replica works every
//! partition, and the consumer group hands each entry to one of them, so
//! any number of replicas help with a hot partition (one busy tenant).
//! **Exclusive**: one replica at a time works a partition, by leases in
//! Redis that expire by themselves; this keeps one reader per partition
//! (fan-out order across replicas) and fewer blocking reads, but replicas
//! beyond the partition count stand by. Fanout defaults to exclusive,
//! delivery to shared.
//!
//! Every replica of a service (fanout, delivery) runs one [`Ownership`]
//! task. Every quarter of the lease it calls `own.lua`, which renews the
//! replica's liveness (in both modes, for as long as the process runs:
//! [`Ownership::live`] is how the others know it is alive) and, in
//! exclusive mode, its membership and leases: it gives back the leases
//! above its fair share (`partitions / members`, the first `partitions %
//! members` by name taking one more) and takes free or expired ones up to
//! it. So a new replica gets its share within two ticks, a replica
//! shutting down hands its partitions over at once, and a dead one's are
//! taken over when its leases expire. A dead replica's pending entries are
//! taken over once its liveness has expired
//! ([`crate::ConsumerGroup::take_over`]), not after `claim_idle`.
//!
//! Leases spread the work and keep one reader per partition (which is what
//! keeps FIFO order across replicas); they are not what makes the queue
//! safe. Two replicas briefly working the same partition (a lease lost
//! while a batch is in hand) is still correct: consumer groups hand each
//! entry to one consumer, and every atomic step acknowledges first.
//! A replica that cannot renew for a whole lease stops working its
//! partitions until it can.

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use redis::Script;
use tokio::sync::watch;

use crate::{Partitions, RedisConn};

/// Whether replicas share every partition or own some each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OwnershipMode {
    Shared,
    Exclusive,
}

/// How partitions are shared out; `lease` (exclusive mode) is how long a
/// lease lasts unless renewed.
#[derive(Debug, Clone, Copy)]
pub struct OwnershipSettings {
    pub mode: OwnershipMode,
    pub lease: Duration,
}

impl OwnershipSettings {
    fn tick(&self) -> Duration {
        (self.lease / 4).max(Duration::from_millis(50))
    }
}

/// The replicas alive as of one renewal.
#[derive(Debug, Clone)]
pub struct LiveMembers {
    pub members: BTreeSet<String>,
    /// When this view was read from Redis.
    pub seen_at: Instant,
}

/// The partitions this replica owns now, and the live replicas; cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Ownership {
    owned: watch::Receiver<Arc<BTreeSet<u16>>>,
    live: watch::Receiver<Option<Arc<LiveMembers>>>,
    /// A view older than this is too old to declare anyone dead.
    fresh_for: Duration,
}

impl Ownership {
    /// Shared mode: every partition, at once and for good. Exclusive mode:
    /// starts sharing `partitions` among the live consumers of `group`, as
    /// `consumer`, until `stop` turns true (then its leases are given
    /// back); until the first call succeeds, nothing is owned. In both,
    /// renews this consumer's liveness for as long as the process runs
    /// (after `stop` too: the work in hand is still being finished), so
    /// it expires a lease after the process is gone.
    pub fn spawn(
        conn: RedisConn,
        partitions: &Partitions,
        group: &str,
        consumer: &str,
        settings: OwnershipSettings,
        stop: watch::Receiver<bool>,
    ) -> Self {
        metrics::describe_gauge!(
            "hookline_partitions_owned",
            metrics::Unit::Count,
            "Partitions this replica works (leases it holds), per consumer group"
        );
        let shared = settings.mode == OwnershipMode::Shared;
        let first: BTreeSet<u16> = if shared { (0..partitions.count()).collect() } else { BTreeSet::new() };
        metrics::gauge!("hookline_partitions_owned", "group" => group.to_owned()).set(first.len() as f64);
        let (tx, rx) = watch::channel(Arc::new(first));
        let (live_tx, live_rx) = watch::channel(None);
        let keys = partitions.ownership(group);
        let lease_task = LeaseTask {
            conn,
            script: Script::new(include_str!("lua/own.lua")),
            keys,
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            count: partitions.count(),
            settings,
        };
        tokio::spawn(lease_task.run(tx, live_tx, stop));
        Self { owned: rx, live: live_rx, fresh_for: settings.lease / 2 }
    }

    /// The replicas alive now (this one included), or `None` while no
    /// recent enough view is at hand (Redis unreachable): then nobody may
    /// be declared dead.
    pub fn live(&self) -> Option<Arc<LiveMembers>> {
        self.live.borrow().clone().filter(|view| view.seen_at.elapsed() < self.fresh_for)
    }

    /// Whether this replica works `partition` now.
    pub fn owns(&self, partition: u16) -> bool {
        self.owned.borrow().contains(&partition)
    }

    /// The partitions owned now.
    pub fn owned(&self) -> Arc<BTreeSet<u16>> {
        self.owned.borrow().clone()
    }

    /// Whether this replica works `partition` now; when it does not, first
    /// waits until ownership changes or `stop` changes, so a loop can call
    /// it at its top and `continue` on false.
    pub async fn owns_or_wait(&mut self, partition: u16, stop: &mut watch::Receiver<bool>) -> bool {
        if self.owns(partition) {
            return true;
        }
        tokio::select! {
            _ = self.changed() => {}
            _ = stop.changed() => {}
        }
        false
    }

    /// Resolves when the owned set changes (or the task ended).
    async fn changed(&mut self) {
        if self.owned.changed().await.is_err() {
            // The task ended (shutdown): nothing will change any more.
            std::future::pending::<()>().await;
        }
    }
}

struct LeaseTask {
    conn: RedisConn,
    script: Script,
    keys: crate::keys::OwnershipKeys,
    group: String,
    consumer: String,
    count: u16,
    settings: OwnershipSettings,
}

impl LeaseTask {
    /// Owned partitions (exclusive mode) and live replicas.
    async fn call(&mut self, mode: &str) -> redis::RedisResult<(BTreeSet<u16>, BTreeSet<String>)> {
        let (owned, members): (Vec<u16>, Vec<String>) = self
            .script
            .key(&self.keys.members)
            .key(&self.keys.leases)
            .key(&self.keys.alive)
            .arg(&self.consumer)
            .arg(self.settings.lease.as_millis() as u64)
            .arg(self.count)
            .arg(mode)
            .invoke_async(&mut self.conn)
            .await?;
        Ok((owned.into_iter().collect(), members.into_iter().collect()))
    }

    async fn run(
        mut self,
        tx: watch::Sender<Arc<BTreeSet<u16>>>,
        live: watch::Sender<Option<Arc<LiveMembers>>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let exclusive = self.settings.mode == OwnershipMode::Exclusive;
        let mut last_renewed: Option<Instant> = None;
        while !*stop.borrow() {
            let asked = Instant::now();
            match self.call(if exclusive { "share" } else { "alive" }).await {
                Ok((owned, members)) => {
                    last_renewed = Some(Instant::now());
                    live.send_replace(Some(Arc::new(LiveMembers { members, seen_at: asked })));
                    if exclusive {
                        self.publish(&tx, owned);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, group = %self.group, "liveness and partition leases not renewed");
                    // Once our leases may have expired, another replica may
                    // hold them: stop working them until renewed.
                    if exclusive && last_renewed.is_none_or(|at| at.elapsed() >= self.settings.lease) {
                        self.publish(&tx, BTreeSet::new());
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.tick()) => {}
                changed = stop.changed() => if changed.is_err() {
                    break; // the stop handle is gone: stop too
                }
            }
        }
        if exclusive {
            self.publish(&tx, BTreeSet::new());
            match self.call("release").await {
                Ok(_) => tracing::info!(group = %self.group, "partition leases given back"),
                Err(error) => {
                    tracing::warn!(%error, group = %self.group, "partition leases not given back; they expire")
                }
            }
        }
        // Still a member while the process finishes what it has in hand.
        loop {
            let asked = Instant::now();
            if let Ok((_, members)) = self.call("alive").await {
                live.send_replace(Some(Arc::new(LiveMembers { members, seen_at: asked })));
            }
            tokio::time::sleep(self.settings.tick()).await;
        }
    }

    fn publish(&self, tx: &watch::Sender<Arc<BTreeSet<u16>>>, owned: BTreeSet<u16>) {
        if **tx.borrow() == owned {
            return;
        }
        metrics::gauge!("hookline_partitions_owned", "group" => self.group.clone()).set(owned.len() as f64);
        tracing::info!(group = %self.group, consumer = %self.consumer, owned = ?owned, "partitions owned");
        tx.send_replace(Arc::new(owned));
    }
}
