//! DeliveryService: bad input, tenant isolation, test events, stats.

use hookline_proto::v1;
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn test_events_are_signed_sent_now_and_reported_back() {
    let mut stack = Stack::start().await;
    stack.receiver.statuses("/test", &[202]);
    let (sub, secret) = stack.subscribe("/test", |_| {}).await;
    let reply = stack
        .deliveries
        .send_test_event(v1::SendTestEventRequest { subscription_id: sub.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let attempt = reply.attempt.unwrap();
    assert_eq!(attempt.response_status_code, 202);
    assert_eq!(attempt.trigger, v1::AttemptTrigger::Test as i32);
    assert_eq!(attempt.response_body, b"answered 202");
    assert!(attempt.duration.is_some());
    let got = stack.receiver.received("/test");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].headers["webhook-id"], reply.event_id);
    assert!(verified_by_reference(&secret, &got[0]));
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["type"], "hookline.test");
    let summary = stack
        .deliveries
        .get_delivery_summary(v1::GetDeliverySummaryRequest { subscription_id: sub, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.attempts, 0, "test events do not count");
}

#[tokio::test]
async fn stats_by_day_and_hour_count_outcomes() {
    let mut stack = Stack::start().await;
    stack.receiver.statuses("/mixed", &[500, 200]);
    let (sub, _) = stack.subscribe("/mixed", |s| s.retry_policy = Some(quick_retries(1))).await;
    stack.publish("a", "{}").await;
    stack.publish("a", "{}").await;
    stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 2).await;
    for granularity in [v1::StatsGranularity::Day, v1::StatsGranularity::Hour] {
        let stats = stack
            .deliveries
            .get_delivery_stats(v1::GetDeliveryStatsRequest {
                subscription_id: sub.clone(),
                granularity: granularity as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let total: (u64, u64, u64) =
            stats.buckets.iter().fold((0, 0, 0), |t, b| (t.0 + b.attempts, t.1 + b.succeeded, t.2 + b.failed_attempts));
        assert_eq!(total, (3, 2, 1), "{granularity:?}: {stats:#?}");
    }
}

#[tokio::test]
async fn bad_ids_other_tenants_and_bad_ranges_get_clear_statuses() {
    let mut stack = Stack::start().await;
    let (sub, _) = stack.subscribe("/mine", |_| {}).await;
    stack.publish("a", "{}").await;
    let done = stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 1).await;
    let mut globex = stack.client_for(GLOBEX).await;

    let code = |r: Result<tonic::Response<v1::Delivery>, tonic::Status>| r.unwrap_err().code();
    assert_eq!(code(globex.get_delivery(v1::GetDeliveryRequest { id: done[0].id.clone() }).await), Code::NotFound);
    assert_eq!(code(globex.retry_delivery(v1::RetryDeliveryRequest { id: done[0].id.clone() }).await), Code::NotFound);
    assert_eq!(
        code(stack.deliveries.get_delivery(v1::GetDeliveryRequest { id: "nope".into() }).await),
        Code::InvalidArgument
    );
    let unknown = hookline_domain::DeliveryId::generate().to_string();
    assert_eq!(code(stack.deliveries.get_delivery(v1::GetDeliveryRequest { id: unknown }).await), Code::NotFound);
    let foreign = globex
        .list_deliveries(v1::ListDeliveriesRequest { subscription_id: sub.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
    let summary = globex
        .get_delivery_summary(v1::GetDeliverySummaryRequest { subscription_id: sub.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(summary.code(), Code::NotFound);
    let test = globex
        .send_test_event(v1::SendTestEventRequest { subscription_id: sub.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(test.code(), Code::NotFound);

    let later = prost_types::Timestamp { seconds: 2_000_000_000, nanos: 0 };
    let earlier = prost_types::Timestamp { seconds: 1_000_000_000, nanos: 0 };
    let range = stack
        .deliveries
        .list_deliveries(v1::ListDeliveriesRequest {
            subscription_id: sub.clone(),
            start_time: Some(later),
            end_time: Some(earlier),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(range.code(), Code::InvalidArgument);
    let token = stack
        .deliveries
        .list_deliveries(v1::ListDeliveriesRequest { page_token: "garbage!".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(token.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn list_deliveries_pages_newest_first_and_filters_by_event_and_type() {
    let mut stack = Stack::start().await;
    let (sub, _) = stack.subscribe("/many", |_| {}).await;
    let mut events = Vec::new();
    for i in 0..7 {
        events.push(stack.publish("a", &format!("{{\"n\":{i}}}")).await);
    }
    let other = stack.publish("b", "{}").await;
    stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 8).await;
    let of_b = stack
        .deliveries
        .list_deliveries(v1::ListDeliveriesRequest {
            subscription_id: sub.clone(),
            event_type: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(of_b.deliveries.iter().map(|d| d.event_id.as_str()).collect::<Vec<_>>(), [other.as_str()]);
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = stack
            .deliveries
            .list_deliveries(v1::ListDeliveriesRequest {
                subscription_id: sub.clone(),
                page_size: 3,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.deliveries.into_iter().map(|d| d.event_id).filter(|id| *id != other));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut expected = events.clone();
    expected.reverse();
    assert_eq!(seen, expected, "each once, newest first");
    let one = stack
        .deliveries
        .list_deliveries(v1::ListDeliveriesRequest { event_id: events[3].clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.deliveries.len(), 1);
    assert_eq!(one.deliveries[0].event_id, events[3]);
}

#[tokio::test]
async fn tenant_wide_summary_and_stats_add_up_every_subscription() {
    let mut stack = Stack::start().await;
    stack.receiver.statuses("/b", &[500, 200]);
    let (a, _) = stack.subscribe("/a", |_| {}).await;
    let (b, _) = stack.subscribe("/b", |s| s.retry_policy = Some(quick_retries(1))).await;
    stack.publish("x", "{}").await;
    stack.wait_status(&a, v1::DeliveryStatus::Succeeded, 1).await;
    stack.wait_status(&b, v1::DeliveryStatus::Succeeded, 1).await;
    let summary =
        stack.deliveries.get_delivery_summary(v1::GetDeliverySummaryRequest::default()).await.unwrap().into_inner();
    assert_eq!((summary.subscriptions, summary.attempts, summary.succeeded, summary.failed_attempts), (2, 3, 2, 1));
    assert!(summary.subscription_id.is_empty());
    let stats = stack
        .deliveries
        .get_delivery_stats(v1::GetDeliveryStatsRequest {
            granularity: v1::StatsGranularity::Day as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let attempts: u64 = stats.buckets.iter().map(|b| b.attempts).sum();
    assert_eq!(attempts, 3);
    let mut globex = stack.client_for(GLOBEX).await;
    let theirs = globex.get_delivery_summary(v1::GetDeliverySummaryRequest::default()).await.unwrap().into_inner();
    assert_eq!((theirs.subscriptions, theirs.attempts), (0, 0), "another tenant sees only its own");
}

#[tokio::test]
async fn admin_port_serves_health_readiness_and_metrics() {
    let port = hookline_testkit::free_port();
    let mut stack = Stack::start_with(|c| hookline_delivery::Config {
        admin_addr: Some(format!("127.0.0.1:{port}").parse().unwrap()),
        ..c
    })
    .await;
    let (sub, _) = stack.subscribe("/metered", |_| {}).await;
    stack.publish("a", "{}").await;
    stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 1).await;
    let get = |path: &'static str| async move {
        let r = reqwest::get(format!("http://127.0.0.1:{port}{path}")).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(get("/healthz").await.0, 200);
    assert_eq!(get("/readyz").await, (200, "ready\n".to_owned()));
    let (status, metrics) = get("/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("hookline_delivery_attempts_total{outcome=\"succeeded\"}"), "{metrics}");
    assert!(metrics.contains("hookline_delivery_attempt_duration_seconds_bucket"), "{metrics}");
    assert!(metrics.contains("hookline_publish_to_delivery_seconds"), "{metrics}");
}
