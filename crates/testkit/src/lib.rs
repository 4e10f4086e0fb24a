//! Fixtures for hookline's tests, shared so each service's tests run
//! against real Redis the same way:
//!
//! - [`RedisServer`]: a `redis-server` of the test's own on a spare port,
//!   which a test may stop, restart empty, or restart with its data (AOF);
//!   with `HOOKLINE_TEST_BACKEND=embedded`, hookline's embedded backend in
//!   its place (same stop / restart behaviour), so the services' suites
//!   double as that backend's conformance suite;
//! - [`eventually`]: wait for a condition with a deadline, never a fixed sleep.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A free TCP port on 127.0.0.1 (free when asked; bind soon): see
/// [`hookline_server::spare_port`] for why not simply port 0.
pub fn free_port() -> u16 {
    hookline_server::spare_port().unwrap()
}

/// A free port for a Redis Cluster node: its cluster bus (the port +
/// 10,000) is free too.
fn free_cluster_port() -> u16 {
    hookline_server::spare_port_with(&[10_000]).unwrap()
}

/// Which server [`RedisServer::start`] gives: `HOOKLINE_TEST_BACKEND`
/// `redis` (the default) or `embedded`.
fn embedded_backend() -> bool {
    match std::env::var("HOOKLINE_TEST_BACKEND").as_deref() {
        Ok("embedded") => true,
        Ok("redis") | Err(_) => false,
        Ok(other) => panic!("HOOKLINE_TEST_BACKEND={other}: expected `redis` or `embedded`"),
    }
}

/// A private Redis for one test, stopped on drop.
#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    persistent: bool,
    /// The primary's port, for a replica.
    replica_of: Option<u16>,
    server: Server,
}

#[derive(Debug)]
enum Server {
    Process { dir: PathBuf, child: Option<Child> },
    Embedded(hookline_embedded::EmbeddedRedis),
}

impl RedisServer {
    /// Without persistence: a restart starts empty.
    pub fn start() -> Self {
        Self::launch(false, embedded_backend())
    }

    /// With AOF (`appendfsync always`): a restart keeps every write.
    pub fn start_persistent() -> Self {
        Self::launch(true, embedded_backend())
    }

    /// Whether this is a real `redis-server` (not the embedded backend),
    /// for checks of Redis's own internals such as `OBJECT ENCODING`.
    pub fn is_redis_server(&self) -> bool {
        matches!(self.server, Server::Process { .. })
    }

    /// A real `redis-server` whatever `HOOKLINE_TEST_BACKEND` says.
    pub fn start_redis_server() -> Self {
        Self::launch(false, false)
    }

    /// The embedded backend whatever `HOOKLINE_TEST_BACKEND` says.
    pub fn start_embedded() -> Self {
        Self::launch(false, true)
    }

    fn launch(persistent: bool, embedded: bool) -> Self {
        if embedded {
            let server = hookline_embedded::EmbeddedRedis::start(([127, 0, 0, 1], 0).into()).unwrap();
            return Self { port: server.addr().port(), persistent, replica_of: None, server: Server::Embedded(server) };
        }
        Self::process(persistent, None)
    }

    /// A `redis-server` process on a spare port, in a directory of its own.
    fn process(persistent: bool, replica_of: Option<u16>) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("hookline-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self { port, persistent, replica_of, server: Server::Process { dir, child: None } };
        server.spawn();
        server
    }

    /// A real `redis-server` replicating `primary` (itself a real one),
    /// returned once its link is up and the primary counts it.
    pub fn start_replica_of(primary: &RedisServer) -> Self {
        assert!(primary.is_redis_server(), "a replica needs a real redis-server as its primary");
        let server = Self::process(false, Some(primary.port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(info(server.port, "replication").contains("master_link_status:up")
            && info(primary.port, "replication").contains("connected_slaves:1"))
        {
            assert!(Instant::now() < deadline, "the replica on {} did not link up with {}", server.port, primary.port);
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// Stops the process (SIGSTOP) without killing it: it holds its
    /// connections and answers nothing, as a hung or partitioned node
    /// does, until [`RedisServer::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let Server::Process { child: Some(child), .. } = &self.server else {
            panic!("only a running redis-server process can be signalled");
        };
        let sent = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
        assert!(sent.success(), "kill {signal} failed");
    }

    fn spawn(&mut self) {
        let Server::Process { dir, child } = &mut self.server else { return };
        let port = self.port.to_string();
        let dir = dir.to_string_lossy().into_owned();
        let mut args = vec!["--port", &port, "--bind", "127.0.0.1", "--dir", &dir, "--save", ""];
        if self.persistent {
            args.extend(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            args.extend(["--appendonly", "no"]);
        }
        let primary = self.replica_of.map(|p| p.to_string());
        if let Some(primary) = &primary {
            args.extend(["--replicaof", "127.0.0.1", primary]);
        }
        *child = Some(
            Command::new("redis-server")
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be on PATH (apt-get install -y redis-server)"),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on port {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL): what a crash looks like to clients.
    pub fn stop(&mut self) {
        match &mut self.server {
            Server::Process { child, .. } => {
                if let Some(mut child) = child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            Server::Embedded(server) => server.stop(),
        }
    }

    /// Kills and starts it again on the same port: empty, or with its AOF
    /// data when started with [`RedisServer::start_persistent`].
    pub fn restart(&mut self) {
        self.stop();
        match &mut self.server {
            Server::Process { .. } => self.spawn(),
            Server::Embedded(server) => {
                if !self.persistent {
                    server.flush();
                }
                server.restart().unwrap();
            }
        }
    }

    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
    }
}

/// Adds to `stream` an entry of a format version this build does not
/// know (as a newer build would write it); returns its id.
pub async fn add_newer_format_entry(conn: &mut redis::aio::MultiplexedConnection, stream: &str) -> String {
    redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg(&[("v", "3"), ("d", "an entry packed as this build cannot read it")])
        .query_async(conn)
        .await
        .unwrap()
}

/// How many entries of `stream` are pending (read, not acknowledged) in
/// `group`, and the first of them (`XPENDING`'s summary form).
pub async fn pending_entries(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    group: &str,
) -> (u64, Option<String>) {
    let (count, first, _last, _consumers): (u64, Option<String>, Option<String>, redis::Value) =
        redis::cmd("XPENDING").arg(stream).arg(group).query_async(conn).await.unwrap();
    (count, first)
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if let Server::Process { dir, .. } = &self.server {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `INFO <section>` of the server on `port`, as text (empty if it does
/// not answer).
fn info(port: u16, section: &str) -> String {
    redis_cli(port, &["info", section])
}

/// A Redis Cluster of three masters, each with as many replicas as asked
/// (none by default), on spare ports, each a private `redis-server` killed
/// on drop; slots are spread evenly by `redis-cli --cluster create`.
#[derive(Debug)]
pub struct RedisCluster {
    /// Every node's port, in the order given to `--cluster create`.
    pub ports: Vec<u16>,
    dir: PathBuf,
    children: Vec<Option<Child>>,
}

const CLUSTER_MASTERS: usize = 3;

impl RedisCluster {
    /// Three masters, no replicas.
    pub fn start() -> Self {
        Self::start_with_replicas(0)
    }

    /// Three masters with `replicas` replicas each; a master that fails is
    /// replaced by one of its replicas about 2 s later
    /// (`cluster-node-timeout` 2000 ms).
    ///
    /// Ports are picked free but taken only when the nodes start, so
    /// another test may take one first (then the node that fails to bind
    /// is not the one answering): such a start is retried on fresh ports.
    pub fn start_with_replicas(replicas: usize) -> Self {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start(replicas) {
                Ok(cluster) => return cluster,
                Err(why) => failures.push(why),
            }
        }
        panic!("could not start a Redis Cluster: {failures:#?}");
    }

    fn try_start(replicas: usize) -> Result<Self, String> {
        let ports: Vec<u16> = (0..CLUSTER_MASTERS * (1 + replicas)).map(|_| free_cluster_port()).collect();
        let dir = std::env::temp_dir().join(format!("hookline-cluster-{}-{}", std::process::id(), ports[0]));
        let mut cluster = Self { ports: ports.clone(), dir, children: ports.iter().map(|_| None).collect() };
        for i in 0..ports.len() {
            cluster.spawn_node(i);
        }
        // A node that exited could not bind: whatever answers its port is
        // not ours.
        for (port, child) in ports.iter().zip(cluster.children.iter_mut()) {
            if let Some(child) = child
                && child.try_wait().ok().flatten().is_some()
            {
                return Err(format!("the node for port {port} exited: the port was taken"));
            }
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stderr(Stdio::inherit())
            .output()
            .expect("redis-cli must be on PATH (it comes with redis-server)");
        if !created.status.success() {
            return Err(format!("redis-cli --cluster create failed: {}", String::from_utf8_lossy(&created.stdout)));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster.is_ok() {
            if Instant::now() >= deadline {
                return Err("the cluster did not reach cluster_state:ok in 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(cluster)
    }

    /// Starts node `i` (again: a restarted node keeps its `nodes.conf`, so
    /// it rejoins; its data starts empty) and waits until it listens.
    fn spawn_node(&mut self, i: usize) {
        let port = self.ports[i];
        let node_dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
            .arg("--dir")
            .arg(&node_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be on PATH (apt-get install -y redis-server)");
        self.children[i] = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every running node answers `cluster_state:ok` and knows every node,
    /// and every running replica's link to its master is up.
    pub fn is_ok(&self) -> bool {
        let known = format!("cluster_known_nodes:{}", self.ports.len());
        self.running().all(|port| {
            let text = redis_cli(port, &["cluster", "info"]);
            let replication = info(port, "replication");
            text.contains("cluster_state:ok")
                && text.contains(&known)
                && (replication.contains("role:master") || replication.contains("master_link_status:up"))
        })
    }

    fn running(&self) -> impl Iterator<Item = u16> + '_ {
        self.ports.iter().zip(&self.children).filter(|(_, c)| c.is_some()).map(|(p, _)| *p)
    }

    /// The port of the master serving `key`'s slot, as the running nodes
    /// see it (`CLUSTER NODES`), if one does.
    pub fn master_of(&self, key: &str) -> Option<u16> {
        let port = self.running().next()?;
        let slot: u16 = redis_cli(port, &["cluster", "keyslot", key]).trim().parse().ok()?;
        redis_cli(port, &["cluster", "nodes"]).lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let healthy_master = fields.get(2).is_some_and(|f| f.contains("master") && !f.contains("fail"));
            let serves = fields.iter().skip(8).any(|range| match range.split_once('-') {
                Some((a, b)) => a.parse::<u16>().is_ok_and(|a| a <= slot) && b.parse::<u16>().is_ok_and(|b| slot <= b),
                None => range.parse::<u16>() == Ok(slot),
            });
            let addr = fields.get(1)?.split('@').next()?;
            (healthy_master && serves).then(|| addr.rsplit(':').next()?.parse().ok()).flatten()
        })
    }

    /// Kills the node on `port` (SIGKILL).
    pub fn kill(&mut self, port: u16) {
        let i = self.index(port);
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed node again on its port; it rejoins the cluster
    /// (as a replica, once a failover has replaced it).
    pub fn restart(&mut self, port: u16) {
        let i = self.index(port);
        assert!(self.children[i].is_none(), "node {port} is running");
        self.spawn_node(i);
    }

    fn index(&self, port: u16) -> usize {
        self.ports.iter().position(|p| *p == port).unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// The URL hookline takes for a cluster: every node as a seed.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// Keys held by each node (`DBSIZE`), in port order.
    pub fn keys_per_node(&self) -> Vec<u64> {
        self.ports.iter().map(|port| redis_cli(*port, &["dbsize"]).trim().parse().unwrap_or(0)).collect()
    }
}

/// What `redis-cli -p <port> <args…>` prints (empty if it fails).
fn redis_cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `condition` until it holds; panics after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(Instant::now() < deadline, "condition not met within {limit:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A service running in this process on 127.0.0.1; stopped on drop.
#[derive(Debug)]
pub struct Running {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Binds an ephemeral port and runs `serve(listener, shutdown)` on it.
    pub async fn start<F, Fut, E>(serve: F) -> Self
    where
        F: FnOnce(tokio::net::TcpListener, std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Debug,
    {
        Self::start_on("127.0.0.1:0".parse().unwrap(), serve).await
    }

    /// The same on a given address (to start a service again where it was).
    pub async fn start_on<F, Fut, E>(addr: std::net::SocketAddr, serve: F) -> Self
    where
        F: FnOnce(tokio::net::TcpListener, std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Debug,
    {
        // Starting again where it was, the port may be held for a moment
        // (by a connection of another test, or the old listener closing):
        // try again for a few seconds before failing.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot listen on {addr}: {e}"),
            }
        };
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let future = serve(
            listener,
            Box::pin(async move {
                let _ = stopped.await;
            }),
        );
        let task = tokio::spawn(async move {
            if let Err(error) = future.await {
                panic!("service failed: {error:?}");
            }
        });
        Self { addr, stop: Some(stop), task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Asks it to shut down and waits (up to 10 s).
    pub async fn stop(mut self) {
        self.halt().await;
    }

    /// The same, keeping the handle (its address, to start it again).
    pub async fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }

    /// Waits until its gRPC health says SERVING.
    pub async fn wait_serving(&self) {
        let addr = self.addr;
        eventually(Duration::from_secs(15), || async move { health(addr).await == 1 }).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The overall gRPC health status of a server (1 SERVING, 2 NOT_SERVING,
/// -1 unreachable).
pub async fn health(addr: std::net::SocketAddr) -> i32 {
    let Ok(channel) = tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect().await else {
        return -1;
    };
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    match client.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await {
        Ok(r) => r.into_inner().status,
        Err(_) => -1,
    }
}

/// A portal session token for `tenant`, signed with `key` and valid for an
/// hour, as `ExchangePortalCode` would hand out: for suites that test what
/// the other services let a portal session do.
pub fn portal_token(key: &str, tenant: &str, read_only: bool) -> String {
    portal_token_within(key, tenant, read_only, &[])
}

/// [`portal_token`] for a session limited to part of the tenant: `scope`
/// is (label, allowed values) pairs.
pub fn portal_token_within(key: &str, tenant: &str, read_only: bool, scope: &[(&str, &[&str])]) -> String {
    let key = hookline_auth::PortalKey::new(key).expect("portal key of at least 32 characters");
    let expires =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_secs() + 3600;
    let tenant = hookline_domain::TenantId::parse(tenant).expect("tenant id");
    let scope = hookline_domain::Scope::new(
        scope
            .iter()
            .map(|(label, values)| ((*label).to_owned(), values.iter().map(|v| (*v).to_owned()).collect()))
            .collect(),
    )
    .expect("valid scope");
    key.sign(&hookline_auth::PortalGrant { session: "ps_test".into(), tenant, read_only, expires, scope })
}
