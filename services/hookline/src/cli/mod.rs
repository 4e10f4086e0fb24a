//! The operator CLI: the three services' gRPC APIs from a shell, with the
//! same bearer-token auth as any client. Tables for people, `--output
//! json` for scripts. Exit codes: 0 done, 1 the service refused the call
//! (the gRPC status is printed as one line), 2 bad usage, 3 a service
//! could not be reached.

mod output;

use std::process::ExitCode;

use hookline_auth::BearerToken;
use hookline_proto::v1::{
    self, delivery_service_client::DeliveryServiceClient, event_service_client::EventServiceClient,
    subscription_service_client::SubscriptionServiceClient,
};
use output::{Output, Render};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

type Client = InterceptedService<Channel, BearerToken>;

/// Where the services are and who is calling.
#[derive(Debug, clap::Args)]
pub(crate) struct Connection {
    /// The subscription service.
    #[arg(long, env = "HOOKLINE_SUBSCRIPTIONS_URL", default_value = "http://127.0.0.1:50051", global = true)]
    subscriptions_url: String,
    /// The fanout service (events).
    #[arg(long, env = "HOOKLINE_FANOUT_URL", default_value = "http://127.0.0.1:50052", global = true)]
    fanout_url: String,
    /// The delivery service.
    #[arg(long, env = "HOOKLINE_DELIVERY_URL", default_value = "http://127.0.0.1:50053", global = true)]
    delivery_url: String,
    /// A bearer token (a tenant's, or an admin's).
    #[arg(long, env = "HOOKLINE_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// How to print results.
    #[arg(long, short, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Subscriptions {
    /// Create a subscription; prints it and its signing secret (shown once).
    Create {
        /// The endpoint that receives the webhooks.
        #[arg(long)]
        url: String,
        /// Event types: exact names, `*`, or prefix globs (`lead_*`). Repeat or comma-separate.
        #[arg(long = "event-type", required = true, value_delimiter = ',')]
        event_types: Vec<String>,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List the tenant's subscriptions.
    List,
    Get {
        id: String,
    },
    /// Hold deliveries until `resume`.
    Pause {
        id: String,
        #[arg(long, default_value = "paused from the CLI")]
        reason: String,
    },
    Resume {
        id: String,
    },
    Delete {
        id: String,
    },
    /// A new signing secret; the old one keeps signing beside it for the grace period.
    RotateSecret {
        id: String,
        /// How long the previous secret stays valid, in seconds.
        #[arg(long, default_value_t = 86_400)]
        grace_secs: i64,
    },
    /// Send a signed test event to the subscription now and show the answer.
    Test {
        id: String,
        #[arg(long, default_value = "")]
        event_type: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Events {
    /// Publish one event; prints its id.
    Publish {
        event_type: String,
        /// The JSON payload.
        payload: String,
        /// Publishing twice with one key publishes once.
        #[arg(long, default_value = "")]
        idempotency_key: String,
    },
    Get {
        id: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Deliveries {
    /// List deliveries, newest first.
    List {
        #[arg(long, default_value = "")]
        subscription: String,
        #[arg(long, default_value = "")]
        event: String,
    },
    Get {
        id: String,
    },
    /// Attempt a delivery again now.
    Retry {
        id: String,
    },
    /// Counters of a subscription (or, without one, of the whole tenant).
    Summary {
        #[arg(long, default_value = "")]
        subscription: String,
    },
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Connect(String),
    #[error("{}: {}", code_name(.0.code()), .0.message())]
    Refused(#[from] tonic::Status),
}

fn code_name(code: tonic::Code) -> String {
    format!("{code:?}")
}

impl Connection {
    async fn client(&self, url: &str) -> Result<Client, CliError> {
        let token = self
            .token
            .as_deref()
            .ok_or_else(|| CliError::Connect("no token: pass --token or set HOOKLINE_TOKEN".into()))?;
        let token = BearerToken::new(token).map_err(|e| CliError::Connect(format!("token: {e}")))?;
        let channel = Channel::from_shared(url.to_owned())
            .map_err(|e| CliError::Connect(format!("{url}: {e}")))?
            .connect()
            .await
            .map_err(|e| CliError::Connect(format!("cannot reach {url}: {e}")))?;
        Ok(InterceptedService::new(channel, token))
    }

    /// Runs `call` and prints its result; the exit code.
    pub(crate) async fn run<F, Fut, R>(&self, url: &str, call: F) -> ExitCode
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<R, tonic::Status>>,
        R: Render,
    {
        let result = match self.client(url).await {
            Ok(client) => call(client).await.map_err(CliError::from),
            Err(error) => Err(error),
        };
        match result {
            Ok(value) => {
                println!("{}", value.render(self.output));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(if matches!(error, CliError::Connect(_)) { 3 } else { 1 })
            }
        }
    }
}

pub(crate) async fn subscriptions(conn: Connection, command: Subscriptions) -> ExitCode {
    let url = &conn.subscriptions_url.clone();
    let client = SubscriptionServiceClient::new;
    match command {
        Subscriptions::Create { url: endpoint, event_types, name } => {
            let subscription = v1::Subscription { url: endpoint, event_types, name, ..Default::default() };
            let request = v1::CreateSubscriptionRequest { subscription: Some(subscription), ..Default::default() };
            conn.run(url, |c| async move { Ok(client(c).create_subscription(request).await?.into_inner()) }).await
        }
        Subscriptions::List => {
            let request = v1::ListSubscriptionsRequest { page_size: 1000, ..Default::default() };
            conn.run(
                url,
                |c| async move { Ok(client(c).list_subscriptions(request).await?.into_inner().subscriptions) },
            )
            .await
        }
        Subscriptions::Get { id } => {
            let request = v1::GetSubscriptionRequest { id };
            conn.run(url, |c| async move { Ok(client(c).get_subscription(request).await?.into_inner()) }).await
        }
        Subscriptions::Pause { id, reason } => {
            let request = v1::PauseSubscriptionRequest { id, reason, ..Default::default() };
            conn.run(url, |c| async move { Ok(client(c).pause_subscription(request).await?.into_inner()) }).await
        }
        Subscriptions::Resume { id } => {
            let request = v1::ResumeSubscriptionRequest { id };
            conn.run(url, |c| async move { Ok(client(c).resume_subscription(request).await?.into_inner()) }).await
        }
        Subscriptions::RotateSecret { id, grace_secs } => {
            let grace_period = Some(hookline_proto::Duration { seconds: grace_secs, nanos: 0 });
            let request = v1::RotateSecretRequest { id, grace_period, ..Default::default() };
            conn.run(url, |c| async move { Ok(client(c).rotate_secret(request).await?.into_inner()) }).await
        }
        Subscriptions::Test { id, event_type } => {
            let request = v1::SendTestEventRequest { subscription_id: id, event_type, ..Default::default() };
            let url = &conn.delivery_url.clone();
            conn.run(
                url,
                |c| async move { Ok(DeliveryServiceClient::new(c).send_test_event(request).await?.into_inner()) },
            )
            .await
        }
        Subscriptions::Delete { id } => {
            let request = v1::DeleteSubscriptionRequest { id: id.clone(), version: 0 };
            conn.run(url, |c| async move {
                client(c).delete_subscription(request).await?;
                Ok(output::Deleted(id))
            })
            .await
        }
    }
}

pub(crate) async fn events(conn: Connection, command: Events) -> ExitCode {
    let url = &conn.fanout_url.clone();
    let client = EventServiceClient::new;
    match command {
        Events::Publish { event_type, payload, idempotency_key } => {
            let request =
                v1::PublishRequest { event_type, payload: payload.into_bytes(), idempotency_key, ..Default::default() };
            conn.run(url, |c| async move { Ok(client(c).publish(request).await?.into_inner()) }).await
        }
        Events::Get { id } => {
            let request = v1::GetEventRequest { id };
            conn.run(url, |c| async move { Ok(client(c).get_event(request).await?.into_inner()) }).await
        }
    }
}

pub(crate) async fn deliveries(conn: Connection, command: Deliveries) -> ExitCode {
    let url = &conn.delivery_url.clone();
    let client = DeliveryServiceClient::new;
    match command {
        Deliveries::List { subscription, event } => {
            let request = v1::ListDeliveriesRequest {
                subscription_id: subscription,
                event_id: event,
                page_size: 1000,
                ..Default::default()
            };
            conn.run(url, |c| async move { Ok(client(c).list_deliveries(request).await?.into_inner().deliveries) })
                .await
        }
        Deliveries::Get { id } => {
            let request = v1::GetDeliveryRequest { id };
            conn.run(url, |c| async move { Ok(client(c).get_delivery(request).await?.into_inner()) }).await
        }
        Deliveries::Retry { id } => {
            let request = v1::RetryDeliveryRequest { id };
            conn.run(url, |c| async move { Ok(client(c).retry_delivery(request).await?.into_inner()) }).await
        }
        Deliveries::Summary { subscription } => {
            let request = v1::GetDeliverySummaryRequest { subscription_id: subscription, ..Default::default() };
            conn.run(url, |c| async move { Ok(client(c).get_delivery_summary(request).await?.into_inner()) }).await
        }
    }
}
