//! Customer-portal sessions: a magic link opens once, and the session it
//! opens is its tenant narrowed (no other tenant, no catalog or settings,
//! nothing changed when read-only), enforced by the service itself.

use std::time::Duration;

use hookline_proto::v1;
use tonic::Code;

use crate::support::*;

async fn link(client: &mut Client, read_only: bool) -> v1::CreatePortalSessionResponse {
    client
        .create_portal_session(v1::CreatePortalSessionRequest { read_only, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
}

async fn exchange(service: &Service, code: &str) -> Result<v1::PortalSession, tonic::Status> {
    let mut portal = service.client(code).await;
    portal.exchange_portal_code(v1::ExchangePortalCodeRequest {}).await.map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_link_opens_one_session_once() {
    let (_redis, service, mut acme) = setup().await;
    let created = link(&mut acme, false).await;
    assert!(created.session_id.starts_with("ps_"));
    assert!(created.url.starts_with("http://127.0.0.1:8080/enter?code=hll1."), "{}", created.url);
    let session = exchange(&service, &created.code).await.unwrap();
    assert_eq!((session.tenant_id.as_str(), session.read_only), ("acme", false));
    assert_eq!(session.session_id, created.session_id);
    assert!(session.token.starts_with("hlp1."));

    let again = exchange(&service, &created.code).await.unwrap_err();
    assert_eq!(again.code(), Code::Unauthenticated);
    assert!(again.message().contains("already been used"), "{}", again.message());
    // The link is no session, and the session is no link.
    let mut with_link = service.client(&created.code).await;
    let err = with_link.list_subscriptions(v1::ListSubscriptionsRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("portal link is not a session"), "{}", err.message());
    assert_eq!(exchange(&service, &session.token).await.unwrap_err().code(), Code::Unauthenticated);
    // A tampered code is refused before anything is claimed.
    let tampered = format!("{}x", created.code);
    assert_eq!(exchange(&service, &tampered).await.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_portal_session_sees_only_its_tenant_and_cannot_act_as_it() {
    let (_redis, service, mut acme) = setup().await;
    let mut globex = service.client(GLOBEX).await;
    let own = create(&mut acme, subscription("https://acme.example/hook", &["a"])).await.unwrap().subscription.unwrap();
    let foreign =
        create(&mut globex, subscription("https://globex.example/hook", &["a"])).await.unwrap().subscription.unwrap();
    let token = exchange(&service, &link(&mut acme, false).await.code).await.unwrap().token;
    let mut portal = service.client(&token).await;

    let listed = portal.list_subscriptions(v1::ListSubscriptionsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.subscriptions.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), [own.id.as_str()]);
    let err = portal.get_subscription(v1::GetSubscriptionRequest { id: foreign.id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = portal
        .list_subscriptions(v1::ListSubscriptionsRequest { tenant_id: "globex".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // A managing session changes its tenant's subscriptions...
    let made = create(&mut portal, subscription("https://acme.example/other", &["b"])).await.unwrap();
    assert_eq!(made.subscription.unwrap().tenant_id, "acme");
    portal.get_subscription_secret(v1::GetSubscriptionSecretRequest { id: own.id.clone() }).await.unwrap();
    // ...but is not the tenant: no catalog, settings or further portal links.
    let denied = [
        portal
            .create_event_type(v1::CreateEventTypeRequest {
                event_type: Some(v1::EventType { name: "x".into(), ..Default::default() }),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        portal
            .update_tenant_settings(v1::UpdateTenantSettingsRequest {
                settings: Some(v1::TenantSettings::default()),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        portal.create_portal_session(v1::CreatePortalSessionRequest::default()).await.unwrap_err(),
    ];
    for status in denied {
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }
    portal.list_event_types(v1::ListEventTypesRequest::default()).await.unwrap();
}

#[tokio::test]
async fn a_read_only_session_reads_and_changes_nothing() {
    let (_redis, service, mut acme) = setup().await;
    let own = create(&mut acme, subscription("https://acme.example/hook", &["a"])).await.unwrap().subscription.unwrap();
    let token = exchange(&service, &link(&mut acme, true).await.code).await.unwrap().token;
    let mut portal = service.client(&token).await;
    portal.get_subscription(v1::GetSubscriptionRequest { id: own.id.clone() }).await.unwrap();
    let id = || own.id.clone();
    let refused = [
        create(&mut portal, subscription("https://acme.example/new", &["a"])).await.unwrap_err(),
        portal.pause_subscription(v1::PauseSubscriptionRequest { id: id(), ..Default::default() }).await.unwrap_err(),
        portal.delete_subscription(v1::DeleteSubscriptionRequest { id: id(), ..Default::default() }).await.unwrap_err(),
        portal.rotate_secret(v1::RotateSecretRequest { id: id(), ..Default::default() }).await.unwrap_err(),
        portal.get_subscription_secret(v1::GetSubscriptionSecretRequest { id: id() }).await.unwrap_err(),
    ];
    for status in refused {
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert!(status.message().contains("read-only"), "{}", status.message());
    }
    let after = acme.get_subscription(v1::GetSubscriptionRequest { id: id() }).await.unwrap().into_inner();
    assert_eq!((after.version, after.state), (own.version, own.state), "nothing changed");
}

#[tokio::test]
async fn session_lifetimes_are_bounded_and_portals_can_be_off() {
    let (_redis, service, mut acme) = setup().await;
    let too_long = v1::CreatePortalSessionRequest {
        session_lifetime: Some(prost_types::Duration { seconds: 13 * 3600, nanos: 0 }),
        ..Default::default()
    };
    let err = acme.create_portal_session(too_long).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("max_session_lifetime"), "{}", err.message());
    let short = v1::CreatePortalSessionRequest {
        session_lifetime: Some(prost_types::Duration { seconds: 120, nanos: 0 }),
        ..Default::default()
    };
    let code = acme.create_portal_session(short).await.unwrap().into_inner().code;
    let session = exchange(&service, &code).await.unwrap();
    let expires = std::time::SystemTime::try_from(session.expire_time.unwrap()).unwrap();
    let left = expires.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(left <= Duration::from_secs(120) && left > Duration::from_secs(60), "{left:?}");

    let redis = RedisServer::start();
    let mut config = config(&redis.url());
    config.auth.portal_key = None;
    let off = Service::start(config).await;
    let err =
        off.client(ACME).await.create_portal_session(v1::CreatePortalSessionRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("auth.portal_key"), "{}", err.message());
    // Its tokens are not accepted where the key is not set.
    let err = off.client(&session.token).await.list_subscriptions(v1::ListSubscriptionsRequest::default()).await;
    assert_eq!(err.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_session_limited_to_an_account_sees_and_makes_only_that_accounts_subscriptions() {
    let (_redis, service, mut acme) = setup().await;
    let scoped = |url: &str, account: &str| v1::Subscription {
        scope: [("account_id".to_owned(), v1::ScopeValues { values: vec![account.into()] })].into(),
        ..subscription(url, &["a"])
    };
    let mine = create(&mut acme, scoped("https://acme.example/12", "12")).await.unwrap().subscription.unwrap();
    let other = create(&mut acme, scoped("https://acme.example/13", "13")).await.unwrap().subscription.unwrap();
    let whole =
        create(&mut acme, subscription("https://acme.example/all", &["a"])).await.unwrap().subscription.unwrap();
    let request = v1::CreatePortalSessionRequest {
        scope: [("account_id".to_owned(), v1::ScopeValues { values: vec!["12".into()] })].into(),
        ..Default::default()
    };
    let created = acme.create_portal_session(request).await.unwrap().into_inner();
    let session = exchange(&service, &created.code).await.unwrap();
    assert_eq!(session.scope["account_id"].values, ["12"]);
    let mut portal = service.client(&session.token).await;

    let listed = portal.list_subscriptions(v1::ListSubscriptionsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.subscriptions.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), [mine.id.as_str()]);
    // Another account's, and the tenant-wide one (it receives every
    // account's events), are not there at all.
    for id in [&other.id, &whole.id] {
        let err = portal.get_subscription(v1::GetSubscriptionRequest { id: id.clone() }).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        let err = portal.pause_subscription(v1::PauseSubscriptionRequest { id: id.clone(), ..Default::default() });
        assert_eq!(err.await.unwrap_err().code(), Code::NotFound);
    }
    // What it creates is within its scope: filled in when left out...
    let made = create(&mut portal, subscription("https://acme.example/new", &["a"])).await.unwrap();
    assert_eq!(made.subscription.unwrap().scope["account_id"].values, ["12"]);
    // ...refused when it names another account, on create and on update.
    let err = create(&mut portal, scoped("https://acme.example/x", "13")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("scope.account_id"), "{}", err.message());
    let update = v1::UpdateSubscriptionRequest {
        subscription: Some(v1::Subscription { id: mine.id.clone(), ..scoped("https://acme.example/12", "13") }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["scope".into()] }),
        ..Default::default()
    };
    assert_eq!(portal.update_subscription(update).await.unwrap_err().code(), Code::PermissionDenied);
    // Clearing the scope puts the session's back rather than widening it.
    let update = v1::UpdateSubscriptionRequest {
        subscription: Some(v1::Subscription { id: mine.id.clone(), ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["scope".into()] }),
        ..Default::default()
    };
    let updated = portal.update_subscription(update).await.unwrap().into_inner();
    assert_eq!(updated.scope["account_id"].values, ["12"]);
}

#[tokio::test]
async fn a_session_can_be_ended_by_itself_or_by_its_tenant_and_a_link_withdrawn() {
    let (_redis, service, mut acme) = setup().await;
    let mut globex = service.client(GLOBEX).await;
    let list = v1::ListSubscriptionsRequest::default;

    // Signing out: the session ends itself; its token is refused from then on.
    let session = exchange(&service, &link(&mut acme, false).await.code).await.unwrap();
    let mut portal = service.client(&session.token).await;
    portal.list_subscriptions(list()).await.unwrap();
    portal.end_portal_session(v1::EndPortalSessionRequest::default()).await.unwrap();
    let err = portal.list_subscriptions(list()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("has been ended"), "{}", err.message());

    // The tenant ends a customer's session by id; another tenant cannot.
    let session = exchange(&service, &link(&mut acme, true).await.code).await.unwrap();
    let mut portal = service.client(&session.token).await;
    let end = |id: &str| v1::EndPortalSessionRequest { session_id: id.into(), ..Default::default() };
    globex.end_portal_session(end(&session.session_id)).await.unwrap();
    portal.list_subscriptions(list()).await.unwrap();
    assert_eq!(
        portal.end_portal_session(end("ps_01J00000000000000000000000")).await.unwrap_err().code(),
        Code::PermissionDenied,
        "a session ends only itself"
    );
    acme.end_portal_session(end(&session.session_id)).await.unwrap();
    assert_eq!(portal.list_subscriptions(list()).await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(acme.end_portal_session(end("sub_x")).await.unwrap_err().code(), Code::InvalidArgument);

    // A link ended before it was opened does not open.
    let unopened = link(&mut acme, false).await;
    acme.end_portal_session(end(&unopened.session_id)).await.unwrap();
    let err = exchange(&service, &unopened.code).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("withdrawn"), "{}", err.message());
}
