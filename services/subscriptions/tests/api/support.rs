//! Test support: a private Redis server per test, the real subscription
//! service on an ephemeral port, and authenticated gRPC clients.

use std::{net::SocketAddr, time::Duration};

pub use hookline_testkit::{RedisServer, eventually};

use hookline_auth::{BearerToken, TokenConfig};
use hookline_proto::v1::{self, subscription_service_client::SubscriptionServiceClient};
use hookline_subscriptions::{AuthConfig, Config, SecretsSection};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

pub const ACME: &str = "acme-token-000000000001";
pub const GLOBEX: &str = "globex-token-00000000001";
pub const ADMIN: &str = "admin-token-000000000001";
pub const SERVICE: &str = "service-token-0000000001";
/// Signs portal session tokens in every service under test.
pub const PORTAL_KEY: &str = "portal-key-for-tests-only-00000001";

pub type Client = SubscriptionServiceClient<InterceptedService<Channel, BearerToken>>;

pub fn config(redis_url: &str) -> Config {
    let token = |token: &str, tenant: Option<&str>| TokenConfig {
        token: token.into(),
        tenant: tenant.map(Into::into),
        admin: tenant.is_none(),
    };
    Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        redis_url: redis_url.to_owned(),
        redis_timeout: Duration::from_millis(500),
        shutdown_grace: Duration::from_secs(2),
        auth: AuthConfig {
            tokens: vec![token(ACME, Some("acme")), token(GLOBEX, Some("globex")), token(ADMIN, None)],
            service_token: Some(SERVICE.into()),
            portal_key: Some(PORTAL_KEY.into()),
        },
        secrets: SecretsSection::default(),
        ..Config::default()
    }
}

/// The service running in this process on a real TCP port.
pub struct Service {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), hookline_subscriptions::Error>>>,
}

impl Service {
    pub async fn start(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(hookline_subscriptions::serve(config, listener, async move {
            let _ = stopped.await;
        }));
        let service = Self { addr, stop: Some(stop), task: Some(task) };
        service.wait_serving().await;
        service
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.endpoint()).unwrap().connect().await.unwrap()
    }

    pub async fn client(&self, token: &str) -> Client {
        SubscriptionServiceClient::with_interceptor(self.channel().await, BearerToken::new(token).unwrap())
    }

    pub async fn health(&self) -> i32 {
        let mut health = tonic_health::pb::health_client::HealthClient::new(self.channel().await);
        match health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await {
            Ok(r) => r.into_inner().status,
            Err(_) => -1,
        }
    }

    async fn wait_serving(&self) {
        eventually(Duration::from_secs(10), || async { self.health().await == 1 }).await;
    }

    /// Asks it to stop and waits for `serve` to return.
    pub async fn shutdown(mut self) -> Result<(), hookline_subscriptions::Error> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A minimal valid subscription.
pub fn subscription(url: &str, event_types: &[&str]) -> v1::Subscription {
    v1::Subscription {
        name: "test".into(),
        url: url.into(),
        event_types: event_types.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

pub async fn create(
    client: &mut Client,
    sub: v1::Subscription,
) -> Result<v1::CreateSubscriptionResponse, tonic::Status> {
    client
        .create_subscription(v1::CreateSubscriptionRequest { subscription: Some(sub), ..Default::default() })
        .await
        .map(tonic::Response::into_inner)
}

pub fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() })
}

/// Everything, in one call: a Redis, the service, and an acme client.
pub async fn setup() -> (RedisServer, Service, Client) {
    let redis = RedisServer::start();
    let service = Service::start(config(&redis.url())).await;
    let client = service.client(ACME).await;
    (redis, service, client)
}
