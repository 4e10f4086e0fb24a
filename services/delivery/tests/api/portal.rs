//! What a customer-portal session may do here: read its own tenant's
//! deliveries; retry, replay and test only when it may manage.

use hookline_proto::v1;
use hookline_testkit::portal_token;
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
