//! `hookline-subscriptions`: the service behind its gRPC port, until SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use hookline_server::{ServiceArgs, run_binary};
use hookline_subscriptions::{Config, serve};

/// hookline's subscription service (gRPC).
///
/// Configuration: defaults, then the TOML file given by --config (or
/// HOOKLINE_CONFIG), then HOOKLINE_* variables, e.g. HOOKLINE_REDIS_URL,
/// HOOKLINE_LISTEN_ADDR, HOOKLINE_AUTH__TOKENS='[{token="...",admin=true}]',
/// HOOKLINE_AUTH__SERVICE_TOKEN, HOOKLINE_SECRETS__MASTER_KEY.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    service: ServiceArgs,
}

// mimalloc: glibc's allocator serialised the runtime's threads on its
// arena lock under load (a quarter of delivery's CPU in a profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    run_binary("hookline-subscriptions", args.service, Config::load, |c| c.listen_addr, serve).await
}
