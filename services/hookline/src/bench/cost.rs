//! What a phase costs per delivery: CPU time of each process (Redis
//! included: it is hookline's cost too) and Redis memory.
//!
//! CPU is `utime + stime` from `/proc/<pid>/stat`, read before and after
//! the phase: far steadier than wall-clock throughput on a shared machine.
//! Memory is `INFO memory`'s `used_memory` before and after (what the
//! phase left in Redis, streams not yet trimmed), and `MEMORY USAGE key
//! SAMPLES 0` of the keys of each shape the phase wrote, per delivery: where
//! the bytes go (a hash or zset whose values pass 64 bytes loses Redis's
//! compact listpack encoding and costs several times more). And Redis's
//! own `INFO commandstats` before and after: which commands the phase ran,
//! per delivery, and what each cost (commands run by scripts counted in
//! their own right as well as inside `evalsha`).

use std::collections::BTreeMap;

use super::stack::Stack;

/// `/proc/<pid>/stat` counts in clock ticks; Linux reports them at
/// `USER_HZ`, 100 a second on every architecture it runs hookline on.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds of each process and Redis's `used_memory` at one moment.
#[derive(Debug, Clone)]
pub(super) struct Snapshot {
    cpu: Vec<(&'static str, f64)>,
    used_memory: Option<u64>,
    /// Command -> (calls, µs).
    commands: BTreeMap<String, (u64, u64)>,
    /// Delivery's `hookline_deliveries_parked_total` by reason.
    parked: BTreeMap<String, f64>,
}

/// The series of one counter in Prometheus text, by its `reason` label.
fn by_reason(metrics: &str, name: &str) -> BTreeMap<String, f64> {
    metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix("{reason=\"")?;
            let (reason, value) = rest.split_once("\"}")?;
            Some((reason.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// `INFO commandstats` lines: `cmdstat_<name>:calls=N,usec=N,...`.
fn command_stats(info: &str) -> BTreeMap<String, (u64, u64)> {
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field =
                |key: &str| rest.split(',').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse::<u64>().ok());
            Some((name.to_owned(), (field("calls")?, field("usec")?)))
        })
        .collect()
}

/// Seconds of CPU (user + system) `pid` has used; 0 without /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // The command name (field 2) may hold spaces: count from after it.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 here.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / TICKS_PER_SECOND
}

async fn redis(stack: &Stack) -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(stack.single_redis()?).ok()?;
    client.get_multiplexed_async_connection().await.ok()
}

pub(super) async fn snapshot(stack: &Stack) -> Snapshot {
    let cpu = stack.pids().into_iter().map(|(name, pid)| (name, cpu_seconds(pid))).collect();
    let (mut used_memory, mut commands) = (None, BTreeMap::new());
    if let Some(mut conn) = redis(stack).await {
        let info = |section: &'static str| redis::cmd("INFO").arg(section).to_owned();
        let memory: Option<String> = info("memory").query_async(&mut conn).await.ok();
        used_memory = memory
            .and_then(|i| i.lines().find_map(|l| l.strip_prefix("used_memory:")).and_then(|v| v.trim().parse().ok()));
        let stats: Option<String> = info("commandstats").query_async(&mut conn).await.ok();
        commands = stats.map(|s| command_stats(&s)).unwrap_or_default();
    }
    let parked = by_reason(&stack.delivery_metrics().await, "hookline_deliveries_parked_total");
    Snapshot { cpu, used_memory, commands, parked }
}

/// The report rows of one phase: CPU µs per delivery by process and in
/// all, and Redis bytes per delivery.
pub(super) fn rows(label: &str, before: &Snapshot, after: &Snapshot, deliveries: u64) -> Vec<String> {
    let per = |seconds: f64| seconds * 1e6 / deliveries.max(1) as f64;
    let mut by_process: BTreeMap<&str, f64> = BTreeMap::new();
    for ((name, was), (_, now)) in before.cpu.iter().zip(&after.cpu) {
        *by_process.entry(name).or_default() += now - was;
    }
    let total: f64 = by_process.values().sum();
    let parts: Vec<String> = by_process.iter().map(|(name, s)| format!("{name} {:.1}", per(*s))).collect();
    let mut rows = vec![format!(
        "| CPU per delivery, {label} | **{:.1} µs** ({}; the bench process, receiver and load, not counted) |",
        per(total),
        parts.join(", ")
    )];
    // The same work split by process, against delivery's CPU (it does the
    // same work in every build): steadier between runs than the µs, which
    // move with a shared machine's speed.
    if let Some(&delivery) = by_process.get("hookline-delivery").filter(|s| **s > 0.0) {
        let ratios: Vec<String> = by_process
            .iter()
            .filter(|(name, s)| **name != "hookline-delivery" && **s > 0.0)
            .map(|(name, s)| format!("{name} {:.2}", s / delivery))
            .collect();
        rows.push(format!(
            "| CPU ÷ delivery's CPU, {label} | {} (the same phase; steadier between runs than the µs) |",
            ratios.join(", ")
        ));
    }
    if let (Some(was), Some(now)) = (before.used_memory, after.used_memory) {
        let grew = now.saturating_sub(was) as f64 / deliveries.max(1) as f64;
        rows.push(format!(
            "| Redis memory per delivery, {label} | {grew:.0} B (`used_memory` growth over the phase, streams untrimmed) |"
        ));
    }
    let parked: Vec<String> = after
        .parked
        .iter()
        .map(|(reason, n)| (reason, n - before.parked.get(reason).copied().unwrap_or(0.0)))
        .filter(|(_, n)| *n > 0.0)
        .map(|(reason, n)| format!("{reason} {n:.0}"))
        .collect();
    rows.push(format!(
        "| tasks put back without an attempt, {label} | {} (each a park and a requeue through Redis; `hookline_deliveries_parked_total` by reason) |",
        if parked.is_empty() { "none".to_owned() } else { parked.join(", ") }
    ));
    let mut ran: Vec<(&str, u64, u64)> = after
        .commands
        .iter()
        .map(|(name, (calls, usec))| {
            let (was_calls, was_usec) = before.commands.get(name).copied().unwrap_or_default();
            (name.as_str(), calls.saturating_sub(was_calls), usec.saturating_sub(was_usec))
        })
        .filter(|(_, calls, _)| *calls > 0)
        .collect();
    ran.sort_by_key(|(_, _, usec)| std::cmp::Reverse(*usec));
    if !ran.is_empty() {
        let n = deliveries.max(1) as f64;
        let parts: Vec<String> = ran
            .iter()
            .take(12)
            .map(|(name, calls, usec)| {
                format!(
                    "{name} {:.3} × {:.1} µs = {:.2} µs",
                    *calls as f64 / n,
                    *usec as f64 / (*calls).max(1) as f64,
                    *usec as f64 / n
                )
            })
            .collect();
        rows.push(format!(
            "| Redis commands per delivery, {label} | {} (calls per delivery × µs each = µs per delivery, by total time; `evalsha` includes the commands its scripts run, which are also counted on their own) |",
            parts.join(", ")
        ));
    }
    rows
}

/// The key shapes kept for the delivery retention (the rest goes with the
/// event retention or when the streams are trimmed).
const RETAINED: &[&str] = &["*:dlv:*", "*:attempts:*", "*:sub:*:log", "*:tenant:*:log", "*:sub:*:dead", "*:stats:*"];

/// Key shapes, as `SCAN MATCH` patterns, and what each is.
const SHAPES: &[(&str, &str)] = &[
    ("*:event:*", "event records"),
    ("*:dlv:*", "delivery records"),
    ("*:attempts:*", "attempt logs"),
    ("*:sub:*:log", "per-subscription delivery log"),
    ("*:tenant:*:log", "per-tenant delivery log"),
    ("*:sub:*:dead", "dead-letter index"),
    ("*:stats:*", "stats counters"),
    ("*:events", "events stream"),
    ("*:deliveries", "deliveries stream"),
    ("*:retry", "retry schedule"),
];

/// Bytes per delivery held by each key shape in the one Redis (`MEMORY
/// USAGE ... SAMPLES 0`, summed over every key of the shape): where Redis's
/// memory goes. Empty on a cluster or the embedded backend.
pub(super) async fn breakdown(stack: &Stack, deliveries: u64) -> Vec<String> {
    let Some(mut conn) = redis(stack).await else { return Vec::new() };
    let mut parts = Vec::new();
    let (mut total, mut retained) = (0u64, 0u64);
    for (pattern, what) in SHAPES {
        let mut cursor = 0u64;
        let (mut keys, mut bytes) = (0u64, 0u64);
        loop {
            let reply: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await;
            let Ok((next, batch)) = reply else { break };
            let mut pipe = redis::pipe();
            for key in &batch {
                pipe.cmd("MEMORY").arg("USAGE").arg(key).arg("SAMPLES").arg(0);
            }
            let sizes: Vec<Option<u64>> = pipe.query_async(&mut conn).await.unwrap_or_default();
            keys += batch.len() as u64;
            bytes += sizes.into_iter().flatten().sum::<u64>();
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        if keys > 0 {
            total += bytes;
            if RETAINED.contains(pattern) {
                retained += bytes;
            }
            parts.push(format!("{what} {:.0} ({keys} keys)", bytes as f64 / deliveries.max(1) as f64));
        }
    }
    if parts.is_empty() {
        return Vec::new();
    }
    let per = |bytes: u64| bytes as f64 / deliveries.max(1) as f64;
    vec![
        format!(
            "| Redis bytes per delivery by key shape, after both throughput phases | {:.0} B in all: {} |",
            per(total),
            parts.join(", ")
        ),
        format!(
            "| … of which kept for the delivery retention (records, attempt logs, delivery logs, dead letters, counters) | {:.0} B |",
            per(retained)
        ),
    ]
}
