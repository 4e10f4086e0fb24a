//! Authentication and tenant isolation.

use hookline_auth::BearerToken;
use hookline_proto::v1::{self, subscription_service_client::SubscriptionServiceClient};
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let (_redis, service, _client) = setup().await;
    let mut anonymous = SubscriptionServiceClient::new(service.channel().await);
    let err = anonymous.list_subscriptions(v1::ListSubscriptionsRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut wrong = SubscriptionServiceClient::with_interceptor(
        service.channel().await,
        BearerToken::new("wrong-token-wrong-token").unwrap(),
    );
    let err = wrong.list_subscriptions(v1::ListSubscriptionsRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(service.health().await, 1, "health needs no token");
}

#[tokio::test]
async fn another_tenants_subscription_is_not_found_for_every_call() {
    let (_redis, service, mut acme) = setup().await;
    let mut globex = service.client(GLOBEX).await;
    let s = create(&mut acme, subscription("https://example.com/hook", &["a"])).await.unwrap().subscription.unwrap();
    let id = s.id.clone();

    let codes = vec![
        globex.get_subscription(v1::GetSubscriptionRequest { id: id.clone() }).await.unwrap_err().code(),
        globex
            .update_subscription(v1::UpdateSubscriptionRequest {
                subscription: Some(v1::Subscription { id: id.clone(), name: "x".into(), ..Default::default() }),
                update_mask: mask(&["name"]),
                allow_duplicate_endpoint: false,
            })
            .await
            .unwrap_err()
            .code(),
        globex
            .delete_subscription(v1::DeleteSubscriptionRequest { id: id.clone(), version: 0 })
            .await
            .unwrap_err()
            .code(),
        globex
            .pause_subscription(v1::PauseSubscriptionRequest { id: id.clone(), ..Default::default() })
            .await
            .unwrap_err()
            .code(),
        globex.resume_subscription(v1::ResumeSubscriptionRequest { id: id.clone() }).await.unwrap_err().code(),
        globex
            .disable_subscription(v1::DisableSubscriptionRequest { id: id.clone(), ..Default::default() })
            .await
            .unwrap_err()
            .code(),
        globex
            .rotate_secret(v1::RotateSecretRequest { id: id.clone(), ..Default::default() })
            .await
            .unwrap_err()
            .code(),
        globex.get_subscription_secret(v1::GetSubscriptionSecretRequest { id: id.clone() }).await.unwrap_err().code(),
        globex
            .list_subscriptions(v1::ListSubscriptionsRequest { tenant_id: "acme".into(), ..Default::default() })
            .await
            .unwrap_err()
            .code(),
        globex
            .create_subscription(v1::CreateSubscriptionRequest {
                subscription: Some(v1::Subscription {
                    tenant_id: "acme".into(),
                    ..subscription("https://e.com/x", &["a"])
                }),
                ..Default::default()
            })
            .await
            .unwrap_err()
            .code(),
    ];
    assert!(codes.iter().all(|c| *c == Code::NotFound), "{codes:?}");
    let own = globex.list_subscriptions(v1::ListSubscriptionsRequest::default()).await.unwrap().into_inner();
    assert!(own.subscriptions.is_empty());
    let still = acme.get_subscription(v1::GetSubscriptionRequest { id }).await.unwrap().into_inner();
    assert_eq!(still, s, "untouched");
}

#[tokio::test]
async fn admins_name_the_tenant_and_may_act_on_any() {
    let (_redis, service, mut acme) = setup().await;
    let mut admin = service.client(ADMIN).await;
    let err = create(&mut admin, subscription("https://e.com/x", &["a"])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("tenant_id"));
    let made =
        create(&mut admin, v1::Subscription { tenant_id: "acme".into(), ..subscription("https://e.com/x", &["a"]) })
            .await
            .unwrap()
            .subscription
            .unwrap();
    assert_eq!(made.tenant_id, "acme");
    let seen = acme.get_subscription(v1::GetSubscriptionRequest { id: made.id.clone() }).await.unwrap().into_inner();
    assert_eq!(seen.id, made.id);
    admin.pause_subscription(v1::PauseSubscriptionRequest { id: made.id, ..Default::default() }).await.unwrap();
}

#[tokio::test]
async fn only_the_service_token_may_watch() {
    let (_redis, service, mut acme) = setup().await;
    let err = acme.watch_subscriptions(v1::WatchSubscriptionsRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut admin = service.client(ADMIN).await;
    assert_eq!(
        admin.watch_subscriptions(v1::WatchSubscriptionsRequest::default()).await.unwrap_err().code(),
        Code::PermissionDenied
    );
}
