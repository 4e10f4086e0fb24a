//! Logs and traces, set up the same way by every hookline binary.
//!
//! - **Logs**: `tracing` with `HOOKLINE_LOG` (or `RUST_LOG`) as the filter,
//!   default `info`; `HOOKLINE_LOG_FORMAT=json` for one JSON object a line.
//! - **Traces**: exported over OTLP/gRPC when the standard variables ask for
//!   it (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`;
//!   `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`,
//!   `OTEL_TRACES_SAMPLER_ARG` are read by the SDK); nothing is exported and
//!   nothing connects anywhere otherwise (`OTEL_SDK_DISABLED=true` or
//!   `OTEL_TRACES_EXPORTER=none` turn it off explicitly).
//!
//! Trace ids exist either way: when exporting, the OpenTelemetry layer
//! builds each span; when not, a layer that keeps only each span's ids
//! (`ids`) stands in for it, so no span is built just to be dropped.
//! With either, [`continue_trace`] joins a span to the trace named by a
//! stored W3C `traceparent`, hands out the span's own `traceparent` for
//! the next hop, and puts `trace_id` / `span_id` on the span so every log
//! line inside it carries them. Only spans at `info` and above are in
//! traces, whatever the log filter says, so `RUST_LOG=warn` does not cut
//! them.

mod ids;
mod propagation;

pub use propagation::{continue_trace, traceparent_of};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing_subscriber::{EnvFilter, Layer, filter::LevelFilter, fmt, prelude::*};

/// Keeps the trace exporter alive; flushes buffered spans when dropped.
/// Hold it until the end of `main`.
#[derive(Debug)]
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    exporting: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.exporting.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.exporting.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("trace export did not shut down cleanly: {error}");
        }
    }
}

/// Installs the global subscriber (logs + traces) for `service`, the
/// default `service.name` when `OTEL_SERVICE_NAME` does not name one. Call
/// once, first thing in `main`, inside the Tokio runtime (the exporter
/// runs on it).
pub fn init(service: &'static str) -> TelemetryGuard {
    init_with(service, "info")
}

/// [`init`] with another log filter than `info` when neither
/// `HOOKLINE_LOG` nor `RUST_LOG` is set (benchmarks, tools).
pub fn init_with(service: &'static str, default_filter: &str) -> TelemetryGuard {
    let (provider, exporter_error) = match otlp_requested() {
        true => match opentelemetry_otlp::SpanExporter::builder().with_tonic().build() {
            Ok(exporter) => (Some(provider_builder(service).with_batch_exporter(exporter).build()), None),
            Err(error) => (None, Some(error.to_string())),
        },
        false => (None, None),
    };
    // Exporting: lean OpenTelemetry spans (no busy/idle timing, thread,
    // source-location or target attributes, and no OpenTelemetry context
    // switch on every poll: hops are continued explicitly with
    // `continue_trace`). Not exporting: only the ids, which is all that is
    // used of a span then (the `traceparent` sent on, the ids in logs).
    let traces = match &provider {
        Some(provider) => tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("hookline"))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_target(false)
            .with_context_activation(false)
            .with_filter(LevelFilter::INFO)
            .boxed(),
        None => ids::TraceIdLayer.with_filter(LevelFilter::INFO).boxed(),
    };
    let json = std::env::var("HOOKLINE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let logs = if json {
        fmt::layer().json().flatten_event(true).with_filter(log_filter(default_filter)).boxed()
    } else {
        fmt::layer().with_target(false).with_ansi(stdout_is_terminal()).with_filter(log_filter(default_filter)).boxed()
    };
    tracing_subscriber::registry().with(traces).with(logs).init();
    opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    match (&provider, exporter_error) {
        (Some(_), _) => tracing::info!(service, "exporting traces over OTLP"),
        (None, Some(error)) => tracing::error!(%error, "OTLP trace exporter could not start; traces are not exported"),
        (None, None) => {}
    }
    TelemetryGuard { exporting: provider }
}

/// Colours only for a person at a terminal, not in files or collectors.
fn stdout_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout())
}

fn log_filter(default: &str) -> EnvFilter {
    std::env::var("HOOKLINE_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new(default))
}

/// Whether the environment asks for OTLP trace export.
fn otlp_requested() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let is = |name: &str, value: &str| std::env::var(name).is_ok_and(|v| v.trim().eq_ignore_ascii_case(value));
    if is("OTEL_SDK_DISABLED", "true") || is("OTEL_TRACES_EXPORTER", "none") {
        return false;
    }
    set("OTEL_EXPORTER_OTLP_ENDPOINT")
        || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        || is("OTEL_TRACES_EXPORTER", "otlp")
}

fn provider_builder(service: &'static str) -> opentelemetry_sdk::trace::TracerProviderBuilder {
    let named_by_env = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    let resource =
        if named_by_env { Resource::builder().build() } else { Resource::builder().with_service_name(service).build() };
    SdkTracerProvider::builder().with_resource(resource)
}
