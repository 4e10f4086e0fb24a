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

    /// `00-<trace id>-<span id>-<flags>`. (Written digit by digit: one is
    /// made for every span of every delivery, and `format!`'s padded hex
    /// cost more than the rest of it.)
    pub(crate) fn traceparent(&self) -> String {
        let mut text = [b'-'; 55];
        text[..2].copy_from_slice(b"00");
        put_hex(&mut text[3..35], self.trace_id);
        put_hex(&mut text[36..52], u128::from(self.span_id));
        put_hex(&mut text[53..55], u128::from(self.flags));
        String::from_utf8_lossy(&text).into_owned()
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

/// Writes the low `out.len()` hex digits of `value` into `out`, lowercase,
/// zero-padded.
fn put_hex(out: &mut [u8], mut value: u128) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for place in out.iter_mut().rev() {
        *place = DIGITS[(value & 0xf) as usize];
        value >>= 4;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_is_the_w3c_text_of_its_ids() {
        let ids = SpanIds { trace_id: 0x0af7651916cd43dd8448eb211c80319c, span_id: 0xb7ad6b7169203331, flags: 1 };
        assert_eq!(ids.traceparent(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        let small = SpanIds { trace_id: 1, span_id: 2, flags: 0 };
        assert_eq!(small.traceparent(), format!("00-{:032x}-{:016x}-00", 1, 2));
        for ids in [ids, small, SpanIds { trace_id: u128::MAX, span_id: u64::MAX, flags: 1 }] {
            assert_eq!(SpanIds::parent_of(&ids.traceparent()), Some((ids.trace_id, ids.flags)));
        }
    }
}
