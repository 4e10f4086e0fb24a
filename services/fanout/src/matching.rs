//! Which subscriptions an event goes to, decided from the local cache only.

use hookline_domain::{Payload, SubscriptionId, TenantId};
use hookline_queue::EventEntry;
use hookline_watch::CacheState;

/// The subscriptions that want `event`, sorted by id (so the same event
/// always yields the same list). The payload is parsed at most once, and
/// only if some candidate has payload filters.
pub(crate) fn matching_subscriptions(state: &CacheState, event: &EventEntry) -> Vec<SubscriptionId> {
    let Ok(tenant) = TenantId::parse(&event.tenant) else { return Vec::new() };
    let payload = Payload::new(&event.payload);
    let mut ids: Vec<_> = state
        .candidates(&tenant, &event.event_type)
        .filter(|c| c.subscription.wants(&event.event_type, &event.attributes, &payload))
        .map(|c| c.subscription.id)
        .collect();
    ids.sort_unstable();
    ids
}
