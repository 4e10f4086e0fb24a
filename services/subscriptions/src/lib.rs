//! hookline's subscription service: who wants which events, where, and how.
//!
//! It owns subscriptions, their signing secrets, and each tenant's
//! event-type catalog, stores them in Redis, and streams every change to
//! the fanout and delivery services (`WatchSubscriptions`) so they can keep
//! a local cache and never call this service on their hot path.
//!
//! [`serve`] runs the gRPC server on a listener until `shutdown` resolves;
//! `main.rs` only reads configuration and signals.

mod api;
mod config;
mod error;
mod store;

use std::{future::Future, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use hookline_proto::v1::subscription_service_server::SubscriptionServiceServer;
use hookline_server::ServerError;
pub use hookline_server::TlsSection;
use tokio::{net::TcpListener, sync::watch};
use tonic::server::NamedService;

pub use config::{Config, PortalSection, SecretsSection};
pub use hookline_auth::AuthConfig;
pub use hookline_server::config::{ConfigError, ServiceConfig};

use crate::store::{RedisStore, RedisStoreConfig, SecretSealer, SubscriptionStore};

/// How often health checks ping Redis.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("redis: {0}")]
    Redis(String),
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// Serves until `shutdown` resolves, then stops taking calls, ends watch
/// streams, and waits up to `shutdown_grace` for calls in flight.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    config.validate()?;
    let master_key = config.secrets.master_key.as_deref().map(|k| STANDARD.decode(k).unwrap_or_default());
    let sealer = SecretSealer::new(master_key.as_deref()).map_err(|e| Error::Config(ConfigError::Invalid(e)))?;
    let store = RedisStore::connect(
        RedisStoreConfig {
            url: config.redis_url.clone(),
            key_prefix: config.key_prefix.clone(),
            command_timeout: config.redis_timeout,
            change_log_len: config.change_log_len,
            max_event_types: config.max_event_types_per_tenant,
            durability: config.durability,
        },
        sealer,
    )
    .await
    .map_err(|e| Error::Redis(e.to_string()))?;
    let store = Arc::new(store);
    let authenticator = config.auth.authenticator().map_err(|e| Error::Config(ConfigError::Invalid(e.to_string())))?;

    hookline_queue::describe_durability_metrics();
    metrics::describe_counter!(
        "hookline_watch_skipped_total",
        "Watch messages left out because they were larger than a watcher may decode (a subscription stored before the size limit)"
    );
    metrics::counter!("hookline_watch_skipped_total").absolute(0);
    let (stop_tx, stop_rx) = watch::channel(false);
    let policy = api::Policy {
        require_https: config.require_https,
        max_subscriptions_per_tenant: config.max_subscriptions_per_tenant,
        max_subscription_bytes: config.max_subscription_bytes,
        max_page_bytes: config.max_page_bytes,
        portal: config
            .auth
            .portal_key()
            .transpose()
            .map_err(|e| Error::Config(ConfigError::Invalid(e.to_string())))?
            .map(|key| api::Portal::new(key, config.portal.clone())),
    };
    let api = api::Api::new(store.clone(), policy, stop_rx.clone());

    let readiness = hookline_server::Readiness::default();
    hookline_server::spawn_admin(config.admin_addr, readiness.clone(), stop_rx.clone());
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let pinged = store.clone();
    tokio::spawn(async move {
        let names = [<SubscriptionServiceServer<api::Api<RedisStore>> as NamedService>::NAME];
        hookline_server::report_health(reporter, &names, HEALTH_INTERVAL, stop_rx, readiness, || {
            let store = pinged.clone();
            async move { store.ping().await.is_ok() }
        })
        .await;
    });

    let router = hookline_server::builder(config.tls.as_ref(), &config.connections)?
        .add_service(health_service)
        .add_service(hookline_server::EndedSessionGuard::new(
            SubscriptionServiceServer::with_interceptor(api, authenticator),
            ended_sessions(store.clone()),
        ));
    let router = hookline_server::with_reflection(
        router,
        &[<SubscriptionServiceServer<api::Api<RedisStore>> as NamedService>::NAME],
    )?;
    tracing::info!(addr = %listener.local_addr().map_err(ServerError::from)?, tls = config.tls.is_some(), "subscription service listening");
    hookline_server::serve(router, listener, &config.connections, shutdown, stop_tx, config.shutdown_grace).await?;
    Ok(())
}

/// The guard's check: whether a portal session was ended (EndPortalSession).
fn ended_sessions(store: Arc<RedisStore>) -> hookline_server::EndedCheck {
    Arc::new(move |tenant, session| {
        let store = store.clone();
        Box::pin(async move { store.portal_session_ended(&tenant, &session).await.unwrap_or(false) })
    })
}
