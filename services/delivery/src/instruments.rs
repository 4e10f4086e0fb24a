//! The delivery service's metrics, described once (Prometheus `# HELP`) and
//! set to zero at start so dashboards and `rate()` see every series from
//! the first scrape. Recorded in `dispatch` (attempts) and sampled in
//! `gauges`; queue gauges come from `hookline_queue`, call metrics from
//! `hookline_server`.

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram};

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
        "Tasks put back without an attempt: paused, open circuit, in-flight or rate limit, fair share"
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
    counter!("hookline_deliveries_parked_total").absolute(0);
    counter!("hookline_delivery_outcomes_lost_total").absolute(0);
    counter!("hookline_delivery_panics_total").absolute(0);
    hookline_watch::describe_metrics();
    hookline_queue::describe_stream_gauges();
}
