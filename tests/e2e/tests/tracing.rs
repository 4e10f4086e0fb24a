//! One event, one trace: the producer's `traceparent` is continued by the
//! Publish span (fanout), the fan-out span, one span per delivery attempt
//! (delivery), and reaches the receiver, all exported over OTLP to a real
//! gRPC trace receiver.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hookline_e2e::*;
use hookline_proto::v1::{self, event_service_client::EventServiceClient};
use hookline_testkit::{RedisServer, eventually};

const PRODUCER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PRODUCER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn one_event_is_one_trace_across_the_three_services() {
    let (collector, endpoint) = SpanCollector::start().await;
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=e2e".to_owned()),
    ];
    let stack = Stack::with_env(RedisServer::start(), &otel).await;
    let (receiver, port) = Receiver::start(&[500, 200], Duration::ZERO).await;
    let retry = v1::RetryPolicy {
        schedule: vec![hookline_proto::Duration { seconds: 1, nanos: 0 }],
        ..Default::default()
    };
    stack.subscribe(format!("http://127.0.0.1:{port}/hook?token=s3cret"), Some(retry), 0).await;

    let mut events = stack.client(stack.fanout.addr(), EventServiceClient::with_interceptor).await;
    let mut request = tonic::Request::new(publish_request(1));
    let producer = format!("00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01");
    request.metadata_mut().insert("traceparent", producer.parse().unwrap());
    let event_id = events.publish(request).await.unwrap().into_inner().event_id;

    eventually(WAIT, || async { receiver.ids().len() >= 2 }).await;
    let in_trace = || -> Vec<ExportedSpan> {
        collector.spans().into_iter().filter(|s| s.trace_id == PRODUCER_TRACE).collect()
    };
    eventually(WAIT, || async { in_trace().iter().filter(|s| s.name == "POST").count() >= 2 }).await;
    let spans = in_trace();

    let publish = spans.iter().find(|s| s.name == "hookline.v1.EventService/Publish").expect("a Publish span");
    assert_eq!(publish.service, "hookline-fanout");
    assert_eq!(publish.parent_span_id, PRODUCER_SPAN, "Publish continues the producer's span");
    assert_eq!(publish.attr("rpc.system"), "grpc");
    assert_eq!(publish.attr("rpc.method"), "Publish");
    assert_eq!(publish.attr("hookline.event_id"), event_id);
    assert_eq!(publish.attr("hookline.tenant"), "acme");

    let fanout = spans.iter().find(|s| s.name == "fanout process").expect("a fan-out span");
    assert_eq!(fanout.service, "hookline-fanout");
    assert_eq!(fanout.parent_span_id, publish.span_id, "fan-out is a child of Publish");
    assert_eq!(fanout.attr("messaging.system"), "redis");
    assert_eq!(fanout.attr("hookline.matched"), "1");

    let attempts: Vec<_> = spans.iter().filter(|s| s.name == "POST").collect();
    assert_eq!(attempts.len(), 2, "the failed attempt and its retry: {attempts:#?}");
    for attempt in &attempts {
        assert_eq!(attempt.service, "hookline-delivery");
        assert_eq!(attempt.parent_span_id, fanout.span_id, "each attempt is a child of the fan-out");
        assert_eq!(attempt.attr("http.request.method"), "POST");
        assert_eq!(attempt.attr("server.address"), "127.0.0.1");
        assert_eq!(attempt.attr("url.full"), format!("http://127.0.0.1:{port}/hook"), "no query string");
        assert_eq!(attempt.attr("hookline.event_id"), event_id);
        assert_eq!(attempt.attributes.get("deployment.environment"), None, "resource attributes stay on the resource");
    }
    let mut statuses: Vec<_> = attempts.iter().map(|a| a.attr("http.response.status_code").to_owned()).collect();
    statuses.sort();
    assert_eq!(statuses, ["200", "500"]);
    let failed = attempts.iter().find(|a| a.attr("http.response.status_code") == "500").unwrap();
    assert_eq!(failed.attr("error.type"), "500");
    assert_eq!(failed.attr("hookline.attempt"), "1");

    // The receiver got the attempt span's own traceparent.
    let got = receiver.got.lock().unwrap().clone();
    for (headers, _) in &got {
        let parts: Vec<&str> = headers["traceparent"].split('-').collect();
        assert_eq!(parts[1], PRODUCER_TRACE);
        assert!(attempts.iter().any(|a| a.span_id == parts[2]), "traceparent names an attempt span");
    }
    // No secret or query string anywhere in what was exported.
    for span in collector.spans() {
        assert!(span.attributes.values().all(|v| !v.contains("s3cret") && !v.contains("whsec_")), "{span:?}");
    }
}
