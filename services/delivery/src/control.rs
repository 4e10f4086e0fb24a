//! Delivery's calls to the other services: pausing a subscription after a
//! run of failures, disabling it on 410 Gone (subscription service), and
//! publishing the operational event `hookline.subscription.paused` for the
//! tenant (fanout). All with the service token.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::store::Streak;
use hookline_auth::BearerToken;
use hookline_domain::Subscription;
use hookline_proto::v1::{
    self, event_service_client::EventServiceClient, subscription_service_client::SubscriptionServiceClient,
};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

type Authed = InterceptedService<Channel, BearerToken>;

/// Don't ask twice within this long for the same subscription.
const REPEAT_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub(crate) struct Control {
    subscriptions: SubscriptionServiceClient<Authed>,
    events: Option<EventServiceClient<Authed>>,
    recent: Mutex<HashMap<String, Instant>>,
}

impl Control {
    pub(crate) fn new(subscriptions_url: &str, fanout_url: Option<&str>, token: &str) -> Result<Self, String> {
        let token = BearerToken::new(token).map_err(|e| e.message().to_owned())?;
        let channel = |url: &str| {
            Channel::from_shared(url.to_owned())
                .map(|c| c.connect_timeout(Duration::from_secs(2)).connect_lazy())
                .map_err(|e| format!("{url}: {e}"))
        };
        Ok(Self {
            subscriptions: SubscriptionServiceClient::with_interceptor(channel(subscriptions_url)?, token.clone()),
            events: fanout_url
                .map(|url| channel(url).map(|c| EventServiceClient::with_interceptor(c, token)))
                .transpose()?,
            recent: Mutex::new(HashMap::new()),
        })
    }

    fn first_time(&self, key: String) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.retain(|_, at| at.elapsed() < REPEAT_AFTER);
        recent.insert(key, Instant::now()).is_none()
    }

    /// Auto-pause after `failures` consecutive failures.
    pub(crate) async fn pause_for_failures(&self, sub: &Subscription, streak: Streak, last_error: &str) {
        if !self.first_time(format!("pause:{}", sub.id)) {
            return;
        }
        let failures = streak.failures;
        let since = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(streak.since_ms))
            .to_string();
        let reason = format!("{failures} consecutive failed attempts since {since}; last: {last_error}");
        let request = v1::PauseSubscriptionRequest {
            id: sub.id.to_string(),
            reason: reason.clone(),
            cause: v1::StateCause::Failures as i32,
        };
        match self.subscriptions.clone().pause_subscription(request).await {
            Ok(_) => tracing::warn!(subscription = %sub.id, failures, "subscription auto-paused"),
            Err(status) => {
                tracing::error!(subscription = %sub.id, %status, "could not auto-pause the subscription");
                return;
            }
        }
        let payload = serde_json::json!({
            "subscription_id": sub.id.to_string(),
            "url": sub.spec.url.redacted(),
            "reason": reason,
            "consecutive_failures": failures,
            "failing_since": since,
        });
        self.publish(sub, "hookline.subscription.paused", payload).await;
    }

    /// The endpoint answered 410 Gone.
    pub(crate) async fn disable_gone(&self, sub: &Subscription) {
        if !self.first_time(format!("gone:{}", sub.id)) {
            return;
        }
        let request = v1::DisableSubscriptionRequest {
            id: sub.id.to_string(),
            reason: "the endpoint answered 410 Gone".into(),
            cause: v1::StateCause::Gone as i32,
        };
        match self.subscriptions.clone().disable_subscription(request).await {
            Ok(_) => tracing::warn!(subscription = %sub.id, "subscription disabled: endpoint answered 410 Gone"),
            Err(status) => tracing::error!(subscription = %sub.id, %status, "could not disable the subscription"),
        }
        let payload = serde_json::json!({"subscription_id": sub.id.to_string(), "url": sub.spec.url.redacted(), "reason": "410 Gone"});
        self.publish(sub, "hookline.subscription.disabled", payload).await;
    }

    async fn publish(&self, sub: &Subscription, event_type: &str, payload: serde_json::Value) {
        let Some(events) = &self.events else {
            tracing::debug!(event_type, "no fanout_url configured; operational event not published");
            return;
        };
        let request = v1::PublishRequest {
            tenant_id: sub.tenant.to_string(),
            event_type: event_type.into(),
            payload: payload.to_string().into_bytes(),
            attributes: [("subscription_id".to_owned(), sub.id.to_string())].into(),
            ..Default::default()
        };
        if let Err(status) = events.clone().publish(request).await {
            tracing::warn!(event_type, %status, "could not publish the operational event");
        }
    }
}
