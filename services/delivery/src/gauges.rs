//! Gauges the delivery service samples every few seconds: the deliveries
//! streams (length, pending, lag), retries waiting in the retry sets,
//! subscriptions by state (from the watch cache), and circuit breakers by
//! state. Counters and histograms are recorded where things happen. The
//! same pass forgets the attempt pacing of deleted subscriptions.

use std::{sync::Arc, time::Duration};

use hookline_domain::SubscriptionState;
use hookline_queue::{StreamKind, sample_stream_gauges};
use tokio::sync::watch;

use crate::worker::Worker;

pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Samples until `stop` turns true.
pub(crate) async fn run(worker: Arc<Worker>, stop: watch::Receiver<bool>) {
    hookline_server::every(SAMPLE_EVERY, stop, "delivery gauges", || sample(&worker)).await;
}

async fn sample(worker: &Worker) -> redis::RedisResult<()> {
    let state = worker.cache.state();
    if state.is_ready() {
        worker.forget_deleted(&state);
        let (mut active, mut paused, mut disabled) = (0u64, 0u64, 0u64);
        for cached in state.subscriptions() {
            match cached.subscription.state {
                SubscriptionState::Active => active += 1,
                SubscriptionState::Paused(_) => paused += 1,
                SubscriptionState::Disabled(_) => disabled += 1,
            }
        }
        for (label, n) in [("active", active), ("paused", paused), ("disabled", disabled)] {
            metrics::gauge!("hookline_subscriptions", "state" => label).set(n as f64);
        }
    }
    let (open, probing) = worker.breakers.counts();
    metrics::gauge!("hookline_circuit_breakers", "state" => "open").set(open as f64);
    metrics::gauge!("hookline_circuit_breakers", "state" => "half_open").set(probing as f64);

    let mut conn = worker.redis.clone();
    sample_stream_gauges(&mut conn, &worker.partitions, StreamKind::Deliveries).await?;
    // One read per partition: on a cluster they live in different slots.
    let reads = worker.partitions.all().map(|keys| {
        let mut conn = conn.clone();
        // Retries, and tasks deferred before their first attempt.
        async move {
            let (retrying, deferred): (u64, u64) = redis::pipe()
                .cmd("ZCARD")
                .arg(keys.retry())
                .cmd("ZCARD")
                .arg(keys.deferred())
                .query_async(&mut conn)
                .await?;
            Ok::<u64, redis::RedisError>(retrying + deferred)
        }
    });
    let waiting = futures::future::try_join_all(reads).await?;
    metrics::gauge!("hookline_retries_scheduled").set(waiting.iter().sum::<u64>() as f64);
    Ok(())
}
