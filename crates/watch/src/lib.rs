//! A local, always-current copy of every subscription, for the fanout and
//! delivery services' hot paths.
//!
//! [`SubscriptionCache::spawn`] follows the subscription service's
//! `WatchSubscriptions` stream in a background task: it applies the
//! snapshot (swapped in whole, so readers never see half of one), then each
//! change, and on any disconnect reconnects with backoff, resuming from the
//! last revision it applied (the server sends a fresh snapshot when it
//! cannot resume). Readers take a cheap [`Arc`] of the current
//! [`CacheState`] and never wait on the network.

mod state;

use std::{sync::Arc, time::Duration};

use hookline_auth::BearerToken;
use hookline_proto::v1::{self, subscription_service_client::SubscriptionServiceClient};
use tokio::{sync::watch, task::JoinHandle};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

pub use state::{CacheState, CachedSubscription};

/// Where and how to reach the subscription service.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// `http://host:port` (or `https://`).
    pub endpoint: String,
    /// The service token.
    pub token: String,
    pub connect_timeout: Duration,
    pub max_backoff: Duration,
}

impl WatchConfig {
    pub fn new(endpoint: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            token: token.into(),
            connect_timeout: Duration::from_secs(2),
            max_backoff: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("invalid watch endpoint `{0}`")]
    Endpoint(String),
    #[error("invalid service token")]
    Token,
    #[error("timed out waiting for the subscription cache")]
    Timeout,
}

/// A handle on the cache; clones share it.
#[derive(Debug, Clone)]
pub struct SubscriptionCache {
    state: watch::Receiver<Arc<CacheState>>,
}

impl SubscriptionCache {
    /// Starts following the watch stream. The cache is empty and not
    /// [`CacheState::is_ready`] until the first snapshot has arrived.
    pub fn spawn(config: WatchConfig) -> Result<(Self, JoinHandle<()>), WatchError> {
        let endpoint = Channel::from_shared(config.endpoint.clone())
            .map_err(|_| WatchError::Endpoint(config.endpoint.clone()))?
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true);
        let token = BearerToken::new(&config.token).map_err(|_| WatchError::Token)?;
        let (tx, rx) = watch::channel(Arc::new(CacheState::default()));
        let task = tokio::spawn(follow(endpoint, token, tx, config.max_backoff));
        Ok((Self { state: rx }, task))
    }

    /// The current state: cheap, never blocks on the network.
    pub fn state(&self) -> Arc<CacheState> {
        self.state.borrow().clone()
    }

    /// Waits until the first snapshot is in.
    pub async fn ready(&self, timeout: Duration) -> Result<Arc<CacheState>, WatchError> {
        self.wait(timeout, |s| s.is_ready()).await
    }

    /// Waits until the cache has applied `revision` (e.g. the revision a
    /// write returned), so a reader sees that write.
    pub async fn caught_up_to(&self, revision: u64, timeout: Duration) -> Result<Arc<CacheState>, WatchError> {
        self.wait(timeout, |s| s.is_ready() && s.revision() >= revision).await
    }

    /// Waits until `condition` holds for the state.
    pub async fn wait(
        &self,
        timeout: Duration,
        condition: impl Fn(&CacheState) -> bool,
    ) -> Result<Arc<CacheState>, WatchError> {
        let mut rx = self.state.clone();
        match tokio::time::timeout(timeout, rx.wait_for(|s| condition(s))).await {
            Ok(Ok(state)) => Ok(state.clone()),
            _ => Err(WatchError::Timeout),
        }
    }
}

/// Describes the cache's metric and sets it to zero (call once at start):
/// `hookline_watch_rejected_total`, subscriptions the watch sent that this
/// build could not use (kept at their previous version, if any).
pub fn describe_metrics() {
    metrics::describe_counter!(
        "hookline_watch_rejected_total",
        "Subscriptions from the watch this build could not read (skipped; see the error log)"
    );
    metrics::counter!("hookline_watch_rejected_total").absolute(0);
}

type Client = SubscriptionServiceClient<InterceptedService<Channel, BearerToken>>;

async fn follow(
    endpoint: tonic::transport::Endpoint,
    token: BearerToken,
    tx: watch::Sender<Arc<CacheState>>,
    max_backoff: Duration,
) {
    let mut backoff = Duration::from_millis(100);
    let mut building: Option<CacheState> = None;
    while !tx.is_closed() {
        let outcome: Result<(), String> = async {
            let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
            let mut client: Client = SubscriptionServiceClient::with_interceptor(channel, token.clone())
                .max_decoding_message_size(hookline_proto::MAX_MESSAGE_BYTES);
            let current = tx.borrow().clone();
            let request = v1::WatchSubscriptionsRequest {
                after_revision: if current.is_ready() { current.revision() } else { 0 },
                log_id: current.log_id().to_owned(),
            };
            let mut stream = client.watch_subscriptions(request).await.map_err(|s| s.to_string())?.into_inner();
            loop {
                match stream.message().await {
                    Ok(Some(message)) => {
                        backoff = Duration::from_millis(100);
                        apply(&tx, &mut building, message);
                    }
                    Ok(None) => return Err("stream ended".to_owned()),
                    Err(status) => return Err(status.to_string()),
                }
            }
        }
        .await;
        if let Err(error) = outcome {
            tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "subscription watch disconnected");
        }
        building = None;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(max_backoff);
    }
}

fn apply(
    tx: &watch::Sender<Arc<CacheState>>,
    building: &mut Option<CacheState>,
    message: v1::WatchSubscriptionsResponse,
) {
    use v1::watch_subscriptions_response::Change;
    let revision = message.revision;
    let Some(change) = message.change else { return };
    match change {
        Change::SnapshotStart(start) => *building = Some(CacheState::starting(start.log_id)),
        Change::SnapshotEnd(_) => {
            if let Some(mut state) = building.take() {
                state.finish_snapshot(revision);
                tracing::info!(revision, subscriptions = state.len(), "subscription cache loaded");
                tx.send_replace(Arc::new(state));
            }
        }
        other => match building.as_mut() {
            Some(state) => state.apply(other, revision),
            None => tx.send_modify(|state| Arc::make_mut(state).apply(other, revision)),
        },
    }
}
