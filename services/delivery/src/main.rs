//! `hookline-delivery`: the service behind its gRPC port, until SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use hookline_delivery::{Config, serve};
use hookline_server::{ServiceArgs, run_binary};

/// hookline's delivery service (gRPC DeliveryService + delivery workers).
///
/// Configuration: defaults, then the TOML file given by --config (or
/// HOOKLINE_CONFIG), then HOOKLINE_* variables, e.g. HOOKLINE_REDIS_URL,
/// HOOKLINE_LISTEN_ADDR, HOOKLINE_SUBSCRIPTIONS_URL, HOOKLINE_FANOUT_URL,
/// HOOKLINE_ALLOW_CIDRS='["127.0.0.0/8"]', HOOKLINE_AUTH__SERVICE_TOKEN.
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
    run_binary("hookline-delivery", args.service, Config::load, |c| c.listen_addr, serve).await
}
