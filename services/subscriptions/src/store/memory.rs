//! The embedded backend of the subscription service: every subscription,
//! event type, setting and the change log in this process's memory, behind
//! one mutex. For `hookline dev` and tests: single-process and not durable
//! (a restart starts empty, with a new log id, so watchers take a fresh
//! snapshot). It keeps the same contract as [`super::RedisStore`] — the
//! conformance suite in `store/conformance.rs` runs against both. Compiled
//! for tests only until `hookline dev` can run on it (see `store/mod.rs`).

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use hookline_domain::{EventType, SubscriptionId, TenantId, TenantSettings, patterns_overlap};
use tokio::sync::watch;

use super::{Change, LogPosition, StoreError, StoredSubscription, SubscriptionStore, WriteRules};

#[derive(Debug)]
pub(crate) struct MemoryStore {
    inner: Mutex<Inner>,
    position: watch::Sender<LogPosition>,
    change_log_len: usize,
}

#[derive(Debug, Default)]
struct Inner {
    /// By id: ULIDs, so creation order.
    subscriptions: BTreeMap<SubscriptionId, StoredSubscription>,
    event_types: HashMap<TenantId, BTreeMap<String, EventType>>,
    settings: HashMap<TenantId, TenantSettings>,
    revision: u64,
    log: VecDeque<(u64, Change)>,
}

impl Inner {
    /// The same-tenant subscription to the same URL with an overlapping
    /// event type, other than `sub` itself.
    fn conflict(&self, sub: &StoredSubscription) -> Option<SubscriptionId> {
        let s = &sub.subscription;
        self.subscriptions.values().map(|o| &o.subscription).find_map(|o| {
            let overlaps = o.spec.event_types.iter().any(|a| s.spec.event_types.iter().any(|b| patterns_overlap(a, b)));
            (o.id != s.id && o.tenant == s.tenant && o.spec.url == s.spec.url && overlaps).then_some(o.id)
        })
    }
}

impl MemoryStore {
    pub(crate) fn new(change_log_len: u64) -> Self {
        let first = LogPosition { log_id: ulid::Ulid::new().to_string(), revision: 0 };
        Self {
            inner: Mutex::new(Inner::default()),
            position: watch::channel(first).0,
            change_log_len: usize::try_from(change_log_len).unwrap_or(usize::MAX).max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends a change under the lock already held; its revision.
    fn append(&self, inner: &mut Inner, change: Change) -> u64 {
        inner.revision += 1;
        inner.log.push_back((inner.revision, change));
        while inner.log.len() > self.change_log_len {
            inner.log.pop_front();
        }
        let revision = inner.revision;
        self.position.send_modify(|p| p.revision = revision);
        revision
    }

    fn write(
        &self,
        previous: Option<&StoredSubscription>,
        next: &StoredSubscription,
        rules: WriteRules,
    ) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let id = next.subscription.id;
        match (previous, inner.subscriptions.get(&id)) {
            (None, Some(_)) => return Err(StoreError::AlreadyExists),
            (None, None) => {
                let tenant = &next.subscription.tenant;
                let count = inner.subscriptions.values().filter(|s| &s.subscription.tenant == tenant).count();
                if rules.max_per_tenant > 0 && count as u64 >= rules.max_per_tenant {
                    return Err(StoreError::TenantLimit(rules.max_per_tenant));
                }
            }
            (Some(_), None) => return Err(StoreError::NotFound),
            (Some(previous), Some(current)) if current.subscription.version != previous.subscription.version => {
                return Err(StoreError::VersionMismatch(current.subscription.version));
            }
            (Some(_), Some(_)) => {}
        }
        if !rules.allow_duplicate_endpoint
            && let Some(existing) = inner.conflict(next)
        {
            return Err(StoreError::Conflict(existing));
        }
        inner.subscriptions.insert(id, next.clone());
        Ok(self.append(&mut inner, Change::Subscription(Box::new(next.clone()))))
    }
}

impl SubscriptionStore for MemoryStore {
    async fn create(&self, rec: &StoredSubscription, rules: WriteRules) -> Result<u64, StoreError> {
        self.write(None, rec, rules)
    }

    async fn get(&self, id: SubscriptionId) -> Result<Option<StoredSubscription>, StoreError> {
        Ok(self.lock().subscriptions.get(&id).cloned())
    }

    async fn list(
        &self,
        tenant: &TenantId,
        after: Option<SubscriptionId>,
        limit: usize,
    ) -> Result<Vec<StoredSubscription>, StoreError> {
        let inner = self.lock();
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        Ok(inner
            .subscriptions
            .range((from, std::ops::Bound::Unbounded))
            .map(|(_, s)| s)
            .filter(|s| &s.subscription.tenant == tenant)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn update(
        &self,
        previous: &StoredSubscription,
        next: &StoredSubscription,
        rules: WriteRules,
    ) -> Result<u64, StoreError> {
        self.write(Some(previous), next, WriteRules { max_per_tenant: 0, ..rules })
    }

    async fn delete(&self, current: &StoredSubscription) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let sub = &current.subscription;
        match inner.subscriptions.get(&sub.id) {
            None => return Err(StoreError::NotFound),
            Some(stored) if stored.subscription.version != sub.version => {
                return Err(StoreError::VersionMismatch(stored.subscription.version));
            }
            Some(_) => {}
        }
        inner.subscriptions.remove(&sub.id);
        Ok(self.append(&mut inner, Change::SubscriptionDeleted { id: sub.id, tenant: sub.tenant.clone() }))
    }

    async fn put_event_type(
        &self,
        tenant: &TenantId,
        event_type: &EventType,
        create_only: bool,
    ) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let catalog = inner.event_types.entry(tenant.clone()).or_default();
        let name = event_type.name.as_str().to_owned();
        if create_only && catalog.get(&name).is_some_and(|existing| !existing.archived) {
            return Err(StoreError::AlreadyExists);
        }
        catalog.insert(name, event_type.clone());
        let change = Change::EventType { tenant: tenant.clone(), event_type: event_type.clone() };
        Ok(self.append(&mut inner, change))
    }

    async fn get_event_type(&self, tenant: &TenantId, name: &str) -> Result<Option<EventType>, StoreError> {
        Ok(self.lock().event_types.get(tenant).and_then(|c| c.get(name)).cloned())
    }

    async fn list_event_types(&self, tenant: &TenantId) -> Result<Vec<EventType>, StoreError> {
        Ok(self.lock().event_types.get(tenant).map(|c| c.values().cloned().collect()).unwrap_or_default())
    }

    async fn get_settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        Ok(self.lock().settings.get(tenant).cloned().unwrap_or_default())
    }

    async fn put_settings(&self, tenant: &TenantId, settings: &TenantSettings) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        inner.settings.insert(tenant.clone(), settings.clone());
        let change = Change::Settings { tenant: tenant.clone(), settings: settings.clone() };
        Ok(self.append(&mut inner, change))
    }

    async fn position(&self) -> Result<LogPosition, StoreError> {
        Ok(self.position.borrow().clone())
    }

    async fn snapshot(&self) -> Result<Vec<Change>, StoreError> {
        let inner = self.lock();
        let mut out: Vec<Change> =
            inner.subscriptions.values().map(|s| Change::Subscription(Box::new(s.clone()))).collect();
        let mut tenants: Vec<&TenantId> = inner.event_types.keys().chain(inner.settings.keys()).collect();
        tenants.sort();
        tenants.dedup();
        for tenant in tenants {
            for event_type in inner.event_types.get(tenant).into_iter().flat_map(BTreeMap::values) {
                out.push(Change::EventType { tenant: tenant.clone(), event_type: event_type.clone() });
            }
            let settings = inner.settings.get(tenant).cloned().unwrap_or_default();
            out.push(Change::Settings { tenant: tenant.clone(), settings });
        }
        Ok(out)
    }

    async fn changes_after(&self, revision: u64, limit: usize) -> Result<Vec<(u64, Change)>, StoreError> {
        let inner = self.lock();
        if revision >= inner.revision {
            return Ok(Vec::new());
        }
        match inner.log.front() {
            Some((first, _)) if *first <= revision + 1 => {}
            _ => return Err(StoreError::Truncated),
        }
        Ok(inner.log.iter().filter(|(rev, _)| *rev > revision).take(limit).cloned().collect())
    }

    async fn wait_for_change(&self, seen: &LogPosition, timeout: Duration) -> Result<LogPosition, StoreError> {
        let mut rx = self.position.subscribe();
        let moved = |p: &LogPosition| p.log_id != seen.log_id || p.revision != seen.revision;
        let _ = tokio::time::timeout(timeout, rx.wait_for(moved)).await;
        let latest = rx.borrow().clone();
        Ok(latest)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
