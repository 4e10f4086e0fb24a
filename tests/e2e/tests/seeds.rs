//! The five seed products' webhook features, as each would drive hookline,
//! through the real binaries.

#![allow(clippy::unwrap_used)]

use std::{collections::HashMap, time::Duration};

use hookline_domain::SigningSecret;
use hookline_e2e::*;
use hookline_proto::v1::{
    self, delivery_service_client::DeliveryServiceClient, event_service_client::EventServiceClient,
    subscription_service_client::SubscriptionServiceClient,
};
use hookline_testkit::eventually;

fn secs(seconds: i64) -> Option<hookline_proto::Duration> {
    Some(hookline_proto::Duration { seconds, nanos: 0 })
}

async fn create(
    stack: &Stack,
    sub: v1::Subscription,
    secret: &str,
) -> Result<v1::CreateSubscriptionResponse, tonic::Status> {
    let mut subs = stack.client(stack.subscriptions.addr(), SubscriptionServiceClient::with_interceptor).await;
    subs.create_subscription(v1::CreateSubscriptionRequest {
        subscription: Some(sub),
        secret: secret.into(),
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

/// How many subscriptions each event matched, once fan-out is done with
/// all of them (after that, no other delivery of them can appear).
async fn matched<T>(events: &EventServiceClient<T>, ids: &[String]) -> Vec<u32>
where
    T: tonic::client::GrpcService<tonic::body::Body> + Clone,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let get = |id: String| {
        let mut events = events.clone();
        async move { events.get_event(v1::GetEventRequest { id }).await.unwrap().into_inner() }
    };
    let done = v1::FanoutState::Done as i32;
    for id in ids {
        eventually(WAIT, || async { get(id.clone()).await.fanout_state == done }).await;
    }
    let mut counts = Vec::new();
    for id in ids {
        counts.push(get(id.clone()).await.matched_subscriptions);
    }
    counts
}

fn event(event_type: &str, payload: &str, attributes: &[(&str, &str)]) -> v1::PublishRequest {
    v1::PublishRequest {
        event_type: event_type.into(),
        payload: payload.as_bytes().to_vec(),
        attributes: attributes.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    }
}

fn bodies(receiver: &Receiver) -> Vec<String> {
    receiver.got.lock().unwrap().iter().map(|(_, b)| String::from_utf8_lossy(b).into_owned()).collect()
}

/// Instaply: several webhooks per organisation, a set of event types,
/// extra headers on every delivery, partial update, a legacy body.
#[tokio::test]
async fn instaply_webhooks_with_extra_headers_partial_update_and_legacy_body() {
    let stack = Stack::start().await;
    let (current, current_port) = Receiver::start(&[200], Duration::ZERO).await;
    let (legacy, legacy_port) = Receiver::start(&[200], Duration::ZERO).await;
    let modern = create(
        &stack,
        v1::Subscription {
            url: format!("http://127.0.0.1:{current_port}/webhook"),
            event_types: vec!["messages".into(), "transfers".into()],
            headers: HashMap::from([("Authorization".into(), "Bearer your-secret".into())]),
            ..Default::default()
        },
        "",
    )
    .await
    .unwrap()
    .subscription
    .unwrap();
    create(
        &stack,
        v1::Subscription {
            url: format!("http://127.0.0.1:{legacy_port}/legacy"),
            event_types: vec!["messages".into()],
            payload_variant: "legacy".into(),
            ..Default::default()
        },
        "",
    )
    .await
    .unwrap();
    let mut events = stack.client(stack.fanout.addr(), EventServiceClient::with_interceptor).await;
    let mut message = event("messages", r#"{"eventType":"message","data":{"messageId":555001}}"#, &[]);
    message.payload_variants.insert("legacy".into(), br#"{"messageId":555001}"#.to_vec());
    events.publish(message).await.unwrap();
    eventually(WAIT, || async { current.ids().len() == 1 && legacy.ids().len() == 1 }).await;
    assert_eq!(current.got.lock().unwrap()[0].0["authorization"], "Bearer your-secret");
    assert_eq!(bodies(&legacy), [r#"{"messageId":555001}"#]);

    // Partial update: subscribedEvents -> ["messages"] only.
    let mut subs = stack.client(stack.subscriptions.addr(), SubscriptionServiceClient::with_interceptor).await;
    subs.update_subscription(v1::UpdateSubscriptionRequest {
        subscription: Some(v1::Subscription {
            id: modern.id.clone(),
            event_types: vec!["messages".into()],
            ..Default::default()
        }),
        update_mask: Some(hookline_proto::FieldMask { paths: vec!["event_types".into()] }),
        allow_duplicate_endpoint: false,
    })
    .await
    .unwrap();
    let transfer = events.publish(event("transfers", r#"{"eventType":"transfer"}"#, &[])).await.unwrap();
    let message = events.publish(event("messages", r#"{"eventType":"message","n":2}"#, &[])).await.unwrap();
    let ids = [transfer.into_inner().event_id, message.into_inner().event_id];
    assert_eq!(matched(&events, &ids).await, [0, 2], "transfers match no subscription any more");
    eventually(WAIT, || async { current.ids().len() == 2 }).await;
    assert!(
        bodies(&current).iter().all(|b| !b.contains("transfer")),
        "transfers no longer sent: {:?}",
        bodies(&current)
    );
}

/// Connectly: one registration per business and topic, glob filters on the
/// payload, a clear conflict error.
#[tokio::test]
async fn connectly_per_business_topic_with_glob_filter_and_conflict() {
    let stack = Stack::start().await;
    let (receiver, port) = Receiver::start(&[200], Duration::ZERO).await;
    let registration = v1::Subscription {
        url: format!("http://127.0.0.1:{port}/webhook/delivery"),
        event_types: vec!["delivery_status".into()],
        scope: HashMap::from([("business_id".into(), v1::ScopeValues { values: vec!["b-42".into()] })]),
        filters: vec![v1::PayloadFilter {
            path: "campaign_name".into(),
            operator: v1::FilterOperator::Glob as i32,
            values: vec!["summer-promo-*".into()],
        }],
        metadata: HashMap::from([("type".into(), "custom".into())]),
        ..Default::default()
    };
    let first = create(&stack, registration.clone(), "").await.unwrap().subscription.unwrap();
    assert!(first.id.starts_with("sub_") && first.id.len() == 30, "ULID-like id");
    let conflict = create(&stack, registration, "").await.unwrap_err();
    assert_eq!(conflict.code(), tonic::Code::AlreadyExists);
    assert!(conflict.message().contains(&first.id));

    let mut events = stack.client(stack.fanout.addr(), EventServiceClient::with_interceptor).await;
    let mut ids = Vec::new();
    for (campaign, business) in [("summer-promo-1", "b-42"), ("winter", "b-42"), ("summer-promo-2", "b-7")] {
        let payload = format!(r#"{{"campaign_name":"{campaign}","status":"delivered"}}"#);
        let published = events.publish(event("delivery_status", &payload, &[("business_id", business)])).await;
        ids.push(published.unwrap().into_inner().event_id);
    }
    assert_eq!(matched(&events, &ids).await, [1, 0, 0], "the filter and the scope leave two out");
    eventually(WAIT, || async { !receiver.ids().is_empty() }).await;
    assert_eq!(bodies(&receiver), [r#"{"campaign_name":"summer-promo-1","status":"delivered"}"#]);
}

/// Instantly: a strict event catalog and an all-events webhook, a test
/// event, auto-pause after failures and resume, a summary by date.
#[tokio::test]
async fn instantly_catalog_test_event_auto_pause_resume_and_summary_by_date() {
    let stack = Stack::start().await;
    let mut subs = stack.client(stack.subscriptions.addr(), SubscriptionServiceClient::with_interceptor).await;
    for name in ["email_sent", "reply_received", "lead_interested", "hookline.subscription.paused"] {
        subs.create_event_type(v1::CreateEventTypeRequest {
            tenant_id: String::new(),
            event_type: Some(v1::EventType { name: name.into(), ..Default::default() }),
        })
        .await
        .unwrap();
    }
    subs.update_tenant_settings(v1::UpdateTenantSettingsRequest {
        settings: Some(v1::TenantSettings { strict_event_types: true, ..Default::default() }),
        update_mask: None,
    })
    .await
    .unwrap();
    let (receiver, port) = Receiver::start(&[500], Duration::ZERO).await;
    let webhook = create(
        &stack,
        v1::Subscription {
            name: "All Events Monitor".into(),
            url: format!("http://127.0.0.1:{port}/instantly/all"),
            event_types: vec!["*".into()],
            headers: HashMap::from([("X-Webhook-Secret".into(), "shared".into())]),
            retry_policy: Some(v1::RetryPolicy { schedule: vec![secs(1).unwrap(); 3], ..Default::default() }),
            timeout: secs(30),
            ..Default::default()
        },
        "",
    )
    .await
    .unwrap()
    .subscription
    .unwrap();
    let mut deliveries = stack.client(stack.delivery.addr(), DeliveryServiceClient::with_interceptor).await;
    let test = deliveries
        .send_test_event(v1::SendTestEventRequest { subscription_id: webhook.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(test.attempt.unwrap().response_status_code, 500, "the test shows the endpoint is failing");

    let mut events = stack.client(stack.fanout.addr(), EventServiceClient::with_interceptor).await;
    let refused = events.publish(event("not_in_catalog", "{}", &[])).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    events.publish(event("email_sent", r#"{"lead_email":"a@b.c"}"#, &[])).await.unwrap();
    // Three failed attempts pause the webhook.
    eventually(WAIT, || {
        let mut subs = subs.clone();
        let id = webhook.id.clone();
        async move {
            let s = subs.get_subscription(v1::GetSubscriptionRequest { id }).await.unwrap().into_inner();
            s.state == v1::SubscriptionState::Paused as i32
        }
    })
    .await;
    events.publish(event("reply_received", r#"{"reply_text":"yes"}"#, &[])).await.unwrap();
    *receiver.statuses() = vec![200];
    subs.resume_subscription(v1::ResumeSubscriptionRequest { id: webhook.id.clone() }).await.unwrap();
    eventually(WAIT, || async { bodies(&receiver).iter().any(|b| b.contains("reply_text")) }).await;
    eventually(WAIT, || async { bodies(&receiver).iter().filter(|b| b.contains("lead_email")).count() >= 4 }).await;

    let stats = deliveries
        .get_delivery_stats(v1::GetDeliveryStatsRequest {
            subscription_id: webhook.id.clone(),
            granularity: v1::StatsGranularity::Day as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let today = stats.buckets.last().unwrap();
    assert!(today.attempts >= 5 && today.succeeded >= 2 && today.failed_attempts >= 3, "{today:?}");
}

/// Reply.io: webhooks scoped to sequences or teams (several ids), a
/// caller-chosen HMAC secret, an attempt counter.
#[tokio::test]
async fn reply_io_scoped_webhooks_with_own_secret_and_attempt_count() {
    let stack = Stack::start().await;
    let (receiver, port) = Receiver::start(&[200], Duration::ZERO).await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let sub = create(
        &stack,
        v1::Subscription {
            url: format!("http://127.0.0.1:{port}/webhook/reply"),
            event_types: vec!["email_replied".into(), "email_sent".into()],
            scope: HashMap::from([(
                "sequence_id".into(),
                v1::ScopeValues { values: vec!["123".into(), "456".into()] },
            )]),
            ..Default::default()
        },
        secret,
    )
    .await
    .unwrap()
    .subscription
    .unwrap();
    let mut events = stack.client(stack.fanout.addr(), EventServiceClient::with_interceptor).await;
    let mut ids = Vec::new();
    for sequence in ["123", "456", "789"] {
        let payload = format!(r#"{{"sequenceId":{sequence}}}"#);
        let published = events.publish(event("email_replied", &payload, &[("sequence_id", sequence)])).await;
        ids.push(published.unwrap().into_inner().event_id);
    }
    assert_eq!(matched(&events, &ids).await, [1, 1, 0], "sequence 789 is out of scope");
    eventually(WAIT, || async { receiver.ids().len() >= 2 }).await;
    let got = receiver.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "sequence 789 is out of scope");
    let key = SigningSecret::parse(secret).unwrap();
    for (headers, body) in &got {
        let ts: i64 = headers["webhook-timestamp"].parse().unwrap();
        assert!(hookline_signing::verify(&key, &headers["webhook-id"], ts, body, &headers["webhook-signature"]));
    }
    let mut deliveries = stack.client(stack.delivery.addr(), DeliveryServiceClient::with_interceptor).await;
    let summary = deliveries
        .get_delivery_summary(v1::GetDeliverySummaryRequest { subscription_id: sub.id, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((summary.attempts, summary.succeeded), (2, 2));
}
