//! W3C trace context across hops that are not gRPC calls: a `traceparent`
//! is stored in each stream entry and continued by the next service.

use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::ids::{SpanIds, with_span_ids};

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
/// The same with either trace layer [`crate::init`] installs (the
/// OpenTelemetry one when exporting, the ids-only one otherwise). Without
/// either (a test without [`crate::init`]) the span has no ids and
/// `traceparent` is passed on unchanged.
pub fn continue_trace(span: &Span, traceparent: &str) -> String {
    let light = with_span_ids(span, |ids| {
        if let Some((trace_id, flags)) = SpanIds::parent_of(traceparent) {
            ids.trace_id = trace_id;
            ids.flags = flags;
        }
        ids.traceparent()
    });
    let own = match light {
        Some(own) => Some(own),
        None => {
            if !traceparent.is_empty() {
                let parent = TraceContextPropagator::new().extract(&Traceparent(traceparent));
                if parent.span().span_context().is_valid() {
                    let _ = span.set_parent(parent);
                }
            }
            otel_traceparent(span)
        }
    };
    match own {
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
    with_span_ids(span, |ids| ids.traceparent()).or_else(|| otel_traceparent(span))
}

fn otel_traceparent(span: &Span) -> Option<String> {
    let context = span.context();
    let ids = context.span().span_context().clone();
    ids.is_valid().then(|| format!("00-{}-{}-{:02x}", ids.trace_id(), ids.span_id(), ids.trace_flags().to_u8()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::prelude::*;

    use super::*;
    use crate::ids::TraceIdLayer;

    /// Runs `f` under each trace layer `init` may install: the
    /// OpenTelemetry one (exporting) and the ids-only one (not).
    fn with_each_layer<T>(f: impl Fn() -> T) -> [T; 2] {
        let tracer = opentelemetry_sdk::trace::SdkTracerProvider::builder().build().tracer("test");
        let otel = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
        let light = tracing_subscriber::registry().with(TraceIdLayer);
        [tracing::subscriber::with_default(otel, &f), tracing::subscriber::with_default(light, &f)]
    }

    const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_span_continues_the_stored_trace_with_a_new_span_id() {
        for own in with_each_layer(|| {
            let span = tracing::info_span!("hop", trace_id = tracing::field::Empty, span_id = tracing::field::Empty);
            continue_trace(&span, INCOMING)
        }) {
            let parts: Vec<&str> = own.split('-').collect();
            assert_eq!(parts.len(), 4, "{own}");
            assert_eq!(parts[0], "00");
            assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(parts[2].len(), 16);
            assert_ne!(parts[2], "00f067aa0ba902b7");
            assert_eq!(parts[3], "01");
        }
    }

    #[test]
    fn an_unsampled_parent_stays_unsampled() {
        for own in with_each_layer(|| {
            continue_trace(&tracing::info_span!("hop"), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
        }) {
            assert!(own.ends_with("-00"), "{own}");
        }
    }

    #[test]
    fn without_a_parent_a_new_trace_starts() {
        for (a, b) in with_each_layer(|| {
            (continue_trace(&tracing::info_span!("a"), ""), continue_trace(&tracing::info_span!("b"), "garbage"))
        }) {
            assert!(a.starts_with("00-") && b.starts_with("00-") && a.ends_with("-01"), "{a} {b}");
            assert_ne!(a.split('-').nth(1), b.split('-').nth(1));
        }
    }

    #[test]
    fn malformed_parents_start_a_new_trace_as_opentelemetry_does() {
        let refused = [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ];
        for traceparent in refused {
            let [otel, light] = with_each_layer(|| continue_trace(&tracing::info_span!("hop"), traceparent));
            for own in [&otel, &light] {
                assert_ne!(own.split('-').nth(1), Some("4bf92f3577b34da6a3ce929d0e0e4736"), "{traceparent} -> {own}");
            }
        }
        // A later version's extra parts are allowed.
        let [otel, light] = with_each_layer(|| {
            continue_trace(&tracing::info_span!("hop"), "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
        });
        assert_eq!(otel.split('-').nth(1), light.split('-').nth(1), "{otel} {light}");
    }

    #[test]
    fn a_child_span_is_in_its_parents_trace() {
        for (parent, child) in with_each_layer(|| {
            let parent = tracing::info_span!("parent");
            let own = continue_trace(&parent, INCOMING);
            let child = parent.in_scope(|| traceparent_of(&tracing::info_span!("child")).unwrap());
            (own, child)
        }) {
            assert_eq!(parent.split('-').nth(1), child.split('-').nth(1), "{parent} {child}");
            assert_ne!(parent.split('-').nth(2), child.split('-').nth(2), "{parent} {child}");
        }
    }

    #[test]
    fn without_a_layer_the_traceparent_passes_through() {
        assert_eq!(continue_trace(&tracing::info_span!("hop"), INCOMING), INCOMING);
        assert_eq!(traceparent_of(&tracing::info_span!("hop")), None);
    }
}
