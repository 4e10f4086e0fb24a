//! The cached state and how each watch message changes it.

use std::{collections::HashMap, sync::Arc};

use hookline_domain::{EventType, SecretSet, Subscription, SubscriptionId, TenantId, TenantSettings};
use hookline_proto::{
    convert::{secrets_from_proto, subscription_from_proto, timestamp_from_proto},
    v1::{self, watch_subscriptions_response::Change},
};

/// A subscription and the secrets that sign its deliveries.
#[derive(Debug, Clone)]
pub struct CachedSubscription {
    pub subscription: Subscription,
    pub secrets: SecretSet,
}

/// Everything the cache holds at one revision.
#[derive(Debug, Clone, Default)]
pub struct CacheState {
    subscriptions: HashMap<SubscriptionId, Arc<CachedSubscription>>,
    /// The same subscriptions by tenant, for matching.
    by_tenant: HashMap<TenantId, Vec<Arc<CachedSubscription>>>,
    event_types: HashMap<TenantId, HashMap<String, EventType>>,
    settings: HashMap<TenantId, TenantSettings>,
    revision: u64,
    log_id: String,
    ready: bool,
}

impl CacheState {
    pub(crate) fn starting(log_id: String) -> Self {
        Self { log_id, ..Self::default() }
    }

    pub(crate) fn finish_snapshot(&mut self, revision: u64) {
        self.revision = revision;
        self.ready = true;
    }

    /// True once a whole snapshot has been applied.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The last revision applied.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn log_id(&self) -> &str {
        &self.log_id
    }

    pub fn len(&self) -> usize {
        self.subscriptions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subscriptions.is_empty()
    }

    pub fn get(&self, id: SubscriptionId) -> Option<&Arc<CachedSubscription>> {
        self.subscriptions.get(&id)
    }

    pub fn subscriptions(&self) -> impl Iterator<Item = &Arc<CachedSubscription>> {
        self.subscriptions.values()
    }

    /// The tenant's subscriptions, in no particular order.
    pub fn for_tenant(&self, tenant: &TenantId) -> &[Arc<CachedSubscription>] {
        self.by_tenant.get(tenant).map_or(&[], Vec::as_slice)
    }

    /// Whether the tenant has any subscription, catalog entry or setting.
    pub fn knows_tenant(&self, tenant: &TenantId) -> bool {
        self.by_tenant.contains_key(tenant)
            || self.event_types.contains_key(tenant)
            || self.settings.contains_key(tenant)
    }

    fn insert(&mut self, cached: CachedSubscription) {
        self.remove(cached.subscription.id);
        let cached = Arc::new(cached);
        self.by_tenant.entry(cached.subscription.tenant.clone()).or_default().push(cached.clone());
        self.subscriptions.insert(cached.subscription.id, cached);
    }

    fn remove(&mut self, id: SubscriptionId) {
        let Some(old) = self.subscriptions.remove(&id) else { return };
        if let Some(list) = self.by_tenant.get_mut(&old.subscription.tenant) {
            list.retain(|c| c.subscription.id != id);
            if list.is_empty() {
                self.by_tenant.remove(&old.subscription.tenant);
            }
        }
    }

    pub fn event_type(&self, tenant: &TenantId, name: &str) -> Option<&EventType> {
        self.event_types.get(tenant).and_then(|types| types.get(name))
    }

    /// The tenant's settings (defaults when it never set any).
    pub fn settings(&self, tenant: &TenantId) -> TenantSettings {
        self.settings.get(tenant).cloned().unwrap_or_default()
    }

    pub(crate) fn apply(&mut self, change: Change, revision: u64) {
        match change {
            Change::SubscriptionUpserted(watched) => match decode(&watched) {
                Ok(cached) => self.insert(cached),
                Err(error) => {
                    // Keep going: one subscription this build cannot use must
                    // not stop every other change from applying.
                    let id = watched.subscription.as_ref().map(|s| s.id.as_str()).unwrap_or_default();
                    tracing::error!(%error, subscription = id, "skipping a subscription the watch sent malformed");
                    metrics::counter!("hookline_watch_rejected_total").increment(1);
                }
            },
            Change::SubscriptionDeleted(deleted) => {
                if let Ok(id) = SubscriptionId::parse(&deleted.id, "id") {
                    self.remove(id);
                }
            }
            Change::EventTypeUpserted(changed) => {
                let parsed =
                    TenantId::parse(&changed.tenant_id).ok().zip(changed.event_type.as_ref().and_then(event_type));
                if let Some((tenant, et)) = parsed {
                    self.event_types.entry(tenant).or_default().insert(et.name.to_string(), et);
                }
            }
            Change::TenantSettingsUpserted(s) => {
                if let Ok(tenant) = TenantId::parse(&s.tenant_id) {
                    let updated_at = s
                        .update_time
                        .as_ref()
                        .and_then(|t| timestamp_from_proto("update_time", t).ok())
                        .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
                    self.settings
                        .insert(tenant, TenantSettings { strict_event_types: s.strict_event_types, updated_at });
                }
            }
            Change::SnapshotStart(_) | Change::SnapshotEnd(_) => {}
        }
        self.revision = self.revision.max(revision);
    }
}

fn decode(watched: &v1::WatchedSubscription) -> Result<CachedSubscription, hookline_domain::ValidationError> {
    let proto = watched
        .subscription
        .as_ref()
        .ok_or_else(|| hookline_domain::ValidationError::new("subscription", "missing"))?;
    Ok(CachedSubscription {
        subscription: subscription_from_proto(proto)?,
        secrets: secrets_from_proto(&watched.secrets)?,
    })
}

fn event_type(p: &v1::EventType) -> Option<EventType> {
    let time = |t: &Option<hookline_proto::Timestamp>| {
        t.as_ref().and_then(|t| timestamp_from_proto("time", t).ok()).unwrap_or(std::time::SystemTime::UNIX_EPOCH)
    };
    Some(EventType {
        name: hookline_domain::EventTypeName::parse(&p.name).ok()?,
        description: p.description.clone(),
        archived: p.archived,
        created_at: time(&p.create_time),
        updated_at: time(&p.update_time),
    })
}
