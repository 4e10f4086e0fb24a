//! Which replica works which partition.
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
//! In exclusive mode every replica of a service (fanout, delivery) runs one [`Ownership`]
//! task. Every quarter of the lease it calls `own.lua`, which renews the
//! replica's membership and leases, gives back the leases above its fair
//! share (`partitions / live replicas`, the first `partitions % replicas`
//! by name taking one more) and takes free or expired ones up to it. So a
//! new replica gets its share within two ticks, a replica shutting down
//! hands its partitions over at once, and a dead one's are taken over when
//! its leases expire (the claim of its pending entries follows after
//! `claim_idle`).
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

/// The partitions this replica owns now; cheap to clone.
#[derive(Debug, Clone)]
pub struct Ownership {
    owned: watch::Receiver<Arc<BTreeSet<u16>>>,
}

impl Ownership {
    /// Shared mode: every partition, at once and for good. Exclusive mode:
    /// starts sharing `partitions` among the live consumers of `group`, as
    /// `consumer`, until `stop` turns true (then its leases are given
    /// back); until the first call succeeds, nothing is owned.
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
        if settings.mode == OwnershipMode::Shared {
            let all: BTreeSet<u16> = (0..partitions.count()).collect();
            metrics::gauge!("hookline_partitions_owned", "group" => group.to_owned()).set(all.len() as f64);
            let (_, rx) = watch::channel(Arc::new(all));
            return Self { owned: rx };
        }
        metrics::gauge!("hookline_partitions_owned", "group" => group.to_owned()).set(0.0);
        let (tx, rx) = watch::channel(Arc::new(BTreeSet::new()));
        let (members, leases) = partitions.ownership(group);
        let lease_task = LeaseTask {
            conn,
            script: Script::new(include_str!("lua/own.lua")),
            members,
            leases,
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            count: partitions.count(),
            settings,
        };
        tokio::spawn(lease_task.run(tx, stop));
        Self { owned: rx }
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
    members: String,
    leases: String,
    group: String,
    consumer: String,
    count: u16,
    settings: OwnershipSettings,
}

impl LeaseTask {
    async fn call(&mut self, leave: bool) -> redis::RedisResult<BTreeSet<u16>> {
        let owned: Vec<u16> = self
            .script
            .key(&self.members)
            .key(&self.leases)
            .arg(&self.consumer)
            .arg(self.settings.lease.as_millis() as u64)
            .arg(self.count)
            .arg(if leave { "1" } else { "0" })
            .invoke_async(&mut self.conn)
            .await?;
        Ok(owned.into_iter().collect())
    }

    async fn run(mut self, tx: watch::Sender<Arc<BTreeSet<u16>>>, mut stop: watch::Receiver<bool>) {
        let mut last_renewed: Option<Instant> = None;
        while !*stop.borrow() {
            match self.call(false).await {
                Ok(owned) => {
                    last_renewed = Some(Instant::now());
                    self.publish(&tx, owned);
                }
                Err(error) => {
                    tracing::warn!(%error, group = %self.group, "partition leases not renewed");
                    // Once our leases may have expired, another replica may
                    // hold them: stop working them until renewed.
                    if last_renewed.is_none_or(|at| at.elapsed() >= self.settings.lease) {
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
        self.publish(&tx, BTreeSet::new());
        match self.call(true).await {
            Ok(_) => tracing::info!(group = %self.group, "partition leases given back"),
            Err(error) => tracing::warn!(%error, group = %self.group, "partition leases not given back; they expire"),
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
