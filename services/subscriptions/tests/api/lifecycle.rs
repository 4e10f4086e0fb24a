//! Pause, resume, disable, and secret rotation.

use hookline_proto::v1;
use prost_types::Duration;
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn pause_resume_and_disable_move_between_states_with_reasons() {
    let (_redis, _service, mut client) = setup().await;
    let id = create(&mut client, subscription("https://e.com/h", &["a"])).await.unwrap().subscription.unwrap().id;

    let paused = client
        .pause_subscription(v1::PauseSubscriptionRequest {
            id: id.clone(),
            reason: "maintenance".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paused.state, v1::SubscriptionState::Paused as i32);
    let reason = paused.state_reason.unwrap();
    assert_eq!((reason.cause, reason.message.as_str()), (v1::StateCause::Manual as i32, "maintenance"));
    assert_eq!(paused.version, 2);

    let again =
        client.pause_subscription(v1::PauseSubscriptionRequest { id: id.clone(), ..Default::default() }).await.unwrap();
    assert_eq!(again.into_inner().version, 2, "pausing a paused subscription changes nothing");

    let resumed =
        client.resume_subscription(v1::ResumeSubscriptionRequest { id: id.clone() }).await.unwrap().into_inner();
    assert_eq!(resumed.state, v1::SubscriptionState::Active as i32);
    assert!(resumed.state_reason.is_none());

    let disabled = client
        .disable_subscription(v1::DisableSubscriptionRequest {
            id: id.clone(),
            reason: "off".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(disabled.state, v1::SubscriptionState::Disabled as i32);
    let err = client
        .pause_subscription(v1::PauseSubscriptionRequest { id: id.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let back = client.resume_subscription(v1::ResumeSubscriptionRequest { id }).await.unwrap().into_inner();
    assert_eq!(back.state, v1::SubscriptionState::Active as i32);
}

#[tokio::test]
async fn only_hookline_services_may_pause_for_failures() {
    let (_redis, service, mut client) = setup().await;
    let id = create(&mut client, subscription("https://e.com/h", &["a"])).await.unwrap().subscription.unwrap().id;
    let auto = |id: &str| v1::PauseSubscriptionRequest {
        id: id.into(),
        reason: "25 consecutive failures".into(),
        cause: v1::StateCause::Failures as i32,
    };
    let err = client.pause_subscription(auto(&id)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut internal = service.client(SERVICE).await;
    let paused = internal.pause_subscription(auto(&id)).await.unwrap().into_inner();
    assert_eq!(paused.state_reason.unwrap().cause, v1::StateCause::Failures as i32);
}

#[tokio::test]
async fn created_disabled_or_paused_when_asked() {
    let (_redis, _service, mut client) = setup().await;
    let made = client
        .create_subscription(v1::CreateSubscriptionRequest {
            subscription: Some(subscription("https://e.com/h", &["a"])),
            initial_state: v1::SubscriptionState::Disabled as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(made.subscription.unwrap().state, v1::SubscriptionState::Disabled as i32);
}

#[tokio::test]
async fn rotation_keeps_the_old_secret_valid_for_the_grace_period() {
    let (_redis, _service, mut client) = setup().await;
    let created = create(&mut client, subscription("https://e.com/h", &["a"])).await.unwrap();
    let id = created.subscription.unwrap().id;
    let rotated = client
        .rotate_secret(v1::RotateSecretRequest {
            id: id.clone(),
            secret: String::new(),
            grace_period: Some(Duration { seconds: 3600, nanos: 0 }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(rotated.secret.starts_with("whsec_") && rotated.secret != created.secret);
    let expiry = rotated.previous_secret_expire_time.unwrap();
    let secrets =
        client.get_subscription_secret(v1::GetSubscriptionSecretRequest { id: id.clone() }).await.unwrap().into_inner();
    assert_eq!(secrets.secret, rotated.secret);
    assert_eq!(secrets.previous_secret, created.secret, "the old secret still signs");
    assert_eq!(secrets.previous_secret_expire_time, Some(expiry));
    let sub = client.get_subscription(v1::GetSubscriptionRequest { id: id.clone() }).await.unwrap().into_inner();
    assert_eq!(sub.previous_secret_expire_time, Some(expiry));

    let immediate = client
        .rotate_secret(v1::RotateSecretRequest {
            id: id.clone(),
            secret: String::new(),
            grace_period: Some(Duration::default()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(immediate.previous_secret_expire_time.is_none());
    let secrets =
        client.get_subscription_secret(v1::GetSubscriptionSecretRequest { id: id.clone() }).await.unwrap().into_inner();
    assert_eq!((secrets.secret, secrets.previous_secret), (immediate.secret, String::new()));

    let too_long = client
        .rotate_secret(v1::RotateSecretRequest {
            id,
            secret: String::new(),
            grace_period: Some(Duration { seconds: 8 * 86400, nanos: 0 }),
        })
        .await
        .unwrap_err();
    assert_eq!(too_long.code(), Code::InvalidArgument);
}
