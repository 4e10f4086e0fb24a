//! Delivery throughput against the raw POST rate of a plain client, in one
//! run, on this machine: a minimal local receiver; first a plain `reqwest`
//! client POSTs to it at several concurrencies (the ceiling); then the whole
//! pipeline (private Redis, subscription, fanout and delivery services)
//! delivers published events to the same receiver. A measurement, not a
//! test: run it in release.
//!
//!   cargo run --release -p hookline-delivery --example delivery_throughput -- \
//!       [events=50000] [subscriptions=1] [publishers=4] [batch=200]

#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hookline_auth::{AuthConfig, BearerToken, TokenConfig};
use hookline_proto::v1::{
    self, event_service_client::EventServiceClient, subscription_service_client::SubscriptionServiceClient,
};
use hookline_testkit::{RedisServer, Running};
use tonic::transport::Channel;

const TOKEN: &str = "bench-token-00000000001";
const SERVICE: &str = "bench-service-000000001";
const BODY: &[u8] =
    br#"{"order_id":"ord_123","amount":4200,"currency":"EUR","customer":{"id":"cus_9","email":"a@b.c"}}"#;

fn auth() -> AuthConfig {
    AuthConfig {
        tokens: vec![TokenConfig { token: TOKEN.into(), tenant: Some("bench".into()), admin: false }],
        service_token: Some(SERVICE.into()),
    }
}

async fn receiver() -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            ""
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, count)
}

/// The best POST rate of a plain client over a concurrency sweep.
async fn raw_ceiling(url: &str) -> (f64, usize) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(1024).build().unwrap();
    let mut best = (0.0, 0);
    for concurrency in [16, 64, 256] {
        let sent = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(3);
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                let (client, sent, url) = (client.clone(), sent.clone(), url.to_owned());
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let r = client.post(&url).header("content-type", "application/json").body(BODY).send().await;
                        if r.is_ok_and(|r| r.status().is_success()) {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        let started = Instant::now();
        for w in workers {
            w.await.unwrap();
        }
        let rate = sent.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
        println!("raw client, concurrency {concurrency:>3}: {rate:>8.0} POSTs/s");
        if rate > best.0 {
            best = (rate, concurrency);
        }
    }
    best
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let events = *args.first().unwrap_or(&50_000);
    let subscriptions = *args.get(1).unwrap_or(&1);
    let publishers = *args.get(2).unwrap_or(&4);
    let batch = *args.get(3).unwrap_or(&200);

    let (addr, received) = receiver().await;
    let (ceiling, at) = raw_ceiling(&format!("http://{addr}/raw")).await;

    let redis = RedisServer::start();
    let subs_config = hookline_subscriptions::Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        redis_url: redis.url(),
        auth: auth(),
        ..Default::default()
    };
    let subs_service = Running::start(|l, stop| hookline_subscriptions::serve(subs_config, l, stop)).await;
    subs_service.wait_serving().await;
    let fanout_config = hookline_fanout::Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        redis_url: redis.url(),
        subscriptions_url: subs_service.url(),
        auth: auth(),
        ..Default::default()
    };
    let fanout = Running::start(|l, stop| hookline_fanout::serve(fanout_config, l, stop)).await;
    fanout.wait_serving().await;
    let delivery_config = hookline_delivery::Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        redis_url: redis.url(),
        subscriptions_url: subs_service.url(),
        fanout_url: Some(fanout.url()),
        allow_cidrs: vec!["127.0.0.0/8".parse().unwrap()],
        auth: auth(),
        ..Default::default()
    };
    let delivery = Running::start(|l, stop| hookline_delivery::serve(delivery_config, l, stop)).await;
    delivery.wait_serving().await;

    let token = BearerToken::new(TOKEN).unwrap();
    let connect = |url: String| async move { Channel::from_shared(url).unwrap().connect().await.unwrap() };
    let mut subs = SubscriptionServiceClient::with_interceptor(connect(subs_service.url()).await, token.clone());
    for i in 0..subscriptions {
        subs.create_subscription(v1::CreateSubscriptionRequest {
            subscription: Some(v1::Subscription {
                url: format!("http://{addr}/hook/{i}"),
                event_types: vec!["bench.*".into()],
                max_in_flight: 1000,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // caches load the subscriptions
    let before = received.load(Ordering::Relaxed);
    let expected = events * subscriptions;
    let events_channel = connect(fanout.url()).await;
    let started = Instant::now();
    let per = events.div_ceil(publishers);
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let mut client = EventServiceClient::with_interceptor(events_channel.clone(), token.clone());
        let count = per.min(events.saturating_sub(p * per));
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            while sent < count {
                let n = batch.min(count - sent);
                let items = (0..n)
                    .map(|_| v1::PublishRequest {
                        event_type: "bench.order_paid".into(),
                        payload: BODY.to_vec(),
                        ..Default::default()
                    })
                    .collect();
                client.publish_batch(v1::PublishBatchRequest { events: items }).await.unwrap();
                sent += n;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let published = started.elapsed();
    while received.load(Ordering::Relaxed) - before < expected {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    let rate = expected as f64 / elapsed.as_secs_f64();
    println!(
        "\nceiling (plain client, best of sweep): {ceiling:.0} POSTs/s at concurrency {at}\n\
         pipeline: {events} events x {subscriptions} subscriptions = {expected} deliveries in {elapsed:.2?} \
         (published in {published:.2?})\n\
         pipeline: {rate:.0} deliveries/s = {:.1}% of the ceiling",
        rate / ceiling * 100.0
    );
}
