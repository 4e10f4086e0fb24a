//! hookline's fan-out service: takes events in, and turns each into one
//! delivery task per subscription that wants it.
//!
//! - `api`: `EventService` (Publish, PublishBatch, GetEvent); an event is
//!   acknowledged once it is durably in its partition's events stream.
//! - `worker`: per-partition consumer loops that match events against the
//!   local subscription cache (`hookline-watch`) and enqueue delivery tasks
//!   atomically with the acknowledgement.
//!
//! Architecture invariant: the hot path never calls the subscription
//! service; it reads the cache, which the watch stream keeps current.

mod api;
mod config;
mod error;
mod instruments;
mod matching;
mod publish;
mod record;
mod worker;

use std::{future::Future, sync::Arc, time::Duration};

use hookline_proto::v1::event_service_server::EventServiceServer;
use hookline_queue::{
    BlockingReader, FANOUT_GROUP, Ownership, OwnershipSettings, Partitions, Scripts, StreamKind, sample_stream_gauges,
};
use hookline_server::ServerError;
use hookline_watch::{SubscriptionCache, WatchConfig};
use tokio::{net::TcpListener, sync::watch};
use tonic::server::NamedService;

pub use config::Config;
pub use hookline_server::config::{ConfigError, ServiceConfig};

const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// How often the events streams' depth is sampled into gauges.
const GAUGES_EVERY: Duration = Duration::from_secs(5);
/// Responses (`GetEvent` carries a payload and its variants).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("subscription watch: {0}")]
    Watch(#[from] hookline_watch::WatchError),
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// Serves Publish and runs the fan-out workers until `shutdown` resolves.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    config.validate()?;
    let redis = hookline_queue::connect(&config.redis_url, config.redis_timeout).await?;
    let service_token = config.auth.service_token.clone().unwrap_or_default();
    let (cache, _watch_task) =
        SubscriptionCache::spawn(WatchConfig::new(config.subscriptions_url.clone(), service_token))?;
    let partitions = Partitions::new(&config.key_prefix, config.partitions);
    let authenticator = config.auth.authenticator().map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let (stop_tx, stop_rx) = watch::channel(false);

    let writer =
        hookline_queue::DurableWriter::connect(&config.redis_url, config.redis_timeout, config.durability, &redis)
            .await?;
    let api = api::Api {
        redis: redis.clone(),
        writer,
        cache: cache.clone(),
        partitions: partitions.clone(),
        scripts: Scripts::default(),
        rules: publish::Rules {
            max_payload_bytes: config.max_payload_bytes,
            accept_unknown_tenants: config.accept_unknown_tenants,
            token_tenants: config.auth.token_tenants().into_iter().collect(),
        },
        retention: api::Retention {
            idempotency_window_secs: config.idempotency_window.as_secs(),
            event_secs: config.event_retention.as_secs(),
        },
    };

    let consumer = config.consumer_name.clone().unwrap_or_else(default_consumer_name);
    let ownership = Ownership::spawn(
        redis.clone(),
        &partitions,
        FANOUT_GROUP,
        &consumer,
        OwnershipSettings { mode: config.partition_ownership, lease: config.partition_lease },
        stop_rx.clone(),
    );
    let worker = Arc::new(worker::Worker {
        redis: redis.clone(),
        ownership,
        cache: cache.clone(),
        scripts: Scripts::default(),
        settings: worker::WorkerSettings {
            consumer,
            reader: BlockingReader::new(&config.redis_url, config.redis_timeout),
            batch_size: config.batch_size,
            claim_idle: config.claim_idle,
            liveness: config.partition_lease,
            key_prefix: config.key_prefix.clone(),
            fence_timeout: config.fence_timeout,
            max_delivery_backlog: config.max_delivery_backlog,
            stream_retention: config.stream_retention,
        },
    });
    let workers: Vec<_> =
        partitions.all().map(|keys| tokio::spawn(worker.clone().run(keys, stop_rx.clone()))).collect();
    instruments::describe();
    let (gauge_redis, gauge_partitions) = (redis.clone(), partitions.clone());
    tokio::spawn(hookline_server::every(GAUGES_EVERY, stop_rx.clone(), "events stream gauges", move || {
        let (mut conn, partitions) = (gauge_redis.clone(), gauge_partitions.clone());
        async move { sample_stream_gauges(&mut conn, &partitions, StreamKind::Events).await }
    }));

    let readiness = hookline_server::Readiness::default();
    hookline_server::spawn_admin(config.admin_addr, readiness.clone(), stop_rx.clone());
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health_redis = redis.clone();
    let health_cache = cache.clone();
    tokio::spawn(async move {
        let names = [<EventServiceServer<api::Api> as NamedService>::NAME];
        hookline_server::report_health(reporter, &names, HEALTH_INTERVAL, stop_rx, readiness, || {
            let mut conn = health_redis.clone();
            let ready = health_cache.state().is_ready();
            async move { ready && redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok() }
        })
        .await;
    });

    let events = EventServiceServer::new(api)
        .max_decoding_message_size(config.max_request_bytes)
        .max_encoding_message_size(MAX_RESPONSE_BYTES);
    let router = hookline_server::builder(config.tls.as_ref(), &config.connections)?
        .add_service(health_service)
        .add_service(tonic::service::interceptor::InterceptedService::new(events, authenticator));
    let router = hookline_server::with_reflection(router, &[<EventServiceServer<api::Api> as NamedService>::NAME])?;
    tracing::info!(addr = %listener.local_addr().map_err(ServerError::from)?, partitions = partitions.count(), "fanout service listening");
    hookline_server::serve(router, listener, &config.connections, shutdown, stop_tx, config.shutdown_grace).await?;
    for worker in workers {
        let _ = tokio::time::timeout(config.shutdown_grace, worker).await;
    }
    Ok(())
}

fn default_consumer_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "fanout".into());
    format!("{host}-{}", std::process::id())
}
