//! `hookline demo`: the whole product in one command. Starts dev mode and
//! a local receiver, subscribes the receiver twice (one endpoint fails its
//! first request on purpose), publishes three events, checks every
//! delivery's Standard Webhooks signature, and tells what happened, with
//! the commands to do it by hand. Exits 0 only if every expected delivery
//! arrived with a valid signature.

use std::{
    collections::HashMap,
    net::SocketAddr,
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{body::Bytes, http::HeaderMap, http::StatusCode, http::Uri};
use hookline_auth::BearerToken;
use hookline_domain::SigningSecret;
use hookline_proto::v1::{
    self, delivery_service_client::DeliveryServiceClient, event_service_client::EventServiceClient,
    subscription_service_client::SubscriptionServiceClient,
};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use crate::dev::{Dev, TENANT_TOKEN};

const WAIT: Duration = Duration::from_secs(30);
const EVENTS: [(&str, &str); 3] = [
    ("order.created", r#"{"order_id":"ord_1001","amount":4200,"currency":"EUR"}"#),
    ("order.paid", r#"{"order_id":"ord_1001","paid_with":"card"}"#),
    ("order.shipped", r#"{"order_id":"ord_1001","carrier":"DHL"}"#),
];

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    #[command(flatten)]
    backend: crate::dev::BackendArgs,
    /// HTTP address of the customer portal the demo leaves open.
    #[arg(long, default_value = "127.0.0.1:0")]
    portal_addr: SocketAddr,
    /// Exit once the story is told, instead of keeping the services and the
    /// customer portal running until Ctrl-C (for scripts).
    #[arg(long)]
    exit: bool,
}

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    status: u16,
}

/// The demo's receiver: `/flaky` answers 503 to its first request.
#[derive(Debug, Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> Result<(Self, SocketAddr), String> {
        let receiver = Self::default();
        let state = receiver.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let mut got = state.got.lock().unwrap_or_else(|e| e.into_inner());
                let first_on_path = !got.iter().any(|r| r.path == uri.path());
                let status = if uri.path() == "/flaky" && first_on_path { 503 } else { 200 };
                got.push(Received {
                    path: uri.path().to_owned(),
                    id: header("webhook-id"),
                    timestamp: header("webhook-timestamp"),
                    signature: header("webhook-signature"),
                    body: body.to_vec(),
                    status,
                });
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok((receiver, addr))
    }

    fn requests(&self) -> Vec<Received> {
        self.got.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn verified(secret: &SigningSecret, r: &Received) -> bool {
    r.timestamp.parse().is_ok_and(|ts| hookline_signing::verify(secret, &r.id, ts, &r.body, &r.signature))
}

type Client = InterceptedService<Channel, BearerToken>;

async fn client(addr: SocketAddr) -> Result<Client, String> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    Ok(InterceptedService::new(channel, BearerToken::new(TENANT_TOKEN).map_err(|e| e.to_string())?))
}

pub(crate) async fn run(args: DemoArgs) -> ExitCode {
    let _telemetry = hookline_telemetry::init_with("hookline-demo", "error");
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let dev = match Dev::start(&args.backend, any, [any, any, any, args.portal_addr]).await {
        Ok(dev) => dev,
        Err(error) => {
            eprintln!("hookline demo: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("hookline demo\n");
    println!(
        "1. Started the three services in this process: subscriptions on {}, fanout on {}, delivery on {}.\n   Data: {}.",
        dev.subscriptions, dev.fanout, dev.delivery, dev.data
    );
    let mut outcome = story(&dev).await;
    if outcome.is_ok() && !args.exit {
        outcome = keep_portal_open(&dev).await;
    }
    let stopped = dev.stop().await;
    match (outcome, stopped) {
        (Ok(()), Ok(())) => ExitCode::SUCCESS,
        (Err(error), _) | (Ok(()), Err(error)) => {
            eprintln!("\nhookline demo FAILED: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Everything after the start; an error names what did not happen.
async fn story(dev: &Dev) -> Result<(), String> {
    let (receiver, receiver_addr) = Receiver::start().await?;
    println!(
        "2. Started a receiver on http://{receiver_addr}: /orders answers 200; /flaky answers 503 once, then 200."
    );

    let mut subscriptions = SubscriptionServiceClient::new(client(dev.subscriptions).await?);
    let mut secrets: HashMap<&str, SigningSecret> = HashMap::new();
    let mut ids: HashMap<&str, String> = HashMap::new();
    for (step, path, name, types, retry) in [
        ("3.", "/orders", "orders", vec!["order.*".to_owned()], None),
        (
            "  ",
            "/flaky",
            "flaky",
            vec!["order.paid".to_owned()],
            Some(v1::RetryPolicy {
                schedule: vec![hookline_proto::Duration { seconds: 1, nanos: 0 }; 3],
                ..Default::default()
            }),
        ),
    ] {
        let subscription = v1::Subscription {
            name: name.into(),
            url: format!("http://{receiver_addr}{path}"),
            event_types: types.clone(),
            retry_policy: retry,
            ..Default::default()
        };
        let created = subscriptions
            .create_subscription(v1::CreateSubscriptionRequest {
                subscription: Some(subscription),
                ..Default::default()
            })
            .await
            .map_err(|s| format!("creating a subscription: {}", s.message()))?
            .into_inner();
        let id = created.subscription.map(|s| s.id).unwrap_or_default();
        println!(
            "{step} Subscribed {path} to {} as {id} (\"{name}\"); its signing secret came back once.",
            types.join(", ")
        );
        secrets.insert(path, SigningSecret::parse(&created.secret).map_err(|e| e.to_string())?);
        ids.insert(path, id);
    }

    let mut events = EventServiceClient::new(client(dev.fanout).await?);
    let mut published: Vec<(String, &str)> = Vec::new();
    for (event_type, payload) in EVENTS {
        let request = v1::PublishRequest {
            event_type: event_type.into(),
            payload: payload.as_bytes().to_vec(),
            idempotency_key: format!("demo-{event_type}"),
            ..Default::default()
        };
        let reply = events.publish(request).await.map_err(|s| format!("publishing: {}", s.message()))?.into_inner();
        published.push((reply.event_id, event_type));
    }
    let listed: Vec<String> = published.iter().map(|(id, t)| format!("{t} ({id})")).collect();
    println!("4. Published {}.", listed.join(", "));

    // Expected: every event at /orders, order.paid at /flaky after a retry.
    let paid = published.iter().find(|(_, t)| *t == "order.paid").map(|(id, _)| id.clone()).unwrap_or_default();
    let accepted = |path: &str| -> Vec<Received> {
        receiver.requests().into_iter().filter(|r| r.path == path && r.status == 200).collect()
    };
    let deadline = Instant::now() + WAIT;
    while !(published.iter().all(|(id, _)| accepted("/orders").iter().any(|r| &r.id == id))
        && accepted("/flaky").iter().any(|r| r.id == paid))
    {
        if Instant::now() > deadline {
            return Err(format!("not every delivery arrived within {WAIT:?}: got {:?}", receiver.requests()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    println!("5. The receiver got:");
    let mut all_valid = true;
    for r in receiver.requests() {
        let secret = secrets.get(r.path.as_str()).ok_or("a request to an unknown path")?;
        let event_type = published.iter().find(|(id, _)| *id == r.id).map_or("?", |(_, t)| *t);
        let valid = verified(secret, &r);
        all_valid &= valid;
        let answer = if r.status == 200 { "answered 200" } else { "answered 503 (on purpose)" };
        let check = if valid { "signature valid" } else { "SIGNATURE INVALID" };
        println!("   POST {:<7} {event_type:<13} webhook-id {}  {answer}, {check}", r.path, r.id);
    }
    if !all_valid {
        return Err("a delivery's signature did not verify".into());
    }

    let mut deliveries = DeliveryServiceClient::new(client(dev.delivery).await?);
    let flaky = deliveries
        .list_deliveries(v1::ListDeliveriesRequest { subscription_id: ids["/flaky"].clone(), ..Default::default() })
        .await
        .map_err(|s| s.message().to_owned())?
        .into_inner()
        .deliveries;
    let retried = flaky.iter().find(|d| d.event_id == paid).ok_or("the delivery service has no record of the retry")?;
    println!(
        "6. Delivery {} to /flaky succeeded at attempt {}: the first failed, the retry (same webhook-id, so receivers can dedupe) went through.",
        retried.id, retried.attempt_count
    );
    println!(
        "\nEvery delivery arrived, signed (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature v1 HMAC-SHA256).\n\
         To do it by hand, keep the services running with `hookline dev`, then:\n\
         \x20 export HOOKLINE_TOKEN={TENANT_TOKEN}\n\
         \x20 hookline subscriptions create --url http://127.0.0.1:8088/hook --event-type 'order.*'\n\
         \x20 WEBHOOK_SECRET=whsec_... python3 deploy/receiver.py 8088   # verifies each signature\n\
         \x20 hookline events publish order.paid '{{\"order_id\":\"ord_1\"}}'\n\
         \x20 hookline deliveries list    # then: deliveries attempts <id>, deliveries replay --subscription <id>"
    );
    Ok(())
}

/// Prints a magic link into the customer portal, then serves until Ctrl-C:
/// the demo's endpoints, deliveries and receiver stay there to try.
async fn keep_portal_open(dev: &Dev) -> Result<(), String> {
    let mut subscriptions = SubscriptionServiceClient::new(client(dev.subscriptions).await?);
    let link = subscriptions
        .create_portal_session(v1::CreatePortalSessionRequest::default())
        .await
        .map_err(|s| format!("creating a portal link: {}", s.message()))?
        .into_inner();
    println!(
        "\n7. The customer portal (what your customers would see) is at http://{portal}. Open this link once, within 15 minutes:\n         \x20  {url}\n         \x20  Another link: HOOKLINE_TOKEN={TENANT_TOKEN} hookline --subscriptions-url http://{subs} portal link\n         \x20  Everything keeps running until Ctrl-C.",
        portal = dev.portal,
        url = link.url,
        subs = dev.subscriptions,
    );
    hookline_server::shutdown_signal().await;
    Ok(())
}
