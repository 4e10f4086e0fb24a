//! What a customer-portal session may do here: read its own tenant's
//! deliveries; retry, replay and test only when it may manage.

use hookline_proto::v1;
use hookline_testkit::{portal_token, portal_token_within};
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn a_portal_session_reads_its_tenants_deliveries_and_acts_only_when_it_may_manage() {
    let mut stack = Stack::start().await;
    let (sub, _) = stack.subscribe("/ok", |_| {}).await;
    stack.publish("a", "{}").await;
    let id = stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 1).await[0].id.clone();

    let mut read_only = stack.client_for(&portal_token(PORTAL_KEY, "acme", true)).await;
    let listed = read_only
        .list_deliveries(v1::ListDeliveriesRequest { subscription_id: sub.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.deliveries.len(), 1);
    read_only.list_attempts(v1::ListAttemptsRequest { delivery_id: id.clone(), ..Default::default() }).await.unwrap();
    let refused = [
        read_only.retry_delivery(v1::RetryDeliveryRequest { id: id.clone() }).await.unwrap_err(),
        read_only
            .send_test_event(v1::SendTestEventRequest { subscription_id: sub.clone(), ..Default::default() })
            .await
            .unwrap_err(),
        read_only
            .replay_deliveries(v1::ReplayDeliveriesRequest { subscription_id: sub.clone(), ..Default::default() })
            .await
            .unwrap_err(),
    ];
    for status in refused {
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }

    let mut other_tenant = stack.client_for(&portal_token(PORTAL_KEY, "globex", false)).await;
    let err = other_tenant.get_delivery(v1::GetDeliveryRequest { id: id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = other_tenant
        .list_deliveries(v1::ListDeliveriesRequest { subscription_id: sub.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let mut manage = stack.client_for(&portal_token(PORTAL_KEY, "acme", false)).await;
    manage.retry_delivery(v1::RetryDeliveryRequest { id }).await.unwrap();
    stack.wait_received("/ok", 2).await;
    let forged = portal_token("another-key-entirely-000000000001", "acme", false);
    let err = stack.client_for(&forged).await.get_delivery(v1::GetDeliveryRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_session_limited_to_an_account_sees_only_that_accounts_deliveries_and_figures() {
    let mut stack = Stack::start().await;
    let mut subs = Vec::new();
    for account in ["12", "13"] {
        let path = format!("/account-{account}");
        let (sub, _) = stack
            .subscribe(&path, |s| {
                s.scope = [("account_id".to_owned(), v1::ScopeValues { values: vec![account.into()] })].into();
            })
            .await;
        let request = v1::PublishRequest {
            event_type: "a".into(),
            payload: b"{}".to_vec(),
            attributes: [("account_id".to_owned(), account.to_owned())].into(),
            ..Default::default()
        };
        stack.events.publish(request).await.unwrap();
        let delivery = stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 1).await[0].id.clone();
        subs.push((sub, delivery));
    }
    let [(_, my_delivery), (other, other_delivery)] = [subs[0].clone(), subs[1].clone()];

    let mut portal =
        stack.client_for(&portal_token_within(PORTAL_KEY, "acme", false, &[("account_id", &["12"])])).await;
    let listed = portal.list_deliveries(v1::ListDeliveriesRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.deliveries.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), [my_delivery.as_str()]);
    portal.get_delivery(v1::GetDeliveryRequest { id: my_delivery }).await.unwrap();
    let refused = [
        portal.get_delivery(v1::GetDeliveryRequest { id: other_delivery.clone() }).await.unwrap_err(),
        portal.retry_delivery(v1::RetryDeliveryRequest { id: other_delivery }).await.unwrap_err(),
        portal
            .list_deliveries(v1::ListDeliveriesRequest { subscription_id: other.clone(), ..Default::default() })
            .await
            .unwrap_err(),
        portal
            .send_test_event(v1::SendTestEventRequest { subscription_id: other.clone(), ..Default::default() })
            .await
            .unwrap_err(),
    ];
    for status in refused {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    // The tenant-wide summary counts its own account's subscription only.
    let summary = portal.get_delivery_summary(v1::GetDeliverySummaryRequest::default()).await.unwrap().into_inner();
    assert_eq!((summary.subscriptions, summary.succeeded), (1, 1));
}

#[tokio::test]
async fn an_ended_session_is_refused_here_too() {
    let stack = Stack::start().await;
    let token = portal_token(PORTAL_KEY, "acme", false);
    let mut portal = stack.client_for(&token).await;
    portal.list_deliveries(v1::ListDeliveriesRequest::default()).await.unwrap();
    // The session ends itself, as the portal's sign-out does.
    let mut subs = stack.subs_client_for(&token).await;
    subs.end_portal_session(v1::EndPortalSessionRequest::default()).await.unwrap();
    let err = portal.list_deliveries(v1::ListDeliveriesRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("has been ended"), "{}", err.message());
}
