//! A whole stack per test: a private Redis, the subscription service and
//! the fanout service on ephemeral ports, and authenticated clients.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use hookline_auth::{BearerToken, TokenConfig};
use hookline_proto::v1::{
    self, event_service_client::EventServiceClient, subscription_service_client::SubscriptionServiceClient,
};
use hookline_queue::{ConsumerGroup, DeliveryTask, FANOUT_GROUP, Partitions};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

pub use hookline_testkit::{RedisServer, Running, eventually};

pub const ACME: &str = "acme-token-000000000001";
pub const GLOBEX: &str = "globex-token-00000000001";
pub const ADMIN: &str = "admin-token-000000000001";
pub const SERVICE: &str = "service-token-0000000001";
/// Signs portal session tokens in every service under test.
pub const PORTAL_KEY: &str = "portal-key-for-tests-only-00000001";
pub const WAIT: Duration = Duration::from_secs(10);

pub type Subs = SubscriptionServiceClient<InterceptedService<Channel, BearerToken>>;
pub type Events = EventServiceClient<InterceptedService<Channel, BearerToken>>;

fn auth() -> hookline_auth::AuthConfig {
    let token = |token: &str, tenant: Option<&str>| TokenConfig {
        token: token.into(),
        tenant: tenant.map(Into::into),
        admin: tenant.is_none(),
    };
    hookline_auth::AuthConfig {
        tokens: vec![token(ACME, Some("acme")), token(GLOBEX, Some("globex")), token(ADMIN, None)],
        service_token: Some(SERVICE.into()),
        portal_key: Some(PORTAL_KEY.into()),
    }
}

pub fn fanout_config(redis: &RedisServer, subscriptions: SocketAddr) -> hookline_fanout::Config {
    hookline_fanout::Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        redis_url: redis.url(),
        subscriptions_url: format!("http://{subscriptions}"),
        redis_timeout: Duration::from_millis(500),
        claim_idle: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(2),
        auth: auth(),
        ..hookline_fanout::Config::default()
    }
}

pub struct Stack {
    pub redis: RedisServer,
    pub subscriptions: Running,
    pub fanout: Option<Running>,
    pub subs: Subs,
    pub admin_subs: Subs,
}

impl Stack {
    /// Redis and the subscription service, without fanout.
    pub async fn without_fanout() -> Self {
        Self::on(RedisServer::start(), |c| c).await
    }

    /// The subscription service on `redis`, its settings adjusted, without
    /// fanout.
    pub async fn on(
        redis: RedisServer,
        adjust: impl FnOnce(hookline_subscriptions::Config) -> hookline_subscriptions::Config,
    ) -> Self {
        let config = adjust(hookline_subscriptions::Config {
            listen_addr: "127.0.0.1:0".parse().unwrap(),
            redis_url: redis.url(),
            redis_timeout: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(1),
            auth: auth(),
            ..hookline_subscriptions::Config::default()
        });
        let subscriptions =
            Running::start(|listener, stop| hookline_subscriptions::serve(config, listener, stop)).await;
        let subs = client(subscriptions.addr, ACME, SubscriptionServiceClient::with_interceptor).await;
        let admin_subs = client(subscriptions.addr, ADMIN, SubscriptionServiceClient::with_interceptor).await;
        Self { redis, subscriptions, fanout: None, subs, admin_subs }
    }

    /// The whole stack with default fanout settings.
    pub async fn start() -> Self {
        let mut stack = Self::without_fanout().await;
        stack.start_fanout(|c| c).await;
        stack
    }

    pub async fn start_fanout(&mut self, adjust: impl FnOnce(hookline_fanout::Config) -> hookline_fanout::Config) {
        let config = adjust(fanout_config(&self.redis, self.subscriptions.addr));
        let running = Running::start(|listener, stop| hookline_fanout::serve(config, listener, stop)).await;
        // Serving means Redis answers and the subscription cache is loaded.
        running.wait_serving().await;
        self.fanout = Some(running);
    }

    pub async fn events(&self, token: &str) -> Events {
        client(self.fanout.as_ref().unwrap().addr, token, EventServiceClient::with_interceptor).await
    }

    pub async fn subscribe(&mut self, sub: v1::Subscription) -> String {
        self.subs
            .create_subscription(v1::CreateSubscriptionRequest {
                subscription: Some(sub),
                allow_duplicate_endpoint: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .subscription
            .unwrap()
            .id
    }

    /// Every delivery task in the (single) partition's deliveries stream.
    pub async fn tasks(&self) -> Vec<DeliveryTask> {
        let keys = Partitions::new("hookline", 1).get(0);
        let mut conn = self.redis.connection().await;
        let reply: redis::streams::StreamRangeReply =
            redis::cmd("XRANGE").arg(keys.deliveries()).arg("-").arg("+").query_async(&mut conn).await.unwrap();
        reply.ids.iter().map(|e| DeliveryTask::parse(&e.id, e.map.clone()).unwrap()).collect()
    }

    /// Whether every event published so far is fanned out: the `fanout`
    /// group has nothing left to read or acknowledge (a fan-out enqueues
    /// its tasks in the same script that acknowledges its event).
    pub async fn fanned_out_everything(&self) -> bool {
        let keys = Partitions::new("hookline", 1).get(0);
        let group = ConsumerGroup::new(keys.events(), FANOUT_GROUP, "test");
        let mut conn = self.redis.connection().await;
        group.backlog(&mut conn).await.is_ok_and(|left| left == 0)
    }

    /// Waits until every event published so far is fanned out, then
    /// expects exactly `n` tasks: no more can come.
    pub async fn wait_tasks(&self, n: usize) -> Vec<DeliveryTask> {
        eventually(WAIT, || async { self.fanned_out_everything().await && self.tasks().await.len() >= n }).await;
        let tasks = self.tasks().await;
        assert_eq!(tasks.len(), n, "{tasks:#?}");
        tasks
    }

    /// Subscription ids that received `event_id`.
    pub async fn receivers(&self, event_id: &str) -> Vec<String> {
        let mut subs: Vec<_> =
            self.tasks().await.into_iter().filter(|t| t.event_id == event_id).map(|t| t.subscription_id).collect();
        subs.sort();
        subs
    }
}

async fn client<C>(addr: SocketAddr, token: &str, make: impl FnOnce(Channel, BearerToken) -> C) -> C {
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    make(channel, BearerToken::new(token).unwrap())
}

pub fn subscription(url: &str, event_types: &[&str]) -> v1::Subscription {
    v1::Subscription {
        name: "test".into(),
        url: url.into(),
        event_types: event_types.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

pub fn event(event_type: &str, payload: &str) -> v1::PublishRequest {
    v1::PublishRequest { event_type: event_type.into(), payload: payload.as_bytes().to_vec(), ..Default::default() }
}

pub fn with_attributes(mut req: v1::PublishRequest, attributes: &[(&str, &str)]) -> v1::PublishRequest {
    req.attributes = attributes.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<HashMap<_, _>>();
    req
}

pub async fn publish(events: &mut Events, req: v1::PublishRequest) -> v1::PublishResponse {
    events.publish(req).await.unwrap().into_inner()
}
