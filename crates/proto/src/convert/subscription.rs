//! Subscriptions, their specs, states and secrets.

use std::{
    collections::{BTreeSet, HashMap},
    time::SystemTime,
};

use hookline_domain::{
    EndpointUrl, EventTypePattern, ExtraHeaders, FilterOp, Metadata, Ordering, PayloadFilter, PayloadFormat, RateLimit,
    RetryPolicy, RetrySchedule, Scope, SecretSet, SigningSecret, StateCause, StateReason, Subscription, SubscriptionId,
    SubscriptionSpec, SubscriptionState, TenantId, ValidationError, limits,
};

use super::{duration_from_proto, timestamp, timestamp_from_proto};
use crate::v1;

/// A wire scope (label -> values), validated.
pub fn scope_from_proto(scope: &HashMap<String, v1::ScopeValues>) -> Result<Scope, ValidationError> {
    Scope::new(
        scope.iter().map(|(label, v)| (label.clone(), v.values.iter().cloned().collect::<BTreeSet<_>>())).collect(),
    )
}

pub fn scope_to_proto(scope: &Scope) -> HashMap<String, v1::ScopeValues> {
    scope.labels().iter().map(|(k, vs)| (k.clone(), v1::ScopeValues { values: vs.iter().cloned().collect() })).collect()
}

/// The client-settable part of a wire subscription, fully validated.
/// Output-only fields (`id`, `state`, times, `version`) are ignored.
pub fn spec_from_proto(p: &v1::Subscription) -> Result<SubscriptionSpec, ValidationError> {
    let event_types = p.event_types.iter().map(|t| EventTypePattern::parse(t)).collect::<Result<_, _>>()?;
    let scope = scope_from_proto(&p.scope)?;
    let filters = p
        .filters
        .iter()
        .enumerate()
        .map(|(i, f)| filter_from_proto(f).map_err(|e| e.within(&format!("filters[{i}]"))))
        .collect::<Result<_, _>>()?;
    let timeout = duration_from_proto("timeout", p.timeout.as_ref())?.unwrap_or(limits::DEFAULT_TIMEOUT);
    let rate_limit = p.rate_limit.as_ref().map(|r| RateLimit::new(r.per_second, r.burst)).transpose()?;
    let payload_format = match v1::PayloadFormat::try_from(p.payload_format) {
        Ok(v1::PayloadFormat::Unspecified | v1::PayloadFormat::Raw) => PayloadFormat::Raw,
        Ok(v1::PayloadFormat::Envelope) => PayloadFormat::Envelope,
        Err(_) => {
            return Err(ValidationError::new("payload_format", format!("unknown value {}", p.payload_format)));
        }
    };
    let ordering = match v1::OrderingMode::try_from(p.ordering) {
        Ok(v1::OrderingMode::Unspecified | v1::OrderingMode::Unordered) => Ordering::Unordered,
        Ok(v1::OrderingMode::Fifo) => Ordering::Fifo,
        Err(_) => {
            return Err(ValidationError::new("ordering", format!("unknown value {}", p.ordering)));
        }
    };
    SubscriptionSpec {
        name: p.name.clone(),
        url: EndpointUrl::parse(&p.url)?,
        event_types,
        scope,
        filters,
        headers: ExtraHeaders::new(&p.headers)?,
        retry: retry_from_proto(p.retry_policy.as_ref())?,
        timeout,
        max_in_flight: if p.max_in_flight == 0 { limits::DEFAULT_MAX_IN_FLIGHT } else { p.max_in_flight },
        rate_limit,
        payload_format,
        payload_variant: (!p.payload_variant.is_empty()).then(|| p.payload_variant.clone()),
        ordering,
        metadata: Metadata::new(p.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect())?,
    }
    .validated()
}

fn filter_from_proto(f: &v1::PayloadFilter) -> Result<PayloadFilter, ValidationError> {
    use v1::FilterOperator as Op;
    let one = || match f.values.as_slice() {
        [v] => Ok(v.clone()),
        _ => Err(ValidationError::new("values", format!("needs exactly one value, got {}", f.values.len()))),
    };
    let op = match Op::try_from(f.operator) {
        Ok(Op::Equals) => FilterOp::Equals(one()?),
        Ok(Op::Glob) => FilterOp::glob(&one()?)?,
        Ok(Op::In) if f.values.is_empty() => {
            return Err(ValidationError::new("values", "IN needs at least one value"));
        }
        Ok(Op::In) => FilterOp::In(f.values.iter().cloned().collect()),
        Ok(Op::Exists) if !f.values.is_empty() => {
            return Err(ValidationError::new("values", "EXISTS takes no values"));
        }
        Ok(Op::Exists) => FilterOp::Exists,
        Ok(Op::Unspecified) | Err(_) => {
            return Err(ValidationError::new("operator", "must be one of EQUALS, GLOB, IN, EXISTS"));
        }
    };
    PayloadFilter::new(&f.path, op)
}

fn retry_from_proto(p: Option<&v1::RetryPolicy>) -> Result<RetryPolicy, ValidationError> {
    let Some(p) = p else {
        return Ok(RetryPolicy::default());
    };
    if p.schedule.is_empty() {
        return RetryPolicy::exponential(
            p.max_attempts,
            duration_from_proto("retry_policy.initial_interval", p.initial_interval.as_ref())?,
            duration_from_proto("retry_policy.max_interval", p.max_interval.as_ref())?,
        );
    }
    let delays = p
        .schedule
        .iter()
        .enumerate()
        .map(|(i, d)| {
            duration_from_proto(&format!("retry_policy.schedule[{i}]"), Some(d)).map(Option::unwrap_or_default)
        })
        .collect::<Result<_, _>>()?;
    RetryPolicy::fixed(p.max_attempts, delays)
}

fn duration(d: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).unwrap_or_default()
}

fn spec_into_proto(spec: &SubscriptionSpec, out: &mut v1::Subscription) {
    out.name.clone_from(&spec.name);
    out.url = spec.url.to_string();
    out.event_types = spec.event_types.iter().map(|p| p.as_str().to_owned()).collect();
    out.scope = scope_to_proto(&spec.scope);
    out.filters = spec
        .filters
        .iter()
        .map(|f| v1::PayloadFilter {
            path: f.path().to_owned(),
            operator: match f.op() {
                FilterOp::Equals(_) => v1::FilterOperator::Equals,
                FilterOp::Glob(_) => v1::FilterOperator::Glob,
                FilterOp::In(_) => v1::FilterOperator::In,
                FilterOp::Exists => v1::FilterOperator::Exists,
            } as i32,
            values: f.op().values(),
        })
        .collect();
    out.headers = spec.headers.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    out.retry_policy = Some(match spec.retry.schedule() {
        RetrySchedule::Exponential { initial, max } => v1::RetryPolicy {
            max_attempts: spec.retry.max_attempts(),
            initial_interval: Some(duration(*initial)),
            max_interval: Some(duration(*max)),
            schedule: Vec::new(),
        },
        RetrySchedule::Fixed(delays) => v1::RetryPolicy {
            max_attempts: spec.retry.max_attempts(),
            initial_interval: None,
            max_interval: None,
            schedule: delays.iter().map(|d| duration(*d)).collect(),
        },
    });
    out.timeout = Some(duration(spec.timeout));
    out.max_in_flight = spec.max_in_flight;
    out.rate_limit = spec.rate_limit.map(|r| v1::RateLimit { per_second: r.per_second, burst: r.burst });
    out.payload_format = match spec.payload_format {
        PayloadFormat::Raw => v1::PayloadFormat::Raw,
        PayloadFormat::Envelope => v1::PayloadFormat::Envelope,
    } as i32;
    out.payload_variant = spec.payload_variant.clone().unwrap_or_default();
    out.ordering = match spec.ordering {
        Ordering::Unordered => v1::OrderingMode::Unordered,
        Ordering::Fifo => v1::OrderingMode::Fifo,
    } as i32;
    out.metadata = spec.metadata.as_map().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
}

pub fn state_to_proto(state: &SubscriptionState) -> v1::SubscriptionState {
    match state {
        SubscriptionState::Active => v1::SubscriptionState::Active,
        SubscriptionState::Paused(_) => v1::SubscriptionState::Paused,
        SubscriptionState::Disabled(_) => v1::SubscriptionState::Disabled,
    }
}

/// The wire form; `secrets` only contribute the end of a rotation window.
pub fn subscription_to_proto(sub: &Subscription, secrets: Option<&SecretSet>, now: SystemTime) -> v1::Subscription {
    let (state, reason) = (state_to_proto(&sub.state), sub.state.reason());
    let mut out = v1::Subscription {
        id: sub.id.to_string(),
        tenant_id: sub.tenant.to_string(),
        state: state as i32,
        state_reason: reason.map(|r| v1::StateReason {
            cause: match r.cause {
                StateCause::Manual => v1::StateCause::Manual,
                StateCause::Failures => v1::StateCause::Failures,
                StateCause::Gone => v1::StateCause::Gone,
            } as i32,
            message: r.message.clone(),
            time: Some(timestamp(r.at)),
        }),
        create_time: Some(timestamp(sub.created_at)),
        update_time: Some(timestamp(sub.updated_at)),
        version: sub.version,
        previous_secret_expire_time: secrets.and_then(|s| s.previous_expiry(now)).map(timestamp),
        ..Default::default()
    };
    spec_into_proto(&sub.spec, &mut out);
    out
}

/// A whole subscription as the watch stream sends it (all fields trusted
/// to be present, but checked all the same).
pub fn subscription_from_proto(p: &v1::Subscription) -> Result<Subscription, ValidationError> {
    let reason = || -> Result<StateReason, ValidationError> {
        let r = p.state_reason.clone().unwrap_or_default();
        Ok(StateReason {
            cause: state_cause_from_proto(r.cause).unwrap_or(StateCause::Manual),
            message: r.message,
            at: r
                .time
                .as_ref()
                .map(|t| timestamp_from_proto("state_reason.time", t))
                .transpose()?
                .unwrap_or(SystemTime::UNIX_EPOCH),
        })
    };
    let state = match v1::SubscriptionState::try_from(p.state) {
        Ok(v1::SubscriptionState::Active) => SubscriptionState::Active,
        Ok(v1::SubscriptionState::Paused) => SubscriptionState::Paused(reason()?),
        Ok(v1::SubscriptionState::Disabled) => SubscriptionState::Disabled(reason()?),
        _ => return Err(ValidationError::new("state", "is unspecified")),
    };
    let time = |field: &str, t: &Option<prost_types::Timestamp>| {
        t.as_ref().map(|t| timestamp_from_proto(field, t)).transpose().map(|t| t.unwrap_or(SystemTime::UNIX_EPOCH))
    };
    Ok(Subscription {
        id: SubscriptionId::parse(&p.id, "id")?,
        tenant: TenantId::parse(&p.tenant_id)?,
        spec: spec_from_proto(p)?,
        state,
        created_at: time("create_time", &p.create_time)?,
        updated_at: time("update_time", &p.update_time)?,
        version: p.version,
    })
}

/// `None` for UNSPECIFIED or an unknown value.
pub fn state_cause_from_proto(cause: i32) -> Option<StateCause> {
    match v1::StateCause::try_from(cause) {
        Ok(v1::StateCause::Manual) => Some(StateCause::Manual),
        Ok(v1::StateCause::Failures) => Some(StateCause::Failures),
        Ok(v1::StateCause::Gone) => Some(StateCause::Gone),
        _ => None,
    }
}

/// The secrets that sign at `now`, current first.
pub fn secrets_to_proto(secrets: &SecretSet, now: SystemTime) -> Vec<v1::SigningSecret> {
    let mut out = vec![v1::SigningSecret { secret: secrets.current.expose().to_owned(), expire_time: None }];
    if let (Some((prev, _)), Some(until)) = (&secrets.previous, secrets.previous_expiry(now)) {
        out.push(v1::SigningSecret { secret: prev.expose().to_owned(), expire_time: Some(timestamp(until)) });
    }
    out
}

pub fn secrets_from_proto(p: &[v1::SigningSecret]) -> Result<SecretSet, ValidationError> {
    let (current, rest) = p.split_first().ok_or_else(|| ValidationError::new("secrets", "is empty"))?;
    let mut set = SecretSet::new(SigningSecret::parse(&current.secret)?);
    if let Some(prev) = rest.first() {
        let until = prev.expire_time.as_ref().map(|t| timestamp_from_proto("expire_time", t)).transpose()?;
        set.previous = Some((SigningSecret::parse(&prev.secret)?, until.unwrap_or(SystemTime::UNIX_EPOCH)));
    }
    Ok(set)
}
