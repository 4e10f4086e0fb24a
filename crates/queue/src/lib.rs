//! The contract between hookline's services on Redis: which keys exist,
//! what a stream entry holds, and the atomic steps that move work along.
//!
//! Services never link each other's code; they meet here and in `proto/`.
//! Everything a service writes for another to read is defined in this
//! crate, with a format version in every entry (`v`), so a reader can refuse
//! what it does not understand instead of misreading it.
//!
//! Streams are split into partitions (default 1). Every key of a partition
//! carries the same hash tag `{<prefix>:p<n>}`, so on Redis Cluster a
//! partition lives in one slot and the atomic steps (publish, fan-out
//! enqueue + ack) touch one slot only. A tenant's events always land in the
//! same partition (`Partitions::of_tenant`).

mod entry;
mod gauges;
mod group;
mod keys;
mod scripts;

pub use entry::{DeliveryTask, EntryError, EventEntry, FORMAT_VERSION};
pub use gauges::{StreamKind, describe_stream_gauges, sample_stream_gauges};
pub use group::{ConsumerGroup, StreamMessage, is_missing_group};
pub use keys::{DELIVERY_GROUP, FANOUT_GROUP, PartitionKeys, Partitions, subscriptions_revision_key};
pub use scripts::{FanoutOutcome, PublishArgs, PublishOutcome, Scripts};

/// Opens a Redis connection manager (it reconnects by itself after
/// failures), waiting until Redis answers. Fails only on a malformed URL.
pub async fn connect(
    url: &str,
    command_timeout: std::time::Duration,
) -> redis::RedisResult<(redis::Client, redis::aio::ConnectionManager)> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(command_timeout))
        .set_connection_timeout(Some(command_timeout))
        .set_max_delay(std::time::Duration::from_secs(2));
    loop {
        match client.get_connection_manager_with_config(config.clone()).await {
            Ok(manager) => return Ok((client, manager)),
            Err(error) => {
                tracing::warn!(%error, "redis not reachable yet; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}
