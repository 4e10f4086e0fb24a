//! hookline's delivery service: turns delivery tasks into signed HTTP POSTs,
//! retries them on the subscription's schedule, and keeps every attempt.
//!
//! - `worker`: consumer loops on the deliveries streams; then each task's
//!   stages: `dispatch` (route: cancel, hold, FIFO, open circuit),
//!   `admission` (in-flight, rate, fair share, `waiting`), `attempt` (the
//!   request, shared with test events, and its record via `completion`).
//! - `http`: the address guard (SSRF), the HTTP client, one attempt.
//! - `request`: body (format, variant), signature, headers.
//! - `outcome`: success, retry when, dead-letter, gone.
//! - `breaker`: per-endpoint circuit breakers.
//! - `store`: the Lua scripts that move a delivery between states, and the
//!   reads behind the API.
//! - `api`: `DeliveryService`.
//! - `control`: calls to the subscription and fanout services.
//!
//! Architecture invariant: delivery knows subscriptions only through the
//! watch cache, and events only through their records in Redis.

mod admission;
mod api;
mod attempt;
mod breaker;
mod completion;
mod config;
mod control;
mod dispatch;
mod gauges;
mod http;
mod instruments;
mod outcome;
mod request;
mod store;
mod waiting;
mod worker;

use std::{future::Future, sync::Arc, time::Duration};

use hookline_proto::v1::delivery_service_server::DeliveryServiceServer;
use hookline_queue::{BlockingReader, DELIVERY_GROUP, Ownership, OwnershipSettings, Partitions};
use hookline_server::ServerError;
use hookline_watch::{SubscriptionCache, WatchConfig};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
};
use tonic::server::NamedService;

pub use config::Config;
pub use hookline_server::config::{ConfigError, ServiceConfig};

const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("http client: {0}")]
    Http(String),
    #[error("subscription watch: {0}")]
    Watch(#[from] hookline_watch::WatchError),
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// Serves `DeliveryService` and runs the delivery workers until `shutdown`.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    config.validate()?;
    let redis = hookline_queue::connect(&config.redis_url, config.redis_timeout).await?;
    let service_token = config.auth.service_token.clone().unwrap_or_default();
    let (cache, _watch) =
        SubscriptionCache::spawn(WatchConfig::new(config.subscriptions_url.clone(), service_token.clone()))?;
    let partitions = Partitions::new(&config.key_prefix, config.partitions);
    let authenticator = config.auth.authenticator().map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let sender = http::Sender::new(
        http::AddressPolicy::new(config.allow_cidrs.clone()),
        config.connect_timeout,
        &config.user_agent,
        config.https_only,
        config.response_body_limit,
        config.max_concurrency,
        config.egress_proxy.as_deref(),
    )
    .map_err(Error::Http)?;
    if let Some(proxy) = &config.egress_proxy {
        tracing::warn!(proxy, "deliveries go through an egress proxy: it must enforce its own egress rules");
    }
    if !config.allow_cidrs.is_empty() {
        tracing::warn!(allow = ?config.allow_cidrs, "deliveries allowed to these non-public ranges");
    }
    let control = control::Control::new(&config.subscriptions_url, config.fanout_url.as_deref(), &service_token)
        .map_err(ConfigError::Invalid)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let retention = store::Retention {
        record_secs: config.delivery_retention.as_secs(),
        stats_secs: config.stats_retention.as_secs(),
    };
    let consumer = config.consumer_name.clone().unwrap_or_else(default_consumer_name);
    let ownership = Ownership::spawn(
        redis.clone(),
        &partitions,
        DELIVERY_GROUP,
        &consumer,
        OwnershipSettings { mode: config.partition_ownership, lease: config.partition_lease },
        stop_rx.clone(),
    );
    let worker = Arc::new(worker::Worker {
        redis: redis.clone(),
        ownership,
        cache: cache.clone(),
        sender: sender.clone(),
        scripts: store::Scripts::default(),
        completions: completion::Completions::spawn(redis.clone(), retention.clone()),
        breakers: breaker::Breakers::new(
            config.breaker_threshold,
            config.breaker_cooldown,
            config.breaker_max_cooldown,
            config.breaker_probe_every,
        ),
        control,
        permits: Arc::new(Semaphore::new(config.max_concurrency)),
        held_slots: std::sync::Mutex::new(std::collections::HashMap::new()),
        pace: std::sync::Mutex::new(std::collections::HashMap::new()),
        partitions: partitions.clone(),
        waiting: waiting::Waiting::default(),
        settings: worker::Settings {
            consumer,
            reader: BlockingReader::new(&config.redis_url, config.redis_timeout),
            batch_size: config.batch_size,
            claim_idle: config.claim_idle,
            liveness: config.partition_lease,
            max_retry_after: config.max_retry_after,
            auto_pause: outcome::AutoPause {
                after: config.auto_pause_after,
                failing_for: config.auto_pause_failing_for,
            },
            metrics_tenant_label: config.metrics_tenant_label,
            retention,
            subscription_share: (config.max_concurrency * usize::from(config.subscription_share_percent) / 100).max(1),
            max_concurrency: config.max_concurrency,
            key_prefix: config.key_prefix.clone(),
        },
    });
    let mut tasks = Vec::new();
    for keys in partitions.all() {
        tasks.push(tokio::spawn(worker.clone().consume(keys.clone(), stop_rx.clone())));
        tasks.push(tokio::spawn(worker.clone().schedule(keys, stop_rx.clone())));
    }
    tasks.push(tokio::spawn(worker.clone().admit_waiting(stop_rx.clone())));
    tasks.push(tokio::spawn(worker.clone().wake_probes(stop_rx.clone())));
    instruments::describe(config.metrics_tenant_label);
    tokio::spawn(gauges::run(worker.clone(), stop_rx.clone()));

    let api = api::Api {
        redis: redis.clone(),
        cache: cache.clone(),
        partitions: partitions.clone(),
        scripts: Arc::new(store::Scripts::default()),
        sender,
        claim_idle: config.claim_idle,
        record_retention_secs: config.delivery_retention.as_secs(),
        test_limits: api::TestLimits {
            max_payload_bytes: config.max_test_payload_bytes,
            rate: hookline_domain::RateLimit {
                per_second: config.test_events_per_second,
                burst: config.test_events_burst,
            },
        },
    };
    let readiness = hookline_server::Readiness::default();
    hookline_server::spawn_admin(config.admin_addr, readiness.clone(), stop_rx.clone());
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let (health_redis, health_cache) = (redis.clone(), cache.clone());
    tokio::spawn(async move {
        let names = [<DeliveryServiceServer<api::Api> as NamedService>::NAME];
        hookline_server::report_health(reporter, &names, HEALTH_INTERVAL, stop_rx, readiness, || {
            let mut conn = health_redis.clone();
            let ready = health_cache.state().is_ready();
            async move { ready && redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok() }
        })
        .await;
    });
    let router = hookline_server::builder(config.tls.as_ref(), &config.connections)?
        .add_service(health_service)
        .add_service(hookline_server::EndedSessionGuard::new(
            tonic::service::interceptor::InterceptedService::new(DeliveryServiceServer::new(api), authenticator),
            ended_sessions(redis.clone(), partitions.prefix().to_owned()),
        ));
    let router = hookline_server::with_reflection(router, &[<DeliveryServiceServer<api::Api> as NamedService>::NAME])?;
    tracing::info!(addr = %listener.local_addr().map_err(ServerError::from)?, partitions = partitions.count(), "delivery service listening");
    hookline_server::serve(router, listener, &config.connections, shutdown, stop_tx, config.shutdown_grace).await?;
    // Let attempts in flight finish and record their outcome.
    let grace = tokio::time::Instant::now() + config.shutdown_grace;
    for task in tasks {
        let _ = tokio::time::timeout_at(grace, task).await;
    }
    let _ = tokio::time::timeout_at(grace, worker.permits.acquire_many(config.max_concurrency as u32)).await;
    Ok(())
}

fn default_consumer_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "delivery".into());
    format!("{host}-{}", std::process::id())
}

/// Whether a portal session was ended (EndPortalSession, in the subscription
/// service's keys): such a session's calls are refused before the API.
fn ended_sessions<C>(conn: C, prefix: String) -> hookline_server::EndedCheck
where
    C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    std::sync::Arc::new(move |tenant, session| {
        let (mut conn, prefix) = (conn.clone(), prefix.clone());
        Box::pin(async move {
            hookline_queue::portal_session_ended(&mut conn, &prefix, &tenant, &session).await.unwrap_or(false)
        })
    })
}
