//! The load: a plain client for the ceiling, and the phases that publish
//! through the pipeline and wait for the receiver to count deliveries.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hookline_proto::v1::{
    self, event_service_client::EventServiceClient, subscription_service_client::SubscriptionServiceClient,
};

use super::{
    BenchError,
    receiver::{Received, clock_us},
    stack::{Client, FANOUT, SUBSCRIPTIONS, Stack},
};

const BODY: &[u8] =
    br#"{"order_id":"ord_123","amount":4200,"currency":"EUR","customer":{"id":"cus_9","email":"a@b.c"}}"#;
const PUBLISHERS: u64 = 4;
const BATCH: u64 = 200;
/// How long a phase may wait for its last delivery.
const DRAIN: Duration = Duration::from_secs(120);

/// The best POST rate of a plain `reqwest` client to the receiver over a
/// concurrency sweep, and the concurrency that reached it.
pub(super) async fn ceiling(receiver: SocketAddr, each: Duration) -> (f64, usize) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(1024).build().unwrap_or_default();
    let url = format!("http://{receiver}/raw/0");
    let mut best = (0.0, 0);
    for concurrency in [16, 64, 256] {
        let sent = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + each;
        let started = Instant::now();
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                let (client, sent, url) = (client.clone(), sent.clone(), url.clone());
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let response = client.post(&url).header("content-type", "application/json").body(BODY).send();
                        if response.await.is_ok_and(|r| r.status().is_success()) {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            let _ = worker.await;
        }
        let rate = sent.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
        eprintln!("  concurrency {concurrency:>3}: {rate:>8.0} POSTs/s");
        if rate > best.0 {
            best = (rate, concurrency);
        }
    }
    best
}

pub(super) struct Pipeline {
    /// The throughput phases spread events over these; the others use the
    /// first.
    tenants: Vec<String>,
    subscriptions: SubscriptionServiceClient<Client>,
    events: EventServiceClient<Client>,
    receiver: SocketAddr,
    received: Arc<Received>,
}

impl Pipeline {
    pub(super) async fn new(
        stack: &Stack,
        tenants: Vec<String>,
        receiver: SocketAddr,
        received: Arc<Received>,
    ) -> Result<Self, BenchError> {
        Ok(Self {
            tenants,
            subscriptions: SubscriptionServiceClient::new(stack.client(SUBSCRIPTIONS).await?),
            events: EventServiceClient::new(stack.client(FANOUT).await?)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
            receiver,
            received,
        })
    }

    /// Subscriptions of `tenant` to `event_type` at `/<path>/<i>` for each
    /// i in `ids`, created by 8 concurrent callers.
    async fn subscribe(
        &self,
        tenant: &str,
        event_type: &str,
        path: &str,
        ids: std::ops::Range<u64>,
        timeout_secs: i64,
    ) -> Result<(), BenchError> {
        let next = Arc::new(AtomicU64::new(ids.start));
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let (mut client, next) = (self.subscriptions.clone(), next.clone());
                let (event_type, base) = (event_type.to_owned(), format!("http://{}/{path}", self.receiver));
                let tenant = tenant.to_owned();
                let end = ids.end;
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= end {
                            return Ok::<(), tonic::Status>(());
                        }
                        let subscription = v1::Subscription {
                            tenant_id: tenant.clone(),
                            url: format!("{base}/{i}"),
                            event_types: vec![event_type.clone()],
                            timeout: Some(hookline_proto::Duration { seconds: timeout_secs, nanos: 0 }),
                            ..Default::default()
                        };
                        let request =
                            v1::CreateSubscriptionRequest { subscription: Some(subscription), ..Default::default() };
                        // ABORTED: another create of the tenant won the race; retry.
                        while let Err(status) = client.create_subscription(request.clone()).await {
                            if status.code() != tonic::Code::Aborted {
                                return Err(status);
                            }
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.await.map_err(|e| BenchError::Setup(e.to_string()))??;
        }
        Ok(())
    }

    /// Waits until the receiver's `counter` reaches `expected`; the time
    /// since `since`.
    async fn delivered(
        &self,
        phase: &'static str,
        counter: &str,
        expected: u64,
        since: Instant,
    ) -> Result<Duration, BenchError> {
        let count = self.received.counter(counter);
        let deadline = Instant::now() + DRAIN;
        while count.load(Ordering::Relaxed) < expected {
            if Instant::now() > deadline {
                let got = count.load(Ordering::Relaxed);
                return Err(BenchError::Missing { phase, got, expected, waited: since.elapsed() });
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        Ok(since.elapsed())
    }

    /// Publishes `events` events of `event_type` in batches from concurrent
    /// publishers, spread round-robin over `tenants`.
    async fn publish_batches(
        &self,
        tenants: &[String],
        event_type: &str,
        events: u64,
        publishers: u64,
        batch: u64,
    ) -> Result<(), BenchError> {
        let per = events.div_ceil(publishers);
        let tasks: Vec<_> = (0..publishers)
            .map(|p| {
                let mut client = self.events.clone();
                let count = per.min(events.saturating_sub(p * per));
                let event_type = event_type.to_owned();
                let tenants = tenants.to_vec();
                tokio::spawn(async move {
                    let mut sent = 0;
                    while sent < count {
                        let n = batch.min(count - sent);
                        let items = (0..n)
                            .map(|i| v1::PublishRequest {
                                tenant_id: tenants[((p + sent + i) % tenants.len() as u64) as usize].clone(),
                                event_type: event_type.clone(),
                                payload: BODY.to_vec(),
                                ..Default::default()
                            })
                            .collect();
                        client.publish_batch(v1::PublishBatchRequest { events: items }).await?;
                        sent += n;
                    }
                    Ok::<(), tonic::Status>(())
                })
            })
            .collect();
        for task in tasks {
            task.await.map_err(|e| BenchError::Setup(e.to_string()))??;
        }
        Ok(())
    }

    /// Deliveries/s of `events` events, each to one subscription (one per
    /// tenant), from the first publish to the last delivery.
    pub(super) async fn throughput(&mut self, events: u64) -> Result<f64, BenchError> {
        for (i, tenant) in self.tenants.iter().enumerate() {
            self.subscribe(tenant, "bench.throughput", "t", i as u64..i as u64 + 1, 30).await?;
        }
        let started = Instant::now();
        self.publish_batches(&self.tenants, "bench.throughput", events, PUBLISHERS, BATCH).await?;
        let took = self.delivered("throughput", "t", events, started).await?;
        Ok(events as f64 / took.as_secs_f64())
    }

    /// Deliveries/s of `deliveries` deliveries made of events that each
    /// fan out to `subscriptions` subscriptions.
    pub(super) async fn fanout_throughput(&mut self, deliveries: u64, subscriptions: u64) -> Result<f64, BenchError> {
        let name = format!("ft{subscriptions}");
        let event_type = format!("bench.{name}");
        for (i, tenant) in self.tenants.iter().enumerate() {
            let first = i as u64 * subscriptions;
            self.subscribe(tenant, &event_type, &name, first..first + subscriptions, 30).await?;
        }
        let events = deliveries.div_ceil(subscriptions);
        let batch = BATCH.min(events.div_ceil(PUBLISHERS));
        let started = Instant::now();
        self.publish_batches(&self.tenants, &event_type, events, PUBLISHERS, batch).await?;
        let took = self.delivered("fan-out throughput", &name, events * subscriptions, started).await?;
        Ok((events * subscriptions) as f64 / took.as_secs_f64())
    }

    /// Publish-to-receive latency percentiles (p50, p95, p99, max; ms) of
    /// `rate` events/s for `secs` s, each published on its own.
    pub(super) async fn latency(&mut self, name: &str, rate: u64, secs: u64) -> Result<[f64; 4], BenchError> {
        let event_type = format!("bench.{name}");
        let tenant = self.tenants[0].clone();
        self.subscribe(&tenant, &event_type, name, 0..1, 30).await?;
        let _ = self.received.take_latencies();
        let rate = rate.max(1);
        let per_tick = (rate / 1000).max(1);
        let ticks = (rate * secs / per_tick).max(1);
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(secs as f64 / ticks as f64));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let started = Instant::now();
        for _ in 0..ticks {
            ticker.tick().await;
            let mut client = self.events.clone();
            let (event_type, tenant_id) = (event_type.clone(), tenant.clone());
            tokio::spawn(async move {
                for _ in 0..per_tick {
                    let payload = format!(r#"{{"t":{},"order_id":"ord_123","amount":4200}}"#, clock_us()).into_bytes();
                    let (event_type, tenant_id) = (event_type.clone(), tenant_id.clone());
                    let request = v1::PublishRequest { tenant_id, event_type, payload, ..Default::default() };
                    let _ = client.publish(request).await;
                }
            });
        }
        let phase = "latency";
        self.delivered(phase, name, ticks * per_tick, started).await?;
        let mut all = self.received.take_latencies();
        all.sort_unstable();
        let at = |p: f64| {
            all.get(((all.len().saturating_sub(1)) as f64 * p).round() as usize).map_or(0.0, |us| *us as f64 / 1000.0)
        };
        Ok([at(0.50), at(0.95), at(0.99), at(1.0)])
    }

    /// Time from publishing one event to its delivery to every one of
    /// `subscriptions` subscriptions.
    pub(super) async fn fanout(&mut self, subscriptions: u64) -> Result<Duration, BenchError> {
        let name = format!("f{subscriptions}");
        let event_type = format!("bench.{name}");
        let tenant_id = self.tenants[0].clone();
        self.subscribe(&tenant_id, &event_type, &name, 0..subscriptions, 30).await?;
        let started = Instant::now();
        let request = v1::PublishRequest { tenant_id, event_type, payload: BODY.to_vec(), ..Default::default() };
        self.events.publish(request).await?;
        self.delivered("fan-out", &name, subscriptions, started).await
    }

    /// Healthy deliveries/s of `events` events to 20 subscriptions, of
    /// which `hanging` point at an endpoint that never answers (5 s
    /// timeout).
    pub(super) async fn isolation(&mut self, name: &str, events: u64, hanging: u64) -> Result<f64, BenchError> {
        let event_type = format!("bench.{name}");
        let tenant = &self.tenants[..1];
        self.subscribe(&tenant[0], &event_type, &format!("hang/{name}"), 0..hanging, 5).await?;
        self.subscribe(&tenant[0], &event_type, name, hanging..20, 5).await?;
        let started = Instant::now();
        self.publish_batches(tenant, &event_type, events, 1, 100).await?;
        let healthy = events * (20 - hanging);
        let took = self.delivered("isolation", name, healthy, started).await?;
        Ok(healthy as f64 / took.as_secs_f64())
    }
}
