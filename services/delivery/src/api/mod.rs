//! The `DeliveryService` gRPC server: queries over deliveries and attempts,
//! retry and replay, summaries, and test events.
//!
//! Every handler finds the caller's principal, resolves what it names (a
//! subscription from the cache, a delivery from its record) with another
//! tenant's resources answering NOT_FOUND, then reads or acts.

mod actions;
mod convert;
mod queries;

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::Stream;
use hookline_auth::Principal;
use hookline_domain::{DeliveryId, SubscriptionId};
use hookline_proto::v1::{self, delivery_service_server::DeliveryService};
use hookline_queue::RedisConn;
use hookline_queue::{FinishedEntry, PartitionKeys, Partitions, subscriptions_revision_key};
use hookline_watch::{CachedSubscription, SubscriptionCache};
use tonic::{Request, Response, Status};

use crate::{
    http::Sender,
    store::{DeliveryRecord, Scripts, read_records},
};

#[derive(Debug)]
pub(crate) struct Api {
    pub(crate) redis: RedisConn,
    pub(crate) cache: SubscriptionCache,
    pub(crate) partitions: Partitions,
    pub(crate) scripts: Arc<Scripts>,
    pub(crate) sender: Sender,
    pub(crate) claim_idle: Duration,
    pub(crate) test_limits: TestLimits,
    /// `delivery_retention`: what a record made for a retry keeps.
    pub(crate) record_retention_secs: u64,
}

/// What bounds `SendTestEvent`, so it is no way around the limits of real
/// deliveries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TestLimits {
    pub(crate) max_payload_bytes: usize,
    /// For subscriptions without a rate limit of their own.
    pub(crate) rate: hookline_domain::RateLimit,
}

fn storage_error(error: redis::RedisError) -> Status {
    tracing::warn!(%error, "redis error");
    Status::unavailable("storage is unavailable; retry shortly")
}

impl Api {
    /// A subscription the caller may see, from the cache. One not cached
    /// yet (created a moment ago) is waited for: the cache is brought up to
    /// the subscription service's current revision first, as fan-out does.
    async fn subscription(&self, who: &Principal, id: &str) -> Result<Arc<CachedSubscription>, Status> {
        let parsed =
            SubscriptionId::parse(id, "subscription_id").map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut state = self.cache.state();
        if !state.is_ready() {
            return Err(Status::unavailable("the subscription cache is still loading; retry shortly"));
        }
        if state.get(parsed).is_none() {
            let revision: Option<u64> = redis::cmd("GET")
                .arg(subscriptions_revision_key(self.partitions.prefix()))
                .query_async(&mut self.redis.clone())
                .await
                .map_err(storage_error)?;
            if let Some(revision) = revision.filter(|r| *r > state.revision()) {
                state = self.cache.caught_up_to(revision, FENCE_TIMEOUT).await.unwrap_or_else(|_| self.cache.state());
            }
        }
        state
            .get(parsed)
            .filter(|c| who.can_access(&c.subscription.tenant) && who.sees_scope(&c.subscription.spec.scope))
            .cloned()
            .ok_or_else(|| Status::not_found(format!("subscription {id} not found")))
    }

    /// Whether `who` may see deliveries to subscription `id`: anyone who
    /// sees its tenant, except a limited portal session, which sees only
    /// subscriptions (still known to the cache) within its scope.
    fn sees_subscription_of(&self, who: &Principal, id: &str) -> bool {
        let Some(limit) = who.scope_limit() else { return true };
        SubscriptionId::parse(id, "subscription_id")
            .ok()
            .and_then(|id| self.cache.state().get(id).map(|c| c.subscription.spec.scope.within(limit)))
            .unwrap_or(false)
    }

    /// A delivery the caller may see, with its partition: its record, or
    /// (one that succeeded at its first attempt, whose id names its place
    /// in its tenant's log) that entry.
    async fn delivery(&self, who: &Principal, id: &str) -> Result<(PartitionKeys, DeliveryRecord), Status> {
        let parsed = DeliveryId::parse(id, "id").map_err(|e| Status::invalid_argument(e.to_string()))?;
        let text = parsed.to_string();
        let visible = |record: &DeliveryRecord| {
            hookline_domain::TenantId::parse(&record.tenant).is_ok_and(|t| who.can_access(&t))
                && self.sees_subscription_of(who, &record.subscription_id)
        };
        let mut conn = self.redis.clone();
        // Its record: every generated id the API shows has one, and a
        // retry gives one to a delivery kept in its tenant's log.
        let partitions: Vec<PartitionKeys> = match who.own_tenant() {
            Some(tenant) => vec![self.partitions.of_tenant(tenant.as_str())],
            None => self.partitions.all().collect(),
        };
        for keys in partitions {
            let found = read_records(&mut conn, &keys, std::slice::from_ref(&text)).await.map_err(storage_error)?;
            if let Some(record) = found.into_iter().next().filter(&visible) {
                return Ok((keys, record));
            }
        }
        // Kept in its tenant's log: the tenants whose tag the id carries.
        if let Some(place) = parsed.log_entry() {
            let tenants: std::collections::BTreeSet<String> = match who.own_tenant() {
                Some(tenant) => [tenant.to_string()].into(),
                None => self.cache.state().subscriptions().map(|c| c.subscription.tenant.to_string()).collect(),
            };
            for tenant in tenants.iter().filter(|t| hookline_domain::tenant_tag(t) == place.tenant_tag) {
                let keys = self.partitions.of_tenant(tenant);
                let entry = FinishedEntry::read(&mut conn, &keys, tenant, (place.ms, place.seq))
                    .await
                    .map_err(storage_error)?;
                let record = entry.map(|f| DeliveryRecord::from_finished(&text, tenant, &f));
                if let Some(record) = record.filter(&visible) {
                    return Ok((keys, record));
                }
            }
        }
        Err(Status::not_found(format!("delivery {id} not found")))
    }
}

/// How long a query waits for the cache to see a fresh subscription.
const FENCE_TIMEOUT: Duration = Duration::from_secs(2);

type ReplayStream = Pin<Box<dyn Stream<Item = Result<v1::ReplayProgress, Status>> + Send>>;

#[tonic::async_trait]
impl DeliveryService for Api {
    async fn list_deliveries(
        &self,
        request: Request<v1::ListDeliveriesRequest>,
    ) -> Result<Response<v1::ListDeliveriesResponse>, Status> {
        let who = Principal::of_user(&request)?.clone();
        Ok(Response::new(self.list(&who, request.into_inner()).await?))
    }

    async fn get_delivery(&self, request: Request<v1::GetDeliveryRequest>) -> Result<Response<v1::Delivery>, Status> {
        let who = Principal::of_user(&request)?.clone();
        let (_, record) = self.delivery(&who, &request.get_ref().id).await?;
        Ok(Response::new(convert::delivery(&record)))
    }

    async fn list_attempts(
        &self,
        request: Request<v1::ListAttemptsRequest>,
    ) -> Result<Response<v1::ListAttemptsResponse>, Status> {
        let who = Principal::of_user(&request)?.clone();
        Ok(Response::new(self.attempts(&who, request.into_inner()).await?))
    }

    async fn retry_delivery(
        &self,
        request: Request<v1::RetryDeliveryRequest>,
    ) -> Result<Response<v1::Delivery>, Status> {
        let who = Principal::of_user(&request)?.clone();
        who.check_may_change()?;
        Ok(Response::new(self.retry(&who, &request.get_ref().id).await?))
    }

    type ReplayDeliveriesStream = ReplayStream;

    async fn replay_deliveries(
        &self,
        request: Request<v1::ReplayDeliveriesRequest>,
    ) -> Result<Response<Self::ReplayDeliveriesStream>, Status> {
        let who = Principal::of_user(&request)?.clone();
        who.check_may_change()?;
        Ok(Response::new(self.replay(&who, request.into_inner()).await?))
    }

    async fn get_delivery_summary(
        &self,
        request: Request<v1::GetDeliverySummaryRequest>,
    ) -> Result<Response<v1::DeliverySummary>, Status> {
        let who = Principal::of_user(&request)?.clone();
        Ok(Response::new(self.summary(&who, request.into_inner()).await?))
    }

    async fn get_delivery_stats(
        &self,
        request: Request<v1::GetDeliveryStatsRequest>,
    ) -> Result<Response<v1::GetDeliveryStatsResponse>, Status> {
        let who = Principal::of_user(&request)?.clone();
        Ok(Response::new(self.stats(&who, request.into_inner()).await?))
    }

    async fn send_test_event(
        &self,
        request: Request<v1::SendTestEventRequest>,
    ) -> Result<Response<v1::SendTestEventResponse>, Status> {
        let who = Principal::of_user(&request)?.clone();
        who.check_may_change()?;
        Ok(Response::new(self.test_event(&who, request.into_inner()).await?))
    }
}
