//! Bad input: the right status, a message naming the field, and nothing
//! written.

use std::collections::HashMap;

use hookline_proto::v1;
use prost_types::Duration;
use tonic::Code;

use crate::support::*;

fn with(f: impl FnOnce(&mut v1::Subscription)) -> v1::Subscription {
    let mut s = subscription("https://example.com/hook", &["messages"]);
    f(&mut s);
    s
}

fn filter(path: &str, operator: v1::FilterOperator, values: &[&str]) -> v1::PayloadFilter {
    v1::PayloadFilter {
        path: path.into(),
        operator: operator as i32,
        values: values.iter().map(|v| (*v).into()).collect(),
    }
}

fn secs(seconds: i64) -> Option<Duration> {
    Some(Duration { seconds, nanos: 0 })
}

#[tokio::test]
async fn each_bad_field_is_invalid_argument_naming_it_and_creates_nothing() {
    let (_redis, _service, mut client) = setup().await;
    let cases: Vec<(&str, v1::Subscription, &str)> = vec![
        ("missing url", with(|s| s.url.clear()), "url"),
        ("ftp url", with(|s| s.url = "ftp://example.com/x".into()), "http or https"),
        ("url without scheme", with(|s| s.url = "example.com/hook".into()), "url"),
        ("credentials in url", with(|s| s.url = "https://user:pw@example.com/".into()), "credentials"),
        ("no event types", with(|s| s.event_types.clear()), "event_types"),
        ("malformed glob", with(|s| s.event_types = vec!["lead_[".into()]), "not a valid glob"),
        ("odd event type", with(|s| s.event_types = vec!["has space".into()]), "event_type"),
        ("host header", with(|s| s.headers = HashMap::from([("Host".into(), "x".into())])), "cannot be overridden"),
        (
            "content-length",
            with(|s| s.headers = HashMap::from([("Content-Length".into(), "1".into())])),
            "cannot be overridden",
        ),
        (
            "transfer-encoding",
            with(|s| s.headers = HashMap::from([("transfer-encoding".into(), "chunked".into())])),
            "cannot be overridden",
        ),
        (
            "signature header",
            with(|s| s.headers = HashMap::from([("webhook-signature".into(), "v1,x".into())])),
            "cannot be overridden",
        ),
        ("huge header", with(|s| s.headers = HashMap::from([("x-big".into(), "v".repeat(9000))])), "bytes"),
        ("bad header name", with(|s| s.headers = HashMap::from([("bad name".into(), "v".into())])), "header name"),
        (
            "filter without operator",
            with(|s| s.filters = vec![filter("a", v1::FilterOperator::Unspecified, &["x"])]),
            "filters[0].operator",
        ),
        (
            "malformed filter glob",
            with(|s| s.filters = vec![filter("a", v1::FilterOperator::Glob, &["summer-["])]),
            "filters[0].values",
        ),
        (
            "equals with two values",
            with(|s| s.filters = vec![filter("a", v1::FilterOperator::Equals, &["1", "2"])]),
            "exactly one",
        ),
        (
            "empty filter path",
            with(|s| s.filters = vec![filter("", v1::FilterOperator::Exists, &[])]),
            "filters[0].path",
        ),
        (
            "too many attempts",
            with(|s| s.retry_policy = Some(v1::RetryPolicy { max_attempts: 99, ..Default::default() })),
            "max_attempts",
        ),
        (
            "tiny interval",
            with(|s| {
                s.retry_policy = Some(v1::RetryPolicy {
                    initial_interval: Some(Duration { seconds: 0, nanos: 1000 }),
                    ..Default::default()
                })
            }),
            "initial_interval",
        ),
        (
            "schedule vs attempts",
            with(|s| {
                s.retry_policy = Some(v1::RetryPolicy {
                    max_attempts: 9,
                    schedule: vec![Duration { seconds: 5, nanos: 0 }],
                    ..Default::default()
                })
            }),
            "schedule implies 2",
        ),
        ("timeout over 60s", with(|s| s.timeout = secs(61)), "timeout"),
        ("negative timeout", with(|s| s.timeout = secs(-1)), "timeout"),
        (
            "zero rate",
            with(|s| s.rate_limit = Some(v1::RateLimit { per_second: 0, burst: 0 })),
            "rate_limit.per_second",
        ),
        ("in-flight too high", with(|s| s.max_in_flight = 1_000_000), "max_in_flight"),
        (
            "empty scope values",
            with(|s| s.scope = HashMap::from([("team_id".into(), v1::ScopeValues::default())])),
            "scope.team_id",
        ),
        ("unknown payload format", with(|s| s.payload_format = 42), "payload_format"),
        ("long name", with(|s| s.name = "n".repeat(300)), "name"),
    ];
    for (what, sub, expected) in cases {
        let err = create(&mut client, sub).await.expect_err(what);
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        assert!(err.message().contains(expected), "{what}: message `{}` should mention `{expected}`", err.message());
    }
    let err = client
        .create_subscription(v1::CreateSubscriptionRequest {
            subscription: Some(subscription("https://example.com/h", &["a"])),
            secret: "hmac-secret-key".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("whsec_"), "{}", err.message());
    let missing = client.create_subscription(v1::CreateSubscriptionRequest::default()).await.unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);

    let list = client.list_subscriptions(v1::ListSubscriptionsRequest::default()).await.unwrap().into_inner();
    assert!(list.subscriptions.is_empty(), "nothing was created");
}

#[tokio::test]
async fn bad_updates_are_refused_and_leave_the_subscription_as_it_was() {
    let (_redis, _service, mut client) = setup().await;
    let s = create(&mut client, subscription("https://example.com/hook", &["a"])).await.unwrap().subscription.unwrap();
    let update = |sub: v1::Subscription, paths: &[&str]| v1::UpdateSubscriptionRequest {
        subscription: Some(sub),
        update_mask: mask(paths),
        allow_duplicate_endpoint: false,
    };
    let base = v1::Subscription { id: s.id.clone(), ..Default::default() };
    let cases = vec![
        ("empty mask", update(base.clone(), &[]), "update_mask"),
        ("unknown path", update(base.clone(), &["colour"]), "`colour` cannot be updated"),
        ("state path", update(base.clone(), &["state"]), "Pause/Resume/Disable"),
        ("cleared url", update(base.clone(), &["url"]), "url"),
        ("cleared event types", update(base.clone(), &["event_types"]), "event_types"),
        ("bad id", update(v1::Subscription { id: "nope".into(), ..Default::default() }, &["name"]), "id"),
    ];
    for (what, req, expected) in cases {
        let err = client.update_subscription(req).await.expect_err(what);
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        assert!(err.message().contains(expected), "{what}: `{}` should mention `{expected}`", err.message());
    }
    let now = client.get_subscription(v1::GetSubscriptionRequest { id: s.id.clone() }).await.unwrap().into_inner();
    assert_eq!(now, s);
}

#[tokio::test]
async fn https_only_deployments_refuse_plain_http() {
    let redis = RedisServer::start();
    let mut config = config(&redis.url());
    config.require_https = true;
    let service = Service::start(config).await;
    let mut client = service.client(ACME).await;
    let err = create(&mut client, subscription("http://example.com/hook", &["a"])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("https"));
    create(&mut client, subscription("https://example.com/hook", &["a"])).await.unwrap();
}
