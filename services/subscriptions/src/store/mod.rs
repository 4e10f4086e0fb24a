//! Storage behind the subscription service.
//!
//! [`SubscriptionStore`] is what the handlers and the watch stream need;
//! [`RedisStore`] implements it on Redis, or on the embedded backend that
//! `hookline dev` runs (`hookline-embedded` speaks the same commands), and
//! `conformance.rs` checks the contract on both. Every write is atomic with
//! its change-log entry: a watcher that replays the log from a snapshot's
//! revision sees every change exactly in commit order.

#[cfg(test)]
mod conformance;
mod redis;
mod sealed;

use std::future::Future;

use hookline_domain::{EventType, SecretSet, Subscription, SubscriptionId, TenantId, TenantSettings};

pub(crate) use self::redis::{RedisStore, RedisStoreConfig};
pub(crate) use sealed::SecretSealer;

/// A subscription with its secrets, as stored.
#[derive(Debug, Clone)]
pub(crate) struct StoredSubscription {
    pub(crate) subscription: Subscription,
    pub(crate) secrets: SecretSet,
}

/// One entry of the change log (or of a snapshot).
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Subscription(Box<StoredSubscription>),
    SubscriptionDeleted { id: SubscriptionId, tenant: TenantId },
    EventType { tenant: TenantId, event_type: EventType },
    Settings { tenant: TenantId, settings: TenantSettings },
}

/// Where the change log stands. `log_id` changes when the log starts over
/// (e.g. Redis restarted empty), so a watcher never resumes across it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct LogPosition {
    pub(crate) log_id: String,
    pub(crate) revision: u64,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("an overlapping subscription to this endpoint exists: {0}")]
    Conflict(SubscriptionId),
    #[error("stored version is {0}")]
    VersionMismatch(i64),
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("tenant has reached its limit of {0} subscriptions")]
    TenantLimit(u64),
    #[error("tenant has reached its limit of {0} event types")]
    CatalogLimit(u64),
    #[error("too much contention; retry")]
    Contention,
    /// The change log no longer holds what was asked for.
    #[error("change log truncated")]
    Truncated,
    #[error("storage unavailable: {0}")]
    Unavailable(#[from] ::redis::RedisError),
    /// The write is on the Redis primary, not yet on enough replicas
    /// (`durability.replicas`).
    #[error("{0}")]
    NotReplicated(String),
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// Options of a subscription write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteRules {
    /// Skip the same-endpoint, overlapping-event-type conflict check.
    pub(crate) allow_duplicate_endpoint: bool,
    /// Refuse a create beyond this many subscriptions in the tenant.
    pub(crate) max_per_tenant: u64,
}

pub(crate) trait SubscriptionStore: Send + Sync + 'static {
    /// Creates it; fails with `Conflict` or `TenantLimit`.
    fn create(
        &self,
        rec: &StoredSubscription,
        rules: WriteRules,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn get(&self, id: SubscriptionId) -> impl Future<Output = Result<Option<StoredSubscription>, StoreError>> + Send;

    /// Up to `limit` of the tenant's subscriptions with ids after `after`, in id
    /// (creation) order.
    fn list(
        &self,
        tenant: &TenantId,
        after: Option<SubscriptionId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredSubscription>, StoreError>> + Send;

    /// Replaces it if the stored version is `expected_version`.
    fn update(
        &self,
        previous: &StoredSubscription,
        next: &StoredSubscription,
        rules: WriteRules,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Deletes it if the stored version is still `current`'s.
    fn delete(&self, current: &StoredSubscription) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Creates (`create_only`: fails with `AlreadyExists` if present and not
    /// archived) or replaces an event type.
    fn put_event_type(
        &self,
        tenant: &TenantId,
        event_type: &EventType,
        create_only: bool,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn get_event_type(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> impl Future<Output = Result<Option<EventType>, StoreError>> + Send;

    /// The whole catalog of a tenant, sorted by name.
    fn list_event_types(&self, tenant: &TenantId) -> impl Future<Output = Result<Vec<EventType>, StoreError>> + Send;

    fn get_settings(&self, tenant: &TenantId) -> impl Future<Output = Result<TenantSettings, StoreError>> + Send;

    fn put_settings(
        &self,
        tenant: &TenantId,
        settings: &TenantSettings,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn position(&self) -> impl Future<Output = Result<LogPosition, StoreError>> + Send;

    /// Everything current. Read after [`Self::position`]; replaying the log
    /// from that position afterwards makes it exact.
    fn snapshot(&self) -> impl Future<Output = Result<Vec<Change>, StoreError>> + Send;

    /// Up to `limit` log entries after `revision`, or `Truncated` when the log
    /// no longer reaches back that far.
    fn changes_after(
        &self,
        revision: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(u64, Change)>, StoreError>> + Send;

    /// Resolves when the log moves past `revision` or restarts, or after
    /// `timeout`; returns the latest position either way.
    fn wait_for_change(
        &self,
        seen: &LogPosition,
        timeout: std::time::Duration,
    ) -> impl Future<Output = Result<LogPosition, StoreError>> + Send;

    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Marks a portal link's session as opened; `false` when it already
    /// was. The mark lasts `for_at_least` (the link's remaining life), so
    /// a link can never be opened twice while it is valid.
    fn claim_portal_link(
        &self,
        session: &str,
        for_at_least: std::time::Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records that a tenant's portal session has ended, for `for_at_least`
    /// (as long as its token or link could still be used).
    fn end_portal_session(
        &self,
        tenant: &TenantId,
        session: &str,
        for_at_least: std::time::Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether a tenant's portal session was ended.
    fn portal_session_ended(
        &self,
        tenant: &str,
        session: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

impl From<hookline_queue::WriteError> for StoreError {
    fn from(e: hookline_queue::WriteError) -> Self {
        match e {
            hookline_queue::WriteError::Redis(error) => Self::Unavailable(error),
            not_replicated => Self::NotReplicated(not_replicated.to_string()),
        }
    }
}
