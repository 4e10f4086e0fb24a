//! The `hookline` operator CLI against the three separately started
//! services: create → publish → see the delivery → retry it, with JSON for
//! scripts, tables for people, and exit codes scripts can rely on.

#![allow(clippy::unwrap_used)]

use std::{process::Output, time::Duration};

use hookline_e2e::*;
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
