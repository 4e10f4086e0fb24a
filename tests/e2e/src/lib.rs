//! The harness for end-to-end tests across hookline's real binaries: a
//! private Redis, the three services as child processes (the binaries the
//! workspace test build produces), a real HTTP receiver, and clients.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc, missing_docs)]

mod otlp;

pub use otlp::{ExportedSpan, SpanCollector};

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command},
    sync::{Arc, Mutex},
    time::Duration,
};

use hookline_auth::BearerToken;
use hookline_proto::v1::{self, subscription_service_client::SubscriptionServiceClient};
use hookline_testkit::{RedisCluster, RedisServer, eventually, free_port, health};
use tonic::transport::Channel;

pub const TOKEN: &str = "e2e-acme-token-00000001";
pub const SERVICE: &str = "e2e-service-token-000001";
/// Signs portal sessions, the same in every service.
pub const PORTAL_KEY: &str = "e2e-portal-key-000000000000000001";
pub const WAIT: Duration = Duration::from_secs(30);

pub fn binary(name: &str) -> PathBuf {
    // target/<profile>/deps/pipeline-<hash> -> target/<profile>/<name>
    let path = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join(name);
    assert!(path.exists(), "{} is missing: build the workspace binaries first (cargo build --bins)", path.display());
    path
}

/// One of the services as a child process; killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct Process {
    name: &'static str,
    grpc: u16,
    child: Child,
    env: HashMap<String, String>,
}

impl Process {
    pub fn start(name: &'static str, env: HashMap<String, String>) -> Self {
        let grpc = env["HOOKLINE_LISTEN_ADDR"].rsplit(':').next().unwrap().parse().unwrap();
        let log = Self::log_path_of(name, grpc);
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = Command::new(binary(name)).envs(&env).stdout(out.try_clone().unwrap()).stderr(out).spawn().unwrap();
        Self { name, grpc, child, env }
    }

    fn log_path_of(name: &str, grpc: u16) -> PathBuf {
        std::env::temp_dir().join("hookline-e2e").join(format!("{name}-{grpc}.log"))
    }

    /// Where its log lines go (kept after the test, for a post-mortem).
    pub fn log_path(&self) -> PathBuf {
        Self::log_path_of(self.name, self.grpc)
    }

    /// The base URL of its admin port (`/metrics`, `/healthz`, `/readyz`).
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.env["HOOKLINE_ADMIN_ADDR"])
    }

    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.grpc).into()
    }

    pub async fn serving(&self) {
        let addr = self.addr();
        eventually(WAIT, || async move { health(addr).await == 1 }).await;
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Starts it again with the same settings, on the same port.
    pub fn restart(&mut self) -> Self {
        Self::start(self.name, self.env.clone())
    }

    /// Another replica: the same service and settings, on ports of its own.
    pub fn sibling(&self) -> Self {
        let mut env = self.env.clone();
        env.insert("HOOKLINE_LISTEN_ADDR".into(), format!("127.0.0.1:{}", free_port()));
        env.insert("HOOKLINE_ADMIN_ADDR".into(), format!("127.0.0.1:{}", free_port()));
        Self::start(self.name, env)
    }

    /// Its `/metrics` page.
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.admin_url());
        reqwest::get(url).await.unwrap().text().await.unwrap()
    }

    /// SIGTERM, and the exit code.
    pub fn terminate(mut self) -> Option<i32> {
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
pub type Request = (HashMap<String, String>, Vec<u8>);

/// A receiver that records (webhook-id, headers, body) and answers from a
/// script of statuses (the last repeats).
#[derive(Clone, Debug, Default)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<Request>>>,
    /// (webhook-id, status answered) of each request, in order.
    answers: Arc<Mutex<Vec<(String, u16)>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
    delay: Duration,
    /// Requests that have arrived, answered or not yet.
    arrived: Arc<std::sync::atomic::AtomicUsize>,
}

impl Receiver {
    pub async fn start(statuses: &[u16], delay: Duration) -> (Self, u16) {
        let receiver = Self { statuses: Arc::new(Mutex::new(statuses.to_vec())), delay, ..Self::default() };
        let state = receiver.clone();
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                state.arrived.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(state.delay).await;
                let headers: HashMap<String, String> =
                    headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned())).collect();
                let status = {
                    let mut statuses = state.statuses.lock().unwrap();
                    if statuses.len() > 1 { statuses.remove(0) } else { statuses.first().copied().unwrap_or(200) }
                };
                let mut got = state.got.lock().unwrap();
                let id = headers.get("webhook-id").cloned().unwrap_or_default();
                got.push((headers, body.to_vec()));
                state.answers.lock().unwrap().push((id, status));
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, port)
    }

    /// The statuses it will answer (the last repeats); change them freely.
    pub fn statuses(&self) -> std::sync::MutexGuard<'_, Vec<u16>> {
        self.statuses.lock().unwrap()
    }

    /// The webhook-ids of requests answered 2xx.
    pub fn delivered_ids(&self) -> Vec<String> {
        let answers = self.answers.lock().unwrap();
        answers.iter().filter(|(_, status)| (200..300).contains(status)).map(|(id, _)| id.clone()).collect()
    }

    /// How many requests were answered with an error status.
    pub fn failed_requests(&self) -> usize {
        self.answers.lock().unwrap().iter().filter(|(_, status)| !(200..300).contains(status)).count()
    }

    /// Requests that have arrived so far, including those not answered yet.
    pub fn arrived(&self) -> usize {
        self.arrived.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn ids(&self) -> Vec<String> {
        self.got.lock().unwrap().iter().map(|(h, _)| h.get("webhook-id").cloned().unwrap_or_default()).collect()
    }
}

/// The environment of a service listening on `port`, in a stack on
/// `redis_url` whose subscription and fanout services listen on
/// `subs_port` and `fanout_port`; `extra` comes last and wins.
pub fn service_env(
    redis_url: &str,
    port: u16,
    subs_port: u16,
    fanout_port: u16,
    extra: &[(&str, String)],
) -> HashMap<String, String> {
    [
        ("HOOKLINE_LISTEN_ADDR", format!("127.0.0.1:{port}")),
        ("HOOKLINE_ADMIN_ADDR", format!("127.0.0.1:{}", free_port())),
        ("HOOKLINE_REDIS_URL", redis_url.to_owned()),
        ("HOOKLINE_SUBSCRIPTIONS_URL", format!("http://127.0.0.1:{subs_port}")),
        ("HOOKLINE_FANOUT_URL", format!("http://127.0.0.1:{fanout_port}")),
        ("HOOKLINE_ALLOW_CIDRS", "[\"127.0.0.0/8\"]".into()),
        ("HOOKLINE_CLAIM_IDLE", "3s".into()),
        ("HOOKLINE_PARTITION_LEASE", "2s".into()),
        ("HOOKLINE_AUTO_PAUSE_AFTER", "3".into()),
        ("HOOKLINE_AUTO_PAUSE_FAILING_FOR", "0s".into()),
        ("HOOKLINE_AUTH__TOKENS", format!("[{{token=\"{TOKEN}\",tenant=\"acme\"}}]")),
        ("HOOKLINE_AUTH__SERVICE_TOKEN", SERVICE.into()),
        ("HOOKLINE_AUTH__PORTAL_KEY", PORTAL_KEY.into()),
        ("HOOKLINE_LOG", "warn".into()),
    ]
    .into_iter()
    .chain(extra.iter().cloned())
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// What a stack runs on, kept alive as long as the stack.
#[derive(Debug)]
pub enum Backend {
    Server(RedisServer),
    Cluster(RedisCluster),
}

impl Backend {
    pub fn url(&self) -> String {
        match self {
            Self::Server(redis) => redis.url(),
            Self::Cluster(cluster) => cluster.url(),
        }
    }
}

#[derive(Debug)]
pub struct Stack {
    pub redis: Backend,
    pub subscriptions: Process,
    pub fanout: Process,
    pub delivery: Process,
}

impl Stack {
    pub async fn start() -> Self {
        Self::on(RedisServer::start()).await
    }

    pub async fn on(redis: RedisServer) -> Self {
        Self::with_env(redis, &[]).await
    }

    /// The stack with `extra` variables set for every service.
    pub async fn with_env(redis: RedisServer, extra: &[(&str, String)]) -> Self {
        Self::on_backend(Backend::Server(redis), extra).await
    }

    /// The stack on any backend, with `extra` variables for every service.
    pub async fn on_backend(redis: Backend, extra: &[(&str, String)]) -> Self {
        let (subs_port, fanout_port, delivery_port) = (free_port(), free_port(), free_port());
        let env = |port: u16| service_env(&redis.url(), port, subs_port, fanout_port, extra);
        let subscriptions = Process::start("hookline-subscriptions", env(subs_port));
        subscriptions.serving().await;
        let fanout = Process::start("hookline-fanout", env(fanout_port));
        let delivery = Process::start("hookline-delivery", env(delivery_port));
        fanout.serving().await;
        delivery.serving().await;
        Self { redis, subscriptions, fanout, delivery }
    }

    pub async fn client<C>(&self, addr: SocketAddr, make: impl FnOnce(Channel, BearerToken) -> C) -> C {
        let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        make(channel, BearerToken::new(TOKEN).unwrap())
    }

    pub async fn subscribe(&self, url: String, retry: Option<v1::RetryPolicy>, max_in_flight: u32) -> String {
        self.subscribe_with(v1::Subscription { url, retry_policy: retry, max_in_flight, ..Default::default() }).await
    }

    /// Subscribes `sub` (to `order.*` unless it names event types); returns
    /// the signing secret.
    pub async fn subscribe_with(&self, mut sub: v1::Subscription) -> String {
        let mut subs = self.client(self.subscriptions.addr(), SubscriptionServiceClient::with_interceptor).await;
        if sub.event_types.is_empty() {
            sub.event_types = vec!["order.*".into()];
        }
        let created = subs
            .create_subscription(v1::CreateSubscriptionRequest { subscription: Some(sub), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        created.secret
    }
}

pub fn publish_request(n: usize) -> v1::PublishRequest {
    v1::PublishRequest {
        event_type: "order.paid".into(),
        payload: format!("{{\"n\":{n}}}").into_bytes(),
        idempotency_key: format!("order-{n}"),
        ..Default::default()
    }
}
