//! State changes (pause, resume, disable) and secret rotation.

use std::time::Duration;

use hookline_auth::Principal;
use hookline_domain::{SigningSecret, StateCause, StateReason, Subscription, SubscriptionState};
use hookline_proto::{
    convert::{duration_from_proto, secrets_to_proto, state_cause_from_proto, subscription_to_proto, timestamp},
    v1,
};

use super::{Api, now, store_error, subscriptions::WRITE_RETRIES};
use crate::{
    error::ServiceError,
    store::{StoreError, StoredSubscription, SubscriptionStore},
};

const MAX_REASON: usize = 1024;
const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);
const MAX_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a transition does to a stored subscription: `None` leaves it as is
/// (the call is idempotent), `Some` is the record to write.
type Transition<'a> =
    dyn Fn(&StoredSubscription) -> Result<Option<StoredSubscription>, ServiceError> + Send + Sync + 'a;

impl<S: SubscriptionStore> Api<S> {
    /// Loads, transforms and writes back, retrying when another writer got
    /// in between.
    async fn transition(
        &self,
        who: &Principal,
        id: &str,
        change: &Transition<'_>,
    ) -> Result<StoredSubscription, ServiceError> {
        for _ in 0..WRITE_RETRIES {
            let current = self.load(who, id).await?;
            let Some(mut next) = change(&current)? else {
                return Ok(current);
            };
            next.subscription.version = current.subscription.version + 1;
            next.subscription.updated_at = now();
            match self.store.update(&current, &next, self.rules(true)).await {
                Ok(_) => return Ok(next),
                Err(StoreError::VersionMismatch(_)) => continue,
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(store_error(StoreError::Contention))
    }

    fn reason(&self, who: &Principal, cause: i32, message: &str, default: &str) -> Result<StateReason, ServiceError> {
        if message.len() > MAX_REASON {
            return Err(ServiceError::BadRequest(format!("reason: is longer than {MAX_REASON} bytes")));
        }
        let cause = state_cause_from_proto(cause).unwrap_or(StateCause::Manual);
        if cause != StateCause::Manual && !who.is_service() {
            return Err(ServiceError::PermissionDenied(
                "cause: only hookline's services may set a cause other than MANUAL".into(),
            ));
        }
        let message = if message.is_empty() { default.to_owned() } else { message.to_owned() };
        Ok(StateReason { cause, message, at: now() })
    }

    pub(super) async fn pause(
        &self,
        who: &Principal,
        req: v1::PauseSubscriptionRequest,
    ) -> Result<v1::Subscription, ServiceError> {
        let reason = self.reason(who, req.cause, &req.reason, "paused")?;
        let rec = self
            .transition(who, &req.id, &|current| match &current.subscription.state {
                SubscriptionState::Paused(_) => Ok(None),
                SubscriptionState::Disabled(_) => Err(ServiceError::FailedPrecondition(
                    "the subscription is disabled; resume it before pausing it".into(),
                )),
                SubscriptionState::Active => Ok(Some(with_state(current, SubscriptionState::Paused(reason.clone())))),
            })
            .await?;
        tracing::info!(subscription = %rec.subscription.id, "subscription paused");
        Ok(subscription_to_proto(&rec.subscription, Some(&rec.secrets), now()))
    }

    pub(super) async fn resume(
        &self,
        who: &Principal,
        req: v1::ResumeSubscriptionRequest,
    ) -> Result<v1::Subscription, ServiceError> {
        let rec = self
            .transition(who, &req.id, &|current| match &current.subscription.state {
                SubscriptionState::Active => Ok(None),
                _ => Ok(Some(with_state(current, SubscriptionState::Active))),
            })
            .await?;
        tracing::info!(subscription = %rec.subscription.id, "subscription resumed");
        Ok(subscription_to_proto(&rec.subscription, Some(&rec.secrets), now()))
    }

    pub(super) async fn disable(
        &self,
        who: &Principal,
        req: v1::DisableSubscriptionRequest,
    ) -> Result<v1::Subscription, ServiceError> {
        let reason = self.reason(who, req.cause, &req.reason, "disabled")?;
        let rec = self
            .transition(who, &req.id, &|current| match &current.subscription.state {
                SubscriptionState::Disabled(_) => Ok(None),
                _ => Ok(Some(with_state(current, SubscriptionState::Disabled(reason.clone())))),
            })
            .await?;
        tracing::info!(subscription = %rec.subscription.id, "subscription disabled");
        Ok(subscription_to_proto(&rec.subscription, Some(&rec.secrets), now()))
    }

    pub(super) async fn rotate(
        &self,
        who: &Principal,
        req: v1::RotateSecretRequest,
    ) -> Result<v1::RotateSecretResponse, ServiceError> {
        let grace = duration_from_proto("grace_period", req.grace_period.as_ref())?.unwrap_or(DEFAULT_GRACE);
        if grace > MAX_GRACE {
            return Err(ServiceError::BadRequest("grace_period: must be at most 7 days".into()));
        }
        let fresh = if req.secret.is_empty() { SigningSecret::generate() } else { SigningSecret::parse(&req.secret)? };
        let rec = self
            .transition(who, &req.id, &|current| {
                let mut next = current.clone();
                next.secrets = if grace.is_zero() {
                    hookline_domain::SecretSet::new(fresh.clone())
                } else {
                    current.secrets.clone().rotate(fresh.clone(), now() + grace)
                };
                Ok(Some(next))
            })
            .await?;
        tracing::info!(subscription = %rec.subscription.id, grace_secs = grace.as_secs(), "secret rotated");
        Ok(v1::RotateSecretResponse {
            secret: fresh.expose().to_owned(),
            previous_secret_expire_time: rec.secrets.previous_expiry(now()).map(timestamp),
        })
    }

    pub(super) async fn secret(
        &self,
        who: &Principal,
        req: v1::GetSubscriptionSecretRequest,
    ) -> Result<v1::GetSubscriptionSecretResponse, ServiceError> {
        let rec = self.load(who, &req.id).await?;
        let mut secrets = secrets_to_proto(&rec.secrets, now()).into_iter();
        let current = secrets.next().map(|s| s.secret).unwrap_or_default();
        let previous = secrets.next();
        Ok(v1::GetSubscriptionSecretResponse {
            secret: current,
            previous_secret: previous.as_ref().map(|p| p.secret.clone()).unwrap_or_default(),
            previous_secret_expire_time: previous.and_then(|p| p.expire_time),
        })
    }
}

fn with_state(current: &StoredSubscription, state: SubscriptionState) -> StoredSubscription {
    StoredSubscription {
        subscription: Subscription { state, ..current.subscription.clone() },
        secrets: current.secrets.clone(),
    }
}
