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
mod health;
mod store;

use std::{future::Future, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use hookline_auth::Authenticator;
use hookline_proto::v1::subscription_service_server::SubscriptionServiceServer;
use tokio::{net::TcpListener, sync::watch};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

pub use config::{AuthSection, Config, ConfigError, SecretsSection, TlsSection};

use crate::store::{RedisStore, RedisStoreConfig, SecretSealer};

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("redis: {0}")]
    Redis(String),
    #[error("tls: {0}")]
    Tls(String),
    #[error("reflection: {0}")]
    Reflection(String),
    #[error("listener: {0}")]
    Listener(#[from] std::io::Error),
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves until `shutdown` resolves, then stops taking calls, ends watch
/// streams, and waits up to `shutdown_grace` for calls in flight.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    config.validate()?;
    let master_key = config
        .secrets
        .master_key
        .as_deref()
        .map(|k| STANDARD.decode(k).unwrap_or_default());
    let sealer = SecretSealer::new(master_key.as_deref())
        .map_err(|e| Error::Config(ConfigError::Invalid(e)))?;
    let store = RedisStore::connect(
        RedisStoreConfig {
            url: config.redis_url.clone(),
            key_prefix: config.key_prefix.clone(),
            command_timeout: config.redis_timeout,
            change_log_len: config.change_log_len,
        },
        sealer,
    )
    .await
    .map_err(|e| Error::Redis(e.to_string()))?;
    let store = Arc::new(store);
    let authenticator =
        Authenticator::new(&config.auth.tokens, config.auth.service_token.as_deref())
            .map_err(|e| Error::Config(ConfigError::Invalid(e.to_string())))?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let policy = api::Policy {
        require_https: config.require_https,
        max_subscriptions_per_tenant: config.max_subscriptions_per_tenant,
    };
    let api = api::Api::new(store.clone(), policy, stop_rx.clone());

    let (reporter, health_service) = tonic_health::server::health_reporter();
    tokio::spawn(health::report(store.clone(), reporter, stop_rx.clone()));
    // Both reflection versions: grpcurl and many tools still ask v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(hookline_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| Error::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| Error::Reflection(e.to_string()))?;

    let mut builder = Server::builder();
    if let Some(tls) = &config.tls {
        builder = builder.tls_config(tls_config(tls)?)?;
    }
    let addr = listener.local_addr()?;
    tracing::info!(%addr, tls = config.tls.is_some(), "subscription service listening");

    let grace = config.shutdown_grace;
    let stopping = async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    };
    let server = builder
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(SubscriptionServiceServer::with_interceptor(
            api,
            authenticator,
        ))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            stopping,
        );
    let mut stop_seen = stop_rx.clone();
    tokio::select! {
        result = server => result?,
        () = async {
            let _ = stop_seen.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!(grace_secs = grace.as_secs(), "calls still in flight after the grace period; stopping anyway"),
    }
    Ok(())
}

fn tls_config(tls: &TlsSection) -> Result<ServerTlsConfig, Error> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| Error::Tls(format!("{}: {e}", path.display())))
    };
    let mut out = ServerTlsConfig::new().identity(Identity::from_pem(
        read(&tls.cert_path)?,
        read(&tls.key_path)?,
    ));
    if let Some(ca) = &tls.client_ca_path {
        out = out.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(out)
}

/// How long health checks wait between Redis pings.
pub(crate) const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
