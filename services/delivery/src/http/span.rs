//! The span of one delivery attempt: an HTTP client span (OpenTelemetry
//! HTTP conventions) in the event's trace, a child of the fan-out that
//! enqueued the task. Retries are further attempts in the same trace.
//! The URL is recorded without its query string (credentials are refused
//! when a subscription is created), and no header value is recorded.

use hookline_queue::DeliveryTask;
use hookline_watch::CachedSubscription;
use tracing::{Span, field::Empty};

use super::{AttemptError, AttemptResult};

/// A span for `task`'s attempt to `cached`'s endpoint, not yet entered.
pub(crate) fn attempt_span(task: &DeliveryTask, cached: &CachedSubscription) -> Span {
    let url = cached.subscription.spec.url.as_url();
    tracing::info_span!(
        "attempt",
        otel.name = "POST",
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = "POST",
        url.full = cached.subscription.spec.url.redacted(),
        server.address = url.host_str().unwrap_or_default(),
        server.port = url.port_or_known_default().unwrap_or(0),
        http.response.status_code = Empty,
        error.type = Empty,
        hookline.tenant = task.tenant.as_str(),
        hookline.subscription_id = task.subscription_id.as_str(),
        hookline.event_id = task.event_id.as_str(),
        hookline.event_type = task.event_type.as_str(),
        hookline.delivery_id = task.delivery_id.as_str(),
        hookline.attempt = task.attempt,
        trace_id = Empty,
        span_id = Empty,
    )
}

/// Records the outcome of the attempt on `span`.
pub(crate) fn record(span: &Span, result: &AttemptResult) {
    if result.status > 0 {
        span.record("http.response.status_code", result.status);
    }
    match result.error {
        AttemptError::None => {}
        AttemptError::HttpStatus => {
            span.record("error.type", result.status.to_string());
            span.record("otel.status_code", "ERROR");
        }
        other => {
            span.record("error.type", other.as_str());
            span.record("otel.status_code", "ERROR");
        }
    }
}
