//! `hookline dev`: subscriptions, fanout, delivery and the customer portal in
//! this one process, each still behind its own server and talking to the
//! others only over gRPC and the streams, exactly as when deployed apart.
//!
//! The data lives in the embedded backend (`hookline-embedded`: in this
//! process, in memory, gone on exit) unless `--redis-url` names a Redis or
//! `--redis-server` names a binary to start for the run. Dev mode is
//! insecure on purpose, and says so: fixed well-known tokens, and
//! deliveries to loopback addresses allowed so a receiver on this machine
//! can get them.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use hookline_auth::{AuthConfig, TokenConfig};
use hookline_embedded::EmbeddedRedis;
use tokio::{net::TcpListener, process::Child, sync::watch, task::JoinHandle};

/// The tenant `acme`'s token in dev mode (the same as `deploy/run-local.sh`).
pub(crate) const TENANT_TOKEN: &str = "dev-acme-token-000001";
/// An admin token in dev mode (names the tenant in each request).
pub(crate) const ADMIN_TOKEN: &str = "dev-admin-token-000001";
const SERVICE_TOKEN: &str = "dev-service-token-00001";
/// Signs portal sessions in dev mode (well known, like the tokens).
const PORTAL_KEY: &str = "dev-portal-key-not-secret-0000000001";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where dev mode keeps its data; by default the embedded backend.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct BackendArgs {
    /// Use this Redis (`redis://…` or `redis+cluster://…`) instead of the
    /// embedded in-memory backend.
    #[arg(long, env = "HOOKLINE_DEV_REDIS_URL", conflicts_with = "redis_server")]
    pub(crate) redis_url: Option<String>,
    /// Start this redis-server binary for the run (on a spare port, nothing
    /// kept) instead of using the embedded backend.
    #[arg(long, value_name = "PATH")]
    pub(crate) redis_server: Option<PathBuf>,
}

/// What holds the data while dev mode runs.
#[derive(Debug)]
#[expect(dead_code, reason = "held only to be dropped after the services stop")]
enum Backing {
    /// A Redis someone else runs.
    External,
    /// A private redis-server, killed on drop.
    Process(Child),
    Embedded(EmbeddedRedis),
}

#[derive(Debug, clap::Args)]
pub(crate) struct DevArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// Where the embedded backend listens (it speaks the Redis protocol, so
    /// `redis-cli -p 6390` can look inside).
    #[arg(long, default_value = "127.0.0.1:6390")]
    embedded_addr: SocketAddr,
    /// gRPC address of the subscription service.
    #[arg(long, default_value = "127.0.0.1:50051")]
    subscriptions_addr: SocketAddr,
    /// gRPC address of the fanout service (Publish).
    #[arg(long, default_value = "127.0.0.1:50052")]
    fanout_addr: SocketAddr,
    /// gRPC address of the delivery service.
    #[arg(long, default_value = "127.0.0.1:50053")]
    delivery_addr: SocketAddr,
    /// HTTP address of the customer portal.
    #[arg(long, default_value = "127.0.0.1:8080")]
    portal_addr: SocketAddr,
}

/// The services running in this process.
#[derive(Debug)]
pub(crate) struct Dev {
    pub(crate) subscriptions: SocketAddr,
    pub(crate) fanout: SocketAddr,
    pub(crate) delivery: SocketAddr,
    /// The customer portal (HTTP).
    pub(crate) portal: SocketAddr,
    /// Where the data is, in words.
    pub(crate) data: String,
    stop: watch::Sender<bool>,
    services: Vec<(&'static str, JoinHandle<Result<(), String>>)>,
    /// Dropped after the services stop.
    _backing: Backing,
}

impl Dev {
    /// Starts the backend (unless a Redis is given; the embedded one on
    /// `embedded_addr`) and the services on `addrs` (port 0: any free
    /// port), and waits until all three are SERVING.
    pub(crate) async fn start(
        backend: &BackendArgs,
        embedded_addr: SocketAddr,
        addrs: [SocketAddr; 4],
    ) -> Result<Self, String> {
        let (redis_url, backing, data) = match (&backend.redis_url, &backend.redis_server) {
            (Some(url), _) => (url.clone(), Backing::External, url.clone()),
            (None, Some(binary)) => {
                let port = crate::local::free_port()?;
                let child = crate::local::redis_server(binary, port, crate::local::RedisRole::Alone).await?;
                let url = format!("redis://127.0.0.1:{port}");
                (url.clone(), Backing::Process(child), format!("a private redis-server at {url}, emptied on exit"))
            }
            (None, None) => {
                let embedded = EmbeddedRedis::start(embedded_addr)
                    .map_err(|e| format!("{e} (choose another with --embedded-addr)"))?;
                tracing::warn!(
                    addr = %embedded.addr(),
                    "embedded backend: in memory, in this process, not durable; use --redis-url for anything that must survive"
                );
                let words =
                    format!("the embedded backend at {} (in memory, this process only, gone on exit)", embedded.url());
                (embedded.url(), Backing::Embedded(embedded), words)
            }
        };
        let (subscriptions_listener, subscriptions) = bind(addrs[0]).await?;
        let (fanout_listener, fanout) = bind(addrs[1]).await?;
        let (delivery_listener, delivery) = bind(addrs[2]).await?;
        let (portal_listener, portal) = bind(addrs[3]).await?;
        let auth = AuthConfig {
            tokens: vec![
                TokenConfig { token: TENANT_TOKEN.into(), tenant: Some("acme".into()), admin: false },
                TokenConfig { token: ADMIN_TOKEN.into(), tenant: None, admin: true },
            ],
            service_token: Some(SERVICE_TOKEN.into()),
            portal_key: Some(PORTAL_KEY.into()),
        };
        let (stop, stopped) = watch::channel(false);
        let shutdown = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let mut services = Vec::new();

        let config = hookline_subscriptions::Config {
            redis_url: redis_url.clone(),
            auth: auth.clone(),
            listen_addr: subscriptions,
            portal: hookline_subscriptions::PortalSection {
                public_url: format!("http://{portal}"),
                ..Default::default()
            },
            ..Default::default()
        };
        let serving = hookline_subscriptions::serve(config, subscriptions_listener, shutdown());
        services.push(("subscriptions", spawn(serving)));

        let config = hookline_fanout::Config {
            redis_url: redis_url.clone(),
            auth: auth.clone(),
            listen_addr: fanout,
            subscriptions_url: format!("http://{subscriptions}"),
            ..Default::default()
        };
        services.push(("fanout", spawn(hookline_fanout::serve(config, fanout_listener, shutdown()))));

        tracing::warn!(
            "DEV MODE: well-known tokens, and deliveries to loopback (127.0.0.0/8, ::1) allowed; never expose it"
        );
        let config = hookline_delivery::Config {
            redis_url,
            auth,
            listen_addr: delivery,
            subscriptions_url: format!("http://{subscriptions}"),
            fanout_url: Some(format!("http://{fanout}")),
            allow_cidrs: vec!["127.0.0.0/8".parse().map_err(|_| "cidr")?, "::1/128".parse().map_err(|_| "cidr")?],
            ..Default::default()
        };
        services.push(("delivery", spawn(hookline_delivery::serve(config, delivery_listener, shutdown()))));

        let config = hookline_portal::Config {
            listen_addr: portal,
            subscriptions_url: format!("http://{subscriptions}"),
            delivery_url: format!("http://{delivery}"),
            // Plain HTTP on this machine: a Secure cookie would not be kept.
            secure_cookies: false,
            ..Default::default()
        };
        services.push(("portal", spawn(hookline_portal::serve(config, portal_listener, shutdown()))));

        let dev = Self { subscriptions, fanout, delivery, portal, data, stop, services, _backing: backing };
        for (name, addr) in [("subscriptions", subscriptions), ("fanout", fanout), ("delivery", delivery)] {
            crate::local::wait_serving(name, addr, START_TIMEOUT).await?;
        }
        Ok(dev)
    }

    /// Shuts the services down (each drains as on SIGTERM); the first
    /// error any of them ended with.
    pub(crate) async fn stop(self) -> Result<(), String> {
        let _ = self.stop.send(true);
        let mut result = Ok(());
        for (name, task) in self.services {
            let ended = task.await.map_err(|e| e.to_string()).and_then(|r| r);
            if let Err(error) = ended {
                result = result.and(Err(format!("{name}: {error}")));
            }
        }
        result
    }
}

fn spawn<E: std::fmt::Display>(
    service: impl Future<Output = Result<(), E>> + Send + 'static,
) -> JoinHandle<Result<(), String>> {
    tokio::spawn(async move { service.await.map_err(|e| e.to_string()) })
}

/// Binds `addr` (port 0: any free port); the listener and its address.
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), String> {
    let listener = TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    Ok((listener, bound))
}

/// `hookline dev`: runs until SIGTERM or Ctrl-C.
pub(crate) async fn run(args: DevArgs) -> ExitCode {
    let _telemetry = hookline_telemetry::init("hookline-dev");
    // Listen for SIGTERM / Ctrl-C from the start, so a stop during start-up
    // is a clean stop too.
    let (signalled, mut signal) = watch::channel(false);
    tokio::spawn(async move {
        hookline_server::shutdown_signal().await;
        let _ = signalled.send(true);
    });
    let addrs = [args.subscriptions_addr, args.fanout_addr, args.delivery_addr, args.portal_addr];
    let started = tokio::select! {
        started = Dev::start(&args.backend, args.embedded_addr, addrs) => started,
        _ = signal.wait_for(|s| *s) => return ExitCode::SUCCESS,
    };
    let dev = match started {
        Ok(dev) => dev,
        Err(error) => {
            eprintln!("hookline dev: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "hookline dev: subscriptions on {}, fanout on {}, delivery on {}, portal on http://{}\n\
         data:  {}\n\
         tokens: {TENANT_TOKEN} (tenant acme), {ADMIN_TOKEN} (admin)\n\
         try:   export HOOKLINE_TOKEN={TENANT_TOKEN}; hookline subscriptions create --url http://127.0.0.1:8088/hook --event-type '*'\n\
         portal: hookline portal link (prints a one-time link to open in a browser)\n\
         stop:  Ctrl-C",
        dev.subscriptions, dev.fanout, dev.delivery, dev.portal, dev.data
    );
    let _ = signal.wait_for(|s| *s).await;
    match dev.stop().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hookline dev: {error}");
            ExitCode::FAILURE
        }
    }
}
