//! The contract between hookline's services on Redis: which keys exist,
//! what a stream entry holds, and the atomic steps that move work along.
//!
//! Services never link each other's code; they meet here and in `proto/`.
//! Everything a service writes for another to read is defined in this
//! crate, with a format version in every entry (`v`), so a reader can refuse
//! what it does not understand instead of misreading it.
//!
//! Streams are split into partitions (default 1). Every key of a partition
//! starts `<prefix>:p<n>:{s<k>}` (one hash tag per partition, see
//! `keys.rs`), so on Redis Cluster a partition lives in one slot and the
//! atomic steps (publish, fan-out enqueue + ack) touch one slot only. A tenant's events always land in the
//! same partition (`Partitions::of_tenant`).
//!
//! The same code runs on one Redis or a Redis Cluster ([`connect`] picks
//! by URL), and replicas of a service either all work every partition or
//! share them out through leases ([`Ownership`]).

mod conn;
mod delivery_log;
mod durability;
mod entry;
mod fence;
mod gauges;
mod group;
mod keys;
mod ownership;
mod record;
mod scripts;

pub use conn::{BlockingReader, RedisConn, RedisTarget, connect};
pub use delivery_log::{
    Batch, DeliveryLog, FinishedEntry, FinishedParts, LOG_FIELD, Listed, Position, TimeRange, log_ttl_secs,
};
pub use durability::{Durability, DurableWriter, WRITER_CONNECTIONS, WriteError, describe_durability_metrics};
pub use entry::{
    DeliveryTask, EntryError, EventEntry, FORMAT_VERSION, LeftForNewerBuild, TaskValues, describe_left_for_newer_build,
};
pub use fence::{Fence, current_fence};
pub use gauges::{StreamKind, describe_stream_gauges, sample_stream_gauges};
pub use group::{ConsumerGroup, StreamMessage, is_missing_group};
pub use keys::{
    DELIVERY_GROUP, FANOUT_GROUP, OwnershipKeys, PartitionKeys, Partitions, portal_session_ended,
    portal_session_ended_key, slot_tags, subscriptions_log_id_key, subscriptions_revision_key,
};
pub use ownership::{LiveMembers, Ownership, OwnershipMode, OwnershipSettings};
pub use record::{EventRecord, FanoutState, RECORD_HEADER_LEN, RecordError, RecordMeta, read_event_records};
pub use scripts::{
    FANOUT_TASKS_PER_CALL, FanoutItem, FanoutOutcome, PublishArgs, PublishItem, PublishOutcome, PublishReply, Scripts,
    with_task_functions,
};
