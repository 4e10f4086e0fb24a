//! `hookline`: the command a newcomer and an operator run: `demo` (the
//! whole product in one command), `dev` (the three services in one
//! process), the operator CLI over the services' gRPC APIs, and `bench`,
//! the whole-pipeline benchmark.

mod bench;
mod cli;
mod demo;
mod dev;
mod local;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(version, about = "hookline: webhook delivery over gRPC and Redis Streams")]
struct Cli {
    #[command(flatten)]
    connection: cli::Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// See it work: dev mode, a local receiver, two subscriptions (one
    /// failing once), three events, every signature checked, and what
    /// happened, told step by step.
    Demo(demo::DemoArgs),
    /// Run subscriptions, fanout and delivery in this process for
    /// development, on an embedded in-memory backend (no Redis needed; not
    /// durable) or a Redis you name; insecure on purpose: well-known
    /// tokens, loopback receivers allowed.
    Dev(dev::DevArgs),
    /// Measure the whole pipeline on this machine: a private Redis (or a
    /// Redis Cluster, or the embedded backend), the three service binaries
    /// and a local receiver, against the raw POST rate of a plain client
    /// (the bars are in docs/BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Create, list, inspect, update, pause, resume, test and delete subscriptions.
    #[command(subcommand)]
    Subscriptions(cli::Subscriptions),
    /// Publish events and look them up.
    #[command(subcommand)]
    Events(cli::Events),
    /// List and inspect deliveries and their attempts; retry one now, replay many.
    #[command(subcommand)]
    Deliveries(cli::Deliveries),
    /// The tenant's catalog of event types.
    #[command(subcommand)]
    EventTypes(cli::EventTypes),
    /// Customer-portal magic links.
    #[command(subcommand)]
    Portal(cli::Portal),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completion { shell: clap_complete::Shell },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Dev(args) => dev::run(args).await,
        Command::Subscriptions(command) => cli::subscriptions(cli.connection, command).await,
        Command::Events(command) => cli::events(cli.connection, command).await,
        Command::Deliveries(command) => cli::deliveries(cli.connection, command).await,
        Command::EventTypes(command) => cli::event_types(cli.connection, command).await,
        Command::Portal(command) => cli::portal(cli.connection, command).await,
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "hookline",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Bench(args) => match bench::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("hookline bench: {error}");
                ExitCode::FAILURE
            }
        },
    }
}
