//! The delivery service's configuration: defaults, then a TOML file, then
//! `HOOKLINE_*` variables (nested keys with `__`), validated before start.

use std::{net::SocketAddr, time::Duration};

use hookline_auth::AuthConfig;
use hookline_queue::OwnershipMode;
use hookline_server::{
    ConnectionLimits, TlsSection,
    config::{ConfigError, ServiceConfig},
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// gRPC listen address.
    pub listen_addr: SocketAddr,
    /// Admin HTTP address (`/healthz`, `/readyz`, `/metrics`); unset: off.
    pub admin_addr: Option<SocketAddr>,
    pub redis_url: String,
    /// Must match the other services'.
    pub key_prefix: String,
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// Stream partitions; the same number in every service.
    pub partitions: u16,
    /// The subscription service (watch stream, auto-pause, 410 disable).
    pub subscriptions_url: String,
    /// The fanout service, for operational events; unset: not published.
    pub fanout_url: Option<String>,
    /// HTTP requests in flight at once in this process.
    pub max_concurrency: usize,
    /// The share of this process's `max_concurrency` one subscription may
    /// hold, in percent, once fewer than a quarter of the slots are free,
    /// so slow endpoints cannot starve the others.
    pub subscription_share_percent: u8,
    /// Tasks read per batch (at most the free concurrency).
    pub batch_size: usize,
    /// A task pending this long with a consumer is taken over by another.
    /// Every request is cut 1 s before it, so two workers never send the
    /// same attempt at once; keep it above 60 s so subscription timeouts
    /// (max 60 s) apply in full.
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
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// CIDRs that may receive deliveries although not public
    /// (development, tests, in-cluster receivers), e.g. ["127.0.0.0/8"].
    pub allow_cidrs: Vec<IpNet>,
    /// Deliver only to https:// URLs.
    pub https_only: bool,
    pub user_agent: String,
    /// Pause a subscription whose attempts have all failed for
    /// `auto_pause_failing_for` once this many have failed in a row (0:
    /// never pause). Both must hold, so a burst of failures (a wave of
    /// concurrent attempts to an endpoint that is down for a minute) never
    /// pauses.
    pub auto_pause_after: u64,
    /// How long a subscription's attempts must have been failing (since its
    /// last success) before it is paused.
    #[serde(with = "humantime_serde")]
    pub auto_pause_failing_for: Duration,
    /// Label `hookline_delivery_attempts_total` with the tenant. Off by
    /// default: one series per tenant and outcome (watch the cardinality).
    pub metrics_tenant_label: bool,
    /// Consecutive endpoint failures that open its circuit (0: never).
    pub breaker_threshold: u32,
    /// How long the endpoint's deliveries are deferred when its circuit
    /// opens; doubled after each failed probe up to `breaker_max_cooldown`.
    /// A circuit that closes brings them back at once: this only bounds
    /// the wait when nothing closes it (the replica that deferred them
    /// died).
    #[serde(with = "humantime_serde")]
    pub breaker_cooldown: Duration,
    #[serde(with = "humantime_serde")]
    pub breaker_max_cooldown: Duration,
    /// While a circuit is open, one real delivery probes the endpoint this
    /// often, whatever the cooldown: deliveries flow again within about
    /// this long of the endpoint's recovery.
    #[serde(with = "humantime_serde")]
    pub breaker_probe_every: Duration,
    /// The longest `Retry-After` honoured.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
    /// How long delivery records and attempt logs are kept.
    #[serde(with = "humantime_serde")]
    pub delivery_retention: Duration,
    /// How long hourly counters are kept.
    #[serde(with = "humantime_serde")]
    pub stats_retention: Duration,
    /// Bytes of each response body kept in the attempt log.
    pub response_body_limit: usize,
    /// Send every delivery through this HTTP(S) proxy (e.g. a
    /// smokescreen-style egress proxy for fixed source IPs), as
    /// `http://host:port`. Unset (the default): connect directly, and
    /// ignore `HTTP_PROXY` / `HTTPS_PROXY` in the environment (they would
    /// bypass the address guard). With a proxy, hookline still resolves
    /// and checks each host before sending, but the proxy connects: it
    /// must enforce its own egress rules.
    pub egress_proxy: Option<String>,
    /// The largest payload `SendTestEvent` accepts (as fanout's
    /// `max_payload_bytes` for real events).
    pub max_test_payload_bytes: usize,
    /// Test events per second to one subscription without a rate limit of
    /// its own (a subscription's own rate limit applies to its test events
    /// too, shared with its deliveries), and the burst allowed.
    pub test_events_per_second: u32,
    pub test_events_burst: u32,
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
            listen_addr: SocketAddr::from(([0, 0, 0, 0], 50053)),
            admin_addr: None,
            redis_url: "redis://127.0.0.1:6379".into(),
            key_prefix: "hookline".into(),
            redis_timeout: Duration::from_secs(2),
            partitions: 1,
            subscriptions_url: "http://127.0.0.1:50051".into(),
            fanout_url: Some("http://127.0.0.1:50052".into()),
            max_concurrency: 512,
            subscription_share_percent: 6,
            batch_size: 256,
            claim_idle: Duration::from_secs(90),
            partition_ownership: OwnershipMode::Shared,
            partition_lease: Duration::from_secs(4),
            connect_timeout: Duration::from_secs(5),
            allow_cidrs: Vec::new(),
            https_only: false,
            user_agent: concat!("hookline/", env!("CARGO_PKG_VERSION")).into(),
            auto_pause_after: 50,
            auto_pause_failing_for: Duration::from_secs(86_400),
            metrics_tenant_label: false,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(10),
            breaker_max_cooldown: Duration::from_secs(300),
            breaker_probe_every: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(3600),
            delivery_retention: Duration::from_secs(30 * 86_400),
            stats_retention: Duration::from_secs(90 * 86_400),
            response_body_limit: 4096,
            egress_proxy: None,
            max_test_payload_bytes: 256 * 1024,
            test_events_per_second: 1,
            test_events_burst: 5,
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
        if let Some(url) = &self.fanout_url {
            checks::service_url("fanout_url", url).map_err(ConfigError::Invalid)?;
        }
        checks::partitions(self.partitions).map_err(ConfigError::Invalid)?;
        if !(1..=100_000).contains(&self.max_concurrency) {
            return invalid("max_concurrency must be between 1 and 100000");
        }
        if !(1..=10_000).contains(&self.batch_size) {
            return invalid("batch_size must be between 1 and 10000");
        }
        if !(1..=100).contains(&self.subscription_share_percent) {
            return invalid("subscription_share_percent must be between 1 and 100");
        }
        if self.claim_idle < Duration::from_secs(2) {
            return invalid("claim_idle must be at least 2s (requests are cut 1s before it)");
        }
        if self.response_body_limit > 64 * 1024 {
            return invalid("response_body_limit must be at most 64 KiB");
        }
        if let Some(proxy) = &self.egress_proxy
            && reqwest::Proxy::all(proxy.as_str()).is_err()
        {
            return invalid("egress_proxy must be a proxy URL such as http://egress-proxy:4750");
        }
        if !(1..=16 * 1024 * 1024).contains(&self.max_test_payload_bytes) {
            return invalid("max_test_payload_bytes must be between 1 and 16777216");
        }
        if hookline_domain::RateLimit::new(self.test_events_per_second, self.test_events_burst).is_err() {
            return invalid("test_events_per_second must be between 1 and 100000, test_events_burst at most 100000");
        }
        if self.breaker_probe_every < Duration::from_millis(100) {
            return invalid("breaker_probe_every must be at least 100ms");
        }
        if self.partition_lease < Duration::from_secs(1) {
            return invalid("partition_lease must be at least 1s");
        }
        self.connections.check().map_err(ConfigError::Invalid)?;
        checks::auth(&self.auth, true).map_err(ConfigError::Invalid)
    }
}
