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
//! `hookline_grpc_server_duration_seconds{service, method}`. Labels come
//! from a closed set, the methods hookline's protos, health and reflection
//! define ([`known_method`]): the path of a call is counted before its
//! token is checked, so a made-up path (`/x/1`, `/x/2`, ...) must not make a
//! new series each time; every such call counts as `unknown`. The status is
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
        let (service, method) = known_method(request.uri().path()).unwrap_or((UNKNOWN, UNKNOWN));
        let traced = !service.starts_with("grpc.") && service != UNKNOWN;
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
                let mut result = call.await;
                if let Ok(response) = &mut result {
                    shorten_message(response.headers_mut());
                }
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
                metrics::histogram!("hookline_grpc_server_duration_seconds", "service" => service, "method" => method)
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!(
                    "hookline_grpc_server_requests_total",
                    "service" => service, "method" => method, "code" => code_name(code)
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

/// The longest `grpc-message` a server sends, in bytes before encoding.
/// Error messages quote what the caller sent (a field, an id); a caller
/// sending 100 KB must not get back a header its client refuses.
const MAX_MESSAGE: usize = 1024;

/// Bytes `grpc-message` must percent-encode (the gRPC spec: outside
/// printable ASCII, and `%`).
const MESSAGE_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

/// Cuts a long `grpc-message` to [`MAX_MESSAGE`] bytes (on a character
/// boundary) and marks the cut with `…`.
fn shorten_message(headers: &mut http::HeaderMap) {
    let Some(value) = headers.get("grpc-message") else { return };
    if value.len() <= MAX_MESSAGE {
        return;
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode(value.as_bytes()).collect();
    if decoded.len() <= MAX_MESSAGE {
        return;
    }
    let text = String::from_utf8_lossy(&decoded);
    let mut cut = MAX_MESSAGE.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let short = format!("{}… ({} bytes in all)", &text[..cut], decoded.len());
    let encoded = percent_encoding::utf8_percent_encode(&short, MESSAGE_ENCODE).to_string();
    if let Ok(value) = http::HeaderValue::from_str(&encoded) {
        headers.insert("grpc-message", value);
    }
}

/// The label of a path that names no known method.
const UNKNOWN: &str = "unknown";

/// `/pkg.Service/Method` → (`pkg.Service`, `Method`) when that method
/// exists in hookline's protos, gRPC health or reflection; `None` for any
/// other path.
fn known_method(path: &str) -> Option<(&'static str, &'static str)> {
    /// Path → (service, method), read once from the descriptors; the map
    /// is static, so its strings serve as `'static` labels.
    static KNOWN: std::sync::LazyLock<std::collections::HashMap<String, (String, String)>> =
        std::sync::LazyLock::new(|| {
            let sets = [
                hookline_proto::FILE_DESCRIPTOR_SET,
                tonic_health::pb::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            ];
            let mut known = std::collections::HashMap::new();
            for set in sets {
                let Ok(set) = <prost_types::FileDescriptorSet as prost::Message>::decode(set) else { continue };
                for file in &set.file {
                    for service in &file.service {
                        let full = format!("{}.{}", file.package(), service.name());
                        for method in &service.method {
                            let path = format!("/{full}/{}", method.name());
                            known.insert(path, (full.clone(), method.name().to_owned()));
                        }
                    }
                }
            }
            known
        });
    KNOWN.get(path).map(|(service, method)| (service.as_str(), method.as_str()))
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
    fn long_error_messages_are_cut_on_a_character_boundary() {
        let long = format!("id: `{}` is not valid", "é".repeat(50_000));
        let encoded = percent_encoding::utf8_percent_encode(&long, MESSAGE_ENCODE).to_string();
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-message", http::HeaderValue::from_str(&encoded).unwrap_or_else(|_| unreachable!()));
        shorten_message(&mut headers);
        let value = headers.get("grpc-message").map(|v| v.as_bytes().to_vec()).unwrap_or_default();
        let text = percent_encoding::percent_decode(&value).decode_utf8().map(|t| t.into_owned()).unwrap_or_default();
        assert!(text.starts_with("id: `éé") && text.ends_with(&format!("… ({} bytes in all)", long.len())), "{text}");
        assert!(text.len() < MAX_MESSAGE + 64, "{}", text.len());

        let mut short = http::HeaderMap::new();
        short.insert("grpc-message", http::HeaderValue::from_static("name%3A too long"));
        shorten_message(&mut short);
        assert_eq!(short.get("grpc-message").map(|v| v.as_bytes()), Some(&b"name%3A too long"[..]));
    }

    #[test]
    fn only_defined_methods_become_labels() {
        assert_eq!(known_method("/hookline.v1.EventService/Publish"), Some(("hookline.v1.EventService", "Publish")));
        assert_eq!(known_method("/grpc.health.v1.Health/Check"), Some(("grpc.health.v1.Health", "Check")));
        assert!(known_method("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo").is_some());
        assert!(known_method("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo").is_some());
        for made_up in ["/hookline.v1.EventService/Nope", "/x/1", "/odd", "", "/hookline.v1.EventService/Publish/x"] {
            assert_eq!(known_method(made_up), None, "{made_up}");
        }
    }
}
