//! The three real binaries, a private Redis and a real HTTP receiver:
//! what a user runs, exercised as a user would.
//!
//! The binaries are the ones `cargo test` / `cargo nextest` builds for the
//! services' own tests (`target/<profile>/hookline-*`).

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use hookline_auth::BearerToken;
use hookline_domain::SigningSecret;
use hookline_proto::v1::{
    self, event_service_client::EventServiceClient, subscription_service_client::SubscriptionServiceClient,
};
use hookline_testkit::{RedisServer, eventually, free_port, health};
use tonic::transport::Channel;

const TOKEN: &str = "e2e-acme-token-00000001";
const SERVICE: &str = "e2e-service-token-000001";
const WAIT: Duration = Duration::from_secs(30);

fn binary(name: &str) -> PathBuf {
    // target/<profile>/deps/pipeline-<hash> -> target/<profile>/<name>
    let path = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join(name);
    assert!(path.exists(), "{} is missing: build the workspace binaries first (cargo build --bins)", path.display());
    path
}

/// One of the services as a child process; killed (SIGKILL) on drop.
struct Process {
    name: &'static str,
    grpc: u16,
    child: Child,
    env: HashMap<String, String>,
}

impl Process {
    fn start(name: &'static str, env: HashMap<String, String>) -> Self {
        let grpc = env["HOOKLINE_LISTEN_ADDR"].rsplit(':').next().unwrap().parse().unwrap();
        let child = Command::new(binary(name)).envs(&env).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        Self { name, grpc, child, env }
    }

    fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.grpc).into()
    }

    async fn serving(&self) {
        let addr = self.addr();
        eventually(WAIT, || async move { health(addr).await == 1 }).await;
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Starts it again with the same settings, on the same port.
    fn restart(&mut self) -> Self {
        Self::start(self.name, self.env.clone())
    }

    /// SIGTERM, and the exit code.
    fn terminate(mut self) -> Option<i32> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status.code()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request received: headers and body.
type Request = (HashMap<String, String>, Vec<u8>);

/// A receiver that records (webhook-id, headers, body) and answers from a
/// script of statuses (the last repeats).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Request>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
    delay: Duration,
}

impl Receiver {
    async fn start(statuses: &[u16], delay: Duration) -> (Self, u16) {
        let receiver = Self { statuses: Arc::new(Mutex::new(statuses.to_vec())), delay, ..Self::default() };
        let state = receiver.clone();
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                tokio::time::sleep(state.delay).await;
                let headers =
                    headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned())).collect();
                state.got.lock().unwrap().push((headers, body.to_vec()));
                let mut statuses = state.statuses.lock().unwrap();
                let status =
                    if statuses.len() > 1 { statuses.remove(0) } else { statuses.first().copied().unwrap_or(200) };
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, port)
    }

    fn ids(&self) -> Vec<String> {
        self.got.lock().unwrap().iter().map(|(h, _)| h.get("webhook-id").cloned().unwrap_or_default()).collect()
    }
}

struct Stack {
    redis: RedisServer,
    subscriptions: Process,
    fanout: Process,
    delivery: Process,
}

impl Stack {
    async fn start() -> Self {
        Self::on(RedisServer::start()).await
    }

    async fn on(redis: RedisServer) -> Self {
        let (subs_port, fanout_port, delivery_port) = (free_port(), free_port(), free_port());
        let env = |port: u16| -> HashMap<String, String> {
            [
                ("HOOKLINE_LISTEN_ADDR", format!("127.0.0.1:{port}")),
                ("HOOKLINE_REDIS_URL", redis.url()),
                ("HOOKLINE_SUBSCRIPTIONS_URL", format!("http://127.0.0.1:{subs_port}")),
                ("HOOKLINE_FANOUT_URL", format!("http://127.0.0.1:{fanout_port}")),
                ("HOOKLINE_ALLOW_CIDRS", "[\"127.0.0.0/8\"]".into()),
                ("HOOKLINE_CLAIM_IDLE", "3s".into()),
                ("HOOKLINE_AUTH__TOKENS", format!("[{{token=\"{TOKEN}\",tenant=\"acme\"}}]")),
                ("HOOKLINE_AUTH__SERVICE_TOKEN", SERVICE.into()),
                ("HOOKLINE_LOG", "warn".into()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
        };
        let subscriptions = Process::start("hookline-subscriptions", env(subs_port));
        subscriptions.serving().await;
        let fanout = Process::start("hookline-fanout", env(fanout_port));
        let delivery = Process::start("hookline-delivery", env(delivery_port));
        fanout.serving().await;
        delivery.serving().await;
        Self { redis, subscriptions, fanout, delivery }
    }

    async fn client<C>(&self, addr: SocketAddr, make: impl FnOnce(Channel, BearerToken) -> C) -> C {
        let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        make(channel, BearerToken::new(TOKEN).unwrap())
    }

    async fn subscribe(&self, url: String, retry: Option<v1::RetryPolicy>, max_in_flight: u32) -> String {
        let mut subs = self.client(self.subscriptions.addr(), SubscriptionServiceClient::with_interceptor).await;
        let sub = v1::Subscription {
            url,
            event_types: vec!["order.*".into()],
            retry_policy: retry,
            max_in_flight,
            ..Default::default()
        };
        let created = subs
            .create_subscription(v1::CreateSubscriptionRequest { subscription: Some(sub), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        created.secret
    }
}

fn publish_request(n: usize) -> v1::PublishRequest {
    v1::PublishRequest {
        event_type: "order.paid".into(),
        payload: format!("{{\"n\":{n}}}").into_bytes(),
        idempotency_key: format!("order-{n}"),
        ..Default::default()
    }
}

#[tokio::test]
async fn publish_fan_out_and_signed_delivery_across_the_three_binaries() {
    let stack = Stack::start().await;
    let (receiver, port) = Receiver::start(&[503, 200], Duration::ZERO).await;
    let secret = stack
        .subscribe(
            format!("http://127.0.0.1:{port}/hook"),
            Some(v1::RetryPolicy {
                schedule: vec![hookline_proto::Duration { seconds: 1, nanos: 0 }],
                ..Default::default()
            }),
            0,
        )
        .await;
    let mut events = stack.client(stack.fanout.addr(), EventServiceClient::with_interceptor).await;
    let event_id = events.publish(publish_request(1)).await.unwrap().into_inner().event_id;

    eventually(WAIT, || async { receiver.ids().len() >= 2 }).await;
    let got = receiver.got.lock().unwrap().clone();
    assert!(got.iter().all(|(h, _)| h["webhook-id"] == event_id), "one event, retried once with the same id");
    let (headers, body) = &got[1];
    let secret = SigningSecret::parse(&secret).unwrap();
    let timestamp: i64 = headers["webhook-timestamp"].parse().unwrap();
    assert!(hookline_signing::verify(&secret, &event_id, timestamp, body, &headers["webhook-signature"]));
    assert_eq!(body, br#"{"n":1}"#);

    // Every binary stops cleanly on SIGTERM.
    let Stack { subscriptions, fanout, delivery, .. } = stack;
    assert_eq!(delivery.terminate(), Some(0));
    assert_eq!(fanout.terminate(), Some(0));
    assert_eq!(subscriptions.terminate(), Some(0));
}

#[tokio::test]
async fn kill_9_of_fanout_and_delivery_mid_run_loses_no_event() {
    let mut stack = Stack::start().await;
    // A slow receiver and 4 in flight: 300 deliveries take over a second,
    // so the kill lands while work is outstanding.
    let (receiver, port) = Receiver::start(&[200], Duration::from_millis(15)).await;
    stack.subscribe(format!("http://127.0.0.1:{port}/hook"), None, 4).await;
    let total = 300;
    let mut events = stack.client(stack.fanout.addr(), EventServiceClient::with_interceptor).await;
    let mut expected = Vec::new();
    for n in 0..total / 2 {
        expected.push(events.publish(publish_request(n)).await.unwrap().into_inner().event_id);
    }
    // Kill both workers mid-run, without warning, then bring them back.
    let before_kill = receiver.ids().len();
    assert!(before_kill < total / 2, "the kill must come mid-run ({before_kill} already delivered)");
    stack.fanout.kill9();
    stack.delivery.kill9();
    stack.fanout = stack.fanout.restart();
    stack.delivery = stack.delivery.restart();
    stack.fanout.serving().await;
    stack.delivery.serving().await;
    let mut events = stack.client(stack.fanout.addr(), EventServiceClient::with_interceptor).await;
    for n in total / 2..total {
        expected.push(events.publish(publish_request(n)).await.unwrap().into_inner().event_id);
    }
    eventually(Duration::from_secs(60), || async {
        let got: std::collections::HashSet<String> = receiver.ids().into_iter().collect();
        expected.iter().all(|id| got.contains(id))
    })
    .await;
    let received = receiver.ids().len();
    println!("kill -9 of fanout and delivery: {total} events, {received} requests, {} duplicates", received - total);
}

#[tokio::test]
async fn a_redis_restart_with_aof_mid_run_loses_nothing_and_needs_no_service_restart() {
    let stack = Stack::on(RedisServer::start_persistent()).await;
    let (receiver, port) = Receiver::start(&[200], Duration::from_millis(15)).await;
    stack.subscribe(format!("http://127.0.0.1:{port}/hook"), None, 4).await;
    let total = 200;
    let mut events = stack.client(stack.fanout.addr(), EventServiceClient::with_interceptor).await;
    let mut expected = Vec::new();
    for n in 0..total / 2 {
        expected.push(events.publish(publish_request(n)).await.unwrap().into_inner().event_id);
    }
    let Stack { mut redis, subscriptions, fanout, delivery } = stack;
    assert!(receiver.ids().len() < total / 2, "the restart must come mid-run");
    redis.restart(); // SIGKILL, then start again from the append-only file
    // Publishing works again once Redis is back; the services reconnect by themselves.
    let mut n = total / 2;
    while n < total {
        match events.publish(publish_request(n)).await {
            Ok(reply) => {
                expected.push(reply.into_inner().event_id);
                n += 1;
            }
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    eventually(Duration::from_secs(60), || async {
        let got: std::collections::HashSet<String> = receiver.ids().into_iter().collect();
        expected.iter().all(|id| got.contains(id))
    })
    .await;
    let received = receiver.ids().len();
    println!("redis restart (AOF): {total} events, {received} requests, {} duplicates", received - total);
    drop((subscriptions, fanout, delivery));
}
