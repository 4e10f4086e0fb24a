//! The admin HTTP port every service may open (`admin_addr`): `/healthz`
//! (the process is up), `/readyz` (its dependencies answer: same check as
//! gRPC health), and `/metrics` (Prometheus text).
//!
//! Metrics are recorded with the `metrics` crate facade anywhere in the
//! code; one Prometheus recorder per process renders them here.

use std::{
    net::SocketAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;

/// Whether the service is ready, as its health check last found.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The process's Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ])
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (tests): render an empty one.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

#[derive(Clone)]
struct AdminState {
    ready: Readiness,
    metrics: PrometheusHandle,
}

/// Serves the admin endpoints on `addr` until `stop` turns true.
pub async fn serve_admin(addr: SocketAddr, ready: Readiness, stop: watch::Receiver<bool>) -> std::io::Result<()> {
    serve_admin_with(addr, ready, metrics_handle(), stop).await
}

async fn serve_admin_with(
    addr: SocketAddr,
    ready: Readiness,
    metrics: PrometheusHandle,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let state = AdminState { ready, metrics };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(s): State<AdminState>| async move {
                if s.ready.get() {
                    (StatusCode::OK, "ready\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                }
            }),
        )
        .route("/metrics", get(|State(s): State<AdminState>| async move { s.metrics.render() }))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "admin endpoints listening (/healthz, /readyz, /metrics)");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}

/// Starts the admin endpoints in the background when `addr` is set.
pub fn spawn_admin(addr: Option<SocketAddr>, ready: Readiness, stop: watch::Receiver<bool>) {
    let Some(addr) = addr else { return };
    // Installed now, not in the task: metrics recorded from here on count.
    let metrics = metrics_handle();
    tokio::spawn(async move {
        if let Err(error) = serve_admin_with(addr, ready, metrics, stop).await {
            tracing::error!(%error, %addr, "admin endpoints failed");
        }
    });
}
