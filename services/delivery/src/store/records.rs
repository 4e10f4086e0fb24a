//! Reading delivery records, attempt logs and counters back.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::STANDARD};
use hookline_queue::{FinishedEntry, Listed, PartitionKeys};
use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};

/// One attempt as logged: JSON in the attempts list, and short fields of
/// the delivery record for its last attempt (`ATTEMPT_FIELDS`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AttemptRecord {
    /// Attempt number, from 1.
    pub(crate) n: u32,
    /// Start, Unix ms.
    pub(crate) at: u64,
    /// Duration, ms.
    pub(crate) dur: u64,
    /// HTTP status; 0 when no response arrived.
    pub(crate) code: u16,
    /// `AttemptError::as_str`.
    pub(crate) err: String,
    pub(crate) msg: String,
    /// The start of the response body, base64.
    pub(crate) body: String,
    /// `scheduled`, `manual`, `replay`, `test`.
    pub(crate) trig: String,
}

/// The delivery record's fields for its last attempt, in the order of
/// [`AttemptRecord::last_attempt_fields`]: each value short, so that a record
/// whose attempt had no long message or response body stays in Redis's
/// compact hash encoding (a value over 64 bytes costs the whole record
/// ~4x). `complete.lua` reads them back in this order to log the attempt
/// when a later one comes.
pub(crate) const ATTEMPT_FIELDS: [&str; 7] = ["lat", "ld", "lc", "le", "lm", "lb", "lt"];

impl AttemptRecord {
    /// The record's last-attempt fields and their values (`n` is the
    /// record's own).
    pub(crate) fn last_attempt_fields(&self) -> [(&'static str, String); 7] {
        let [at, dur, code, err, msg, body, trig] = ATTEMPT_FIELDS;
        [
            (at, self.at.to_string()),
            (dur, self.dur.to_string()),
            (code, self.code.to_string()),
            (err, self.err.clone()),
            (msg, self.msg.clone()),
            (body, self.body.clone()),
            (trig, self.trig.clone()),
        ]
    }

    /// The last attempt of a record (`None` before its first); records of
    /// older builds hold it as JSON in `la`.
    fn from_record(fields: &HashMap<String, String>) -> Option<Self> {
        let [at, dur, code, err, msg, body, trig] = ATTEMPT_FIELDS;
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        match fields.get(at) {
            Some(started) => Some(Self {
                n: get("n").parse().unwrap_or(0),
                at: started.parse().unwrap_or(0),
                dur: get(dur).parse().unwrap_or(0),
                code: get(code).parse().unwrap_or(0),
                err: get(err),
                msg: get(msg),
                body: get(body),
                trig: get(trig),
            }),
            None => fields.get("la").and_then(|j| serde_json::from_str(j).ok()),
        }
    }

    /// The record of attempt `n`'s result, made by `trigger`
    /// (`scheduled`, `manual`, `replay`, `test`).
    pub(crate) fn of(result: &crate::http::AttemptResult, n: u32, trigger: &str) -> Self {
        Self {
            n,
            at: result.started.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            dur: result.duration.as_millis() as u64,
            code: result.status,
            err: result.error.as_str().into(),
            msg: result.message.clone(),
            body: Self::encode_body(&result.body),
            trig: trigger.into(),
        }
    }

    pub(crate) fn body_bytes(&self) -> Vec<u8> {
        STANDARD.decode(&self.body).unwrap_or_default()
    }

    pub(crate) fn encode_body(body: &[u8]) -> String {
        STANDARD.encode(body)
    }
}

/// A delivery as its record holds it.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeliveryRecord {
    pub(crate) id: String,
    pub(crate) event_id: String,
    pub(crate) subscription_id: String,
    pub(crate) tenant: String,
    pub(crate) event_type: String,
    /// `pending`, `scheduled`, `held`, `succeeded`, `dead`, `cancelled`.
    pub(crate) status: String,
    pub(crate) attempts: u32,
    pub(crate) next_attempt_ms: Option<u64>,
    pub(crate) created_ms: u64,
    pub(crate) updated_ms: u64,
    pub(crate) last_attempt: Option<AttemptRecord>,
    /// Why it is in its status when no attempt says so (a cancellation).
    pub(crate) status_reason: String,
}

impl DeliveryRecord {
    /// The record of `id` from its hash (`None` when it has none: every
    /// record has `evt`; records of older builds also hold `id`).
    fn from_fields(id: &str, fields: &HashMap<String, String>) -> Option<Self> {
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        if get("evt").is_empty() {
            return None;
        }
        Some(Self {
            id: id.to_owned(),
            event_id: get("evt"),
            subscription_id: get("sub"),
            tenant: get("t"),
            event_type: get("et"),
            status: fields.get("st").cloned().unwrap_or_else(|| "pending".into()),
            attempts: get("n").parse().unwrap_or(0),
            next_attempt_ms: get("na").parse().ok(),
            created_ms: get("c").parse().unwrap_or(0),
            updated_ms: get("u").parse().unwrap_or(0),
            last_attempt: AttemptRecord::from_record(fields),
            status_reason: get("sr"),
        })
    }
}

impl DeliveryRecord {
    /// A delivery that succeeded at its first attempt, kept only as entry
    /// `finished` of `tenant`'s log, under its public id `id`.
    pub(crate) fn from_finished(id: &str, tenant: &str, finished: &FinishedEntry) -> Self {
        let attempt = AttemptRecord {
            n: 1,
            at: finished.started_ms,
            dur: finished.duration_ms,
            code: finished.status_code,
            err: finished.error.clone(),
            msg: finished.message.clone(),
            body: finished.body.clone(),
            trig: finished.trigger.clone(),
        };
        Self {
            id: id.to_owned(),
            event_id: finished.event_id.clone(),
            subscription_id: finished.subscription_id.clone(),
            tenant: tenant.to_owned(),
            event_type: finished.event_type.clone(),
            status: "succeeded".into(),
            attempts: 1,
            next_attempt_ms: None,
            created_ms: finished.created_ms,
            updated_ms: finished.started_ms + finished.duration_ms,
            last_attempt: Some(attempt),
            status_reason: String::new(),
        }
    }
}

/// The deliveries of a listing, in order: each from its record, or, for
/// one kept only in its tenant's log, from that entry (a record made for
/// it since, by a retry, comes first); those gone with the retention are
/// skipped.
pub(crate) async fn read_listed(
    conn: &mut impl ConnectionLike,
    keys: &PartitionKeys,
    tenant: &str,
    listed: &[Listed],
) -> redis::RedisResult<Vec<DeliveryRecord>> {
    let ids: Vec<String> = listed.iter().map(|l| l.delivery_id.clone()).collect();
    let mut records: HashMap<String, DeliveryRecord> =
        read_records(conn, keys, &ids).await?.into_iter().map(|r| (r.id.clone(), r)).collect();
    Ok(listed
        .iter()
        .filter_map(|l| {
            records
                .remove(&l.delivery_id)
                .or_else(|| l.finished.as_ref().map(|f| DeliveryRecord::from_finished(&l.delivery_id, tenant, f)))
        })
        .collect())
}

/// Records of these ids (missing ones skipped), in order.
pub(crate) async fn read_records(
    conn: &mut impl ConnectionLike,
    keys: &PartitionKeys,
    ids: &[String],
) -> redis::RedisResult<Vec<DeliveryRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.hgetall(keys.delivery(id));
    }
    let all: Vec<HashMap<String, String>> = pipe.query_async(conn).await?;
    Ok(ids.iter().zip(&all).filter_map(|(id, fields)| DeliveryRecord::from_fields(id, fields)).collect())
}

pub(crate) async fn read_attempts(
    conn: &mut impl ConnectionLike,
    keys: &PartitionKeys,
    id: &str,
    start: isize,
    stop: isize,
) -> redis::RedisResult<Vec<AttemptRecord>> {
    let raw: Vec<String> = redis::cmd("LRANGE").arg(keys.attempts(id)).arg(start).arg(stop).query_async(conn).await?;
    Ok(raw.iter().filter_map(|j| serde_json::from_str(j).ok()).collect())
}

/// Counters of one subscription (totals, or one hour bucket).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    pub(crate) attempts: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) dead: u64,
    pub(crate) consecutive_failures: u32,
    /// When the current failing streak began (`None` when not failing).
    pub(crate) failing_since_ms: Option<u64>,
    pub(crate) last_attempt_ms: Option<u64>,
    pub(crate) last_success_ms: Option<u64>,
    /// Summed attempt duration (hour buckets only), ms.
    pub(crate) duration_ms: u64,
}

impl Stats {
    pub(crate) fn from_fields(fields: &HashMap<String, String>) -> Self {
        let n = |k: &str| fields.get(k).and_then(|v| v.parse::<u64>().ok());
        Self {
            attempts: n("succeeded").unwrap_or(0) + n("failed").unwrap_or(0),
            succeeded: n("succeeded").unwrap_or(0),
            failed: n("failed").unwrap_or(0),
            dead: n("dead").unwrap_or(0),
            consecutive_failures: n("cf").unwrap_or(0) as u32,
            failing_since_ms: n("fs").filter(|&since| since > 0 && n("cf").unwrap_or(0) > 0),
            last_attempt_ms: n("la"),
            last_success_ms: n("ls"),
            duration_ms: n("dur").unwrap_or(0),
        }
    }

    pub(crate) fn add(&mut self, other: &Stats) {
        self.attempts += other.attempts;
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.dead += other.dead;
        self.duration_ms += other.duration_ms;
    }
}
