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
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A free TCP port on 127.0.0.1 (free when asked; bind soon).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
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
            return Self { port: server.addr().port(), persistent, server: Server::Embedded(server) };
        }
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("hookline-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self { port, persistent, server: Server::Process { dir, child: None } };
        server.spawn();
        server
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

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if let Server::Process { dir, .. } = &self.server {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A Redis Cluster of three masters (no replicas) on spare ports, each a
/// private `redis-server` killed on drop; slots are spread evenly by
/// `redis-cli --cluster create`.
#[derive(Debug)]
pub struct RedisCluster {
    pub ports: Vec<u16>,
    dir: PathBuf,
    children: Vec<Child>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let dir = std::env::temp_dir().join(format!("hookline-cluster-{}-{}", std::process::id(), ports[0]));
        let mut cluster = Self { ports: ports.clone(), dir, children: Vec::new() };
        for port in &ports {
            let node_dir = cluster.dir.join(port.to_string());
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
            cluster.children.push(child);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in &ports {
            while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli must be on PATH (it comes with redis-server)");
        assert!(created.success(), "redis-cli --cluster create failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster.is_ok() {
            assert!(Instant::now() < deadline, "the cluster did not reach cluster_state:ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// Every node answers `cluster_state:ok` and knows all three masters.
    fn is_ok(&self) -> bool {
        self.ports.iter().all(|port| {
            let info = Command::new("redis-cli").args(["-p", &port.to_string(), "cluster", "info"]).output();
            info.is_ok_and(|out| {
                let text = String::from_utf8_lossy(&out.stdout);
                text.contains("cluster_state:ok") && text.contains("cluster_known_nodes:3")
            })
        })
    }

    /// The URL hookline takes for a cluster: every node as a seed.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// Keys held by each node (`DBSIZE`), in port order.
    pub fn keys_per_node(&self) -> Vec<u64> {
        self.ports
            .iter()
            .map(|port| {
                let out = Command::new("redis-cli").args(["-p", &port.to_string(), "dbsize"]).output().unwrap();
                String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
            })
            .collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
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
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
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
