//! The `hookline` operator CLI against the three separately started
//! services: create → publish → see the delivery → retry it, with JSON for
//! scripts, tables for people, and exit codes scripts can rely on.

#![allow(clippy::unwrap_used)]

use std::{process::Output, time::Duration};

use hookline_e2e::*;
use hookline_proto::v1;
use hookline_testkit::eventually;
use serde_json::Value;

/// Runs the CLI without blocking the test's runtime (the receiver runs on
/// it, and `subscriptions test` waits for the receiver's answer).
async fn hookline(stack: &Stack, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(binary("hookline"));
    command
        .args(args)
        .env("HOOKLINE_SUBSCRIPTIONS_URL", format!("http://{}", stack.subscriptions.addr()))
        .env("HOOKLINE_FANOUT_URL", format!("http://{}", stack.fanout.addr()))
        .env("HOOKLINE_DELIVERY_URL", format!("http://{}", stack.delivery.addr()))
        .env_remove("HOOKLINE_TOKEN");
    if let Some(token) = token {
        command.env("HOOKLINE_TOKEN", token);
    }
    command.output().await.unwrap()
}

async fn json(stack: &Stack, args: &[&str]) -> Value {
    let out = hookline(stack, Some(TOKEN), &[&["--output", "json"], args].concat()).await;
    assert!(out.status.success(), "hookline {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn create_publish_see_the_delivery_and_retry_it() {
    let stack = Stack::start().await;
    let (receiver, port) = Receiver::start(&[200], Duration::ZERO).await;
    let url = format!("http://127.0.0.1:{port}/hook");

    let created =
        json(&stack, &["subscriptions", "create", "--url", &url, "--event-type", "order.*", "--name", "shop"]).await;
    let sub = created["subscription"]["id"].as_str().unwrap().to_owned();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));

    let listed = hookline(&stack, Some(TOKEN), &["subscriptions", "list"]).await;
    let table = String::from_utf8(listed.stdout).unwrap();
    assert!(table.starts_with("ID") && table.contains(&sub) && table.contains("active"), "{table}");

    let published = json(&stack, &["events", "publish", "order.paid", r#"{"n":1}"#]).await;
    let event = published["event_id"].as_str().unwrap().to_owned();
    eventually(WAIT, || async { receiver.delivered_ids().contains(&event) }).await;

    let deliveries = json(&stack, &["deliveries", "list", "--subscription", &sub]).await;
    let delivery = &deliveries[0];
    assert_eq!(delivery["event_id"], event.as_str());
    assert_eq!(delivery["status"], "succeeded");
    let id = delivery["id"].as_str().unwrap().to_owned();

    json(&stack, &["deliveries", "retry", &id]).await;
    eventually(WAIT, || async { receiver.delivered_ids().len() == 2 }).await;
    eventually(WAIT, || async { json(&stack, &["deliveries", "get", &id]).await["attempt_count"] == 2 }).await;

    let summary = json(&stack, &["deliveries", "summary", "--subscription", &sub]).await;
    assert_eq!(
        (summary["attempts"].as_u64(), summary["succeeded"].as_u64()),
        (Some(2), Some(2)),
        "both attempts answered 200"
    );
    let tested = json(&stack, &["subscriptions", "test", &sub]).await;
    assert_eq!(tested["response_status_code"], 200, "{tested}");
    let rotated = json(&stack, &["subscriptions", "rotate-secret", &sub]).await;
    assert!(rotated["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_ne!(rotated["secret"], created["secret"]);

    let fetched = json(&stack, &["events", "get", &event]).await;
    assert_eq!(fetched["payload"]["n"], 1);
    assert_eq!(json(&stack, &["subscriptions", "pause", &sub]).await["state"], "paused");
    assert_eq!(json(&stack, &["subscriptions", "delete", &sub]).await["deleted"], sub.as_str());
}

#[tokio::test]
async fn errors_are_one_line_with_exit_codes_scripts_can_rely_on() {
    let stack = Stack::start().await;
    let missing = hookline(&stack, Some(TOKEN), &["subscriptions", "get", "sub_01M81H0VK0J0RWH79N4YGFWWSW"]).await;
    assert_eq!(missing.status.code(), Some(1), "the service refused");
    let stderr = String::from_utf8(missing.stderr).unwrap();
    assert!(stderr.starts_with("error: NotFound: ") && stderr.lines().count() == 1, "{stderr}");

    let invalid = hookline(&stack, Some(TOKEN), &["events", "publish", "order.paid", "not json"]).await;
    assert_eq!(invalid.status.code(), Some(1));
    assert!(String::from_utf8(invalid.stderr).unwrap().starts_with("error: InvalidArgument: "));

    assert_eq!(hookline(&stack, None, &["subscriptions", "list"]).await.status.code(), Some(3), "no token");
    assert_eq!(
        hookline(&stack, Some(TOKEN), &["subscriptions", "frobnicate"]).await.status.code(),
        Some(2),
        "bad usage"
    );
    let completion = hookline(&stack, None, &["completion", "bash"]).await;
    assert!(completion.status.success() && String::from_utf8_lossy(&completion.stdout).contains("_hookline"));
}

#[tokio::test]
async fn attempts_replay_of_dead_letters_update_and_the_catalog() {
    let stack = Stack::start().await;
    let (receiver, port) = Receiver::start(&[500], Duration::ZERO).await;
    // One retry a second after the first attempt, then the dead letter.
    let retry = hookline_proto::v1::RetryPolicy {
        schedule: vec![hookline_proto::Duration { seconds: 1, nanos: 0 }],
        ..Default::default()
    };
    stack.subscribe(format!("http://127.0.0.1:{port}/hook"), Some(retry), 0).await;
    let sub = json(&stack, &["subscriptions", "list"]).await[0]["id"].as_str().unwrap().to_owned();

    let event =
        json(&stack, &["events", "publish", "order.paid", r#"{"n":7}"#]).await["event_id"].as_str().unwrap().to_owned();
    eventually(WAIT, || async {
        json(&stack, &["deliveries", "list", "--subscription", &sub]).await[0]["status"] == "dead_lettered"
    })
    .await;
    let delivery =
        json(&stack, &["deliveries", "list", "--subscription", &sub]).await[0]["id"].as_str().unwrap().to_owned();
    let attempts = json(&stack, &["deliveries", "attempts", &delivery]).await;
    let codes: Vec<u64> =
        attempts.as_array().unwrap().iter().map(|a| a["response_status_code"].as_u64().unwrap()).collect();
    assert_eq!(codes, [500, 500], "{attempts}");
    let table = hookline(&stack, Some(TOKEN), &["deliveries", "attempts", &delivery]).await;
    assert!(String::from_utf8(table.stdout).unwrap().starts_with("#"), "a table by default");

    // The receiver is fixed: replay the dead letters, then add a header.
    receiver.statuses().clear();
    receiver.statuses().push(200);
    let replayed = json(&stack, &["deliveries", "replay", "--subscription", &sub]).await;
    assert_eq!((replayed["replayed"].as_u64(), replayed["done"].as_bool()), (Some(1), Some(true)), "{replayed}");
    eventually(WAIT, || async { receiver.delivered_ids() == [event.clone()] }).await;
    let bad_status =
        hookline(&stack, Some(TOKEN), &["deliveries", "replay", "--subscription", &sub, "--status", "lost"]).await;
    assert_eq!(bad_status.status.code(), Some(2));

    let updated =
        json(&stack, &["subscriptions", "update", &sub, "--name", "billing", "--header", "X-Env=staging"]).await;
    let header = updated["headers"].as_object().unwrap().iter().find(|(k, _)| k.eq_ignore_ascii_case("x-env"));
    assert_eq!((updated["name"].as_str(), header.and_then(|(_, v)| v.as_str())), (Some("billing"), Some("staging")));
    let stale =
        hookline(&stack, Some(TOKEN), &["subscriptions", "update", &sub, "--name", "x", "--version", "1"]).await;
    assert_eq!(stale.status.code(), Some(1), "an old version is refused");
    assert!(String::from_utf8(stale.stderr).unwrap().starts_with("error: Aborted: "));
    let nothing = hookline(&stack, Some(TOKEN), &["subscriptions", "update", &sub]).await;
    assert_eq!(nothing.status.code(), Some(2), "an update needs a field");
    let second =
        json(&stack, &["events", "publish", "order.paid", r#"{"n":8}"#]).await["event_id"].as_str().unwrap().to_owned();
    eventually(WAIT, || async { receiver.delivered_ids().contains(&second) }).await;
    let got = receiver.got.lock().unwrap().last().cloned().unwrap();
    assert_eq!(got.0.get("x-env").map(String::as_str), Some("staging"));

    json(&stack, &["event-types", "create", "order.paid", "--description", "an order was paid"]).await;
    json(&stack, &["event-types", "create", "order.refunded"]).await;
    assert_eq!(json(&stack, &["event-types", "archive", "order.refunded"]).await["archived"], true);
    let names = |v: Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(json(&stack, &["event-types", "list"]).await), ["order.paid"]);
    assert_eq!(names(json(&stack, &["event-types", "list", "--archived"]).await).len(), 2);
}

#[tokio::test]
async fn a_portal_link_opens_a_session_the_other_services_honour() {
    let stack = Stack::start().await;
    json(&stack, &["subscriptions", "create", "--url", "https://shop.example/hooks", "--event-type", "order.paid"])
        .await;
    let link = json(&stack, &["portal", "link", "--read-only", "--lifetime", "10m"]).await;
    let url = link["url"].as_str().unwrap();
    let code = url.split_once("code=").unwrap().1;
    assert!(link["session_id"].as_str().unwrap().starts_with("ps_"), "{link}");

    let channel = tonic::transport::Channel::from_shared(format!("http://{}", stack.subscriptions.addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut exchange = v1::subscription_service_client::SubscriptionServiceClient::with_interceptor(
        channel,
        hookline_auth::BearerToken::new(code).unwrap(),
    );
    let session = exchange.exchange_portal_code(v1::ExchangePortalCodeRequest {}).await.unwrap().into_inner();
    assert!(session.read_only);
    // Every service checks the session token on its own.
    let listed = hookline(&stack, Some(&session.token), &["--output", "json", "subscriptions", "list"]).await;
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&listed.stdout).unwrap().as_array().unwrap().len(), 1);
    let deliveries = hookline(&stack, Some(&session.token), &["--output", "json", "deliveries", "list"]).await;
    assert!(deliveries.status.success(), "{}", String::from_utf8_lossy(&deliveries.stderr));
    let publish = hookline(&stack, Some(&session.token), &["events", "publish", "order.paid", "{}"]).await;
    assert_eq!(publish.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&publish.stderr).contains("portal session"));
    let again = exchange.exchange_portal_code(v1::ExchangePortalCodeRequest {}).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::Unauthenticated);

    // The tenant ends the session: subscriptions and delivery both refuse it.
    let sid = link["session_id"].as_str().unwrap();
    let ended = hookline(&stack, Some(TOKEN), &["portal", "end", sid]).await;
    assert!(ended.status.success(), "{}", String::from_utf8_lossy(&ended.stderr));
    for command in [["subscriptions", "list"], ["deliveries", "list"]] {
        let refused = hookline(&stack, Some(&session.token), &command).await;
        assert_eq!(refused.status.code(), Some(1), "{command:?}");
        assert!(String::from_utf8_lossy(&refused.stderr).contains("has been ended"), "{command:?}");
    }
}
