//! A span and metrics for every gRPC call a hookline server answers.
//!
//! The span follows the OpenTelemetry RPC conventions (`rpc.system`,
//! `rpc.service`, `rpc.method`, `rpc.grpc.status_code`), continues the
//! caller's `traceparent` from the request metadata, and is the span the
//! handler runs in: a handler adds `hookline.*` attributes to it with
//! `Span::current().record(..)`. Health checks and reflection are counted
//! but not traced (probes would fill the trace store).
//!
//! Metrics: `hookline_grpc_server_requests_total{service, method, code}` and
//! `hookline_grpc_server_duration_seconds{service, method}`. The status is
//! read from the response head, where tonic puts every error of a unary
//! call; a stream that fails later still counts as `Ok`.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use tower::{Layer, Service};
use tracing::{Instrument, Span, field::Empty};

/// Adds [`GrpcTelemetry`] to a server.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcTelemetryLayer;

impl<S> Layer<S> for GrpcTelemetryLayer {
    type Service = GrpcTelemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        describe();
        GrpcTelemetry { inner }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct GrpcTelemetry<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcTelemetry<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let (service, method) = split_path(request.uri().path());
        let traced = !service.starts_with("grpc.");
        let span = if traced {
            let span = tracing::info_span!(
                "grpc",
                otel.name = %format_args!("{service}/{method}"),
                otel.kind = "server",
                otel.status_code = Empty,
                rpc.system = "grpc",
                rpc.service = %service,
                rpc.method = %method,
                rpc.grpc.status_code = Empty,
                hookline.tenant = Empty,
                hookline.event_id = Empty,
                hookline.event_type = Empty,
                hookline.subscription_id = Empty,
                trace_id = Empty,
                span_id = Empty,
            );
            let parent = request.headers().get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or_default();
            hookline_telemetry::continue_trace(&span, parent);
            span
        } else {
            Span::none()
        };
        let started = Instant::now();
        let call = span.in_scope(|| self.inner.call(request));
        Box::pin(
            async move {
                let result = call.await;
                let code = match &result {
                    Ok(response) => response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .map_or(tonic::Code::Ok, tonic::Code::from),
                    Err(_) => tonic::Code::Internal,
                };
                let current = Span::current();
                current.record("rpc.grpc.status_code", code as i32);
                if is_server_error(code) {
                    current.record("otel.status_code", "ERROR");
                }
                let labels = [("service", service), ("method", method)];
                metrics::histogram!("hookline_grpc_server_duration_seconds", &labels)
                    .record(started.elapsed().as_secs_f64());
                let [service, method] = labels;
                metrics::counter!(
                    "hookline_grpc_server_requests_total",
                    &[service, method, ("code", code_name(code).to_owned())]
                )
                .increment(1);
                result
            }
            .instrument(span),
        )
    }
}

fn describe() {
    metrics::describe_counter!(
        "hookline_grpc_server_requests_total",
        "gRPC calls answered, by service, method and status code"
    );
    metrics::describe_histogram!(
        "hookline_grpc_server_duration_seconds",
        metrics::Unit::Seconds,
        "Time to answer a gRPC call (to the response head for streams)"
    );
}

/// `/pkg.Service/Method` → (`pkg.Service`, `Method`).
fn split_path(path: &str) -> (String, String) {
    let path = path.trim_start_matches('/');
    match path.split_once('/') {
        Some((service, method)) => (service.to_owned(), method.to_owned()),
        None => (path.to_owned(), String::new()),
    }
}

/// The codes OpenTelemetry marks as a server-side error.
fn is_server_error(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(code, Unknown | DeadlineExceeded | Unimplemented | Internal | Unavailable | DataLoss)
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            split_path("/hookline.v1.EventService/Publish"),
            ("hookline.v1.EventService".into(), "Publish".into())
        );
        assert_eq!(split_path("/odd"), ("odd".into(), String::new()));
    }
}
