//! The delivery service's metrics, described once (Prometheus `# HELP`) and
//! set to zero at start so dashboards and `rate()` see every series from
//! the first scrape. Recorded in `dispatch` (attempts) and sampled in
//! `gauges`; queue gauges come from `hookline_queue`, call metrics from
//! `hookline_server`.

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram};

use crate::store::ParkOutcome;

/// Why a task was put back without an attempt: the `reason` label of
/// `hookline_deliveries_parked_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParkReason {
    /// Its subscription is paused: held until resumed.
    Paused,
    /// Its subscription is gone or disabled.
    Cancelled,
    CircuitOpen,
    /// The subscription's in-flight limit is full and its attempts are
    /// slow or not known yet: deferred in Redis.
    InFlight,
    /// The in-flight limit is full and the waiting room holds its share.
    WaitingRoomFull,
    /// Waited in the waiting room past its longest wait (or the process
    /// is stopping).
    WaitedTooLong,
    RateLimited,
    /// Over its fair share of this process's slots.
    FairShare,
    /// A malformed task (acknowledged and skipped; one of a newer format
    /// is left pending instead: `hookline_queue::LeftForNewerBuild`).
    Unreadable,
    /// The subscription cache is of another change log than the current
    /// one (the subscription store was emptied): deferred until it reloads.
    CacheReloading,
    /// The subscription is unknown to a cache that is behind the change log
    /// (its watch cut off?): deferred until it catches up, never cancelled
    /// on a guess.
    CacheBehind,
}

impl ParkReason {
    const ALL: [Self; 11] = [
        Self::Paused,
        Self::Cancelled,
        Self::CircuitOpen,
        Self::InFlight,
        Self::WaitingRoomFull,
        Self::WaitedTooLong,
        Self::RateLimited,
        Self::FairShare,
        Self::Unreadable,
        Self::CacheReloading,
        Self::CacheBehind,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Paused => "paused",
            Self::Cancelled => "cancelled",
            Self::CircuitOpen => "circuit_open",
            Self::InFlight => "in_flight",
            Self::WaitingRoomFull => "waiting_room_full",
            Self::WaitedTooLong => "waited_too_long",
            Self::RateLimited => "rate_limited",
            Self::FairShare => "fair_share",
            Self::Unreadable => "unreadable",
            Self::CacheReloading => "cache_reloading",
            Self::CacheBehind => "cache_behind",
        }
    }
}

/// Tasks put back in one step, by reason, counted once the step ends.
#[derive(Debug, Default)]
pub(crate) struct Parked([u64; ParkReason::ALL.len()]);

impl Parked {
    pub(crate) fn add(&mut self, reason: ParkReason) {
        self.0[reason as usize] += 1;
    }

    pub(crate) fn any(&self) -> bool {
        self.0.iter().any(|n| *n > 0)
    }

    pub(crate) fn record(&self) {
        for (reason, n) in ParkReason::ALL.iter().zip(self.0).filter(|(_, n)| *n > 0) {
            counter!("hookline_deliveries_parked_total", "reason" => reason.label()).increment(n);
        }
    }

    /// Counts the step's tasks by reason and reads its pipeline's replies:
    /// those of its `park.lua` calls, a number per task (every other
    /// command in it ignored). A failed call leaves its tasks pending, so
    /// they are claimed again; a task whose stream was gone (Redis
    /// restarted empty) went with it, and nothing will claim it: logged
    /// and counted.
    pub(crate) fn record_replies(&self, replies: Vec<redis::RedisResult<redis::Value>>) {
        self.record();
        let mut lost = 0;
        for reply in replies {
            match reply.map(redis::from_redis_value::<Vec<i64>>) {
                Err(error) => tracing::warn!(%error, "could not put deliveries back; they will be claimed again"),
                Ok(Ok(outcomes)) => {
                    lost += outcomes.into_iter().filter(|n| ParkOutcome::from_reply(*n) == ParkOutcome::Lost).count();
                }
                Ok(Err(error)) => tracing::warn!(%error, "an unreadable reply from park.lua"),
            }
        }
        if lost > 0 {
            tracing::warn!(
                lost,
                "the deliveries stream is gone (Redis restarted empty?): tasks being put back without an attempt went with it"
            );
            counter!("hookline_delivery_tasks_lost_total").increment(lost as u64);
        }
    }
}

/// The `outcome` label of `hookline_delivery_attempts_total`.
pub(crate) const OUTCOMES: [&str; 4] = ["succeeded", "retry", "dead_lettered", "gone"];

pub(crate) fn describe(tenant_label: bool) {
    describe_counter!(
        "hookline_delivery_attempts_total",
        "Delivery attempts by outcome: succeeded, retry (scheduled again), dead_lettered, gone (410)"
    );
    describe_histogram!(
        "hookline_delivery_attempt_duration_seconds",
        Unit::Seconds,
        "Duration of each HTTP attempt, connect to response body"
    );
    describe_histogram!(
        "hookline_publish_to_delivery_seconds",
        Unit::Seconds,
        "From Publish acknowledged to a successful attempt's response"
    );
    describe_counter!(
        "hookline_deliveries_parked_total",
        "Tasks put back without an attempt, by reason: paused, cancelled, circuit_open, in_flight, waiting_room_full, waited_too_long, rate_limited, fair_share, unreadable, cache_reloading, cache_behind"
    );
    describe_counter!(
        "hookline_delivery_tasks_lost_total",
        "Tasks being put back without an attempt whose stream was gone (Redis restarted empty): gone with it"
    );
    describe_gauge!("hookline_retries_scheduled", Unit::Count, "Deliveries waiting for a later attempt");
    describe_gauge!("hookline_subscriptions", Unit::Count, "Subscriptions known to this replica, by state");
    describe_gauge!("hookline_circuit_breakers", Unit::Count, "Endpoints whose circuit is open or half-open");
    if !tenant_label {
        for outcome in OUTCOMES {
            counter!("hookline_delivery_attempts_total", "outcome" => outcome).absolute(0);
        }
    }
    describe_counter!(
        "hookline_delivery_panics_total",
        "Attempts or worker steps that panicked (a bug): the attempt's delivery is dead-lettered, the worker goes on"
    );
    describe_counter!(
        "hookline_delivery_outcomes_lost_total",
        "Attempts whose outcome could not be recorded because their task's stream was gone (Redis restarted empty)"
    );
    describe_histogram!(
        "hookline_delivery_completion_batch_size",
        Unit::Count,
        "Finished attempts recorded by one complete.lua call"
    );
    for reason in ParkReason::ALL {
        counter!("hookline_deliveries_parked_total", "reason" => reason.label()).absolute(0);
    }
    counter!("hookline_delivery_outcomes_lost_total").absolute(0);
    counter!("hookline_delivery_tasks_lost_total").absolute(0);
    counter!("hookline_delivery_panics_total").absolute(0);
    hookline_queue::describe_left_for_newer_build();
    hookline_watch::describe_metrics();
    hookline_queue::describe_stream_gauges();
}
