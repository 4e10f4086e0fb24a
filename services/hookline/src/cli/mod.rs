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
        /// Attempts per delivery, the first included (1..=30); 0: the default (15 over about a day).
        #[arg(long, default_value_t = 0)]
        max_attempts: u32,
    },
    /// Change some fields of a subscription (only the flags given).
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true)
        .args(["name", "url", "event_types", "headers", "max_in_flight"])))]
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        url: Option<String>,
        /// Replaces the event types. Repeat or comma-separate.
        #[arg(long = "event-type", value_delimiter = ',')]
        event_types: Option<Vec<String>>,
        /// Replaces the extra headers: `Name=value`, repeated.
        #[arg(long = "header", value_parser = parse_header)]
        headers: Option<Vec<(String, String)>>,
        /// Requests in flight at once (0: no limit).
        #[arg(long)]
        max_in_flight: Option<u32>,
        /// Refuse the update if someone changed the subscription since this version.
        #[arg(long, default_value_t = 0)]
        version: i64,
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
    /// Every attempt of a delivery: time, status, error, duration.
    Attempts {
        id: String,
    },
    /// Send a subscription's dead-lettered (or other) deliveries again,
    /// showing progress; the replay goes on if interrupted.
    Replay {
        #[arg(long)]
        subscription: String,
        /// Which deliveries.
        #[arg(long, value_enum, default_value_t = ReplayStatus::DeadLettered)]
        status: ReplayStatus,
    },
    /// Counters of a subscription (or, without one, of the whole tenant).
    Summary {
        #[arg(long, default_value = "")]
        subscription: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum EventTypes {
    /// Add an event type to the tenant's catalog (or restore an archived one).
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// The tenant's catalog.
    List {
        /// Archived types too.
        #[arg(long)]
        archived: bool,
    },
    /// Take an event type out of use (a strict catalog then refuses it).
    Archive { name: String },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Portal {
    /// A one-time magic link into the customer portal for one of the
    /// tenant's subscribers (a tenant token, or an admin token with --tenant).
    Link {
        /// The tenant (with an admin token; a tenant token names its own).
        #[arg(long, default_value = "")]
        tenant: String,
        /// The session may look but not change anything.
        #[arg(long)]
        read_only: bool,
        /// How long the session lasts once opened ("30m", "2h"); default:
        /// the service's (1 h).
        #[arg(long, value_parser = humantime_serde::re::humantime::parse_duration)]
        lifetime: Option<std::time::Duration>,
        /// Limit the session to part of the tenant, `label=value[,value]`
        /// (e.g. `account_id=12`); repeat for more labels. It then sees and
        /// makes only subscriptions within that scope.
        #[arg(long = "scope", value_parser = parse_header)]
        scope: Vec<(String, String)>,
    },
    /// End a portal session now (its link too, if not yet opened): every
    /// service refuses it from then on.
    End {
        /// The session's id ("ps_...", printed by `portal link`).
        session_id: String,
        /// The tenant (with an admin token; a tenant token names its own).
        #[arg(long, default_value = "")]
        tenant: String,
    },
}

/// `name=value`: a header (`Name=value`) or a scope label (`label=a,b`).
fn parse_header(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{text}`: write it as name=value"))
}

/// The delivery states a replay can pick.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ReplayStatus {
    DeadLettered,
    Succeeded,
    Cancelled,
    Scheduled,
    Held,
    Pending,
}

impl From<ReplayStatus> for v1::DeliveryStatus {
    fn from(status: ReplayStatus) -> Self {
        match status {
            ReplayStatus::DeadLettered => Self::DeadLettered,
            ReplayStatus::Succeeded => Self::Succeeded,
            ReplayStatus::Cancelled => Self::Cancelled,
            ReplayStatus::Scheduled => Self::Scheduled,
            ReplayStatus::Held => Self::Held,
            ReplayStatus::Pending => Self::Pending,
        }
    }
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
        Subscriptions::Create { url: endpoint, event_types, name, max_attempts } => {
            let retry_policy = (max_attempts > 0).then(|| v1::RetryPolicy { max_attempts, ..Default::default() });
            let subscription =
                v1::Subscription { url: endpoint, event_types, name, retry_policy, ..Default::default() };
            let request = v1::CreateSubscriptionRequest { subscription: Some(subscription), ..Default::default() };
            conn.run(url, |c| async move { Ok(client(c).create_subscription(request).await?.into_inner()) }).await
        }
        Subscriptions::Update { id, name, url: endpoint, event_types, headers, max_in_flight, version } => {
            let mut subscription = v1::Subscription { id, version, ..Default::default() };
            let mut paths = Vec::new();
            if let Some(name) = name {
                subscription.name = name;
                paths.push("name");
            }
            if let Some(endpoint) = endpoint {
                subscription.url = endpoint;
                paths.push("url");
            }
            if let Some(event_types) = event_types {
                subscription.event_types = event_types;
                paths.push("event_types");
            }
            if let Some(headers) = headers {
                subscription.headers = headers.into_iter().collect();
                paths.push("headers");
            }
            if let Some(max_in_flight) = max_in_flight {
                subscription.max_in_flight = max_in_flight;
                paths.push("max_in_flight");
            }
            let update_mask = Some(hookline_proto::FieldMask { paths: paths.into_iter().map(str::to_owned).collect() });
            let request =
                v1::UpdateSubscriptionRequest { subscription: Some(subscription), update_mask, ..Default::default() };
            conn.run(url, |c| async move { Ok(client(c).update_subscription(request).await?.into_inner()) }).await
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

/// Follows a replay's progress stream, showing a live count on a terminal.
async fn replay(
    mut client: DeliveryServiceClient<Client>,
    request: v1::ReplayDeliveriesRequest,
) -> Result<v1::ReplayProgress, tonic::Status> {
    use std::io::{IsTerminal, Write};
    let live = std::io::stderr().is_terminal();
    let mut stream = client.replay_deliveries(request).await?.into_inner();
    let mut last = v1::ReplayProgress::default();
    while let Some(progress) = stream.message().await? {
        if live {
            eprint!("\rreplaying: {} deliveries queued again", progress.replayed);
            let _ = std::io::stderr().flush();
        }
        let done = progress.done;
        last = progress;
        if done {
            break;
        }
    }
    if live {
        eprintln!();
    }
    Ok(last)
}

pub(crate) async fn event_types(conn: Connection, command: EventTypes) -> ExitCode {
    let url = &conn.subscriptions_url.clone();
    let client = SubscriptionServiceClient::new;
    match command {
        EventTypes::Create { name, description } => {
            let event_type = v1::EventType { name, description, ..Default::default() };
            let request = v1::CreateEventTypeRequest { event_type: Some(event_type), ..Default::default() };
            conn.run(url, |c| async move { Ok(client(c).create_event_type(request).await?.into_inner()) }).await
        }
        EventTypes::List { archived } => {
            let request =
                v1::ListEventTypesRequest { page_size: 1000, include_archived: archived, ..Default::default() };
            conn.run(url, |c| async move { Ok(client(c).list_event_types(request).await?.into_inner().event_types) })
                .await
        }
        EventTypes::Archive { name } => {
            let request = v1::ArchiveEventTypeRequest { name, ..Default::default() };
            conn.run(url, |c| async move { Ok(client(c).archive_event_type(request).await?.into_inner()) }).await
        }
    }
}

pub(crate) async fn portal(conn: Connection, command: Portal) -> ExitCode {
    let url = &conn.subscriptions_url.clone();
    let (tenant, read_only, lifetime, scope) = match command {
        Portal::Link { tenant, read_only, lifetime, scope } => (tenant, read_only, lifetime, scope),
        Portal::End { session_id, tenant } => {
            let request = v1::EndPortalSessionRequest { session_id: session_id.clone(), tenant_id: tenant };
            return conn
                .run(url, |c| async move {
                    SubscriptionServiceClient::new(c).end_portal_session(request).await?;
                    Ok(output::Ended(session_id))
                })
                .await;
        }
    };
    let session_lifetime = match lifetime.map(prost_types::Duration::try_from).transpose() {
        Ok(lifetime) => lifetime,
        Err(e) => {
            eprintln!("error: --lifetime: {e}");
            return ExitCode::from(2);
        }
    };
    let scope = scope
        .into_iter()
        .map(|(label, values)| {
            let values = values.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect();
            (label, v1::ScopeValues { values })
        })
        .collect();
    let request = v1::CreatePortalSessionRequest { tenant_id: tenant, read_only, session_lifetime, scope };
    conn.run(url, |c| async move {
        Ok(SubscriptionServiceClient::new(c).create_portal_session(request).await?.into_inner())
    })
    .await
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
        Deliveries::Attempts { id } => {
            let request = v1::ListAttemptsRequest { delivery_id: id, page_size: 1000, ..Default::default() };
            conn.run(url, |c| async move { Ok(client(c).list_attempts(request).await?.into_inner().attempts) }).await
        }
        Deliveries::Replay { subscription, status } => {
            let status = v1::DeliveryStatus::from(status) as i32;
            let request = v1::ReplayDeliveriesRequest { subscription_id: subscription, status, ..Default::default() };
            conn.run(url, |c| async move { replay(client(c), request).await }).await
        }
        Deliveries::Summary { subscription } => {
            let request = v1::GetDeliverySummaryRequest { subscription_id: subscription, ..Default::default() };
            conn.run(url, |c| async move { Ok(client(c).get_delivery_summary(request).await?.into_inner()) }).await
        }
    }
}
