//! The fan-out service's configuration: defaults, then a TOML file, then
//! `HOOKLINE_*` variables (nested keys with `__`), validated before start.

use std::{net::SocketAddr, time::Duration};

use hookline_auth::AuthConfig;
use hookline_queue::{Durability, OwnershipMode};
use hookline_server::{
    ConnectionLimits, TlsSection,
    config::{ConfigError, ServiceConfig},
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// gRPC listen address.
    pub listen_addr: SocketAddr,
    /// Admin HTTP address (`/healthz`, `/readyz`, `/metrics`); unset: off.
    pub admin_addr: Option<SocketAddr>,
    pub redis_url: String,
    /// Must match the subscription service's.
    pub key_prefix: String,
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// Stream partitions; every service must use the same number.
    pub partitions: u16,
    /// Where the subscription service's watch stream is (`http://host:port`).
    pub subscriptions_url: String,
    /// Largest accepted payload (and each payload variant), in bytes.
    pub max_payload_bytes: usize,
    /// Largest request (a whole `PublishBatch`), in bytes; larger ones are
    /// refused before they are decoded (tonic answers OUT_OF_RANGE, naming
    /// the size and the limit).
    pub max_request_bytes: usize,
    /// How long an idempotency key is remembered.
    #[serde(with = "humantime_serde")]
    pub idempotency_window: Duration,
    /// How long event records (payload, fan-out result) are kept; delivery
    /// reads payloads from them, so keep it longer than the longest retry
    /// schedule plus the time dead letters should stay replayable.
    #[serde(with = "humantime_serde")]
    pub event_retention: Duration,
    /// How long fanned-out entries stay in the events stream (for
    /// inspection) before trimming.
    #[serde(with = "humantime_serde")]
    pub stream_retention: Duration,
    /// Entries read per batch.
    pub batch_size: usize,
    /// An entry pending this long with a consumer is taken over by another.
    #[serde(with = "humantime_serde")]
    pub claim_idle: Duration,
    /// `exclusive`: one replica at a time works a partition (leases in
    /// Redis; replicas beyond the partition count stand by); `shared`:
    /// every replica works every partition.
    pub partition_ownership: OwnershipMode,
    /// How long a replica counts as alive, and (exclusive ownership) holds
    /// its partitions, unless it renews (every quarter of it): a dead
    /// replica's pending work and partitions are taken over this long after
    /// its last renewal. Shorter heals sooner; a replica that cannot reach
    /// Redis for this long is treated as gone.
    #[serde(with = "humantime_serde")]
    pub partition_lease: Duration,
    /// Fan-out pauses while the delivery backlog of a partition exceeds this.
    pub max_delivery_backlog: u64,
    /// How long fan-out waits for its subscription cache to reach an
    /// event's fence before matching anyway (and logging it).
    #[serde(with = "humantime_serde")]
    pub fence_timeout: Duration,
    /// Accept events for tenants hookline has never heard of (no token, no
    /// subscription, no catalog). Off: such publishes are NOT_FOUND.
    pub accept_unknown_tenants: bool,
    /// Acknowledge a publish only once this many Redis replicas hold it
    /// (`WAIT`); off by default. See docs/OPERATIONS.md "Durability".
    pub durability: Durability,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Name of this consumer in the group; default: host name + process id.
    pub consumer_name: Option<String>,
    pub auth: AuthConfig,
    pub tls: Option<TlsSection>,
    /// gRPC connections: how many at once, keepalive, streams per connection.
    pub connections: ConnectionLimits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([0, 0, 0, 0], 50052)),
            admin_addr: None,
            redis_url: "redis://127.0.0.1:6379".into(),
            key_prefix: "hookline".into(),
            redis_timeout: Duration::from_secs(2),
            partitions: 1,
            subscriptions_url: "http://127.0.0.1:50051".into(),
            max_payload_bytes: 256 * 1024,
            max_request_bytes: 8 * 1024 * 1024,
            idempotency_window: Duration::from_secs(24 * 3600),
            event_retention: Duration::from_secs(72 * 3600),
            stream_retention: Duration::from_secs(600),
            batch_size: 256,
            claim_idle: Duration::from_secs(30),
            partition_ownership: OwnershipMode::Exclusive,
            partition_lease: Duration::from_secs(4),
            max_delivery_backlog: 1_000_000,
            fence_timeout: Duration::from_secs(5),
            accept_unknown_tenants: false,
            durability: Durability::default(),
            shutdown_grace: Duration::from_secs(10),
            consumer_name: None,
            auth: AuthConfig::default(),
            tls: None,
            connections: ConnectionLimits::default(),
        }
    }
}

impl Config {
    /// Defaults, then `file`, then `HOOKLINE_*` variables; then validates.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        hookline_server::config::load_validated(file)
    }
}

impl ServiceConfig for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        use hookline_server::config::checks;
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        hookline_queue::RedisTarget::parse(&self.redis_url).map_err(ConfigError::Invalid)?;
        checks::service_url("subscriptions_url", &self.subscriptions_url).map_err(ConfigError::Invalid)?;
        checks::partitions(self.partitions).map_err(ConfigError::Invalid)?;
        if !(1..=16 * 1024 * 1024).contains(&self.max_payload_bytes) {
            return invalid("max_payload_bytes must be between 1 and 16 MiB");
        }
        if !(self.max_payload_bytes + 64 * 1024..=256 * 1024 * 1024).contains(&self.max_request_bytes) {
            return invalid("max_request_bytes must be at least max_payload_bytes + 64 KiB and at most 256 MiB");
        }
        if !(1..=10_000).contains(&self.batch_size) {
            return invalid("batch_size must be between 1 and 10000");
        }
        if self.claim_idle < Duration::from_secs(1) {
            return invalid("claim_idle must be at least 1s");
        }
        if self.partition_lease < Duration::from_secs(1) {
            return invalid("partition_lease must be at least 1s");
        }
        self.connections.check().map_err(ConfigError::Invalid)?;
        self.durability.check().map_err(ConfigError::Invalid)?;
        checks::auth(&self.auth, true).map_err(ConfigError::Invalid)
    }
}
