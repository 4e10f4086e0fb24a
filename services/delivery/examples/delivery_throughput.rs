//! Delivery benchmarks on this machine, each against a private Redis and
//! the whole pipeline (subscription, fanout and delivery services) in this
//! process, delivering to a minimal local receiver. Measurements, not
//! tests: run them in release.
//!
//! Throughput against the raw POST rate of a plain `reqwest` client to the
//! same receiver (the ceiling, best of a concurrency sweep), in one run:
//!
//!   cargo run --release -p hookline-delivery --example delivery_throughput -- \
//!       [events=50000] [subscriptions=1] [publishers=4] [batch=200]
//!
//! Publish-to-receive latency at a fixed publish rate (one subscription):
//!
//!   ... --example delivery_throughput -- latency [rate=2000] [seconds=10]
//!
//! Isolation: deliveries/s to healthy endpoints with 10% of the
//! subscriptions pointing at an endpoint that hangs until the timeout,
//! against the same run with none hanging:
//!
//!   ... --example delivery_throughput -- isolation [events=2000] [subscriptions=20]

#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        Arc, Mutex, OnceLock,
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

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// What the receiver saw: requests per path kind, and latencies (µs) of
/// payloads that carried their publish time.
#[derive(Default)]
struct Seen {
    healthy: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

/// A minimal receiver: `/hang/...` never answers within any timeout;
/// everything else answers 200 at once, recording `{"t": µs}` latencies.
async fn receiver() -> (std::net::SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let state = seen.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
        let state = state.clone();
        async move {
            if uri.path().starts_with("/hang") {
                tokio::time::sleep(Duration::from_secs(120)).await;
                return "";
            }
            state.healthy.fetch_add(1, Ordering::Relaxed);
            if let Some(t) = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v["t"].as_u64()) {
                let now = epoch().elapsed().as_micros() as u64;
                state.latencies_us.lock().unwrap().push(now.saturating_sub(t));
            }
            ""
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
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

/// The three services and a private Redis, in this process.
struct Pipeline {
    _redis: RedisServer,
    _services: Vec<Running>,
    subs: SubscriptionServiceClient<tonic::service::interceptor::InterceptedService<Channel, BearerToken>>,
    events: Channel,
    token: BearerToken,
}

impl Pipeline {
    async fn start() -> Self {
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
            auto_pause_after: 0,
            auth: auth(),
            ..Default::default()
        };
        let delivery = Running::start(|l, stop| hookline_delivery::serve(delivery_config, l, stop)).await;
        delivery.wait_serving().await;
        let token = BearerToken::new(TOKEN).unwrap();
        let connect = |url: String| async move { Channel::from_shared(url).unwrap().connect().await.unwrap() };
        let subs = SubscriptionServiceClient::with_interceptor(connect(subs_service.url()).await, token.clone());
        let events = connect(fanout.url()).await;
        Self { _redis: redis, _services: vec![subs_service, fanout, delivery], subs, events, token }
    }

    async fn subscribe(&mut self, url: String, timeout_secs: i64) {
        self.subs
            .create_subscription(v1::CreateSubscriptionRequest {
                subscription: Some(v1::Subscription {
                    url,
                    event_types: vec!["bench.*".into()],
                    max_in_flight: 1000,
                    timeout: Some(hookline_proto::Duration { seconds: timeout_secs, nanos: 0 }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    fn publisher(&self) -> EventServiceClient<tonic::service::interceptor::InterceptedService<Channel, BearerToken>> {
        EventServiceClient::with_interceptor(self.events.clone(), self.token.clone())
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn throughput(args: &[u64]) {
    let events = *args.first().unwrap_or(&50_000);
    let subscriptions = *args.get(1).unwrap_or(&1);
    let publishers = *args.get(2).unwrap_or(&4);
    let batch = *args.get(3).unwrap_or(&200);

    let (addr, seen) = receiver().await;
    let (ceiling, at) = raw_ceiling(&format!("http://{addr}/raw")).await;
    let mut pipeline = Pipeline::start().await;
    for i in 0..subscriptions {
        pipeline.subscribe(format!("http://{addr}/hook/{i}"), 15).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // caches load the subscriptions
    let before = seen.healthy.load(Ordering::Relaxed);
    let expected = events * subscriptions;
    let started = Instant::now();
    let per = events.div_ceil(publishers);
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let mut client = pipeline.publisher();
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
    while seen.healthy.load(Ordering::Relaxed) - before < expected {
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

async fn latency(args: &[u64]) {
    let rate = *args.first().unwrap_or(&2000);
    let seconds = *args.get(1).unwrap_or(&10);
    let (addr, seen) = receiver().await;
    let mut pipeline = Pipeline::start().await;
    pipeline.subscribe(format!("http://{addr}/hook"), 15).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // One publish per tick, ticks spread evenly; each event carries its
    // publish time. Publishers run concurrently so a slow reply does not
    // delay the next tick.
    let total = rate * seconds;
    let per_tick = (rate / 1000).max(1);
    let ticks = total / per_tick;
    let interval = Duration::from_secs_f64(seconds as f64 / ticks as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    for _ in 0..ticks {
        ticker.tick().await;
        let mut client = pipeline.publisher();
        tokio::spawn(async move {
            for _ in 0..per_tick {
                let t = epoch().elapsed().as_micros() as u64;
                let payload = format!(r#"{{"t":{t},"order_id":"ord_123","amount":4200}}"#).into_bytes();
                let _ = client
                    .publish(v1::PublishRequest {
                        event_type: "bench.order_paid".into(),
                        payload,
                        ..Default::default()
                    })
                    .await;
            }
        });
    }
    while (seen.latencies_us.lock().unwrap().len() as u64) < ticks * per_tick {
        if started.elapsed() > Duration::from_secs(seconds + 30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut all = seen.latencies_us.lock().unwrap().clone();
    all.sort_unstable();
    println!(
        "latency at {rate} deliveries/s for {seconds} s ({} delivered): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        all.len(),
        percentile(&all, 0.50),
        percentile(&all, 0.95),
        percentile(&all, 0.99),
        percentile(&all, 1.0)
    );
}

async fn isolation_run(events: u64, subscriptions: u64, hanging: u64) -> f64 {
    let (addr, seen) = receiver().await;
    let mut pipeline = Pipeline::start().await;
    for i in 0..subscriptions {
        let path = if i < hanging { format!("/hang/{i}") } else { format!("/hook/{i}") };
        pipeline.subscribe(format!("http://{addr}{path}"), 5).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let healthy_expected = events * (subscriptions - hanging);
    let started = Instant::now();
    let mut client = pipeline.publisher();
    let mut sent = 0;
    while sent < events {
        let n = 100.min(events - sent);
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
    let mut last_report = Instant::now();
    while seen.healthy.load(Ordering::Relaxed) < healthy_expected {
        tokio::time::sleep(Duration::from_millis(2)).await;
        if last_report.elapsed() > Duration::from_secs(5) {
            last_report = Instant::now();
            eprintln!(
                "  {hanging} hanging: {} of {healthy_expected} healthy deliveries after {:.0?}",
                seen.healthy.load(Ordering::Relaxed),
                started.elapsed()
            );
        }
    }
    healthy_expected as f64 / started.elapsed().as_secs_f64()
}

async fn isolation(args: &[u64]) {
    let events = *args.first().unwrap_or(&2000);
    let subscriptions = *args.get(1).unwrap_or(&20);
    let hanging = (subscriptions / 10).max(1);
    let without = isolation_run(events, subscriptions, 0).await;
    let with = isolation_run(events, subscriptions, hanging).await;
    println!(
        "isolation: {events} events x {subscriptions} subscriptions; healthy deliveries/s with none hanging {without:.0}, \
         with {hanging} of {subscriptions} hanging (5 s timeout) {with:.0} = {:.1}%",
        with / without * 100.0
    );
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    // As the binaries run: the OpenTelemetry layer on every span (exporting
    // only if OTEL_EXPORTER_OTLP_ENDPOINT is set); logs at warn unless
    // HOOKLINE_LOG says otherwise.
    let _telemetry = hookline_telemetry::init_with("hookline-bench", "warn");
    epoch();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.first().map(String::as_str) {
        Some("latency" | "isolation") => args.remove(0),
        _ => "throughput".into(),
    };
    let numbers: Vec<u64> = args.iter().map(|a| a.parse().expect("numbers")).collect();
    match mode.as_str() {
        "latency" => latency(&numbers).await,
        "isolation" => isolation(&numbers).await,
        _ => throughput(&numbers).await,
    }
}
