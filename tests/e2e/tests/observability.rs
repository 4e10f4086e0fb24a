//! What an SRE sees. One event, one trace: the producer's `traceparent` is
//! continued by the Publish span (fanout), the fan-out span, one span per
//! delivery attempt (delivery), and reaches the receiver, all exported over
//! OTLP to a real gRPC trace receiver; log lines carry the trace id. And
//! each service's admin port serves the metrics OPERATIONS.md documents.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookline_e2e::*;
use hookline_proto::v1::{
    self, delivery_service_client::DeliveryServiceClient, event_service_client::EventServiceClient,
};
use hookline_testkit::{RedisServer, eventually, free_port};

const PRODUCER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn one_event_is_one_trace_across_the_three_services() {
    // A trace id of this run only (log files are kept across runs).
    let trace = format!("{:032x}", SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos());
    let trace = trace.as_str();
    let (collector, endpoint) = SpanCollector::start().await;
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=e2e".to_owned()),
        ("HOOKLINE_LOG", "warn,hookline_delivery=debug".to_owned()),
        ("HOOKLINE_LOG_FORMAT", "json".to_owned()),
    ];
    let stack = Stack::with_env(RedisServer::start(), &otel).await;
    let (receiver, port) = Receiver::start(&[500, 200], Duration::ZERO).await;
    let retry =
        v1::RetryPolicy { schedule: vec![hookline_proto::Duration { seconds: 1, nanos: 0 }], ..Default::default() };
    stack.subscribe(format!("http://127.0.0.1:{port}/hook?token=s3cret"), Some(retry), 0).await;

    let mut events = stack.client(stack.fanout.addr(), EventServiceClient::with_interceptor).await;
    let mut request = tonic::Request::new(publish_request(1));
    let producer = format!("00-{trace}-{PRODUCER_SPAN}-01");
    request.metadata_mut().insert("traceparent", producer.parse().unwrap());
    let event_id = events.publish(request).await.unwrap().into_inner().event_id;

    eventually(WAIT, || async { receiver.ids().len() >= 2 }).await;
    let in_trace = || -> Vec<ExportedSpan> { collector.spans().into_iter().filter(|s| s.trace_id == trace).collect() };
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
        assert_eq!(
            attempt.attr("url.full"),
            format!("http://127.0.0.1:{port}/…"),
            "no path or query: they may hold a secret"
        );
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
        assert_eq!(parts[1], trace);
        assert!(attempts.iter().any(|a| a.span_id == parts[2]), "traceparent names an attempt span");
    }
    // No secret or query string anywhere in what was exported.
    for span in collector.spans() {
        assert!(span.attributes.values().all(|v| !v.contains("s3cret") && !v.contains("whsec_")), "{span:?}");
    }
    // The delivery service's log lines inside an attempt carry its ids.
    let log = std::fs::read_to_string(stack.delivery.log_path()).unwrap();
    let line =
        log.lines().find(|l| l.contains(&format!("\"trace_id\":\"{trace}\""))).expect("a log line with the trace id");
    assert!(attempts.iter().any(|a| line.contains(&format!("\"span_id\":\"{}\"", a.span_id))), "{line}");

    // A first-time success keeps no trace context in its record (the task's
    // is the fan-out's): retried by hand, its attempt continues the event's
    // Publish span, still in the event's trace.
    let second = format!("{:032x}", SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos());
    let mut request = tonic::Request::new(publish_request(2));
    request.metadata_mut().insert("traceparent", format!("00-{second}-{PRODUCER_SPAN}-01").parse().unwrap());
    let second_event = events.publish(request).await.unwrap().into_inner().event_id;
    eventually(WAIT, || async { receiver.ids().len() >= 3 }).await;
    let mut deliveries = stack.client(stack.delivery.addr(), DeliveryServiceClient::with_interceptor).await;
    let listed = || {
        let mut deliveries = deliveries.clone();
        let event_id = second_event.clone();
        async move {
            let request = v1::ListDeliveriesRequest { event_id, page_size: 10, ..Default::default() };
            deliveries.list_deliveries(request).await.unwrap().into_inner().deliveries
        }
    };
    eventually(WAIT, || async { listed().await.len() == 1 }).await;
    let delivery = listed().await.remove(0);
    assert_eq!(delivery.attempt_count, 1, "a first-time success: {delivery:?}");
    deliveries.retry_delivery(v1::RetryDeliveryRequest { id: delivery.id }).await.unwrap();
    eventually(WAIT, || async { receiver.ids().len() >= 4 }).await;
    let in_second =
        || -> Vec<ExportedSpan> { collector.spans().into_iter().filter(|s| s.trace_id == second).collect() };
    let exported = |name: &str| in_second().iter().filter(|s| s.name == name).count();
    eventually(WAIT, || async {
        exported("POST") >= 2 && exported("hookline.v1.EventService/Publish") == 1 && exported("fanout process") == 1
    })
    .await;
    let spans = in_second();
    let publish = spans.iter().find(|s| s.name == "hookline.v1.EventService/Publish").expect("a Publish span");
    let fanout = spans.iter().find(|s| s.name == "fanout process").expect("a fan-out span");
    let mut parents: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "POST")
        .map(|s| (s.attr("hookline.attempt").to_owned(), s.parent_span_id.clone()))
        .collect();
    parents.sort();
    assert_eq!(
        parents,
        [("1".to_owned(), fanout.span_id.clone()), ("2".to_owned(), publish.span_id.clone())],
        "the first attempt under the fan-out, the retry by hand under Publish"
    );
}

/// Not exporting (no OTLP endpoint), spans are not built, but the trace
/// goes on all the same: the receiver gets a `traceparent` in the
/// producer's trace, and the attempt's log lines carry its ids.
#[tokio::test]
async fn without_an_exporter_the_trace_still_reaches_the_receiver_and_the_logs() {
    let trace = format!("{:032x}", SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos());
    let trace = trace.as_str();
    let env = [("HOOKLINE_LOG", "warn,hookline_delivery=debug".to_owned()), ("HOOKLINE_LOG_FORMAT", "json".to_owned())];
    let stack = Stack::with_env(RedisServer::start(), &env).await;
    let (receiver, port) = Receiver::start(&[200], Duration::ZERO).await;
    stack.subscribe(format!("http://127.0.0.1:{port}/hook"), None, 0).await;

    let mut events = stack.client(stack.fanout.addr(), EventServiceClient::with_interceptor).await;
    let mut request = tonic::Request::new(publish_request(1));
    request.metadata_mut().insert("traceparent", format!("00-{trace}-{PRODUCER_SPAN}-01").parse().unwrap());
    events.publish(request).await.unwrap();
    eventually(WAIT, || async { !receiver.ids().is_empty() }).await;

    let got = receiver.got.lock().unwrap().clone();
    let parts: Vec<String> = got[0].0["traceparent"].split('-').map(str::to_owned).collect();
    assert_eq!(parts.len(), 4, "{parts:?}");
    assert_eq!((parts[0].as_str(), parts[1].as_str(), parts[3].as_str()), ("00", trace, "01"), "the producer's trace");
    assert_eq!(parts[2].len(), 16);
    assert_ne!(parts[2], PRODUCER_SPAN, "the attempt's own span");
    let line = format!("\"span_id\":\"{}\"", parts[2]);
    let logged = || {
        let log = std::fs::read_to_string(stack.delivery.log_path()).unwrap();
        log.lines().any(|l| l.contains(&format!("\"trace_id\":\"{trace}\"")) && l.contains(&line))
    };
    eventually(WAIT, || async { logged() }).await;
}

#[tokio::test]
async fn every_service_serves_its_metrics_and_probes() {
    let stack = Stack::start().await;
    let (receiver, port) = Receiver::start(&[200], Duration::ZERO).await;
    stack.subscribe(format!("http://127.0.0.1:{port}/hook"), None, 0).await;
    let mut events = stack.client(stack.fanout.addr(), EventServiceClient::with_interceptor).await;
    events.publish(publish_request(1)).await.unwrap();
    eventually(WAIT, || async { !receiver.ids().is_empty() }).await;

    let get = |url: String| async move {
        let response = reqwest::get(&url).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    for process in [&stack.subscriptions, &stack.fanout, &stack.delivery] {
        assert_eq!(get(format!("{}/healthz", process.admin_url())).await.0, 200);
        assert_eq!(get(format!("{}/readyz", process.admin_url())).await.0, 200);
    }
    let expect = |text: &str, series: &[&str]| {
        for s in series {
            assert!(text.lines().any(|l| l.starts_with(s)), "no `{s}` in:\n{text}");
        }
    };
    // Gauges are sampled every few seconds: wait for the first samples.
    let metrics = |p: &Process| format!("{}/metrics", p.admin_url());
    eventually(WAIT, || async {
        get(metrics(&stack.delivery)).await.1.contains("hookline_subscriptions{state=\"active\"} 1")
    })
    .await;
    eventually(WAIT, || async { get(metrics(&stack.fanout)).await.1.contains("hookline_stream_length") }).await;

    let (_, fanout) = get(metrics(&stack.fanout)).await;
    expect(
        &fanout,
        &[
            "hookline_publish_total{result=\"published\"} 1",
            "hookline_fanout_events_total 1",
            "hookline_fanout_tasks_total 1",
            "hookline_stream_length{stream=\"events\",partition=\"0\"}",
            "hookline_stream_lag{stream=\"events\",partition=\"0\"} 0",
            "hookline_grpc_server_requests_total{service=\"hookline.v1.EventService\",method=\"Publish\",code=\"OK\"} 1",
            "hookline_grpc_server_duration_seconds_bucket{service=\"hookline.v1.EventService\",method=\"Publish\"",
        ],
    );
    let (_, delivery) = get(metrics(&stack.delivery)).await;
    expect(
        &delivery,
        &[
            "hookline_delivery_attempts_total{outcome=\"succeeded\"} 1",
            "hookline_delivery_attempt_duration_seconds_count 1",
            "hookline_publish_to_delivery_seconds_count 1",
            "hookline_stream_pending{stream=\"deliveries\",partition=\"0\"} 0",
            "hookline_retries_scheduled 0",
            "hookline_subscriptions{state=\"active\"} 1",
            "hookline_subscriptions{state=\"paused\"} 0",
            "hookline_circuit_breakers{state=\"open\"} 0",
        ],
    );
    let (_, subscriptions) = get(metrics(&stack.subscriptions)).await;
    expect(
        &subscriptions,
        &[
            "hookline_grpc_server_requests_total{service=\"hookline.v1.SubscriptionService\",method=\"CreateSubscription\",code=\"OK\"} 1",
        ],
    );
    assert!(!delivery.contains("tenant="), "no per-tenant label unless asked for");

    // The portal serves its own.
    let portal_port = free_port();
    let portal = Process::start(
        "hookline-portal",
        [
            ("HOOKLINE_LISTEN_ADDR", format!("127.0.0.1:{portal_port}")),
            ("HOOKLINE_ADMIN_ADDR", format!("127.0.0.1:{}", free_port())),
            ("HOOKLINE_SUBSCRIPTIONS_URL", format!("http://{}", stack.subscriptions.addr())),
            ("HOOKLINE_DELIVERY_URL", format!("http://{}", stack.delivery.addr())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
    );
    let ready = format!("{}/readyz", portal.admin_url());
    eventually(WAIT, || async { reqwest::get(&ready).await.is_ok_and(|r| r.status().is_success()) }).await;
    let (_, portal) = get(metrics(&portal)).await;

    // Every metric the dashboard plots and OPERATIONS.md documents exists.
    let served: std::collections::BTreeSet<String> = format!("{fanout}{delivery}{subscriptions}{portal}")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| metric_names(l).into_iter().take(1))
        .collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for doc in ["deploy/observability/grafana-dashboard.json", "docs/OPERATIONS.md"] {
        let named = metric_names(&std::fs::read_to_string(root.join(doc)).unwrap());
        assert!(named.len() >= 15, "{doc} names {named:?}");
        let unknown: Vec<_> = named.difference(&served).collect();
        assert!(unknown.is_empty(), "{doc} names metrics no service serves: {unknown:?}");
    }
}

/// The `hookline_*` metric names in `text`, histogram suffixes removed
/// (a name followed by `=` is a log filter's target, not a metric).
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for (start, _) in text.match_indices("hookline_") {
        let name: String =
            text[start..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        if text[start + name.len()..].starts_with('=') {
            continue;
        }
        let base = ["_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name);
        names.insert(base.to_owned());
    }
    names
}
