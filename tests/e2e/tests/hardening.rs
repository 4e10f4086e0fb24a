//! What one tenant, one caller or one event must not be able to do to
//! everyone else, on the real binaries: stall the subscription watch with a
//! huge subscription, crash delivery with an event it cannot format, grow
//! `/metrics` without bound, reach a private address through a proxy, or
//! exhaust a server's connections.

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use hookline_auth::BearerToken;
use hookline_e2e::*;
use hookline_proto::v1::{
    self, delivery_service_client::DeliveryServiceClient, event_service_client::EventServiceClient,
    subscription_service_client::SubscriptionServiceClient,
};
use hookline_testkit::{RedisServer, eventually, free_port};
use tonic::{Code, transport::Channel};

const GLOBEX: &str = "e2e-globex-token-000001";

fn two_tenants() -> (&'static str, String) {
    (
        "HOOKLINE_AUTH__TOKENS",
        format!("[{{token=\"{TOKEN}\",tenant=\"acme\"}},{{token=\"{GLOBEX}\",tenant=\"globex\"}}]"),
    )
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap()
}

async fn subs(
    addr: SocketAddr,
    token: &str,
) -> SubscriptionServiceClient<tonic::service::interceptor::InterceptedService<Channel, BearerToken>> {
    SubscriptionServiceClient::with_interceptor(channel(addr).await, BearerToken::new(token).unwrap())
}

async fn events(
    addr: SocketAddr,
    token: &str,
) -> EventServiceClient<tonic::service::interceptor::InterceptedService<Channel, BearerToken>> {
    EventServiceClient::with_interceptor(channel(addr).await, BearerToken::new(token).unwrap())
}

fn scope(n: usize, len: usize) -> HashMap<String, v1::ScopeValues> {
    HashMap::from([("team_id".to_owned(), v1::ScopeValues { values: (0..n).map(|i| format!("{i:0len$}")).collect() })])
}

/// A receiver, and globex's subscription of it to `order.*`; its URL.
async fn globex_subscribes(stack: &Stack) -> (Receiver, String) {
    let (receiver, port) = Receiver::start(&[200], Duration::ZERO).await;
    let url = format!("http://127.0.0.1:{port}/globex");
    let sub = v1::Subscription { url: url.clone(), event_types: vec!["order.*".into()], ..Default::default() };
    subs(stack.subscriptions.addr(), GLOBEX)
        .await
        .create_subscription(v1::CreateSubscriptionRequest { subscription: Some(sub), ..Default::default() })
        .await
        .unwrap();
    (receiver, url)
}

/// globex publishes one event and sees it arrive at `receiver`.
async fn globex_round_trip(stack: &Stack, receiver: &Receiver, url: &str, n: usize) {
    let mut globex = events(stack.fanout.addr(), GLOBEX).await;
    let id = globex
        .publish(v1::PublishRequest {
            event_type: "order.paid".into(),
            payload: format!("{{\"n\":{n}}}").into_bytes(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("globex publish to {url}: {s:?}"))
        .into_inner()
        .event_id;
    eventually(WAIT, || async { receiver.delivered_ids().contains(&id) }).await;
}

#[tokio::test]
async fn one_tenants_oversized_subscription_cannot_stall_the_others() {
    let mut stack = Stack::with_env(RedisServer::start(), &[two_tenants()]).await;
    let mut acme = subs(stack.subscriptions.addr(), TOKEN).await;
    // The way a 4.5 MB subscription was once stored: 3 MB of filter
    // operands, then an update adding a scope on top.
    let huge = v1::Subscription {
        url: "https://example.com/huge".into(),
        event_types: vec!["*".into()],
        filters: vec![v1::PayloadFilter {
            path: "account".into(),
            operator: v1::FilterOperator::In as i32,
            values: (0..12_000).map(|i| format!("{i:0250}")).collect(),
        }],
        ..Default::default()
    };
    let created = acme
        .create_subscription(v1::CreateSubscriptionRequest { subscription: Some(huge), ..Default::default() })
        .await;
    // (Not `unwrap_err`: its message would print the 3 MB accepted.)
    let err = created.err().map(|e| (e.code(), e.message().chars().take(200).collect::<String>()));
    assert!(matches!(&err, Some((Code::InvalidArgument, _))), "{err:?}");
    let mut sub = v1::Subscription {
        url: "https://example.com/big".into(),
        event_types: vec!["*".into()],
        scope: scope(400, 100),
        ..Default::default()
    };
    let created = acme
        .create_subscription(v1::CreateSubscriptionRequest { subscription: Some(sub.clone()), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap();
    sub.id = created.id;
    sub.scope.extend(HashMap::from([("region".to_owned(), scope(400, 100).remove("team_id").unwrap())]));
    let err = acme
        .update_subscription(v1::UpdateSubscriptionRequest {
            subscription: Some(sub),
            update_mask: Some(prost_types::FieldMask { paths: vec!["scope".into()] }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("over the limit"), "{}", err.message());

    // Everyone else goes on: a new subscription gets events, a restarted
    // fanout becomes ready and publishes.
    let (receiver, url) = globex_subscribes(&stack).await;
    globex_round_trip(&stack, &receiver, &url, 1).await;
    stack.fanout.kill9();
    stack.fanout = stack.fanout.restart();
    stack.fanout.serving().await;
    globex_round_trip(&stack, &receiver, &url, 2).await;
}

#[tokio::test]
async fn an_event_delivery_cannot_format_is_a_dead_letter_with_its_reason_and_others_flow() {
    let stack = Stack::with_env(RedisServer::start(), &[two_tenants()]).await;
    let mut acme_events = events(stack.fanout.addr(), TOKEN).await;
    let err = acme_events
        .publish(v1::PublishRequest {
            event_type: "order.paid".into(),
            payload: b"{}".to_vec(),
            occurred_at: Some(prost_types::Timestamp { seconds: 253_402_300_800, nanos: 0 }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("occurred_at:"), "{}", err.message());

    // An event stored before that check (by an older build): delivery
    // must record it as undeliverable, not panic on it at every claim.
    let (receiver, port) = Receiver::start(&[200], Duration::ZERO).await;
    let mut acme = subs(stack.subscriptions.addr(), TOKEN).await;
    let envelope = acme
        .create_subscription(v1::CreateSubscriptionRequest {
            subscription: Some(v1::Subscription {
                url: format!("http://127.0.0.1:{port}/acme"),
                event_types: vec!["order.*".into()],
                payload_format: v1::PayloadFormat::Envelope as i32,
                ordering: v1::OrderingMode::Fifo as i32,
                ..Default::default()
            }),
            initial_state: v1::SubscriptionState::Paused as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap()
        .id;
    let publish = |n: usize| v1::PublishRequest {
        event_type: "order.paid".into(),
        payload: format!("{{\"n\":{n}}}").into_bytes(),
        ..Default::default()
    };
    let bad = acme_events.publish(publish(1)).await.unwrap().into_inner().event_id;
    let next = acme_events.publish(publish(2)).await.unwrap().into_inner().event_id;
    let mut deliveries =
        DeliveryServiceClient::with_interceptor(channel(stack.delivery.addr()).await, BearerToken::new(TOKEN).unwrap());
    let list = |status: v1::DeliveryStatus| v1::ListDeliveriesRequest {
        subscription_id: envelope.clone(),
        status: status as i32,
        ..Default::default()
    };
    eventually(WAIT, || {
        let mut d = deliveries.clone();
        let req = list(v1::DeliveryStatus::Held);
        async move { d.list_deliveries(req).await.is_ok_and(|r| r.into_inner().deliveries.len() == 2) }
    })
    .await;
    let record = hookline_queue::Partitions::new("hookline", 1).get(0).event(&bad);
    let mut conn = redis::Client::open(stack.redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let value: Vec<u8> = redis::cmd("GET").arg(&record).query_async(&mut conn).await.unwrap();
    let mut stored = hookline_queue::EventRecord::decode(&record, &value).unwrap();
    stored.meta.occurred_ms = u64::MAX;
    let _: () = redis::cmd("SET").arg(&record).arg(stored.encode()).query_async(&mut conn).await.unwrap();
    acme.resume_subscription(v1::ResumeSubscriptionRequest { id: envelope.clone() }).await.unwrap();

    eventually(WAIT, || async { receiver.delivered_ids().contains(&next) }).await;
    let dead =
        deliveries.list_deliveries(list(v1::DeliveryStatus::DeadLettered)).await.unwrap().into_inner().deliveries;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event_id, bad);
    let last = dead[0].last_attempt.clone().unwrap();
    assert_eq!(last.error, v1::AttemptError::Undeliverable as i32);
    assert!(last.error_message.contains("year 9999"), "{}", last.error_message);
    assert!(!receiver.ids().contains(&bad), "nothing was sent for it");

    // The other tenant's deliveries go on.
    let (globex_receiver, url) = globex_subscribes(&stack).await;
    globex_round_trip(&stack, &globex_receiver, &url, 3).await;
}

#[tokio::test]
async fn made_up_method_paths_do_not_grow_the_metrics() {
    let stack = Stack::start().await;
    let channel = channel(stack.fanout.addr()).await;
    for i in 0..500 {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let path = tonic::codegen::http::uri::PathAndQuery::from_maybe_shared(format!("/made.Up/Method{i}")).unwrap();
        let err = grpc.unary::<(), (), _>(tonic::Request::new(()), path, tonic_prost::ProstCodec::default()).await;
        assert_eq!(err.unwrap_err().code(), Code::Unimplemented);
    }
    let metrics = reqwest::get(format!("{}/metrics", stack.fanout.admin_url())).await.unwrap().text().await.unwrap();
    let series: Vec<&str> = metrics.lines().filter(|l| l.starts_with("hookline_grpc_server_requests_total{")).collect();
    assert!(series.len() < 10, "{} series: {series:#?}", series.len());
    assert!(
        series.iter().any(|l| l.contains("method=\"unknown\"") && l.ends_with(" 500")),
        "the calls are counted, as unknown: {series:#?}"
    );
    assert!(metrics.len() < 64 * 1024, "/metrics is {} bytes", metrics.len());
}

#[tokio::test]
async fn each_server_lists_only_the_services_it_serves() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let stack = Stack::start().await;
    let all = ["hookline.v1.SubscriptionService", "hookline.v1.EventService", "hookline.v1.DeliveryService"];
    for (process, own) in [(&stack.subscriptions, all[0]), (&stack.fanout, all[1]), (&stack.delivery, all[2])] {
        let mut client = ServerReflectionClient::new(channel(process.addr()).await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut replies = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            replies.message().await.unwrap().unwrap().message_response
        else {
            panic!("no service list");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert!(names.contains(&own.to_owned()) && names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");
        for other in all.iter().filter(|s| **s != own) {
            assert!(!names.contains(&(*other).to_owned()), "{own}'s server lists {other}: {names:?}");
        }
    }
}

/// A stand-in egress proxy: answers 200 to every request it is sent and
/// keeps the target each one named.
async fn proxy() -> (Arc<std::sync::Mutex<Vec<String>>>, u16) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let record = record.clone();
        async move {
            record.lock().unwrap().push(uri.to_string());
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (seen, port)
}

/// The error of the first attempt of the subscription's delivery.
async fn first_attempt_error(stack: &Stack, subscription_url: &str) -> (i32, String) {
    static PROBES: AtomicUsize = AtomicUsize::new(0);
    let event_type = format!("probe.n{}", PROBES.fetch_add(1, Ordering::SeqCst));
    let mut subs = subs(stack.subscriptions.addr(), TOKEN).await;
    let id = subs
        .create_subscription(v1::CreateSubscriptionRequest {
            subscription: Some(v1::Subscription {
                url: subscription_url.into(),
                event_types: vec![event_type.clone()],
                ..Default::default()
            }),
            allow_duplicate_endpoint: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap()
        .id;
    let mut events = events(stack.fanout.addr(), TOKEN).await;
    events.publish(v1::PublishRequest { event_type, payload: b"{}".to_vec(), ..Default::default() }).await.unwrap();
    let deliveries =
        DeliveryServiceClient::with_interceptor(channel(stack.delivery.addr()).await, BearerToken::new(TOKEN).unwrap());
    let found = Arc::new(std::sync::Mutex::new(None));
    eventually(WAIT, || {
        let (mut d, id, found) = (deliveries.clone(), id.clone(), found.clone());
        async move {
            let req = v1::ListDeliveriesRequest { subscription_id: id, ..Default::default() };
            let list = d.list_deliveries(req).await.map(|r| r.into_inner().deliveries).unwrap_or_default();
            let attempt = list.first().and_then(|d| d.last_attempt.clone());
            let done = attempt.is_some();
            *found.lock().unwrap() = attempt.map(|a| (a.error, a.error_message));
            done
        }
    })
    .await;
    found.lock().unwrap().clone().unwrap()
}

#[tokio::test]
async fn a_proxy_in_the_environment_is_not_used_to_reach_a_private_host() {
    let (seen, port) = proxy().await;
    let proxy_url = format!("http://127.0.0.1:{port}");
    let env = [
        ("HOOKLINE_ALLOW_CIDRS", "[]".to_owned()),
        ("HTTP_PROXY", proxy_url.clone()),
        ("HTTPS_PROXY", proxy_url.clone()),
        ("http_proxy", proxy_url.clone()),
        ("ALL_PROXY", proxy_url),
        ("NO_PROXY", String::new()),
        ("no_proxy", String::new()),
    ];
    let stack = Stack::with_env(RedisServer::start(), &env).await;
    let (error, message) = first_attempt_error(&stack, "http://localhost:9/hook").await;
    assert_eq!(error, v1::AttemptError::BlockedAddress as i32, "{message}");
    assert!(seen.lock().unwrap().is_empty(), "the proxy was used: {:?}", seen.lock().unwrap());
}

#[tokio::test]
async fn an_egress_proxy_carries_deliveries_and_private_destinations_are_still_refused() {
    let (seen, port) = proxy().await;
    let env =
        [("HOOKLINE_ALLOW_CIDRS", "[]".to_owned()), ("HOOKLINE_EGRESS_PROXY", format!("http://127.0.0.1:{port}"))];
    let stack = Stack::with_env(RedisServer::start(), &env).await;
    let (error, _) = first_attempt_error(&stack, "http://93.184.216.34/hook").await;
    assert_eq!(error, v1::AttemptError::None as i32, "a public destination goes through the proxy");
    assert_eq!(seen.lock().unwrap().as_slice(), ["http://93.184.216.34/hook"]);
    for private in ["http://localhost:9/hook", "http://10.1.2.3/hook", "http://[::127.0.0.1]/hook"] {
        let (error, message) = first_attempt_error(&stack, private).await;
        assert_eq!(error, v1::AttemptError::BlockedAddress as i32, "{private}: {message}");
    }
    assert_eq!(seen.lock().unwrap().len(), 1, "no private destination reached the proxy");
}

/// Seconds of CPU (user + system) the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test]
async fn out_of_file_descriptors_a_server_backs_off_instead_of_spinning_and_recovers() {
    let redis = RedisServer::start();
    let port = free_port();
    let env = service_env(&redis.url(), port, port, free_port(), &[]);
    let command = format!("ulimit -n 64 && exec '{}'", binary("hookline-subscriptions").display());
    let mut child = std::process::Command::new("sh").arg("-c").arg(command).envs(&env).spawn().unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    eventually(WAIT, || async { hookline_testkit::health(addr).await == 1 }).await;
    let mut held = Vec::new();
    for _ in 0..120 {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cpu_seconds(child.id());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_seconds(child.id()) - before;
    // Spinning on EMFILE burns a whole core: 2 s of CPU in 2 s.
    assert!(used < 0.5, "{used:.2} s of CPU in 2 s while out of descriptors");
    drop(held);
    eventually(WAIT, || async {
        tokio::time::timeout(Duration::from_secs(2), hookline_testkit::health(addr)).await == Ok(1)
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn connections_that_send_nothing_are_closed_so_they_cannot_hold_every_slot() {
    use tokio::io::AsyncReadExt;
    let redis = RedisServer::start();
    let port = free_port();
    let extra = [
        ("HOOKLINE_CONNECTIONS__MAX_CONNECTIONS", "4".to_owned()),
        ("HOOKLINE_CONNECTIONS__HANDSHAKE_TIMEOUT", "1s".to_owned()),
    ];
    let server = Process::start("hookline-subscriptions", service_env(&redis.url(), port, port, free_port(), &extra));
    server.serving().await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(server.addr()).await.unwrap());
    }
    // Every slot is held by a silent socket; each is closed after 1 s, and
    // a real client gets in.
    let closed = Arc::new(AtomicUsize::new(0));
    for mut socket in idle {
        let closed = closed.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            loop {
                match tokio::time::timeout(Duration::from_secs(20), socket.read(&mut buf)).await {
                    Ok(Ok(0) | Err(_)) => break,
                    Ok(Ok(_)) => continue,
                    Err(_) => return,
                }
            }
            closed.fetch_add(1, Ordering::SeqCst);
        });
    }
    eventually(WAIT, || async { closed.load(Ordering::SeqCst) == 4 }).await;
    let addr = server.addr();
    eventually(WAIT, || async {
        tokio::time::timeout(Duration::from_secs(2), hookline_testkit::health(addr)).await == Ok(1)
    })
    .await;
}
