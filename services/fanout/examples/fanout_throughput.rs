//! Measures publish and fan-out throughput on this machine: starts a
//! private Redis, the subscription service and the fanout service in this
//! process, creates subscriptions, publishes events with PublishBatch from
//! several concurrent clients, and waits until every delivery task is in
//! the deliveries stream. A measurement, not a test: run it in release.
//!
//!   cargo run --release -p hookline-fanout --example fanout_throughput -- \
//!       [events=100000] [subscriptions=1] [concurrency=8] [batch=100]
//!
//! Then, separately, one event to many subscriptions:
//!
//!   cargo run --release -p hookline-fanout --example fanout_throughput -- 1 10000 1 1

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use hookline_auth::{AuthConfig, BearerToken, TokenConfig};
use hookline_proto::v1::{
    self, event_service_client::EventServiceClient, subscription_service_client::SubscriptionServiceClient,
};
use hookline_queue::Partitions;
use hookline_testkit::RedisServer;
use tonic::transport::Channel;

const TOKEN: &str = "bench-token-00000000001";
const SERVICE: &str = "bench-service-000000001";

fn auth() -> AuthConfig {
    AuthConfig {
        tokens: vec![TokenConfig { token: TOKEN.into(), tenant: Some("bench".into()), admin: false }],
        service_token: Some(SERVICE.into()),
        portal_key: None,
    }
}

async fn listener() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", l.local_addr().unwrap());
    (l, addr)
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let events = *args.first().unwrap_or(&100_000);
    let subscriptions = *args.get(1).unwrap_or(&1);
    let concurrency = *args.get(2).unwrap_or(&8);
    let batch = *args.get(3).unwrap_or(&100);

    let redis = RedisServer::start();
    let (subs_listener, subs_addr) = listener().await;
    let subs_config = hookline_subscriptions::Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        redis_url: redis.url(),
        auth: auth(),
        max_subscriptions_per_tenant: 1_000_000,
        ..Default::default()
    };
    tokio::spawn(hookline_subscriptions::serve(subs_config, subs_listener, std::future::pending()));
    let (fanout_listener, fanout_addr) = listener().await;
    let fanout_config = hookline_fanout::Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        redis_url: redis.url(),
        subscriptions_url: subs_addr.clone(),
        max_delivery_backlog: u64::MAX,
        auth: auth(),
        ..Default::default()
    };
    tokio::spawn(hookline_fanout::serve(fanout_config, fanout_listener, std::future::pending()));

    let channel = |addr: String| async move {
        loop {
            if let Ok(c) = Channel::from_shared(addr.clone()).unwrap().connect().await {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let token = BearerToken::new(TOKEN).unwrap();
    let mut subs = SubscriptionServiceClient::with_interceptor(channel(subs_addr).await, token.clone());
    for i in 0..subscriptions {
        subs.create_subscription(v1::CreateSubscriptionRequest {
            subscription: Some(v1::Subscription {
                url: format!("https://receiver.example.com/{i}"),
                event_types: vec!["bench.*".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let fanout_channel = channel(fanout_addr).await;
    // Wait until fanout's cache has every subscription: a warm-up event
    // (matching none) is fanned out only once the cache reached its fence.
    let caught_up = Instant::now();
    let mut probe = EventServiceClient::with_interceptor(fanout_channel.clone(), token.clone());
    let warmup = loop {
        let req = v1::PublishRequest { event_type: "warmup".into(), payload: b"{}".to_vec(), ..Default::default() };
        match probe.publish(req).await {
            Ok(r) => break r.into_inner().event_id,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    loop {
        let event = probe.get_event(v1::GetEventRequest { id: warmup.clone() }).await.unwrap().into_inner();
        if event.fanout_state == v1::FanoutState::Done as i32 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "subscription cache caught up with {subscriptions} new subscriptions {:.2?} after the last create",
        caught_up.elapsed()
    );

    let payload = br#"{"order_id":"ord_123","amount":4200,"currency":"EUR","customer":{"id":"cus_9","email":"a@b.c"}}"#;
    let started = Instant::now();
    let per_client = events.div_ceil(concurrency);
    let mut clients = Vec::new();
    for c in 0..concurrency {
        let mut client = EventServiceClient::with_interceptor(fanout_channel.clone(), token.clone());
        let count = per_client.min(events.saturating_sub(c * per_client));
        clients.push(tokio::spawn(async move {
            let mut sent = 0;
            while sent < count {
                let n = batch.min(count - sent);
                let items = (0..n)
                    .map(|_| v1::PublishRequest {
                        event_type: "bench.order_paid".into(),
                        payload: payload.to_vec(),
                        ..Default::default()
                    })
                    .collect();
                client.publish_batch(v1::PublishBatchRequest { events: items }).await.unwrap();
                sent += n;
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let published = started.elapsed();

    let keys = Partitions::new("hookline", 1).get(0);
    let mut conn = redis.connection().await;
    let expected = events * subscriptions;
    loop {
        let len: u64 = redis::cmd("XLEN").arg(keys.deliveries()).query_async(&mut conn).await.unwrap();
        if len >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let fanned = started.elapsed();
    println!(
        "events={events} subscriptions={subscriptions} concurrency={concurrency} batch={batch}\n\
         publish:  {:.0} events/s ({:.2?} for all)\n\
         fan-out:  {:.0} tasks/s, all {expected} tasks enqueued {:.2?} after the first publish",
        events as f64 / published.as_secs_f64(),
        published,
        expected as f64 / fanned.as_secs_f64(),
        fanned,
    );
}
