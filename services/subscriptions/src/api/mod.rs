//! The `SubscriptionService` gRPC server.
//!
//! Every handler has the same shape: find the caller's [`Principal`],
//! convert and validate the request into domain types, do the work against
//! the [`SubscriptionStore`], convert the result back. Handlers are grouped
//! by concern in the submodules; this module holds what they share.

mod catalog;
mod lifecycle;
mod page;
mod portal;
pub(crate) use portal::Portal;
mod subscriptions;
mod watch;

use std::{pin::Pin, sync::Arc, time::SystemTime};

use futures::Stream;
use hookline_auth::Principal;
use hookline_domain::{EventTypePattern, SubscriptionId, SubscriptionSpec, TenantId};
use hookline_proto::v1::{self, subscription_service_server::SubscriptionService};
use tokio::sync::watch as tokio_watch;
use tonic::{Request, Response, Status};

use crate::{
    error::ServiceError,
    store::{StoreError, StoredSubscription, SubscriptionStore, WriteRules},
};

/// Rules from configuration that handlers apply.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) require_https: bool,
    pub(crate) max_subscriptions_per_tenant: u64,
    pub(crate) max_subscription_bytes: usize,
    pub(crate) max_page_bytes: usize,
    /// Unset without `auth.portal_key`: CreatePortalSession is refused.
    pub(crate) portal: Option<portal::Portal>,
}

#[derive(Debug)]
pub(crate) struct Api<S> {
    store: Arc<S>,
    policy: Policy,
    /// Flips to `true` when the server shuts down, ending watch streams.
    shutdown: tokio_watch::Receiver<bool>,
}

impl<S: SubscriptionStore> Api<S> {
    pub(crate) fn new(store: Arc<S>, policy: Policy, shutdown: tokio_watch::Receiver<bool>) -> Self {
        Self { store, policy, shutdown }
    }

    fn rules(&self, allow_duplicate_endpoint: bool) -> WriteRules {
        WriteRules { allow_duplicate_endpoint, max_per_tenant: self.policy.max_subscriptions_per_tenant }
    }

    /// The subscription, if it exists and the caller may see it. Another
    /// tenant's subscription is NOT_FOUND, exactly like a missing one (and
    /// so is one outside a limited portal session's scope).
    async fn load(&self, principal: &Principal, id: &str) -> Result<StoredSubscription, ServiceError> {
        let id = SubscriptionId::parse(id, "id")?;
        match self.store.get(id).await.map_err(store_error)? {
            Some(rec)
                if principal.can_access(&rec.subscription.tenant)
                    && principal.sees_scope(&rec.subscription.spec.scope) =>
            {
                Ok(rec)
            }
            _ => Err(ServiceError::NotFound(format!("subscription {id}"))),
        }
    }

    /// Rules on a spec that depend on configuration or on the tenant's
    /// catalog. `added` are the event types new to this write.
    async fn check_spec(
        &self,
        tenant: &TenantId,
        spec: &SubscriptionSpec,
        added: &[&EventTypePattern],
    ) -> Result<(), ServiceError> {
        spec.check_size(self.policy.max_subscription_bytes)?;
        if self.policy.require_https && !spec.url.is_https() {
            return Err(ServiceError::BadRequest("url: must use https (this deployment requires it)".into()));
        }
        let settings = self.store.get_settings(tenant).await.map_err(store_error)?;
        if !settings.strict_event_types {
            return Ok(());
        }
        for pattern in added {
            if let EventTypePattern::Exact(name) = pattern {
                let known = self.store.get_event_type(tenant, name.as_str()).await.map_err(store_error)?;
                if known.is_none_or(|t| t.archived) {
                    return Err(ServiceError::FailedPrecondition(format!(
                        "event_types: `{name}` is not in the event-type catalog of tenant {tenant}, which is strict; create it with CreateEventType first"
                    )));
                }
            }
        }
        Ok(())
    }
}

pub(crate) fn now() -> SystemTime {
    SystemTime::now()
}

/// The one place storage errors become service errors.
pub(crate) fn store_error(e: StoreError) -> ServiceError {
    match e {
        StoreError::Conflict(existing) => ServiceError::AlreadyExists(format!(
            "subscription {existing} already sends overlapping event types to this url; update it, or set allow_duplicate_endpoint"
        )),
        StoreError::VersionMismatch(current) => ServiceError::Stale(format!(
            "the subscription was changed meanwhile (now at version {current}); get it again and retry"
        )),
        StoreError::NotFound => ServiceError::NotFound("subscription".into()),
        StoreError::AlreadyExists => ServiceError::AlreadyExists("it already exists".into()),
        StoreError::TenantLimit(n) => {
            ServiceError::ResourceExhausted(format!("the tenant has reached its limit of {n} subscriptions"))
        }
        StoreError::CatalogLimit(n) => ServiceError::ResourceExhausted(format!(
            "the tenant's catalog has reached its limit of {n} event types; archive is not removal, ask an operator to raise max_event_types_per_tenant"
        )),
        StoreError::Contention => ServiceError::Stale("too many concurrent changes to this tenant; retry".into()),
        StoreError::Unavailable(e) => ServiceError::Unavailable(Box::new(e)),
        StoreError::NotReplicated(m) => ServiceError::NotReplicated(format!(
            "{m} (the change may already be in effect: read it back before retrying)"
        )),
        StoreError::Truncated | StoreError::Corrupt(_) => ServiceError::Internal(e.to_string()),
    }
}

/// The caller of a call the service token may not make.
fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    Principal::of_user(request).cloned()
}

/// The caller of a change a read-only portal session may not make.
fn changer<T>(request: &Request<T>) -> Result<Principal, Status> {
    let who = principal(request)?;
    who.check_may_change()?;
    Ok(who)
}

/// The caller of a call only the tenant (or an operator) may make: the
/// catalog and the tenant's settings, never a portal session.
fn owner<T>(request: &Request<T>) -> Result<Principal, Status> {
    Principal::of_owner(request).cloned()
}

/// The caller of one of the calls hookline's services make with the
/// service token (watch, pause for failures, disable on 410 Gone).
fn principal_or_service<T>(request: &Request<T>) -> Result<Principal, Status> {
    Principal::of(request).cloned()
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<v1::WatchSubscriptionsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<S: SubscriptionStore> SubscriptionService for Api<S> {
    async fn create_subscription(
        &self,
        request: Request<v1::CreateSubscriptionRequest>,
    ) -> Result<Response<v1::CreateSubscriptionResponse>, Status> {
        let who = changer(&request)?;
        Ok(Response::new(self.create(&who, request.into_inner()).await?))
    }

    async fn get_subscription(
        &self,
        request: Request<v1::GetSubscriptionRequest>,
    ) -> Result<Response<v1::Subscription>, Status> {
        let who = principal(&request)?;
        Ok(Response::new(self.get(&who, request.into_inner()).await?))
    }

    async fn list_subscriptions(
        &self,
        request: Request<v1::ListSubscriptionsRequest>,
    ) -> Result<Response<v1::ListSubscriptionsResponse>, Status> {
        let who = principal(&request)?;
        Ok(Response::new(self.list(&who, request.into_inner()).await?))
    }

    async fn update_subscription(
        &self,
        request: Request<v1::UpdateSubscriptionRequest>,
    ) -> Result<Response<v1::Subscription>, Status> {
        let who = changer(&request)?;
        Ok(Response::new(self.update(&who, request.into_inner()).await?))
    }

    async fn delete_subscription(
        &self,
        request: Request<v1::DeleteSubscriptionRequest>,
    ) -> Result<Response<()>, Status> {
        let who = changer(&request)?;
        self.delete(&who, request.into_inner()).await?;
        Ok(Response::new(()))
    }

    async fn pause_subscription(
        &self,
        request: Request<v1::PauseSubscriptionRequest>,
    ) -> Result<Response<v1::Subscription>, Status> {
        let who = principal_or_service(&request)?;
        who.check_may_change()?;
        Ok(Response::new(self.pause(&who, request.into_inner()).await?))
    }

    async fn resume_subscription(
        &self,
        request: Request<v1::ResumeSubscriptionRequest>,
    ) -> Result<Response<v1::Subscription>, Status> {
        let who = changer(&request)?;
        Ok(Response::new(self.resume(&who, request.into_inner()).await?))
    }

    async fn disable_subscription(
        &self,
        request: Request<v1::DisableSubscriptionRequest>,
    ) -> Result<Response<v1::Subscription>, Status> {
        let who = principal_or_service(&request)?;
        who.check_may_change()?;
        Ok(Response::new(self.disable(&who, request.into_inner()).await?))
    }

    async fn rotate_secret(
        &self,
        request: Request<v1::RotateSecretRequest>,
    ) -> Result<Response<v1::RotateSecretResponse>, Status> {
        let who = changer(&request)?;
        Ok(Response::new(self.rotate(&who, request.into_inner()).await?))
    }

    async fn get_subscription_secret(
        &self,
        request: Request<v1::GetSubscriptionSecretRequest>,
    ) -> Result<Response<v1::GetSubscriptionSecretResponse>, Status> {
        let who = changer(&request)?;
        Ok(Response::new(self.secret(&who, request.into_inner()).await?))
    }

    async fn create_event_type(
        &self,
        request: Request<v1::CreateEventTypeRequest>,
    ) -> Result<Response<v1::EventType>, Status> {
        let who = owner(&request)?;
        Ok(Response::new(self.create_event_type(&who, request.into_inner()).await?))
    }

    async fn list_event_types(
        &self,
        request: Request<v1::ListEventTypesRequest>,
    ) -> Result<Response<v1::ListEventTypesResponse>, Status> {
        let who = principal(&request)?;
        Ok(Response::new(self.list_event_types(&who, request.into_inner()).await?))
    }

    async fn archive_event_type(
        &self,
        request: Request<v1::ArchiveEventTypeRequest>,
    ) -> Result<Response<v1::EventType>, Status> {
        let who = owner(&request)?;
        Ok(Response::new(self.archive_event_type(&who, request.into_inner()).await?))
    }

    async fn get_tenant_settings(
        &self,
        request: Request<v1::GetTenantSettingsRequest>,
    ) -> Result<Response<v1::TenantSettings>, Status> {
        let who = principal(&request)?;
        Ok(Response::new(self.get_settings(&who, request.into_inner()).await?))
    }

    async fn update_tenant_settings(
        &self,
        request: Request<v1::UpdateTenantSettingsRequest>,
    ) -> Result<Response<v1::TenantSettings>, Status> {
        let who = owner(&request)?;
        Ok(Response::new(self.update_settings(&who, request.into_inner()).await?))
    }

    async fn create_portal_session(
        &self,
        request: Request<v1::CreatePortalSessionRequest>,
    ) -> Result<Response<v1::CreatePortalSessionResponse>, Status> {
        let who = owner(&request)?;
        Ok(Response::new(self.create_portal_session(&who, request.into_inner())?))
    }

    async fn exchange_portal_code(
        &self,
        request: Request<v1::ExchangePortalCodeRequest>,
    ) -> Result<Response<v1::PortalSession>, Status> {
        let link = Principal::link_of(&request)?.clone();
        Ok(Response::new(self.exchange_portal_code(link).await?))
    }

    async fn end_portal_session(&self, request: Request<v1::EndPortalSessionRequest>) -> Result<Response<()>, Status> {
        let who = principal(&request)?;
        self.end_portal_session(&who, request.into_inner()).await?;
        Ok(Response::new(()))
    }

    type WatchSubscriptionsStream = WatchStream;

    async fn watch_subscriptions(
        &self,
        request: Request<v1::WatchSubscriptionsRequest>,
    ) -> Result<Response<Self::WatchSubscriptionsStream>, Status> {
        let who = principal_or_service(&request)?;
        if !who.is_service() {
            return Err(Status::permission_denied(
                "WatchSubscriptions is for hookline's services: use the service token",
            ));
        }
        Ok(Response::new(self.watch(request.into_inner())))
    }
}
