//! `hookline-portal`: the customer portal behind its HTTP port, until SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use hookline_portal::{Config, serve};
use hookline_server::{ServiceArgs, run_binary};

/// hookline's customer portal (HTTP): the pages a tenant's subscribers open
/// with a magic link from CreatePortalSession.
///
/// Configuration: defaults, then the TOML file given by --config (or
/// HOOKLINE_CONFIG), then HOOKLINE_* variables, e.g. HOOKLINE_LISTEN_ADDR,
/// HOOKLINE_SUBSCRIPTIONS_URL, HOOKLINE_DELIVERY_URL, HOOKLINE_SECURE_COOKIES.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    run_binary("hookline-portal", args.service, Config::load, |c| c.listen_addr, serve).await
}
