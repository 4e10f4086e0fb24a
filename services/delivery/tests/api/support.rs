//! The whole pipeline per test: a private Redis, the subscription, fanout
//! and delivery services on ephemeral ports, a real HTTP receiver, and
//! authenticated clients.

use std::time::Duration;

use hookline_auth::{AuthConfig, BearerToken, TokenConfig};
use hookline_proto::v1::{
    self, delivery_service_client::DeliveryServiceClient, event_service_client::EventServiceClient,
    subscription_service_client::SubscriptionServiceClient,
};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

pub use hookline_testkit::{RedisServer, Running, eventually};

pub use crate::receiver::{Behaviour, Receiver};

pub const ACME: &str = "acme-token-000000000001";
pub const GLOBEX: &str = "globex-token-00000000001";
pub const SERVICE: &str = "service-token-0000000001";
/// Signs portal session tokens in every service under test.
pub const PORTAL_KEY: &str = "portal-key-for-tests-only-00000001";
pub const WAIT: Duration = Duration::from_secs(15);

type Authed = InterceptedService<Channel, BearerToken>;
pub type Subs = SubscriptionServiceClient<Authed>;
pub type Events = EventServiceClient<Authed>;
pub type Deliveries = DeliveryServiceClient<Authed>;

pub fn auth() -> AuthConfig {
    let token =
        |token: &str, tenant: &str| TokenConfig { token: token.into(), tenant: Some(tenant.into()), admin: false };
    AuthConfig {
        tokens: vec![token(ACME, "acme"), token(GLOBEX, "globex")],
        service_token: Some(SERVICE.into()),
        portal_key: Some(PORTAL_KEY.into()),
    }
}

pub fn subscriptions_config(redis: &RedisServer) -> hookline_subscriptions::Config {
    hookline_subscriptions::Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        redis_url: redis.url(),
        redis_timeout: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(1),
        auth: auth(),
        ..Default::default()
    }
}

pub fn delivery_config(redis: &RedisServer, subscriptions: &Running, fanout: &Running) -> hookline_delivery::Config {
    hookline_delivery::Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        redis_url: redis.url(),
        redis_timeout: Duration::from_secs(1),
        subscriptions_url: subscriptions.url(),
        fanout_url: Some(fanout.url()),
        allow_cidrs: vec!["127.0.0.0/8".parse().unwrap()],
        shutdown_grace: Duration::from_secs(2),
        auth: auth(),
        ..hookline_delivery::Config::default()
    }
}

pub struct Stack {
    pub redis: RedisServer,
    pub subscriptions: Running,
    pub fanout: Running,
    pub delivery: Option<Running>,
    pub receiver: Receiver,
    pub subs: Subs,
    pub events: Events,
    pub deliveries: Deliveries,
}

async fn channel(url: String) -> Channel {
    Channel::from_shared(url).unwrap().connect().await.unwrap()
}

/// A fanout service on `redis`, watching `subscriptions`, once serving.
async fn start_fanout(redis: &RedisServer, subscriptions: &Running) -> Running {
    let config = hookline_fanout::Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        redis_url: redis.url(),
        redis_timeout: Duration::from_secs(1),
        subscriptions_url: subscriptions.url(),
        shutdown_grace: Duration::from_secs(1),
        auth: auth(),
        ..Default::default()
    };
    let fanout = Running::start(|l, stop| hookline_fanout::serve(config, l, stop)).await;
    fanout.wait_serving().await;
    fanout
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(|c| c).await
    }

    /// The whole pipeline, with delivery's configuration adjusted.
    pub async fn start_with(adjust: impl FnOnce(hookline_delivery::Config) -> hookline_delivery::Config) -> Self {
        let mut stack = Self::without_delivery().await;
        let config = adjust(delivery_config(&stack.redis, &stack.subscriptions, &stack.fanout));
        stack.start_delivery(config).await;
        stack
    }

    pub async fn without_delivery() -> Self {
        let redis = RedisServer::start();
        let subs_config = subscriptions_config(&redis);
        let subscriptions = Running::start(|l, stop| hookline_subscriptions::serve(subs_config, l, stop)).await;
        subscriptions.wait_serving().await;
        let fanout = start_fanout(&redis, &subscriptions).await;
        let token = BearerToken::new(ACME).unwrap();
        let subs = SubscriptionServiceClient::with_interceptor(channel(subscriptions.url()).await, token.clone());
        let events = EventServiceClient::with_interceptor(channel(fanout.url()).await, token.clone());
        // Until a delivery service runs, a lazy channel to nowhere.
        let placeholder = Channel::from_static("http://127.0.0.1:1").connect_lazy();
        let deliveries = DeliveryServiceClient::with_interceptor(placeholder, token);
        let receiver = Receiver::start().await;
        Self { redis, subscriptions, fanout, delivery: None, receiver, subs, events, deliveries }
    }

    /// Moves fan-out and the test's subscription client to `subscriptions`
    /// (another subscription service on the same Redis).
    pub async fn move_fanout_to(&mut self, subscriptions: &Running) {
        self.fanout.halt().await;
        self.fanout = start_fanout(&self.redis, subscriptions).await;
        let token = BearerToken::new(ACME).unwrap();
        self.events = EventServiceClient::with_interceptor(channel(self.fanout.url()).await, token.clone());
        self.subs = SubscriptionServiceClient::with_interceptor(channel(subscriptions.url()).await, token);
    }

    /// Stops the subscription service (the caches keep what they have).
    pub async fn stop_subscriptions(&mut self) {
        self.subscriptions.halt().await;
    }

    /// Starts the subscription service again where it was.
    pub async fn start_subscriptions_again(&mut self) {
        let config = subscriptions_config(&self.redis);
        self.subscriptions =
            Running::start_on(self.subscriptions.addr, |l, stop| hookline_subscriptions::serve(config, l, stop)).await;
        self.subscriptions.wait_serving().await;
    }

    pub async fn start_delivery(&mut self, config: hookline_delivery::Config) {
        let running = Running::start(|l, stop| hookline_delivery::serve(config, l, stop)).await;
        running.wait_serving().await;
        self.deliveries =
            DeliveryServiceClient::with_interceptor(channel(running.url()).await, BearerToken::new(ACME).unwrap());
        self.delivery = Some(running);
    }

    /// The subscription service, as `token`.
    pub async fn subs_client_for(&self, token: &str) -> Subs {
        SubscriptionServiceClient::with_interceptor(
            channel(self.subscriptions.url()).await,
            BearerToken::new(token).unwrap(),
        )
    }

    pub async fn client_for(&self, token: &str) -> Deliveries {
        let url = self.delivery.as_ref().unwrap().url();
        DeliveryServiceClient::with_interceptor(channel(url).await, BearerToken::new(token).unwrap())
    }

    /// Creates a subscription to the receiver's `path`; returns (id, secret).
    pub async fn subscribe(&mut self, path: &str, adjust: impl FnOnce(&mut v1::Subscription)) -> (String, String) {
        let mut sub = v1::Subscription {
            name: path.into(),
            url: self.receiver.url(path),
            event_types: vec!["*".into()],
            ..Default::default()
        };
        adjust(&mut sub);
        let created = self
            .subs
            .create_subscription(v1::CreateSubscriptionRequest {
                subscription: Some(sub),
                allow_duplicate_endpoint: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        (created.subscription.unwrap().id, created.secret)
    }

    pub async fn publish(&mut self, event_type: &str, payload: &str) -> String {
        let req = v1::PublishRequest {
            event_type: event_type.into(),
            payload: payload.as_bytes().to_vec(),
            ..Default::default()
        };
        self.events.publish(req).await.unwrap().into_inner().event_id
    }

    pub async fn wait_received(&self, path: &str, n: usize) -> Vec<crate::receiver::Received> {
        eventually(WAIT, || async { self.receiver.received(path).len() >= n }).await;
        self.receiver.received(path)
    }

    pub async fn subscription(&mut self, id: &str) -> v1::Subscription {
        self.subs.get_subscription(v1::GetSubscriptionRequest { id: id.into() }).await.unwrap().into_inner()
    }

    /// Waits until the subscription, as the subscription service has it,
    /// satisfies `holds`.
    pub async fn wait_subscription(&self, id: &str, holds: impl Fn(&v1::Subscription) -> bool) {
        eventually(WAIT, || {
            let (mut subs, id, holds) = (self.subs.clone(), id.to_owned(), &holds);
            async move { holds(&subs.get_subscription(v1::GetSubscriptionRequest { id }).await.unwrap().into_inner()) }
        })
        .await;
    }

    /// The subscription's deliveries, newest first.
    pub async fn deliveries_of(&mut self, subscription_id: &str) -> Vec<v1::Delivery> {
        self.deliveries
            .list_deliveries(v1::ListDeliveriesRequest {
                subscription_id: subscription_id.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .deliveries
    }

    /// Waits until the subscription has `n` deliveries in `status`.
    pub async fn wait_status(
        &mut self,
        subscription_id: &str,
        status: v1::DeliveryStatus,
        n: usize,
    ) -> Vec<v1::Delivery> {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let all = self.deliveries_of(subscription_id).await;
            let matching: Vec<_> = all.iter().filter(|d| d.status == status as i32).cloned().collect();
            if matching.len() >= n {
                return matching;
            }
            assert!(std::time::Instant::now() < deadline, "wanted {n} {status:?}, have {all:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `n` retries, one second apart (the shortest allowed); 0: one attempt only.
pub fn quick_retries(n: usize) -> v1::RetryPolicy {
    if n == 0 {
        return v1::RetryPolicy { max_attempts: 1, ..Default::default() };
    }
    v1::RetryPolicy { schedule: vec![prost_types::Duration { seconds: 1, nanos: 0 }; n], ..Default::default() }
}

/// Checks a received request with the reference Standard Webhooks library.
pub fn verified_by_reference(secret: &str, received: &crate::receiver::Received) -> bool {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/verify_signature.py");
    let input = serde_json::json!({
        "secret": secret,
        "headers": received.headers,
        "body": String::from_utf8_lossy(&received.body),
    });
    let mut child =
        std::process::Command::new("python3").arg(script).stdin(std::process::Stdio::piped()).spawn().expect("python3");
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let status = child.wait().unwrap();
    assert_ne!(status.code(), Some(2), "the reference library is missing: pip install standardwebhooks");
    status.success()
}
