//! `hookline`: the command a newcomer and an operator run. For now it
//! holds `hookline bench`, the whole-pipeline benchmark; the all-in-one
//! dev runner and the operator CLI join it as subcommands.

mod bench;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(version, about = "hookline: webhook delivery over gRPC and Redis Streams")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure the whole pipeline on this machine: a private Redis, the
    /// three service binaries and a local receiver, against the raw POST
    /// rate of a plain client (the bars are in docs/BENCHMARKS.md).
    Bench(bench::BenchArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Bench(args) => match bench::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("hookline bench: {error}");
                ExitCode::FAILURE
            }
        },
    }
}
