//! Recording finished attempts, many at a time.
//!
//! Every attempt ends with its outcome recorded and its task acknowledged,
//! in one atomic step per task (`complete.lua`). Under load, hundreds end
//! each second: instead of one script call each, attempts hand their
//! [`Completion`] to one recorder, which takes everything waiting (up to
//! `MAX_COMPLETIONS`) and records it with one call per partition, the
//! counters and index entries of the batch written once per key. Nothing
//! waits on purpose: while one call runs, the next batch gathers, so a
//! quiet system records each attempt at once and a busy one in batches.
//!
//! An attempt waits for its own reply (its worker slot is held until
//! then), so what waits here is bounded by the worker slots, and a crash
//! before the call leaves the task pending, to be claimed again: delivered
//! at least once, never lost.

use std::collections::BTreeMap;

use hookline_queue::{PartitionKeys, RedisConn};
use tokio::sync::{mpsc, oneshot};

use crate::store::{Completion, MAX_COMPLETIONS, Recorded, Retention, Scripts};

type Reply = oneshot::Sender<redis::RedisResult<Recorded>>;
/// A completion on its way to the recorder: its partition, and where its
/// outcome goes. (Sent boxed: it moves through the channel and the batch,
/// a few hundred bytes each time otherwise.)
#[derive(Debug)]
struct Pending {
    keys: PartitionKeys,
    completion: Completion,
    reply: Reply,
}

/// The recorder's inbox.
#[derive(Debug, Clone)]
pub(crate) struct Completions {
    inbox: mpsc::UnboundedSender<Box<Pending>>,
}

fn stopped() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "the completion recorder has stopped"))
}

impl Completions {
    /// Starts the recorder; it stops when every `Completions` is dropped.
    pub(crate) fn spawn(redis: RedisConn, retention: Retention) -> Self {
        let (inbox, rx) = mpsc::unbounded_channel();
        tokio::spawn(record_batches(redis, retention, rx));
        Self { inbox }
    }

    /// Records one completion.
    pub(crate) async fn record(&self, keys: &PartitionKeys, completion: Completion) -> redis::RedisResult<Recorded> {
        let (reply, replied) = oneshot::channel();
        let pending = Box::new(Pending { keys: keys.clone(), completion, reply });
        self.inbox.send(pending).map_err(|_| stopped())?;
        replied.await.unwrap_or_else(|_| Err(stopped()))
    }
}

async fn record_batches(redis: RedisConn, retention: Retention, mut rx: mpsc::UnboundedReceiver<Box<Pending>>) {
    let scripts = Scripts::default();
    let mut batch = Vec::with_capacity(MAX_COMPLETIONS);
    while rx.recv_many(&mut batch, MAX_COMPLETIONS).await > 0 {
        metrics::histogram!("hookline_delivery_completion_batch_size").record(batch.len() as f64);
        let mut by_partition: BTreeMap<u16, Vec<Box<Pending>>> = BTreeMap::new();
        for pending in batch.drain(..) {
            by_partition.entry(pending.keys.index()).or_default().push(pending);
        }
        let calls = by_partition.into_values().map(|items| {
            let (mut conn, scripts, retention) = (redis.clone(), &scripts, &retention);
            async move {
                let completions: Vec<&Completion> = items.iter().map(|pending| &pending.completion).collect();
                let invocation = scripts.complete(&items[0].keys, &completions, retention);
                let replies = invocation.invoke_async::<Vec<i64>>(&mut conn).await.and_then(|replies| {
                    if replies.len() == 2 * items.len() {
                        Ok(Recorded::from_replies(&replies))
                    } else {
                        Err(redis::RedisError::from((
                            redis::ErrorKind::Parse,
                            "complete.lua replied for a different number of completions",
                            format!("{} numbers for {}", replies.len(), items.len()),
                        )))
                    }
                });
                match replies {
                    Ok(replies) => {
                        for (pending, recorded) in items.into_iter().zip(replies) {
                            let _ = pending.reply.send(Ok(recorded));
                        }
                    }
                    Err(error) => {
                        for pending in items {
                            let _ = pending.reply.send(Err(error.clone()));
                        }
                    }
                }
            }
        });
        futures::future::join_all(calls).await;
    }
}
