//! The `main` every service binary shares: flags, logging, configuration,
//! listening, serving until SIGTERM, and exit codes scripts can rely on
//! (0 stopped cleanly, 1 failed while running, 2 bad configuration).

use std::{fmt::Display, future::Future, net::SocketAddr, path::PathBuf, process::ExitCode};

use tokio::net::TcpListener;

/// Flags common to every service binary.
#[derive(Debug, clap::Args)]
pub struct ServiceArgs {
    /// A TOML configuration file.
    #[arg(long, env = "HOOKLINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    pub check_config: bool,
}

/// Loads the configuration, binds its listen address and serves until
/// SIGTERM or Ctrl-C.
pub async fn run_binary<C, LoadError, ServeError, Served>(
    binary: &'static str,
    args: ServiceArgs,
    load: impl FnOnce(Option<&std::path::Path>) -> Result<C, LoadError>,
    listen_addr: impl FnOnce(&C) -> SocketAddr,
    serve: impl FnOnce(C, TcpListener, crate::Shutdown) -> Served,
) -> ExitCode
where
    LoadError: Display,
    ServeError: Display,
    Served: Future<Output = Result<(), ServeError>>,
{
    let _telemetry = hookline_telemetry::init(binary);
    // Install the metrics recorder before the service describes its metrics.
    let _ = crate::metrics_handle();
    let config = match load(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{binary}: {error}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    let addr = listen_addr(&config);
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(error) => {
            eprintln!("{binary}: cannot listen on {addr}: {error}");
            return ExitCode::from(1);
        }
    };
    match serve(config, listener, Box::pin(crate::shutdown_signal())).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "stopped");
            ExitCode::from(1)
        }
    }
}
