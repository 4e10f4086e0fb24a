//! W3C trace context across hops that are not gRPC calls: a `traceparent`
//! is stored in each stream entry and continued by the next service.

use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A carrier holding just a `traceparent`.
struct Traceparent<'a>(&'a str);

impl Extractor for Traceparent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// Makes `span` (not yet entered) a child of the trace named by
/// `traceparent` (a new trace when it is empty or malformed), records its
/// `trace_id` and `span_id` fields (declare them `Empty` on the span), and
/// returns the span's own `traceparent` for the next hop.
///
/// Without the OpenTelemetry layer (a test without [`crate::init`]) the
/// span has no ids and `traceparent` is passed on unchanged.
pub fn continue_trace(span: &Span, traceparent: &str) -> String {
    if !traceparent.is_empty() {
        let parent = TraceContextPropagator::new().extract(&Traceparent(traceparent));
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
    match traceparent_of(span) {
        Some(own) => {
            // `00-<trace id>-<span id>-<flags>`
            span.record("trace_id", &own[3..35]);
            span.record("span_id", &own[36..52]);
            own
        }
        None => traceparent.to_owned(),
    }
}

/// The W3C `traceparent` of `span`, if it belongs to a trace.
pub fn traceparent_of(span: &Span) -> Option<String> {
    let context = span.context();
    let ids = context.span().span_context().clone();
    ids.is_valid().then(|| format!("00-{}-{}-{:02x}", ids.trace_id(), ids.span_id(), ids.trace_flags().to_u8()))
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::prelude::*;

    use super::*;

    fn with_tracing<T>(f: impl FnOnce() -> T) -> T {
        let tracer = opentelemetry_sdk::trace::SdkTracerProvider::builder().build().tracer("test");
        let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
        tracing::subscriber::with_default(subscriber, f)
    }

    #[test]
    fn a_span_continues_the_stored_trace_with_a_new_span_id() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let own = with_tracing(|| {
            let span = tracing::info_span!("hop", trace_id = tracing::field::Empty, span_id = tracing::field::Empty);
            continue_trace(&span, incoming)
        });
        let parts: Vec<&str> = own.split('-').collect();
        assert_eq!(parts.len(), 4, "{own}");
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(parts[2], "00f067aa0ba902b7");
        assert_eq!(parts[3], "01");
    }

    #[test]
    fn an_unsampled_parent_stays_unsampled() {
        let own = with_tracing(|| {
            continue_trace(&tracing::info_span!("hop"), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
        });
        assert!(own.ends_with("-00"), "{own}");
    }

    #[test]
    fn without_a_parent_a_new_trace_starts() {
        let (a, b) = with_tracing(|| {
            (continue_trace(&tracing::info_span!("a"), ""), continue_trace(&tracing::info_span!("b"), "garbage"))
        });
        assert!(a.starts_with("00-") && b.starts_with("00-"));
        assert_ne!(a.split('-').nth(1), b.split('-').nth(1));
    }

    #[test]
    fn without_the_layer_the_traceparent_passes_through() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(continue_trace(&tracing::info_span!("hop"), incoming), incoming);
    }
}
