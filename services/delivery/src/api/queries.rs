//! Reading: deliveries (filtered, paginated), attempts, summaries, stats.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hookline_auth::Principal;
use hookline_domain::EventId;
use hookline_proto::{convert::timestamp_from_proto, v1};
use hookline_queue::{DeliveryLog, Position, TimeRange};
use tonic::Status;

use super::{Api, convert, storage_error};
use crate::store::{Stats, read_attempts, read_listed};

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;
const MAX_STATS_SPAN: Duration = Duration::from_secs(93 * 86_400);
/// Hour buckets read by one stats request (subscriptions x hours).
const MAX_STATS_READS: usize = 50_000;

fn page_size(n: i32) -> Result<usize, Status> {
    match n {
        n if n < 0 => Err(Status::invalid_argument("page_size: must not be negative")),
        0 => Ok(DEFAULT_PAGE),
        n => Ok((n as usize).min(MAX_PAGE)),
    }
}

fn bad_token() -> Status {
    Status::invalid_argument(
        "page_token: is not a token this service issued; pass next_page_token from the previous page",
    )
}

fn ms(field: &str, t: Option<&hookline_proto::Timestamp>) -> Result<Option<u64>, Status> {
    t.map(|t| {
        timestamp_from_proto(field, t)
            .map(|s| s.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64))
            .map_err(|e| Status::invalid_argument(e.to_string()))
    })
    .transpose()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Api {
    pub(super) async fn list(
        &self,
        who: &Principal,
        req: v1::ListDeliveriesRequest,
    ) -> Result<v1::ListDeliveriesResponse, Status> {
        let tenant = who.tenant_for(&req.tenant_id)?;
        let size = page_size(req.page_size)?;
        let keys = self.partitions.of_tenant(tenant.as_str());
        let log = if req.subscription_id.is_empty() {
            DeliveryLog::of_tenant(&keys, tenant.as_str())
        } else {
            let sub = self.subscription(who, &req.subscription_id).await?;
            if sub.subscription.tenant != tenant {
                return Err(Status::not_found(format!("subscription {} not found", req.subscription_id)));
            }
            DeliveryLog::of_subscription(&keys, tenant.as_str(), &req.subscription_id)
        };
        let start = ms("start_time", req.start_time.as_ref())?.unwrap_or(0);
        let end = ms("end_time", req.end_time.as_ref())?.unwrap_or(u64::MAX / 2);
        if start > end {
            return Err(Status::invalid_argument("start_time: must not be after end_time"));
        }
        if !req.event_id.is_empty() {
            EventId::parse(&req.event_id, "event_id").map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
        let status = match v1::DeliveryStatus::try_from(req.status) {
            Ok(v1::DeliveryStatus::Unspecified) => None,
            Ok(s) => Some(s),
            Err(_) => return Err(Status::invalid_argument(format!("status: unknown value {}", req.status))),
        };
        // Newest first. The token is the position of the last one shown.
        let mut cursor: Option<Position> = match req.page_token.as_str() {
            "" => None,
            token => {
                let text =
                    URL_SAFE_NO_PAD.decode(token).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(bad_token)?;
                Some(Position::from_token(&text).ok_or_else(bad_token)?)
            }
        };
        let range = TimeRange { start_ms: start, end_ms: end };
        let mut conn = self.redis.clone();
        let mut out = Vec::with_capacity(size);
        let chunk = (size * 2).clamp(100, 1000);
        loop {
            let batch = log.older(&mut conn, range, cursor.as_ref(), chunk).await.map_err(storage_error)?;
            // A batch that is not done always holds entries.
            if batch.items.is_empty() {
                return Ok(v1::ListDeliveriesResponse { deliveries: out, next_page_token: String::new() });
            }
            let records = read_listed(&mut conn, &keys, tenant.as_str(), &batch.items).await.map_err(storage_error)?;
            let by_id: std::collections::HashMap<_, _> = records.iter().map(|r| (r.id.as_str(), r)).collect();
            let listed = batch.items.len();
            for (i, item) in batch.items.into_iter().enumerate() {
                cursor = Some(item.position);
                // A record past its retention is gone before its entry.
                let Some(record) = by_id.get(item.delivery_id.as_str()) else { continue };
                let wanted = self.sees_subscription_of(who, &record.subscription_id)
                    && status.is_none_or(|s| convert::status(&record.status) == s)
                    && (req.event_id.is_empty() || record.event_id == req.event_id)
                    && (req.event_type.is_empty() || record.event_type == req.event_type);
                if !wanted {
                    continue;
                }
                out.push(convert::delivery(record));
                if out.len() == size {
                    let last = batch.done && i + 1 == listed;
                    let next = match &cursor {
                        Some(position) if !last => URL_SAFE_NO_PAD.encode(position.to_token()),
                        _ => String::new(),
                    };
                    return Ok(v1::ListDeliveriesResponse { deliveries: out, next_page_token: next });
                }
            }
            if batch.done {
                return Ok(v1::ListDeliveriesResponse { deliveries: out, next_page_token: String::new() });
            }
        }
    }

    pub(super) async fn attempts(
        &self,
        who: &Principal,
        req: v1::ListAttemptsRequest,
    ) -> Result<v1::ListAttemptsResponse, Status> {
        let (keys, record) = self.delivery(who, &req.delivery_id).await?;
        let size = page_size(req.page_size)?;
        let offset: usize = match req.page_token.as_str() {
            "" => 0,
            token => URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|t| t.parse().ok())
                .ok_or_else(bad_token)?,
        };
        let mut conn = self.redis.clone();
        let mut attempts = read_attempts(&mut conn, &keys, &record.id, offset as isize, (offset + size) as isize)
            .await
            .map_err(storage_error)?;
        // A delivery that succeeded at its first attempt keeps it only as
        // the record's last attempt (complete.lua).
        if attempts.is_empty() && offset == 0 {
            attempts.extend(record.last_attempt.clone());
        }
        let more = attempts.len() > size;
        let next_page_token = if more { URL_SAFE_NO_PAD.encode((offset + size).to_string()) } else { String::new() };
        Ok(v1::ListAttemptsResponse {
            attempts: attempts.iter().take(size).map(convert::attempt).collect(),
            next_page_token,
        })
    }

    /// The subscriptions a summary or stats request covers: the one named,
    /// or all of the tenant's.
    async fn covered(
        &self,
        who: &Principal,
        subscription_id: &str,
        tenant_id: &str,
    ) -> Result<(String, Vec<String>), Status> {
        if !subscription_id.is_empty() {
            let sub = self.subscription(who, subscription_id).await?;
            return Ok((sub.subscription.tenant.to_string(), vec![subscription_id.to_owned()]));
        }
        let tenant = who.tenant_for(tenant_id)?;
        let ids = self
            .cache
            .state()
            .for_tenant(&tenant)
            .iter()
            .filter(|c| who.sees_scope(&c.subscription.spec.scope))
            .map(|c| c.subscription.id.to_string())
            .collect();
        Ok((tenant.to_string(), ids))
    }

    pub(super) async fn summary(
        &self,
        who: &Principal,
        req: v1::GetDeliverySummaryRequest,
    ) -> Result<v1::DeliverySummary, Status> {
        let (tenant, subs) = self.covered(who, &req.subscription_id, &req.tenant_id).await?;
        let keys = self.partitions.of_tenant(&tenant);
        let mut pipe = redis::pipe();
        for sub in &subs {
            pipe.hgetall(keys.stats(sub)).llen(keys.held(sub));
        }
        let mut conn = self.redis.clone();
        let rows: Vec<redis::Value> =
            if subs.is_empty() { Vec::new() } else { pipe.query_async(&mut conn).await.map_err(storage_error)? };
        let mut total = Stats::default();
        let mut held = 0u64;
        for pair in rows.chunks(2) {
            let fields: std::collections::HashMap<String, String> =
                redis::from_redis_value(pair[0].clone()).map_err(|e| storage_error(e.into()))?;
            let stats = Stats::from_fields(&fields);
            total.add(&stats);
            total.consecutive_failures = total.consecutive_failures.max(stats.consecutive_failures);
            total.failing_since_ms = match (total.failing_since_ms, stats.failing_since_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            total.last_attempt_ms = total.last_attempt_ms.max(stats.last_attempt_ms);
            total.last_success_ms = total.last_success_ms.max(stats.last_success_ms);
            held += redis::from_redis_value::<u64>(pair[1].clone()).map_err(|e| storage_error(e.into()))?;
        }
        Ok(v1::DeliverySummary {
            subscription_id: req.subscription_id,
            attempts: total.attempts,
            succeeded: total.succeeded,
            failed_attempts: total.failed,
            dead_lettered: total.dead,
            in_progress: held,
            consecutive_failures: total.consecutive_failures,
            last_attempt_time: total.last_attempt_ms.map(convert::time),
            last_success_time: total.last_success_ms.map(convert::time),
            subscriptions: subs.len() as u32,
            failing_since: total.failing_since_ms.map(convert::time),
        })
    }

    pub(super) async fn stats(
        &self,
        who: &Principal,
        req: v1::GetDeliveryStatsRequest,
    ) -> Result<v1::GetDeliveryStatsResponse, Status> {
        let (tenant, subs) = self.covered(who, &req.subscription_id, &req.tenant_id).await?;
        let daily = match v1::StatsGranularity::try_from(req.granularity) {
            Ok(v1::StatsGranularity::Unspecified | v1::StatsGranularity::Day) => true,
            Ok(v1::StatsGranularity::Hour) => false,
            Err(_) => return Err(Status::invalid_argument(format!("granularity: unknown value {}", req.granularity))),
        };
        let end = ms("end_time", req.end_time.as_ref())?.unwrap_or_else(now_ms);
        let default_span = if daily { 7 * 86_400_000 } else { 86_400_000 };
        let start = ms("start_time", req.start_time.as_ref())?.unwrap_or(end.saturating_sub(default_span));
        if start > end {
            return Err(Status::invalid_argument("start_time: must not be after end_time"));
        }
        if end - start > MAX_STATS_SPAN.as_millis() as u64 {
            return Err(Status::invalid_argument("the time range may span at most 93 days"));
        }
        let keys = self.partitions.of_tenant(&tenant);
        let hours: Vec<u64> = (start / 3_600_000..=end / 3_600_000).collect();
        if hours.len() * subs.len() > MAX_STATS_READS {
            return Err(Status::invalid_argument(format!(
                "{} subscriptions over {} hours is too much at once; narrow the time range or name a subscription",
                subs.len(),
                hours.len()
            )));
        }
        let mut pipe = redis::pipe();
        for hour in &hours {
            for sub in &subs {
                pipe.hgetall(keys.stats_hour(sub, *hour));
            }
        }
        let rows: Vec<std::collections::HashMap<String, String>> = if subs.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut self.redis.clone()).await.map_err(storage_error)?
        };
        let per_hour = subs.len().max(1);
        let mut buckets: Vec<(u64, Stats)> = Vec::new();
        for (hour, group) in hours.into_iter().zip(rows.chunks(per_hour).chain(std::iter::repeat(&[][..]))) {
            let mut fields_total = Stats::default();
            for fields in group {
                fields_total.add(&Stats::from_fields(fields));
            }
            let bucket_start = if daily { hour / 24 * 24 } else { hour };
            let stats = fields_total;
            match buckets.last_mut() {
                Some((start, total)) if *start == bucket_start => total.add(&stats),
                _ => buckets.push((bucket_start, stats)),
            }
        }
        Ok(v1::GetDeliveryStatsResponse {
            buckets: buckets
                .into_iter()
                .map(|(hour, s)| v1::StatsBucket {
                    start_time: Some(convert::time(hour * 3_600_000)),
                    attempts: s.attempts,
                    succeeded: s.succeeded,
                    failed_attempts: s.failed,
                    dead_lettered: s.dead,
                    mean_duration: convert::duration(s.duration_ms.checked_div(s.attempts).unwrap_or(0)),
                })
                .collect(),
        })
    }
}
