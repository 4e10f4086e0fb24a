//! Acting: retry one delivery now, replay many in the background, send a
//! test event.

use std::time::{SystemTime, UNIX_EPOCH};

use hookline_auth::Principal;
use hookline_domain::{EventId, EventTypeName, check_json};
use hookline_proto::{convert::timestamp_from_proto, v1};
use hookline_queue::{DeliveryLog, TimeRange};
use tokio::sync::mpsc;
use tonic::Status;

use super::{Api, ReplayStream, convert, storage_error};
use crate::{
    request::EventData,
    store::{AttemptRecord, Lease, Requeue, Step, read_listed},
};

const REPLAY_CHUNK: usize = 500;
/// A replay's lock outlives its last chunk by this much (it is renewed at
/// every chunk, and released at the end).
const REPLAY_LOCK_MS: u64 = 60_000;
/// Deletes the lock only if this replay still holds it.
const RELEASE_LOCK: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Api {
    pub(super) async fn retry(&self, who: &Principal, id: &str) -> Result<v1::Delivery, Status> {
        let (keys, record) = self.delivery(who, id).await?;
        if record.status == "pending" {
            return Err(Status::failed_precondition("the delivery is already queued for its next attempt"));
        }
        let mut pipe = redis::pipe();
        self.scripts.load(&mut pipe, &[Step::Restore, Step::Requeue]);
        // Kept in its tenant's log only: it gets a record to attempt from.
        self.scripts.restore(&mut pipe, &keys, &record.tenant, &[&record], self.record_retention_secs);
        pipe.ignore();
        let ids = [record.id.clone()];
        self.scripts.requeue(&mut pipe, &keys, Requeue::Ids { ids: &ids, status: None }, "manual", now_ms(), 1);
        let (_queued,): (usize,) = pipe.query_async(&mut self.redis.clone()).await.map_err(storage_error)?;
        let (_, updated) = self.delivery(who, id).await?;
        Ok(convert::delivery(&updated))
    }

    /// Replays a subscription's deliveries in a time range (dead-lettered
    /// ones by default) in a background task; the stream reports progress,
    /// and the job goes on if the caller hangs up.
    pub(super) async fn replay(
        &self,
        who: &Principal,
        req: v1::ReplayDeliveriesRequest,
    ) -> Result<ReplayStream, Status> {
        let sub = self.subscription(who, &req.subscription_id).await?;
        let wanted = match v1::DeliveryStatus::try_from(req.status) {
            Ok(v1::DeliveryStatus::Unspecified) => v1::DeliveryStatus::DeadLettered,
            Ok(s) => s,
            Err(_) => return Err(Status::invalid_argument(format!("status: unknown value {}", req.status))),
        };
        let ms = |field: &str, t: Option<&hookline_proto::Timestamp>| -> Result<Option<u64>, Status> {
            t.map(|t| {
                timestamp_from_proto(field, t)
                    .map(|s| s.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64))
                    .map_err(|e| Status::invalid_argument(e.to_string()))
            })
            .transpose()
        };
        let start = ms("start_time", req.start_time.as_ref())?.unwrap_or(0);
        let end = ms("end_time", req.end_time.as_ref())?.unwrap_or(u64::MAX / 2);
        if start > end {
            return Err(Status::invalid_argument("start_time: must not be after end_time"));
        }
        let keys = self.partitions.of_tenant(sub.subscription.tenant.as_str());
        let tenant = sub.subscription.tenant.to_string();
        let log = DeliveryLog::of_subscription(&keys, &tenant, &req.subscription_id);
        let retention_secs = self.record_retention_secs;
        let range = TimeRange { start_ms: start, end_ms: end };
        let mut conn = self.redis.clone();
        // One replay per subscription at a time: two at once would each
        // send the same deliveries.
        let lock = keys.replay_lock(&req.subscription_id);
        let holder = EventId::generate().to_string();
        let taken: Option<String> = redis::cmd("SET")
            .arg(&lock)
            .arg(&holder)
            .arg("NX")
            .arg("PX")
            .arg(REPLAY_LOCK_MS)
            .query_async(&mut conn)
            .await
            .map_err(storage_error)?;
        if taken.is_none() {
            return Err(Status::failed_precondition(
                "a replay of this subscription is already running; wait for it to finish",
            ));
        }
        let scripts = self.scripts.clone();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut replayed = 0u64;
            let mut from = None;
            let result: redis::RedisResult<()> = async {
                loop {
                    let _: i64 = redis::cmd("PEXPIRE").arg(&lock).arg(REPLAY_LOCK_MS).query_async(&mut conn).await?;
                    let batch = log.newer(&mut conn, range, from.as_ref(), REPLAY_CHUNK).await?;
                    let records = read_listed(&mut conn, &keys, &tenant, &batch.items).await?;
                    let records: Vec<_> =
                        records.into_iter().filter(|r| convert::status(&r.status) == wanted).collect();
                    let status = records.first().map(|r| r.status.clone()).unwrap_or_default();
                    let kept_in_log: std::collections::HashSet<&str> =
                        batch.items.iter().filter(|l| l.finished.is_some()).map(|l| l.delivery_id.as_str()).collect();
                    let restored: Vec<_> = records.iter().filter(|r| kept_in_log.contains(r.id.as_str())).collect();
                    let chosen: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
                    if !chosen.is_empty() {
                        let mut pipe = redis::pipe();
                        scripts.load(&mut pipe, &[Step::Restore, Step::Requeue]);
                        // Those kept in the tenant's log get records first.
                        if !restored.is_empty() {
                            scripts.restore(&mut pipe, &keys, &tenant, &restored, retention_secs);
                            pipe.ignore();
                        }
                        let from = Requeue::Ids { ids: &chosen, status: Some(&status) };
                        scripts.requeue(&mut pipe, &keys, from, "replay", now_ms(), chosen.len());
                        let (queued,): (u64,) = pipe.query_async(&mut conn).await?;
                        replayed += queued;
                        let _ = tx.send(Ok(v1::ReplayProgress { replayed, total: 0, done: false })).await;
                    }
                    match batch.items.into_iter().last() {
                        Some(last) if !batch.done => from = Some(last.position),
                        _ => return Ok(()),
                    }
                }
            }
            .await;
            let released: redis::RedisResult<i64> =
                redis::Script::new(RELEASE_LOCK).key(&lock).arg(&holder).invoke_async(&mut conn).await;
            if let Err(error) = released {
                tracing::debug!(%error, "could not release the replay lock; it expires by itself");
            }
            let last = match result {
                Ok(()) => Ok(v1::ReplayProgress { replayed, total: replayed, done: true }),
                Err(error) => Err(storage_error(error)),
            };
            let _ = tx.send(last).await;
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    pub(super) async fn test_event(
        &self,
        who: &Principal,
        req: v1::SendTestEventRequest,
    ) -> Result<v1::SendTestEventResponse, Status> {
        let cached = self.subscription(who, &req.subscription_id).await?;
        let sub = &cached.subscription;
        let event_type = if req.event_type.is_empty() { "hookline.test".to_owned() } else { req.event_type };
        EventTypeName::parse(&event_type).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let event_id = EventId::generate().to_string();
        let payload = if req.payload.is_empty() {
            serde_json::json!({
                "type": event_type,
                "message": "This is a test event from hookline.",
                "subscription_id": sub.id.to_string(),
            })
            .to_string()
            .into_bytes()
        } else {
            check_json(&req.payload, self.test_limits.max_payload_bytes)
                .map_err(|e| Status::invalid_argument(format!("payload: {e}")))?;
            req.payload
        };
        let event = EventData {
            payload,
            variants: Default::default(),
            occurred_ms: now_ms(),
            published_ms: 0,
            traceparent: String::new(),
        };
        let timeout = sub.spec.timeout.min(self.claim_idle);
        let outgoing = crate::attempt::request(&cached, &event_id, &event_type, &event, "", timeout)
            .map_err(|e| Status::invalid_argument(e.0))?;
        // The same admission as a delivery: an in-flight slot and a token
        // from the subscription's bucket (the default test rate when it has
        // no rate limit), so tests are no way around either.
        let keys = self.partitions.of_tenant(sub.tenant.as_str());
        let sub_id = sub.id.to_string();
        let now = now_ms();
        let expiry = now + timeout.as_millis() as u64 + 5_000;
        let rate = sub.spec.rate_limit.unwrap_or(self.test_limits.rate);
        let mut pipe = redis::pipe();
        self.scripts.load(&mut pipe, &[Step::Lease]);
        let lease = Lease {
            subscription: &sub_id,
            ids: vec![event_id.as_str()],
            expiry_ms: expiry,
            max: sub.spec.max_in_flight,
            rate: Some(rate),
        };
        self.scripts.leases(&mut pipe, &keys, now, &[lease]);
        let (admissions,): (Vec<(usize, u64)>,) =
            pipe.query_async(&mut self.redis.clone()).await.map_err(storage_error)?;
        let (admitted, wait) = admissions.first().copied().unwrap_or_default();
        if admitted == 0 {
            return Err(Status::resource_exhausted(if wait > 0 {
                format!(
                    "test events to this subscription are limited to {} per second (burst {}); try again in {wait} ms",
                    rate.per_second, rate.burst
                )
            } else {
                format!(
                    "the subscription already has {} deliveries in flight; try again shortly",
                    sub.spec.max_in_flight
                )
            }));
        }
        let result = self.sender.send(outgoing).await;
        let released: redis::RedisResult<i64> =
            redis::cmd("ZREM").arg(keys.in_flight(&sub_id)).arg(&event_id).query_async(&mut self.redis.clone()).await;
        if let Err(error) = released {
            tracing::debug!(%error, "could not free a test event's in-flight slot; it expires by itself");
        }
        tracing::info!(subscription = %sub.id, status = result.status, error = result.error.as_str(), "test event sent");
        let record = AttemptRecord::of(&result, 1, "test");
        Ok(v1::SendTestEventResponse { attempt: Some(convert::attempt(&record)), event_id })
    }
}
