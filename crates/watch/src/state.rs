//! The cached state and how each watch message changes it.

use std::{collections::HashMap, sync::Arc};

use hookline_domain::{EventType, EventTypePattern, SecretSet, Subscription, SubscriptionId, TenantId, TenantSettings};
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
    /// The same subscriptions by tenant, and by the event types they name.
    by_tenant: HashMap<TenantId, TenantSubscriptions>,
    event_types: HashMap<TenantId, HashMap<String, EventType>>,
    settings: HashMap<TenantId, TenantSettings>,
    revision: u64,
    log_id: String,
    ready: bool,
}

/// One tenant's subscriptions, and the same indexed for matching: an
/// event is checked against those that name its type and those with a
/// pattern, not against every subscription of its tenant (a tenant with
/// 10,000 subscriptions made each of its events cost 10,000 checks).
#[derive(Debug, Clone, Default)]
struct TenantSubscriptions {
    all: Vec<Arc<CachedSubscription>>,
    /// Event-type name → the subscriptions that name it, among those that
    /// name exact types only.
    by_type: HashMap<String, Vec<Arc<CachedSubscription>>>,
    /// Those with a pattern (`*`, a glob) among their event types.
    patterned: Vec<Arc<CachedSubscription>>,
}

impl TenantSubscriptions {
    /// `cached`'s exact event types, or `None` when it has a pattern.
    fn exact_types(cached: &CachedSubscription) -> Option<Vec<&str>> {
        let mut names = Vec::new();
        for pattern in &cached.subscription.spec.event_types {
            match pattern {
                EventTypePattern::Exact(name) if !names.contains(&name.as_str()) => names.push(name.as_str()),
                EventTypePattern::Exact(_) => {}
                EventTypePattern::Any | EventTypePattern::Glob { .. } => return None,
            }
        }
        Some(names)
    }

    fn insert(&mut self, cached: &Arc<CachedSubscription>) {
        self.all.push(cached.clone());
        match Self::exact_types(cached) {
            Some(names) => {
                for name in names {
                    self.by_type.entry(name.to_owned()).or_default().push(cached.clone());
                }
            }
            None => self.patterned.push(cached.clone()),
        }
    }

    fn remove(&mut self, old: &CachedSubscription) {
        let id = old.subscription.id;
        self.all.retain(|c| c.subscription.id != id);
        match Self::exact_types(old) {
            Some(names) => {
                for name in names {
                    if let Some(list) = self.by_type.get_mut(name) {
                        list.retain(|c| c.subscription.id != id);
                        if list.is_empty() {
                            self.by_type.remove(name);
                        }
                    }
                }
            }
            None => self.patterned.retain(|c| c.subscription.id != id),
        }
    }
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
        self.by_tenant.get(tenant).map_or(&[], |t| t.all.as_slice())
    }

    /// The tenant's subscriptions that may want an event of `event_type`,
    /// each once, in no particular order: those that name it, and those
    /// with a pattern (`*`, a glob). Whether one does is still its
    /// `Subscription::wants` (state, pattern, scope, filters); one that
    /// names only other types never does, and is not among them.
    pub fn candidates<'a>(
        &'a self,
        tenant: &TenantId,
        event_type: &str,
    ) -> impl Iterator<Item = &'a Arc<CachedSubscription>> + 'a {
        let tenant = self.by_tenant.get(tenant);
        let named = tenant.and_then(|t| t.by_type.get(event_type)).map_or(&[][..], Vec::as_slice);
        let patterned = tenant.map_or(&[][..], |t| t.patterned.as_slice());
        named.iter().chain(patterned)
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
        self.by_tenant.entry(cached.subscription.tenant.clone()).or_default().insert(&cached);
        self.subscriptions.insert(cached.subscription.id, cached);
    }

    fn remove(&mut self, id: SubscriptionId) {
        let Some(old) = self.subscriptions.remove(&id) else { return };
        if let Some(tenant) = self.by_tenant.get_mut(&old.subscription.tenant) {
            tenant.remove(&old);
            if tenant.all.is_empty() {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A subscription as the watch would send it, decoded the way the
    /// cache decodes it (every unset field at its default).
    fn cached(tenant: &str, event_types: &[&str]) -> CachedSubscription {
        let proto = v1::Subscription {
            id: SubscriptionId::generate().to_string(),
            tenant_id: tenant.into(),
            url: "https://example.com/hook".into(),
            event_types: event_types.iter().map(|t| (*t).to_owned()).collect(),
            state: v1::SubscriptionState::Active.into(),
            ..Default::default()
        };
        let secrets = SecretSet::new(hookline_domain::SigningSecret::generate());
        CachedSubscription { subscription: subscription_from_proto(&proto).unwrap(), secrets }
    }

    /// The candidates of an event are the subscriptions naming its type and
    /// those with a pattern, each once, and follow updates and deletes: every
    /// subscription whose event types could match is among them.
    #[test]
    fn an_events_candidates_are_those_naming_its_type_and_those_with_a_pattern() {
        let mut state = CacheState::default();
        let subs = [
            cached("acme", &["lead.created", "lead.closed"]),
            cached("acme", &["lead.closed"]),
            cached("acme", &["*"]),
            cached("acme", &["lead.*", "email.sent"]),
            cached("acme", &["email.sent"]),
            cached("globex", &["lead.closed"]),
        ];
        let ids: Vec<SubscriptionId> = subs.iter().map(|c| c.subscription.id).collect();
        for sub in subs.clone() {
            state.insert(sub);
        }
        let acme = TenantId::parse("acme").unwrap();
        let candidates = |state: &CacheState, event_type: &str| {
            let mut found: Vec<SubscriptionId> =
                state.candidates(&acme, event_type).map(|c| c.subscription.id).collect();
            found.sort_unstable();
            found
        };
        let sorted = |mut v: Vec<SubscriptionId>| {
            v.sort_unstable();
            v
        };
        assert_eq!(candidates(&state, "lead.closed"), sorted(vec![ids[0], ids[1], ids[2], ids[3]]));
        assert_eq!(candidates(&state, "email.sent"), sorted(vec![ids[2], ids[3], ids[4]]));
        assert_eq!(candidates(&state, "other"), sorted(vec![ids[2], ids[3]]));
        // Whatever the type, no subscription that would match is left out.
        let payload = hookline_domain::Payload::new(b"{}");
        for event_type in ["lead.closed", "lead.created", "email.sent", "other", "lead.x"] {
            let wanting: Vec<SubscriptionId> = state
                .for_tenant(&acme)
                .iter()
                .filter(|c| c.subscription.wants(event_type, &HashMap::new(), &payload))
                .map(|c| c.subscription.id)
                .collect();
            let found = candidates(&state, event_type);
            assert!(wanting.iter().all(|id| found.contains(id)), "{event_type}: {wanting:?} not all in {found:?}");
        }

        // An update that changes its types moves it; a delete removes it.
        let mut moved = subs[1].clone();
        moved.subscription.spec.event_types = vec![EventTypePattern::parse("email.sent").unwrap()];
        state.insert(moved);
        state.remove(ids[0]);
        assert_eq!(candidates(&state, "lead.closed"), sorted(vec![ids[2], ids[3]]));
        assert_eq!(candidates(&state, "email.sent"), sorted(vec![ids[1], ids[2], ids[3], ids[4]]));
        state.remove(ids[2]);
        state.remove(ids[3]);
        assert_eq!(candidates(&state, "other"), vec![]);
        assert_eq!(state.for_tenant(&acme).len(), 2);
    }
}
