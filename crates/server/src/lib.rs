//! What every hookline gRPC server does the same way: optional TLS (and
//! mTLS), reflection (v1 and v1alpha, which grpcurl still asks for), health
//! that follows a dependency (Redis), and a shutdown that first reports
//! NOT_SERVING, then tells long streams to end, then waits a grace period.
//!
//! Services build their own `tonic` router with [`builder`] and
//! [`reflection`], hand it to [`serve`], and keep their handlers to
//! themselves.

mod admin;
mod binary;
pub mod config;
mod incoming;
mod port;
mod sessions;
mod telemetry;

pub use admin::{Readiness, metrics_handle, serve_admin, spawn_admin};
pub use binary::{ServiceArgs, run_binary};
pub use incoming::{ConnectionLimits, Limited, incoming};
pub use port::{spare_port, spare_port_with};
pub use sessions::{EndedCheck, EndedSessionGuard};
pub use telemetry::{GrpcTelemetry, GrpcTelemetryLayer};

use std::{future::Future, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::{net::TcpListener, sync::watch};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::{ServingStatus, server::HealthReporter};
use tower::layer::util::{Identity as NoLayer, Stack};

/// TLS for the gRPC port.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// When set, clients must present a certificate signed by this CA (mTLS).
    pub client_ca_path: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("tls: {0}")]
    Tls(String),
    #[error("reflection: {0}")]
    Reflection(String),
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("listener: {0}")]
    Listener(#[from] std::io::Error),
}

/// A hookline server: every call traced and counted by [`GrpcTelemetryLayer`].
pub type HooklineServer = Server<Stack<GrpcTelemetryLayer, NoLayer>>;
/// The router a [`HooklineServer`] builds.
pub type Router = tonic::transport::server::Router<Stack<GrpcTelemetryLayer, NoLayer>>;

/// A server builder with TLS applied when configured and HTTP/2 keepalive
/// (a peer that stops answering pings is dropped) and stream limits from
/// `limits`.
pub fn builder(tls: Option<&TlsSection>, limits: &ConnectionLimits) -> Result<HooklineServer, ServerError> {
    let mut server = Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .max_concurrent_streams(limits.max_concurrent_streams)
        .layer(GrpcTelemetryLayer);
    if let Some(tls) = tls {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| ServerError::Tls(format!("{}: {e}", path.display())))
        };
        let mut config =
            ServerTlsConfig::new().identity(Identity::from_pem(read(&tls.cert_path)?, read(&tls.key_path)?));
        if let Some(ca) = &tls.client_ca_path {
            config = config.client_ca_root(Certificate::from_pem(read(ca)?));
        }
        server = server.tls_config(config)?;
    }
    Ok(server)
}

/// Adds gRPC reflection (v1 and v1alpha) that lists `served` (the
/// fully-qualified names of the services this server answers), gRPC health
/// and reflection itself: each server lists only what it serves, though
/// the descriptors of all hookline's protos are there to describe them.
pub fn with_reflection(router: Router, served: &[&str]) -> Result<Router, ServerError> {
    let reflection = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(hookline_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health");
        for name in served {
            builder = builder.with_service_name(*name);
        }
        builder
    };
    let v1 = reflection().build_v1().map_err(|e| ServerError::Reflection(e.to_string()))?;
    let v1alpha = reflection().build_v1alpha().map_err(|e| ServerError::Reflection(e.to_string()))?;
    Ok(router.add_service(v1).add_service(v1alpha))
}

/// Serves `router` on `listener` (connections bounded and kept alive by
/// `limits`, see [`incoming`]) until `shutdown` resolves. Then flips
/// `stop` to `true` (health reporters and streams watch it), stops
/// accepting calls, and gives calls in flight `grace` to finish.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    limits: &ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
    stop: watch::Sender<bool>,
    grace: Duration,
) -> Result<(), ServerError> {
    let mut stopped = stop.subscribe();
    let stopping = async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    };
    let server = router.serve_with_incoming_shutdown(incoming(listener, limits), stopping);
    tokio::select! {
        result = server => result?,
        () = async {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!(grace_secs = grace.as_secs(), "calls still in flight after the grace period; stopping anyway"),
    }
    Ok(())
}

/// Keeps gRPC health in step with `check` (e.g. a Redis PING), polled every
/// `interval`, for the overall status and each of `services`; reports
/// NOT_SERVING for good once `stop` is `true`.
pub async fn report_health<F, Fut>(
    reporter: HealthReporter,
    services: &[&str],
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    readiness: Readiness,
    check: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let mut last = None;
    loop {
        let stopping = *stop.borrow();
        let status = if !stopping && tokio::time::timeout(interval, check()).await.unwrap_or(false) {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        readiness.set(status == ServingStatus::Serving);
        if last != Some(status) {
            tracing::info!(?status, "health");
            reporter.set_service_status("", status).await;
            for service in services {
                reporter.set_service_status(*service, status).await;
            }
            last = Some(status);
        }
        if stopping {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Runs `task` now and then every `interval` until `stop` turns true (a
/// sampler of gauges, say); its errors are logged at debug level.
pub async fn every<F, Fut, E>(interval: Duration, mut stop: watch::Receiver<bool>, what: &str, task: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    while !*stop.borrow() {
        if let Err(error) = task().await {
            tracing::debug!(%error, what, "periodic task failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The shutdown future `run_binary` hands to a service.
pub type Shutdown = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Resolves on SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
