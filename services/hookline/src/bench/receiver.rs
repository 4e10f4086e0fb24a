//! The receiving end: a minimal HTTP server standing in for subscribers.
//! The first path segment names a counter (`/t/...` → `t`), so each phase
//! counts its own deliveries; `/hang/...` never answers within any
//! timeout. A body starting `{"t":<µs>` carries its publish time, and the
//! receiver records the publish-to-receive latency.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{body::Bytes, http::Uri};

use super::BenchError;

/// Microseconds since the bench started: publishers stamp events with it.
pub(super) fn clock_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

#[derive(Debug, Default)]
pub(super) struct Received {
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
    latencies_us: Mutex<Vec<u64>>,
}

impl Received {
    /// The counter of a path's first segment (allocates only the first
    /// time a name is seen: this runs for every request received).
    pub(super) fn counter(&self, name: &str) -> Arc<AtomicU64> {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(counter) = counters.get(name) {
            return counter.clone();
        }
        counters.entry(name.to_owned()).or_default().clone()
    }

    /// The latencies recorded so far, emptied.
    pub(super) fn take_latencies(&self) -> Vec<u64> {
        std::mem::take(&mut *self.latencies_us.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Starts the receiver on 127.0.0.1.
pub(super) async fn start() -> Result<(SocketAddr, Arc<Received>), BenchError> {
    let received = Arc::new(Received::default());
    let state = received.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, body: Bytes| {
        let state = state.clone();
        async move {
            let name = uri.path().trim_start_matches('/').split('/').next().unwrap_or_default();
            if name == "hang" {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return "";
            }
            if let Some(sent) = sent_at(&body) {
                let latency = clock_us().saturating_sub(sent);
                state.latencies_us.lock().unwrap_or_else(|e| e.into_inner()).push(latency);
            }
            state.counter(name).fetch_add(1, Ordering::Relaxed);
            ""
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| BenchError::Setup(e.to_string()))?;
    let addr = listener.local_addr().map_err(|e| BenchError::Setup(e.to_string()))?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, received))
}

/// The publish time of a body starting `{"t":<digits>`.
fn sent_at(body: &[u8]) -> Option<u64> {
    let rest = body.strip_prefix(br#"{"t":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}
