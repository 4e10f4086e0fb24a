//! The fanout service's metrics, described once (Prometheus `# HELP`) and
//! set to zero at start so dashboards and `rate()` see every series from
//! the first scrape. Queue gauges come from `hookline_queue`, call metrics
//! from `hookline_server`.

use metrics::{Unit, counter, describe_counter, describe_gauge};

pub(crate) fn describe() {
    hookline_watch::describe_metrics();
    describe_counter!(
        "hookline_publish_total",
        "Events accepted by Publish/PublishBatch, by result (published, duplicate)"
    );
    describe_counter!("hookline_fanout_events_total", "Events fanned out (matched and their deliveries enqueued)");
    describe_counter!(
        "hookline_fanout_tasks_total",
        "Delivery tasks enqueued by fan-out (one per matching subscription)"
    );
    describe_gauge!(
        "hookline_delivery_backlog",
        Unit::Count,
        "Delivery tasks not yet acknowledged, per partition, as fan-out sees them for backpressure"
    );
    describe_counter!(
        "hookline_fanout_backlog_waits_total",
        "Fan-out steps that waited because the delivery backlog was at max_delivery_backlog, per partition"
    );
    for result in ["published", "duplicate"] {
        counter!("hookline_publish_total", "result" => result).absolute(0);
    }
    counter!("hookline_fanout_events_total").absolute(0);
    counter!("hookline_fanout_tasks_total").absolute(0);
    hookline_queue::describe_stream_gauges();
    hookline_queue::describe_durability_metrics();
    hookline_queue::describe_left_for_newer_build();
}
