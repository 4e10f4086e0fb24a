//! The system under test, as a user runs it: a private `redis-server` (or
//! a private three-master Redis Cluster, or the embedded backend in this
//! process) and the three service binaries as child processes (so each
//! one's memory can be read on its own), killed when the stack is dropped.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use hookline_auth::BearerToken;
use tokio::process::{Child, Command};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use super::BenchError;
use crate::local::RedisRole;

/// The bench acts as an internal service would: an admin token, naming
/// the tenant in each request.
const ADMIN_TOKEN: &str = "bench-admin-token-0000001";
const SERVICE_TOKEN: &str = "bench-service-token-00001";
/// Masters of the private cluster.
const CLUSTER_NODES: usize = 3;
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A gRPC client of one of the services, with the bench's admin token.
pub(super) type Client = InterceptedService<Channel, BearerToken>;

#[derive(Debug)]
struct Process {
    name: &'static str,
    child: Child,
}

/// What the services run on, and how the load is spread.
#[derive(Debug, Clone, Copy)]
pub(super) struct Topology {
    /// A three-master Redis Cluster instead of one Redis.
    pub(super) cluster: bool,
    /// The embedded backend in the bench's own process instead of Redis.
    pub(super) embedded: bool,
    /// One Redis with a replica, and `durability.replicas` = 1: every
    /// publish and subscription change waits for the replica.
    pub(super) durable: bool,
    pub(super) partitions: u16,
    /// Tenants the throughput phases spread events over (a tenant's events
    /// all go to one partition).
    pub(super) tenants: u16,
}

impl Topology {
    /// `tenants` distinct tenant names (`bench-<k>`) spread round robin over
    /// the partitions, so the load covers them evenly rather than as a
    /// hash happens to spread a handful of names.
    pub(super) fn tenants(&self) -> Vec<String> {
        let partitions = hookline_queue::Partitions::new("hookline", self.partitions);
        let count = usize::from(self.partitions.max(1));
        let wanted = usize::from(self.tenants.max(1));
        // Names found so far on each partition, and how many each needs.
        let mut found: Vec<Vec<String>> = vec![Vec::new(); count];
        let need = |p: usize| wanted / count + usize::from(p < wanted % count);
        let mut k = 0u32;
        while (0..count).any(|p| found[p].len() < need(p)) {
            let name = format!("bench-{k}");
            let p = usize::from(partitions.of_tenant(&name).index());
            if found[p].len() < need(p) {
                found[p].push(name);
            }
            k += 1;
        }
        (0..wanted).map(|t| found[t % count][t / count].clone()).collect()
    }
}

#[derive(Debug)]
pub(super) struct Stack {
    redis: Vec<Process>,
    /// One Redis's URL (`None` on a cluster or the embedded backend).
    single_redis: Option<String>,
    services: Vec<(Process, SocketAddr)>,
    /// Delivery's admin port (its `/metrics`).
    delivery_admin: SocketAddr,
    /// Dropped (stopped) with the stack.
    _embedded: Option<hookline_embedded::EmbeddedRedis>,
}

/// Peak and current resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Memory {
    pub(super) peak_kib: u64,
    pub(super) now_kib: u64,
}

impl Stack {
    /// Starts Redis (one, or a cluster) and the services found in
    /// `bin_dir`, and waits until all three report SERVING.
    pub(super) async fn start(bin_dir: &Path, redis_server: &Path, topology: Topology) -> Result<Self, BenchError> {
        let mut embedded = None;
        let (redis, redis_url) = if topology.cluster {
            start_cluster(redis_server).await?
        } else if topology.embedded {
            let server = hookline_embedded::EmbeddedRedis::start(SocketAddr::from(([127, 0, 0, 1], 0)))
                .map_err(|e| BenchError::Setup(e.to_string()))?;
            let url = server.url();
            embedded = Some(server);
            (Vec::new(), url)
        } else {
            let port = free_port()?;
            let mut nodes = vec![start_redis(redis_server, port, RedisRole::Alone).await?];
            if topology.durable {
                nodes.push(start_replica(redis_server, port).await?);
            }
            (nodes, format!("redis://127.0.0.1:{port}"))
        };
        // A token per tenant makes the tenants known to fanout (it refuses
        // unknown ones); the bench itself calls with the admin token.
        let tokens: Vec<String> = topology
            .tenants()
            .iter()
            .map(|t| format!(r#"{{token="{t}-token-00000000000",tenant="{t}"}}"#))
            .chain([format!(r#"{{token="{ADMIN_TOKEN}",admin=true}}"#)])
            .collect();
        let ports = [free_port()?, free_port()?, free_port()?];
        let [subs_port, fanout_port, delivery_port] = ports;
        let env: HashMap<&str, String> = [
            ("HOOKLINE_REDIS_URL", redis_url.clone()),
            ("HOOKLINE_SUBSCRIPTIONS_URL", format!("http://127.0.0.1:{subs_port}")),
            ("HOOKLINE_FANOUT_URL", format!("http://127.0.0.1:{fanout_port}")),
            ("HOOKLINE_ALLOW_CIDRS", r#"["127.0.0.0/8"]"#.into()),
            ("HOOKLINE_AUTO_PAUSE_AFTER", "0".into()),
            // The phases together hold a little over 10,000 subscriptions.
            ("HOOKLINE_MAX_SUBSCRIPTIONS_PER_TENANT", "20000".into()),
            ("HOOKLINE_PARTITIONS", topology.partitions.to_string()),
            ("HOOKLINE_AUTH__TOKENS", format!("[{}]", tokens.join(","))),
            ("HOOKLINE_AUTH__SERVICE_TOKEN", SERVICE_TOKEN.into()),
            ("HOOKLINE_LOG", std::env::var("HOOKLINE_LOG").unwrap_or_else(|_| "warn".into())),
            ("HOOKLINE_DURABILITY__REPLICAS", if topology.durable { "1" } else { "0" }.into()),
        ]
        .into();
        let single_redis = (!topology.cluster && !topology.embedded).then(|| redis_url.clone());
        let delivery_admin = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut stack = Self { redis, single_redis, services: Vec::new(), delivery_admin, _embedded: embedded };
        for (name, port) in [
            ("hookline-subscriptions", subs_port),
            ("hookline-fanout", fanout_port),
            ("hookline-delivery", delivery_port),
        ] {
            let binary = bin_dir.join(name);
            if !binary.exists() {
                return Err(BenchError::Setup(format!(
                    "{} is missing: build the services first (cargo build --release --bins)",
                    binary.display()
                )));
            }
            let mut command = Command::new(&binary);
            command.envs(&env).env("HOOKLINE_LISTEN_ADDR", format!("127.0.0.1:{port}"));
            if name == "hookline-delivery" {
                command.env("HOOKLINE_ADMIN_ADDR", stack.delivery_admin.to_string());
            }
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            stack.services.push((Process::spawn(name, &mut command)?, addr));
            wait_serving(name, addr).await?;
            if let Some((process, _)) = stack.services.last_mut()
                && let Ok(Some(status)) = process.child.try_wait()
            {
                return Err(BenchError::Setup(format!("{name} exited ({status}) as it started")));
            }
        }
        Ok(stack)
    }

    pub(super) async fn client(&self, service: usize) -> Result<Client, BenchError> {
        let addr = self.services[service].1;
        let channel = Channel::from_shared(format!("http://{addr}"))
            .map_err(|e| BenchError::Setup(e.to_string()))?
            .connect()
            .await
            .map_err(|e| BenchError::Setup(format!("connecting to {addr}: {e}")))?;
        let token = BearerToken::new(ADMIN_TOKEN).map_err(|e| BenchError::Setup(e.to_string()))?;
        Ok(InterceptedService::new(channel, token))
    }

    /// Each service's name and process id, then Redis's (each node's).
    pub(super) fn pids(&self) -> Vec<(&'static str, u32)> {
        self.services
            .iter()
            .map(|(p, _)| p)
            .chain(&self.redis)
            .filter_map(|p| p.child.id().map(|pid| (p.name, pid)))
            .collect()
    }

    /// Delivery's Prometheus metrics, as served (empty if unreachable).
    pub(super) async fn delivery_metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.delivery_admin);
        match reqwest::get(&url).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The URL of the one Redis, when the stack runs on one (its memory
    /// can then be read with `INFO` and `MEMORY USAGE`).
    pub(super) fn single_redis(&self) -> Option<&str> {
        self.single_redis.as_deref()
    }

    /// Each service's name and memory, then Redis's (each node's).
    pub(super) fn memory(&self) -> Vec<(&'static str, Memory)> {
        self.services.iter().map(|(p, _)| p).chain(&self.redis).map(|p| (p.name, p.memory())).collect()
    }
}

pub(super) const SUBSCRIPTIONS: usize = 0;
pub(super) const FANOUT: usize = 1;

impl Process {
    fn spawn(name: &'static str, command: &mut Command) -> Result<Self, BenchError> {
        let child = command
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BenchError::Setup(format!("cannot start {name}: {e}")))?;
        Ok(Self { name, child })
    }

    /// VmHWM and VmRSS from /proc (zero where /proc is not there).
    fn memory(&self) -> Memory {
        let Some(pid) = self.child.id() else { return Memory::default() };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse().ok())
                .unwrap_or(0)
        };
        Memory { peak_kib: field("VmHWM:"), now_kib: field("VmRSS:") }
    }
}

async fn start_redis(redis_server: &Path, port: u16, role: RedisRole) -> Result<Process, BenchError> {
    let child = crate::local::redis_server(redis_server, port, role).await.map_err(BenchError::Setup)?;
    Ok(Process { name: "redis-server", child })
}

/// A replica of the Redis on `primary`, once its link is up.
async fn start_replica(redis_server: &Path, primary: u16) -> Result<Process, BenchError> {
    let port = free_port()?;
    let mut replica = start_redis(redis_server, port, RedisRole::ReplicaOf(primary)).await?;
    replica.name = "redis-replica";
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let info = Command::new("redis-cli").args(["-p", &port.to_string(), "info", "replication"]).output().await;
        if info.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("master_link_status:up")) {
            return Ok(replica);
        }
        if Instant::now() > deadline {
            return Err(BenchError::Setup("the replica did not link up with its primary".into()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Three masters, slots spread by `redis-cli --cluster create`; the URL
/// hookline takes for them.
async fn start_cluster(redis_server: &Path) -> Result<(Vec<Process>, String), BenchError> {
    // Each node's cluster bus is its port + 10,000.
    let bus_free = || hookline_server::spare_port_with(&[10_000]).map_err(|e| BenchError::Setup(e.to_string()));
    let ports: Vec<u16> = (0..CLUSTER_NODES).map(|_| bus_free()).collect::<Result<_, _>>()?;
    let mut nodes = Vec::new();
    for port in &ports {
        nodes.push(start_redis(redis_server, *port, RedisRole::ClusterNode).await?);
    }
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let deadline = Instant::now() + START_TIMEOUT;
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .status()
        .await
        .map_err(|e| BenchError::Setup(format!("cannot run redis-cli: {e}")))?;
    if !created.success() {
        return Err(BenchError::Setup("redis-cli --cluster create failed".into()));
    }
    loop {
        let mut ok = true;
        for port in &ports {
            let info = Command::new("redis-cli").args(["-p", &port.to_string(), "cluster", "info"]).output().await;
            ok &= info.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"));
        }
        if ok {
            return Ok((nodes, format!("redis+cluster://{}", addrs.join(","))));
        }
        if Instant::now() > deadline {
            return Err(BenchError::Setup("the cluster did not reach cluster_state:ok".into()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_serving(name: &str, addr: SocketAddr) -> Result<(), BenchError> {
    crate::local::wait_serving(name, addr, START_TIMEOUT).await.map_err(BenchError::Setup)
}

fn free_port() -> Result<u16, BenchError> {
    crate::local::free_port().map_err(BenchError::Setup)
}

/// The directory of the service binaries: `--bin-dir`, else this
/// executable's own directory (`target/<profile>` in a checkout).
pub(super) fn bin_dir(given: Option<PathBuf>) -> Result<PathBuf, BenchError> {
    match given {
        Some(dir) => Ok(dir),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .ok_or_else(|| BenchError::Setup("cannot tell where the service binaries are; pass --bin-dir".into())),
    }
}
