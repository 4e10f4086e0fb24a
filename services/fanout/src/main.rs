//! `hookline-fanout`: reads configuration, installs logging, and serves
//! until SIGTERM or Ctrl-C.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use hookline_fanout::{Config, serve};

/// hookline's fan-out service (gRPC EventService + fan-out workers).
///
/// Configuration: defaults, then the TOML file given by --config (or
/// HOOKLINE_CONFIG), then HOOKLINE_* variables, e.g. HOOKLINE_REDIS_URL,
/// HOOKLINE_LISTEN_ADDR, HOOKLINE_SUBSCRIPTIONS_URL, HOOKLINE_PARTITIONS,
/// HOOKLINE_AUTH__TOKENS='[{token="...",admin=true}]', HOOKLINE_AUTH__SERVICE_TOKEN.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// A TOML configuration file.
    #[arg(long, env = "HOOKLINE_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    hookline_telemetry::init_logging();
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("hookline-fanout: {error}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    let listener = match tokio::net::TcpListener::bind(config.listen_addr).await {
        Ok(l) => l,
        Err(error) => {
            eprintln!("hookline-fanout: cannot listen on {}: {error}", config.listen_addr);
            return ExitCode::from(1);
        }
    };
    match serve(config, listener, hookline_server::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "stopped");
            ExitCode::from(1)
        }
    }
}
