//! `hookline bench`: the whole pipeline on this machine, in one run.
//!
//! Starts a private Redis, the three service binaries and a local
//! receiver, then measures, each phase on its own event type and receiver
//! path: the raw POST rate of a plain client to the receiver (the ceiling,
//! best of a concurrency sweep), sustained deliveries/s and their ratio to
//! the ceiling (one subscription, and each event to 100), publish-to-receive latency at a fixed rate (2,000/s and half
//! the measured maximum), fan-out of one event to 1, 100 and 10,000
//! subscriptions, delivery to healthy endpoints with 10% of endpoints
//! hanging against none, and the peak memory of each process. Prints a
//! Markdown report. `--smoke` runs every phase small (CI): it proves the
//! benchmark works and fails if any expected delivery is missing.
//! `--cluster` runs the same on a private three-master Redis Cluster, with
//! the throughput phases spread over several tenants (so partitions).

mod cost;
mod load;
mod receiver;
mod stack;

use std::{path::PathBuf, time::Duration};

use load::Pipeline;

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Every phase small and quick: for CI, not for figures.
    #[arg(long)]
    smoke: bool,
    /// Events of the sustained-throughput phase.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Where hookline-subscriptions, -fanout and -delivery are (default:
    /// next to this executable).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The redis-server to start.
    #[arg(long, default_value = "redis-server")]
    redis_server: PathBuf,
    /// Run on a private three-master Redis Cluster (made with `redis-cli
    /// --cluster create`) instead of one Redis.
    #[arg(long, conflicts_with = "embedded")]
    cluster: bool,
    /// Run on the embedded backend (`hookline dev`'s) in this process
    /// instead of a redis-server: how far dev mode goes.
    #[arg(long)]
    embedded: bool,
    /// One Redis with a replica, and every publish and subscription change
    /// acknowledged only once the replica holds it (`durability.replicas`
    /// = 1): what durability costs. The replica's CPU counts as Redis's.
    #[arg(long, conflicts_with_all = ["cluster", "embedded"])]
    durable: bool,
    /// Stream partitions (default: 1, or 6 with --cluster).
    #[arg(long)]
    partitions: Option<u16>,
    /// Tenants the throughput phases spread their events over (default:
    /// 1, or 6 with --cluster); a tenant's events go to one partition.
    #[arg(long)]
    tenants: Option<u16>,
    /// Only the ceiling and the two throughput phases with their cost
    /// rows: for comparing builds' CPU and memory per delivery quickly.
    #[arg(long)]
    cost_only: bool,

    /// Only the isolation phase (none hanging, then 10% hanging), with its
    /// cost rows: for comparing builds' isolation quickly.
    #[arg(long, conflicts_with = "cost_only")]
    isolation_only: bool,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Grpc(#[from] tonic::Status),
    #[error("{phase}: {got} of {expected} deliveries arrived within {waited:?}")]
    Missing { phase: &'static str, got: u64, expected: u64, waited: Duration },
}

/// How big each phase is.
struct Sizes {
    sweep: Duration,
    events: u64,
    latency_rate: u64,
    latency_secs: u64,
    fanouts: [u64; 3],
    isolation_events: u64,
}

pub(crate) async fn run(args: BenchArgs) -> Result<(), BenchError> {
    let sizes = if args.smoke {
        Sizes {
            sweep: Duration::from_millis(500),
            events: 2_000,
            latency_rate: 200,
            latency_secs: 2,
            fanouts: [1, 100, 1_000],
            isolation_events: 200,
        }
    } else {
        Sizes {
            sweep: Duration::from_secs(3),
            events: args.events,
            latency_rate: 2_000,
            latency_secs: 10,
            fanouts: [1, 100, 10_000],
            isolation_events: 5_000,
        }
    };
    let bin_dir = stack::bin_dir(args.bin_dir)?;
    let (receiver_addr, received) = receiver::start().await?;
    let mut report = Vec::new();
    let line = |report: &mut Vec<String>, text: String| {
        eprintln!("  {text}");
        report.push(text);
    };

    eprintln!("ceiling: a plain client POSTing to the receiver");
    let (ceiling, at) = load::ceiling(receiver_addr, sizes.sweep).await;
    line(
        &mut report,
        format!("| ceiling (plain reqwest client, best of 16/64/256) | {ceiling:.0} POSTs/s (at {at}) |"),
    );

    let spread = if args.cluster { 6 } else { 1 };
    let topology = stack::Topology {
        cluster: args.cluster,
        embedded: args.embedded,
        durable: args.durable,
        partitions: args.partitions.unwrap_or(spread),
        tenants: args.tenants.unwrap_or(spread),
    };
    let backend = match (topology.cluster, topology.embedded) {
        (true, _) => "a 3-master Redis Cluster",
        (_, true) => "the embedded backend (in the bench process)",
        _ if args.durable => "one Redis and its replica, publishes acknowledged once the replica has them",
        _ => "one Redis",
    };
    line(
        &mut report,
        format!(
            "| set-up | {backend}, {} partitions, throughput phases over {} tenants |",
            topology.partitions, topology.tenants
        ),
    );
    let stack = stack::Stack::start(&bin_dir, &args.redis_server, topology).await?;
    let mut pipeline = Pipeline::new(&stack, topology.tenants(), receiver_addr, received.clone()).await?;

    if args.isolation_only {
        isolation(&stack, &mut pipeline, sizes.isolation_events, &mut report).await?;
        print_report(report);
        return Ok(());
    }

    // The 1:1 phase first, so the memory breakdown after it holds its
    // deliveries only.
    eprintln!("sustained throughput: {} events, one subscription", sizes.events);
    let before = cost::snapshot(&stack).await;
    let rate = pipeline.throughput(sizes.events).await?;
    let after = cost::snapshot(&stack).await;
    line(
        &mut report,
        format!(
            "| sustained deliveries/s ({} events, 1 subscription) | {rate:.0} = {:.1}% of the ceiling |",
            sizes.events,
            rate / ceiling * 100.0
        ),
    );
    for row in cost::rows("1:1", &before, &after, sizes.events) {
        line(&mut report, row);
    }
    for row in cost::breakdown(&stack, sizes.events).await {
        line(&mut report, row);
    }

    eprintln!("sustained throughput: {} deliveries, each event to 100 subscriptions", sizes.events);
    let before = cost::snapshot(&stack).await;
    let fanned = pipeline.fanout_throughput(sizes.events, 100).await?;
    let after = cost::snapshot(&stack).await;
    line(
        &mut report,
        format!(
            "| sustained deliveries/s ({} deliveries, each event to 100 subscriptions) | {fanned:.0} = {:.1}% of the ceiling |",
            sizes.events,
            fanned / ceiling * 100.0
        ),
    );
    for row in cost::rows("each event to 100", &before, &after, sizes.events) {
        line(&mut report, row);
    }

    if args.cost_only {
        print_report(report);
        return Ok(());
    }

    eprintln!("latency: {}/s for {} s", sizes.latency_rate, sizes.latency_secs);
    let l = pipeline.latency("latfixed", sizes.latency_rate, sizes.latency_secs).await?;
    line(&mut report, latency_row(sizes.latency_rate, "fixed rate", l));

    let half = (rate / 2.0) as u64;
    eprintln!("latency: {half}/s for {} s", sizes.latency_secs);
    let l = pipeline.latency("lathalf", half, sizes.latency_secs).await?;
    line(&mut report, latency_row(half, "half the maximum", l));

    for subscriptions in sizes.fanouts {
        eprintln!("fan-out: one event to {subscriptions} subscriptions");
        let took = pipeline.fanout(subscriptions).await?;
        line(
            &mut report,
            format!(
                "| one event → {subscriptions} subscriptions, all delivered | {:.0} ms |",
                took.as_secs_f64() * 1000.0
            ),
        );
    }

    isolation(&stack, &mut pipeline, sizes.isolation_events, &mut report).await?;

    for (name, memory) in stack.memory() {
        line(
            &mut report,
            format!(
                "| peak memory (RSS) of {name} | {:.1} MiB (now {:.1} MiB) |",
                memory.peak_kib as f64 / 1024.0,
                memory.now_kib as f64 / 1024.0
            ),
        );
    }

    print_report(report);
    Ok(())
}

/// The isolation phase: healthy deliveries/s with 10% of the endpoints
/// hanging against none, and each run's cost per healthy delivery (what
/// the hanging endpoints' backlog costs the others is what slows them).
async fn isolation(
    stack: &stack::Stack,
    pipeline: &mut Pipeline,
    events: u64,
    report: &mut Vec<String>,
) -> Result<(), BenchError> {
    eprintln!("isolation: 20 subscriptions, none hanging, then 2 hanging until their 5 s timeout");
    let start = cost::snapshot(stack).await;
    let without = pipeline.isolation("iso0", events, 0).await?;
    let middle = cost::snapshot(stack).await;
    let with = pipeline.isolation("iso2", events, 2).await?;
    let end = cost::snapshot(stack).await;
    let rows = [format!(
        "| healthy deliveries/s, 10% of endpoints hanging vs none | {with:.0} vs {without:.0} = {:.1}% |",
        with / without * 100.0
    )]
    .into_iter()
    .chain(cost::rows("isolation, none hanging", &start, &middle, events * 20))
    .chain(cost::rows("isolation, 10% hanging (per healthy delivery)", &middle, &end, events * 18));
    for row in rows {
        eprintln!("  {row}");
        report.push(row);
    }
    Ok(())
}

fn print_report(report: Vec<String>) {
    println!("| measure | result |\n|---|---|");
    for row in report {
        println!("{row}");
    }
}

fn latency_row(per_sec: u64, label: &str, l: [f64; 4]) -> String {
    format!(
        "| publish→receive latency at {per_sec}/s ({label}) | p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms |",
        l[0], l[1], l[2], l[3]
    )
}
