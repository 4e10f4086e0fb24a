//! Trace ids without an exporter: when no span leaves the process, the
//! OpenTelemetry layer would build every span (attributes formatted,
//! an SDK span created and dropped at close) only to hand out its ids.
//! This layer keeps just the ids, in the span's extensions: a trace id
//! and flags inherited from the parent span (or a new trace), a span id
//! of its own. [`crate::continue_trace`] and [`crate::traceparent_of`]
//! read and set them the same way as with the OpenTelemetry layer, so
//! the `traceparent` sent on and the ids in log lines do not depend on
//! whether traces are exported.

use tracing::{Span, Subscriber, span};
use tracing_subscriber::{Layer, Registry, layer::Context, registry::LookupSpan};

/// One span's place in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpanIds {
    pub(crate) trace_id: u128,
    pub(crate) span_id: u64,
    /// W3C trace flags; only the sampled bit is kept, as OpenTelemetry's
    /// propagator does.
    pub(crate) flags: u8,
}

impl SpanIds {
    /// A span of a new trace, sampled (what the SDK's default sampler
    /// decides for a root span).
    fn root() -> Self {
        Self { trace_id: nonzero(rand::random), span_id: nonzero(rand::random), flags: 1 }
    }

    /// A new span in `parent`'s trace.
    fn child_of(parent: &Self) -> Self {
        Self { trace_id: parent.trace_id, span_id: nonzero(rand::random), flags: parent.flags }
    }

    /// `00-<trace id>-<span id>-<flags>`.
    pub(crate) fn traceparent(&self) -> String {
        format!("00-{:032x}-{:016x}-{:02x}", self.trace_id, self.span_id, self.flags)
    }

    /// The trace and flags named by a W3C `traceparent` (the parent's span
    /// id is not kept: nothing here exports the parent link). `None` when
    /// it is malformed or names no trace, as the OpenTelemetry propagator
    /// would refuse it.
    pub(crate) fn parent_of(traceparent: &str) -> Option<(u128, u8)> {
        let mut parts = traceparent.trim().splitn(5, '-');
        let (Some(version), Some(trace), Some(span), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let rest = parts.next();
        let hex = |s: &str, len: usize| {
            (s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(())
        };
        hex(version, 2)?;
        hex(trace, 32)?;
        hex(span, 16)?;
        hex(flags, 2)?;
        // Version 00 has exactly four parts; `ff` is invalid; a later
        // version may add parts after the four it shares with 00.
        if version == "ff" || (version == "00" && rest.is_some()) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok().filter(|t| *t != 0)?;
        u64::from_str_radix(span, 16).ok().filter(|s| *s != 0)?;
        let flags = u8::from_str_radix(flags, 16).ok()? & 1;
        Some((trace_id, flags))
    }
}

fn nonzero<T: PartialEq + Default>(mut draw: impl FnMut() -> T) -> T {
    loop {
        let value = draw();
        if value != T::default() {
            return value;
        }
    }
}

/// The layer: every span it is enabled for gets [`SpanIds`].
#[derive(Debug, Default)]
pub(crate) struct TraceIdLayer;

impl<S> Layer<S> for TraceIdLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let parent = span.parent().and_then(|p| p.extensions().get::<SpanIds>().copied());
        let ids = parent.as_ref().map_or_else(SpanIds::root, SpanIds::child_of);
        span.extensions_mut().insert(ids);
    }
}

/// Calls `f` with `span`'s ids; `None` when this layer is not installed
/// (or the span is disabled for it). The ids live in the registry's
/// extensions of the span, so they are reached through the registry.
pub(crate) fn with_span_ids<T>(span: &Span, f: impl FnOnce(&mut SpanIds) -> T) -> Option<T> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let data = registry.span(id)?;
        let mut extensions = data.extensions_mut();
        extensions.get_mut::<SpanIds>().map(f)
    })
    .flatten()
}
