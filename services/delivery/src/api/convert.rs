//! Delivery records and attempts into wire types.

use std::time::Duration;

use hookline_proto::{Timestamp, convert::timestamp_from_unix_ms, v1};

use crate::store::{AttemptRecord, DeliveryRecord};

fn at(ms: u64) -> Timestamp {
    timestamp_from_unix_ms(ms)
}

pub(crate) fn status(text: &str) -> v1::DeliveryStatus {
    match text {
        "pending" => v1::DeliveryStatus::Pending,
        "scheduled" => v1::DeliveryStatus::Scheduled,
        "held" => v1::DeliveryStatus::Held,
        "succeeded" => v1::DeliveryStatus::Succeeded,
        "dead" => v1::DeliveryStatus::DeadLettered,
        "cancelled" => v1::DeliveryStatus::Cancelled,
        _ => v1::DeliveryStatus::Unspecified,
    }
}

pub(crate) fn attempt(a: &AttemptRecord) -> v1::Attempt {
    let error = match a.err.as_str() {
        "none" => v1::AttemptError::None,
        "http_status" => v1::AttemptError::HttpStatus,
        "timeout" => v1::AttemptError::Timeout,
        "connect" => v1::AttemptError::Connect,
        "tls" => v1::AttemptError::Tls,
        "dns" => v1::AttemptError::Dns,
        "blocked_address" => v1::AttemptError::BlockedAddress,
        "redirect" => v1::AttemptError::Redirect,
        "event_expired" => v1::AttemptError::EventExpired,
        "undeliverable" => v1::AttemptError::Undeliverable,
        _ => v1::AttemptError::Unspecified,
    };
    let trigger = match a.trig.as_str() {
        "scheduled" => v1::AttemptTrigger::Scheduled,
        "manual" => v1::AttemptTrigger::ManualRetry,
        "replay" => v1::AttemptTrigger::Replay,
        "test" => v1::AttemptTrigger::Test,
        _ => v1::AttemptTrigger::Unspecified,
    };
    v1::Attempt {
        attempt_number: a.n,
        start_time: Some(at(a.at)),
        duration: prost_types_duration(a.dur),
        response_status_code: u32::from(a.code),
        error: error as i32,
        error_message: a.msg.clone(),
        response_body: a.body_bytes(),
        trigger: trigger as i32,
    }
}

fn prost_types_duration(ms: u64) -> Option<hookline_proto::Duration> {
    hookline_proto::Duration::try_from(Duration::from_millis(ms)).ok()
}

pub(crate) fn delivery(r: &DeliveryRecord) -> v1::Delivery {
    v1::Delivery {
        id: r.id.clone(),
        tenant_id: r.tenant.clone(),
        subscription_id: r.subscription_id.clone(),
        event_id: r.event_id.clone(),
        event_type: r.event_type.clone(),
        status: status(&r.status) as i32,
        attempt_count: r.attempts,
        next_attempt_time: r.next_attempt_ms.map(at),
        last_attempt: r.last_attempt.as_ref().map(attempt),
        create_time: Some(at(r.created_ms)),
        update_time: Some(at(r.updated_ms)),
        status_reason: r.status_reason.clone(),
    }
}

pub(crate) fn duration(ms: u64) -> Option<hookline_proto::Duration> {
    prost_types_duration(ms)
}

pub(crate) fn time(ms: u64) -> Timestamp {
    at(ms)
}
