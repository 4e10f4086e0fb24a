//! Create, get, list, update and delete.

use hookline_auth::Principal;
use hookline_domain::{
    EventTypeName, SecretSet, SigningSecret, StateCause, StateReason, Subscription, SubscriptionId, SubscriptionState,
};
use hookline_proto::{
    convert::{spec_from_proto, state_to_proto, subscription_to_proto},
    v1,
};

use super::{Api, now, page, store_error};
use crate::{
    error::ServiceError,
    store::{StoreError, StoredSubscription, SubscriptionStore},
};

/// Fields `UpdateSubscription` may change.
const UPDATABLE: &[&str] = &[
    "name",
    "url",
    "event_types",
    "scope",
    "filters",
    "headers",
    "retry_policy",
    "timeout",
    "max_in_flight",
    "rate_limit",
    "payload_format",
    "payload_variant",
    "ordering",
    "metadata",
];

/// Read-modify-write attempts when a concurrent writer wins the race and
/// the caller did not pin a version.
pub(super) const WRITE_RETRIES: usize = 5;

impl<S: SubscriptionStore> Api<S> {
    pub(super) async fn create(
        &self,
        who: &Principal,
        req: v1::CreateSubscriptionRequest,
    ) -> Result<v1::CreateSubscriptionResponse, ServiceError> {
        let proto = req.subscription.ok_or_else(|| ServiceError::BadRequest("subscription: is required".into()))?;
        let tenant = who.tenant_for(&proto.tenant_id).map_err(|s| ServiceError::from_status(&s))?;
        let mut spec = spec_from_proto(&proto)?;
        spec.scope = who.narrow_scope(&spec.scope).map_err(|s| ServiceError::from_status(&s))?;
        self.check_spec(&tenant, &spec, &spec.event_types.iter().collect::<Vec<_>>()).await?;
        let secret = if req.secret.is_empty() { SigningSecret::generate() } else { SigningSecret::parse(&req.secret)? };
        let at = now();
        let created = |message: &str| StateReason { cause: StateCause::Manual, message: message.into(), at };
        let state = match v1::SubscriptionState::try_from(req.initial_state) {
            Ok(v1::SubscriptionState::Unspecified | v1::SubscriptionState::Active) => SubscriptionState::Active,
            Ok(v1::SubscriptionState::Paused) => SubscriptionState::Paused(created("created paused")),
            Ok(v1::SubscriptionState::Disabled) => SubscriptionState::Disabled(created("created disabled")),
            Err(_) => {
                return Err(ServiceError::BadRequest(format!("initial_state: unknown value {}", req.initial_state)));
            }
        };
        let rec = StoredSubscription {
            subscription: Subscription {
                id: SubscriptionId::generate(),
                tenant,
                spec,
                state,
                created_at: at,
                updated_at: at,
                version: 1,
            },
            secrets: SecretSet::new(secret.clone()),
        };
        self.store.create(&rec, self.rules(req.allow_duplicate_endpoint)).await.map_err(store_error)?;
        tracing::info!(subscription = %rec.subscription.id, tenant = %rec.subscription.tenant, url = %rec.subscription.spec.url.redacted(), "subscription created");
        Ok(v1::CreateSubscriptionResponse {
            subscription: Some(subscription_to_proto(&rec.subscription, Some(&rec.secrets), at)),
            secret: secret.expose().to_owned(),
        })
    }

    pub(super) async fn get(
        &self,
        who: &Principal,
        req: v1::GetSubscriptionRequest,
    ) -> Result<v1::Subscription, ServiceError> {
        let rec = self.load(who, &req.id).await?;
        Ok(subscription_to_proto(&rec.subscription, Some(&rec.secrets), now()))
    }

    pub(super) async fn list(
        &self,
        who: &Principal,
        req: v1::ListSubscriptionsRequest,
    ) -> Result<v1::ListSubscriptionsResponse, ServiceError> {
        let tenant = who.tenant_for(&req.tenant_id).map_err(|s| ServiceError::from_status(&s))?;
        let size = page::size(req.page_size)?;
        let mut cursor =
            page::decode(&req.page_token)?.map(|id| SubscriptionId::parse(&id, "page_token")).transpose()?;
        let event_type = (!req.event_type.is_empty()).then(|| EventTypeName::parse(&req.event_type)).transpose()?;
        let state = match v1::SubscriptionState::try_from(req.state) {
            Ok(v1::SubscriptionState::Unspecified) => None,
            Ok(s) => Some(s),
            Err(_) => {
                return Err(ServiceError::BadRequest(format!("state: unknown value {}", req.state)));
            }
        };
        if req.scope_label.is_empty() && !req.scope_value.is_empty() {
            return Err(ServiceError::BadRequest("scope_value: needs scope_label".into()));
        }
        let wanted = |s: &Subscription| {
            who.sees_scope(&s.spec.scope)
                && event_type.as_ref().is_none_or(|t| s.spec.event_types.iter().any(|p| p.matches(t.as_str())))
                && state.is_none_or(|st| state_to_proto(&s.state) == st)
                && (req.scope_label.is_empty()
                    || s.spec
                        .scope
                        .labels()
                        .get(&req.scope_label)
                        .is_some_and(|values| req.scope_value.is_empty() || values.contains(&req.scope_value)))
        };
        let chunk = (size * 2).clamp(100, 1000);
        let at = now();
        let mut out: Vec<v1::Subscription> = Vec::with_capacity(size);
        let mut bytes = 0;
        loop {
            let batch = self.store.list(&tenant, cursor, chunk).await.map_err(store_error)?;
            let exhausted = batch.len() < chunk;
            let count = batch.len();
            for (i, rec) in batch.into_iter().enumerate() {
                if !wanted(&rec.subscription) {
                    cursor = Some(rec.subscription.id);
                    continue;
                }
                let item = subscription_to_proto(&rec.subscription, Some(&rec.secrets), at);
                let weight = prost::Message::encoded_len(&item) + 8;
                if let Some(last) = out.last().filter(|_| bytes + weight > self.policy.max_page_bytes) {
                    // The page is full by bytes: this one starts the next.
                    let next = page::encode(&last.id);
                    return Ok(v1::ListSubscriptionsResponse { subscriptions: out, next_page_token: next });
                }
                cursor = Some(rec.subscription.id);
                bytes += weight;
                out.push(item);
                if out.len() == size {
                    let last_overall = exhausted && i + 1 == count;
                    let next =
                        if last_overall { String::new() } else { page::encode(&rec.subscription.id.to_string()) };
                    return Ok(v1::ListSubscriptionsResponse { subscriptions: out, next_page_token: next });
                }
            }
            if exhausted {
                return Ok(v1::ListSubscriptionsResponse { subscriptions: out, next_page_token: String::new() });
            }
        }
    }

    pub(super) async fn update(
        &self,
        who: &Principal,
        req: v1::UpdateSubscriptionRequest,
    ) -> Result<v1::Subscription, ServiceError> {
        let proto = req.subscription.ok_or_else(|| ServiceError::BadRequest("subscription: is required".into()))?;
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(ServiceError::BadRequest(format!(
                "update_mask: list the fields to change, among: {}",
                UPDATABLE.join(", ")
            )));
        }
        if let Some(bad) = paths.iter().find(|p| !UPDATABLE.contains(&p.as_str())) {
            return Err(ServiceError::BadRequest(format!(
                "update_mask: `{bad}` cannot be updated here (updatable: {}; state changes use Pause/Resume/Disable)",
                UPDATABLE.join(", ")
            )));
        }
        for _ in 0..WRITE_RETRIES {
            let current = self.load(who, &proto.id).await?;
            let sub = &current.subscription;
            if proto.version != 0 && proto.version != sub.version {
                return Err(ServiceError::Stale(format!(
                    "version {} is stale: the subscription is at version {}; get it again and retry",
                    proto.version, sub.version
                )));
            }
            let mut merged = subscription_to_proto(sub, None, now());
            for path in &paths {
                merge_field(&mut merged, &proto, path);
            }
            let mut spec = spec_from_proto(&merged)?;
            spec.scope = who.narrow_scope(&spec.scope).map_err(|s| ServiceError::from_status(&s))?;
            let added: Vec<_> = spec.event_types.iter().filter(|p| !sub.spec.event_types.contains(p)).collect();
            self.check_spec(&sub.tenant, &spec, &added).await?;
            let next = StoredSubscription {
                subscription: Subscription { spec, updated_at: now(), version: sub.version + 1, ..sub.clone() },
                secrets: current.secrets.clone(),
            };
            match self.store.update(&current, &next, self.rules(req.allow_duplicate_endpoint)).await {
                Ok(_) => {
                    return Ok(subscription_to_proto(&next.subscription, Some(&next.secrets), now()));
                }
                Err(StoreError::VersionMismatch(_)) if proto.version == 0 => continue,
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(store_error(StoreError::Contention))
    }

    pub(super) async fn delete(&self, who: &Principal, req: v1::DeleteSubscriptionRequest) -> Result<(), ServiceError> {
        for _ in 0..WRITE_RETRIES {
            let current = self.load(who, &req.id).await?;
            let version = current.subscription.version;
            if req.version != 0 && req.version != version {
                return Err(ServiceError::Stale(format!(
                    "version {} is stale: the subscription is at version {version}",
                    req.version
                )));
            }
            match self.store.delete(&current).await {
                Ok(_) => {
                    tracing::info!(subscription = %current.subscription.id, "subscription deleted");
                    return Ok(());
                }
                Err(StoreError::VersionMismatch(_)) if req.version == 0 => continue,
                Err(StoreError::NotFound) => {
                    return Err(ServiceError::NotFound(format!("subscription {}", req.id)));
                }
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(store_error(StoreError::Contention))
    }
}

/// Copies one masked field from the request onto the stored form.
fn merge_field(into: &mut v1::Subscription, from: &v1::Subscription, path: &str) {
    match path {
        "name" => into.name.clone_from(&from.name),
        "url" => into.url.clone_from(&from.url),
        "event_types" => into.event_types.clone_from(&from.event_types),
        "scope" => into.scope.clone_from(&from.scope),
        "filters" => into.filters.clone_from(&from.filters),
        "headers" => into.headers.clone_from(&from.headers),
        "retry_policy" => into.retry_policy.clone_from(&from.retry_policy),
        "timeout" => into.timeout = from.timeout,
        "max_in_flight" => into.max_in_flight = from.max_in_flight,
        "rate_limit" => into.rate_limit = from.rate_limit,
        "payload_format" => into.payload_format = from.payload_format,
        "payload_variant" => into.payload_variant.clone_from(&from.payload_variant),
        "ordering" => into.ordering = from.ordering,
        "metadata" => into.metadata.clone_from(&from.metadata),
        _ => {}
    }
}
