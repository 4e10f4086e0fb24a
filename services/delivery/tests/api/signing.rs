//! What a receiver gets: a signed POST that an independent Standard
//! Webhooks implementation accepts.

use std::collections::HashMap;

use hookline_proto::v1;

use crate::support::*;

#[tokio::test]
async fn deliveries_are_signed_posts_the_reference_library_verifies() {
    let mut stack = Stack::start().await;
    let (sub, secret) =
        stack.subscribe("/hook", |s| s.headers = HashMap::from([("X-Webhook-Secret".into(), "shared".into())])).await;
    let mut req = tonic::Request::new(v1::PublishRequest {
        event_type: "lead_interested".into(),
        payload: br#"{"lead_email":"ada@example.com","nested":{"a":[1,2,{"b":null}]}}"#.to_vec(),
        ..Default::default()
    });
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    req.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
    let event_id = stack.events.publish(req).await.unwrap().into_inner().event_id;

    let got = stack.wait_received("/hook", 1).await.remove(0);
    assert_eq!(
        got.body, br#"{"lead_email":"ada@example.com","nested":{"a":[1,2,{"b":null}]}}"#,
        "payload delivered as-is"
    );
    assert_eq!(got.headers["webhook-id"], event_id, "webhook-id is the event id");
    assert_eq!(got.headers["content-type"], "application/json");
    assert!(got.headers["user-agent"].starts_with("hookline/"));
    assert_eq!(got.headers["x-webhook-secret"], "shared");
    assert_eq!(got.headers["traceparent"], traceparent);
    assert!(verified_by_reference(&secret, &got), "standardwebhooks accepts the signature");
    assert!(!verified_by_reference("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &got), "and rejects a wrong secret");

    let done = stack.wait_status(&sub, v1::DeliveryStatus::Succeeded, 1).await;
    assert_eq!(done[0].event_id, event_id);
    assert_eq!(done[0].attempt_count, 1);
    assert_eq!(done[0].last_attempt.as_ref().unwrap().response_status_code, 200);
}

#[tokio::test]
async fn during_rotation_both_secrets_sign_and_each_verifies() {
    let mut stack = Stack::start().await;
    let (sub, old) = stack.subscribe("/rotating", |_| {}).await;
    let new = stack
        .subs
        .rotate_secret(v1::RotateSecretRequest { id: sub.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .secret;
    // The rotation reaches delivery through the watch stream; publish until
    // a delivery carries two signatures.
    let mut got = None;
    for _ in 0..50 {
        stack.publish("a", "{}").await;
        let last = stack.wait_received("/rotating", 1).await.pop().unwrap();
        if last.headers["webhook-signature"].split(' ').count() == 2 {
            got = Some(last);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let got = got.expect("a delivery signed with both secrets");
    assert!(verified_by_reference(&old, &got), "receivers still on the old secret accept it");
    assert!(verified_by_reference(&new, &got), "receivers on the new secret accept it");
}

#[tokio::test]
async fn envelope_and_legacy_variant_bodies_per_subscription() {
    let mut stack = Stack::start().await;
    stack.subscribe("/envelope", |s| s.payload_format = v1::PayloadFormat::Envelope as i32).await;
    stack.subscribe("/legacy", |s| s.payload_variant = "legacy".into()).await;
    let req = v1::PublishRequest {
        event_type: "message".into(),
        payload: br#"{"eventType":"message","data":{"messageId":1}}"#.to_vec(),
        payload_variants: [("legacy".to_owned(), br#"{"messageId":1}"#.to_vec())].into(),
        ..Default::default()
    };
    let event_id = stack.events.publish(req).await.unwrap().into_inner().event_id;
    let wrapped: serde_json::Value =
        serde_json::from_slice(&stack.wait_received("/envelope", 1).await[0].body).unwrap();
    assert_eq!(wrapped["id"], event_id.as_str());
    assert_eq!(wrapped["type"], "message");
    assert_eq!(wrapped["data"]["data"]["messageId"], 1);
    assert_eq!(stack.wait_received("/legacy", 1).await[0].body, br#"{"messageId":1}"#);
}
