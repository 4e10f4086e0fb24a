//! Deliveries go only to public addresses unless an operator opens a range.

use hookline_proto::v1;

use crate::support::*;

#[tokio::test]
async fn private_addresses_are_refused_without_an_allow_list() {
    let mut stack =
        Stack::start_with(|c| hookline_delivery::Config { allow_cidrs: vec![], auto_pause_after: 0, ..c }).await;
    let port = stack.receiver.addr.port();
    let mut ids = Vec::new();
    for (path, host) in
        [("/ip", "127.0.0.1".to_owned()), ("/name", "localhost".to_owned()), ("/v6", "[::1]".to_owned())]
    {
        let url = format!("http://{host}:{port}{path}");
        let (id, _) = stack
            .subscribe(path, |s| {
                s.url = url;
                s.retry_policy = Some(quick_retries(0));
            })
            .await;
        ids.push(id);
    }
    stack.publish("a", "{}").await;
    for id in ids {
        let dead = stack.wait_status(&id, v1::DeliveryStatus::DeadLettered, 1).await;
        let attempt = dead[0].last_attempt.clone().unwrap();
        assert_eq!(attempt.error, v1::AttemptError::BlockedAddress as i32, "{attempt:?}");
        assert!(
            attempt.error_message.contains("127.0.0.1") || attempt.error_message.contains("::1"),
            "{}",
            attempt.error_message
        );
    }
    assert!(stack.receiver.received("/ip").is_empty() && stack.receiver.received("/name").is_empty());
}

#[tokio::test]
async fn https_only_refuses_plain_http_endpoints() {
    let mut stack = Stack::start_with(|c| hookline_delivery::Config { https_only: true, ..c }).await;
    let (id, _) = stack.subscribe("/plain", |s| s.retry_policy = Some(quick_retries(0))).await;
    stack.publish("a", "{}").await;
    let dead = stack.wait_status(&id, v1::DeliveryStatus::DeadLettered, 1).await;
    assert!(dead[0].last_attempt.as_ref().unwrap().error_message.contains("https"));
    assert!(stack.receiver.received("/plain").is_empty());
}
