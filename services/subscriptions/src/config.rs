//! The service's configuration: defaults, then a TOML file, then
//! `HOOKLINE_*` environment variables (nested keys with `__`, e.g.
//! `HOOKLINE_AUTH__SERVICE_TOKEN`), read once in `main` and validated before
//! anything starts.

use std::{net::SocketAddr, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use hookline_auth::AuthConfig;
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
    /// `redis://` or `rediss://` URL (password and db in the URL).
    pub redis_url: String,
    /// Prefix of every Redis key this service writes.
    pub key_prefix: String,
    /// Timeout for one Redis command.
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// Acknowledge a subscription or catalog change only once this many
    /// Redis replicas hold it (`WAIT`); off by default. See
    /// docs/OPERATIONS.md "Durability".
    pub durability: hookline_queue::Durability,
    /// Entries kept in the change log that watchers resume from.
    pub change_log_len: u64,
    /// Require `https://` subscription URLs.
    pub require_https: bool,
    /// Subscriptions per tenant.
    pub max_subscriptions_per_tenant: u64,
    /// The most one subscription may weigh, in bytes (its strings: scope
    /// values, filter operands, headers, metadata, ...); at most 1 MiB.
    pub max_subscription_bytes: usize,
    /// Event types in one tenant's catalog.
    pub max_event_types_per_tenant: u64,
    /// The most one List response may carry, in bytes; a page ends early
    /// (with a next-page token) rather than pass it.
    pub max_page_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    pub auth: AuthConfig,
    pub secrets: SecretsSection,
    /// Customer-portal sessions (needs `auth.portal_key`).
    pub portal: PortalSection,
    pub tls: Option<TlsSection>,
    /// gRPC connections: how many at once, keepalive, streams per connection.
    pub connections: ConnectionLimits,
}

/// How portal links and sessions are made.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortalSection {
    /// The portal's public address; links are `<public_url>/enter?code=…`.
    pub public_url: String,
    /// How long a link may wait before it is opened.
    #[serde(with = "humantime_serde")]
    pub link_ttl: Duration,
    /// A session's lifetime when CreatePortalSession names none.
    #[serde(with = "humantime_serde")]
    pub default_session_lifetime: Duration,
    /// The longest session CreatePortalSession may ask for.
    #[serde(with = "humantime_serde")]
    pub max_session_lifetime: Duration,
}

impl Default for PortalSection {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            link_ttl: Duration::from_secs(15 * 60),
            default_session_lifetime: Duration::from_secs(3600),
            max_session_lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

impl PortalSection {
    fn check(&self) -> Result<(), String> {
        let url = url::Url::parse(&self.public_url).map_err(|e| format!("portal.public_url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
            return Err("portal.public_url: must be an http(s) URL without a query".into());
        }
        if !(Duration::from_secs(60)..=Duration::from_secs(7 * 86_400)).contains(&self.link_ttl) {
            return Err("portal.link_ttl: must be between 1m and 7d".into());
        }
        if !(Duration::from_secs(60)..=Duration::from_secs(30 * 86_400)).contains(&self.max_session_lifetime) {
            return Err("portal.max_session_lifetime: must be between 1m and 30d".into());
        }
        if self.default_session_lifetime < Duration::from_secs(60)
            || self.default_session_lifetime > self.max_session_lifetime
        {
            return Err("portal.default_session_lifetime: must be at least 1m and at most max_session_lifetime".into());
        }
        Ok(())
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsSection {
    /// Base64 of 32 bytes. When set, signing secrets are encrypted at rest
    /// (AES-256-GCM).
    #[serde(default, skip_serializing)]
    pub master_key: Option<String>,
}

impl std::fmt::Debug for SecretsSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsSection").field("master_key", &self.master_key.as_ref().map(|_| "<redacted>")).finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([0, 0, 0, 0], 50051)),
            admin_addr: None,
            redis_url: "redis://127.0.0.1:6379".into(),
            key_prefix: "hookline".into(),
            redis_timeout: Duration::from_secs(2),
            durability: hookline_queue::Durability::default(),
            change_log_len: 100_000,
            require_https: false,
            max_subscriptions_per_tenant: 10_000,
            max_subscription_bytes: hookline_domain::limits::DEFAULT_MAX_SUBSCRIPTION_BYTES,
            max_event_types_per_tenant: 1_000,
            max_page_bytes: 1024 * 1024,
            shutdown_grace: Duration::from_secs(10),
            auth: AuthConfig::default(),
            secrets: SecretsSection::default(),
            portal: PortalSection::default(),
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
        if self.key_prefix.is_empty() || self.key_prefix.contains(['{', '}', ' ']) {
            return invalid("key_prefix must be non-empty without braces or spaces");
        }
        if self.change_log_len < 100 {
            return invalid("change_log_len must be at least 100");
        }
        if !(1024..=hookline_domain::limits::MAX_SUBSCRIPTION_BYTES).contains(&self.max_subscription_bytes) {
            return invalid("max_subscription_bytes must be between 1024 and 1048576 (1 MiB)");
        }
        if !(64 * 1024..=hookline_proto::MAX_PAGE_BYTES).contains(&self.max_page_bytes) {
            return invalid("max_page_bytes must be between 65536 and 2097152 (2 MiB: clients decode at most 4 MiB)");
        }
        if let Some(key) = &self.secrets.master_key
            && STANDARD.decode(key).map(|k| k.len()) != Ok(32)
        {
            return invalid("secrets.master_key must be the base64 of exactly 32 bytes (openssl rand -base64 32)");
        }
        self.portal.check().map_err(ConfigError::Invalid)?;
        self.connections.check().map_err(ConfigError::Invalid)?;
        self.durability.check().map_err(ConfigError::Invalid)?;
        checks::auth(&self.auth, false).map_err(ConfigError::Invalid)
    }
}
