//! The `EventService` gRPC server: Publish, PublishBatch, GetEvent.
//!
//! A publish is acknowledged only once the publish script has run: the event
//! is in its partition's events stream and its record exists (and, with
//! `durability.replicas` set, that many Redis replicas hold them). Before that,
//! the request is checked against the tenant's catalog in the subscription
//! cache, and the subscription change-log revision is read as the event's
//! fence (fan-out will not match the event against an older cache).

use std::{collections::BTreeMap, time::SystemTime};

use hookline_auth::Principal;
use hookline_domain::EventId;
use hookline_proto::v1::{self, event_service_server::EventService};
use hookline_queue::{
    DurableWriter, Partitions, PublishArgs, PublishItem, PublishOutcome, PublishReply, RedisConn, Scripts,
    current_fence,
};
use hookline_watch::SubscriptionCache;
use tonic::{Request, Response, Status};

use crate::{
    error::ServiceError,
    publish::{Prepared, Rules, prepare},
    record,
};

/// Items in one PublishBatch.
const MAX_BATCH: usize = 1000;

#[derive(Debug, Clone)]
pub(crate) struct Retention {
    pub(crate) idempotency_window_secs: u64,
    pub(crate) event_secs: u64,
}

impl Retention {
    /// The publish script's settings.
    fn args(&self) -> PublishArgs {
        PublishArgs { idempotency_window_secs: self.idempotency_window_secs, retention_secs: self.event_secs }
    }
}

#[derive(Debug)]
pub(crate) struct Api {
    pub(crate) redis: RedisConn,
    /// Runs the publish script (and waits for replicas, if asked to).
    pub(crate) writer: DurableWriter,
    pub(crate) cache: SubscriptionCache,
    pub(crate) partitions: Partitions,
    pub(crate) scripts: Scripts,
    pub(crate) rules: Rules,
    pub(crate) retention: Retention,
}

/// The `traceparent` stored with the events: the Publish call's own span
/// (so fan-out is its child), or the caller's when there is no trace layer.
fn traceparent<T>(request: &Request<T>) -> String {
    hookline_telemetry::traceparent_of(&tracing::Span::current()).unwrap_or_else(|| {
        request
            .metadata()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 128 && v.is_ascii())
            .unwrap_or_default()
            .to_owned()
    })
}

impl Api {
    /// Validates each request; an error stays with its item.
    fn prepare_all(
        &self,
        who: &Principal,
        requests: Vec<v1::PublishRequest>,
        traceparent: &str,
    ) -> Result<Vec<Result<Prepared, ServiceError>>, ServiceError> {
        let state = self.cache.state();
        if !state.is_ready() {
            return Err(ServiceError::Unavailable(
                "the subscription catalog is still loading from the subscription service; retry shortly".into(),
            ));
        }
        let now = SystemTime::now();
        Ok(requests
            .into_iter()
            .map(|req| prepare(who, req, &state, &self.rules, &self.partitions, traceparent, now))
            .collect())
    }

    /// Runs the publish script for every prepared event: one call per
    /// partition.
    async fn write(
        &self,
        prepared: &mut [&mut Prepared],
    ) -> Result<Vec<Result<PublishOutcome, ServiceError>>, ServiceError> {
        if prepared.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.redis.clone();
        let fence = current_fence(&mut conn, self.partitions.prefix()).await?;
        // A script call stays within one partition (one Redis Cluster
        // slot): one call per partition, all sent at once.
        let mut by_partition: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (i, p) in prepared.iter_mut().enumerate() {
            p.entry.fence = fence.clone();
            by_partition.entry(p.keys.index()).or_default().push(i);
        }
        let args = self.retention.args();
        let calls = by_partition.values().map(|items| {
            let events: Vec<PublishItem<'_>> =
                items.iter().map(|&i| PublishItem { entry: &prepared[i].entry, record: &prepared[i].record }).collect();
            let invocation = self.scripts.publish_invocation(&prepared[items[0]].keys, &args, &events);
            let ids = items.iter().map(|&i| prepared[i].entry.event_id.as_str());
            async move { self.writer.invoke::<PublishReply>(&invocation).await.map(|reply| reply.outcomes(ids)) }
        });
        let replies = futures::future::join_all(calls).await;
        let mut results: Vec<Option<Result<PublishOutcome, ServiceError>>> = prepared.iter().map(|_| None).collect();
        for (items, reply) in by_partition.values().zip(replies) {
            match reply {
                Ok(outcomes) => {
                    for (&i, outcome) in items.iter().zip(outcomes) {
                        results[i] = Some(Ok(outcome));
                    }
                }
                Err(error) => {
                    for &i in items {
                        results[i] = Some(Err(ServiceError::from(error.clone())));
                    }
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ServiceError::Unavailable("no reply from redis".into()))))
            .collect())
    }
}

fn response(outcome: PublishOutcome) -> v1::PublishResponse {
    let kind = if matches!(outcome, PublishOutcome::Duplicate(_)) { "duplicate" } else { "published" };
    metrics::counter!("hookline_publish_total", "result" => kind).increment(1);
    match outcome {
        PublishOutcome::Published(event_id) => v1::PublishResponse { event_id, duplicate: false },
        PublishOutcome::Duplicate(event_id) => v1::PublishResponse { event_id, duplicate: true },
    }
}

/// Who may publish: the tenant, an operator, or hookline's own services
/// (operational events); never a subscriber's portal session.
fn publisher<T>(request: &Request<T>) -> Result<Principal, Status> {
    match Principal::of(request)? {
        Principal::Portal(_) => Err(Status::permission_denied("a portal session cannot publish events")),
        who => Ok(who.clone()),
    }
}

#[tonic::async_trait]
impl EventService for Api {
    async fn publish(&self, request: Request<v1::PublishRequest>) -> Result<Response<v1::PublishResponse>, Status> {
        let who = publisher(&request)?;
        let trace = traceparent(&request);
        let mut prepared = self.prepare_all(&who, vec![request.into_inner()], &trace)?;
        let mut one = prepared.pop().ok_or_else(|| Status::internal("no request"))??;
        let outcome = self.write(&mut [&mut one]).await?.pop().ok_or_else(|| Status::internal("no reply"))??;
        let span = tracing::Span::current();
        span.record("hookline.tenant", one.entry.tenant.as_str());
        span.record("hookline.event_type", one.entry.event_type.as_str());
        let (PublishOutcome::Published(id) | PublishOutcome::Duplicate(id)) = &outcome;
        span.record("hookline.event_id", id.as_str());
        if let PublishOutcome::Published(id) = &outcome {
            tracing::debug!(event = %id, tenant = %one.entry.tenant, event_type = %one.entry.event_type, "published");
        }
        Ok(Response::new(response(outcome)))
    }

    async fn publish_batch(
        &self,
        request: Request<v1::PublishBatchRequest>,
    ) -> Result<Response<v1::PublishBatchResponse>, Status> {
        let who = publisher(&request)?;
        let trace = traceparent(&request);
        let events = request.into_inner().events;
        if events.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "events: {} items, over the limit of {MAX_BATCH} per batch",
                events.len()
            )));
        }
        let mut prepared = self.prepare_all(&who, events, &trace)?;
        let mut valid: Vec<&mut Prepared> = prepared.iter_mut().filter_map(|p| p.as_mut().ok()).collect();
        let mut written = self.write(&mut valid).await?.into_iter();
        let results = prepared
            .into_iter()
            .map(|p| {
                let outcome =
                    p.and_then(|_| written.next().unwrap_or(Err(ServiceError::Unavailable("no reply".into()))));
                let result = match outcome {
                    Ok(o) => v1::publish_batch_result::Result::Published(response(o)),
                    Err(e) => {
                        let status = Status::from(e);
                        v1::publish_batch_result::Result::Error(v1::ItemError {
                            code: status.code() as i32,
                            message: status.message().to_owned(),
                        })
                    }
                };
                v1::PublishBatchResult { result: Some(result) }
            })
            .collect();
        Ok(Response::new(v1::PublishBatchResponse { results }))
    }

    async fn get_event(&self, request: Request<v1::GetEventRequest>) -> Result<Response<v1::Event>, Status> {
        let who = Principal::of_user(&request)?.clone();
        let id = EventId::parse(&request.get_ref().id, "id").map_err(ServiceError::from)?.to_string();
        let candidates: Vec<_> = match who.own_tenant() {
            Some(tenant) => vec![self.partitions.of_tenant(tenant.as_str())],
            None => self.partitions.all().collect(),
        };
        // One read per partition (on a cluster they live in different slots).
        let reads = candidates.iter().map(|keys| {
            let (mut conn, key) = (self.redis.clone(), keys.event(&id));
            async move { hookline_queue::read_event_records(&mut conn, &[key]).await }
        });
        let found = futures::future::try_join_all(reads).await.map_err(ServiceError::from)?;
        let event = found
            .into_iter()
            .flatten()
            .flatten()
            .map(record::to_proto)
            .find(|event| who.own_tenant().is_none_or(|tenant| event.tenant_id == tenant.as_str()))
            .ok_or_else(|| Status::not_found(format!("event {id} not found (or past its retention)")))?;
        Ok(Response::new(event))
    }
}
