//! Running things on this machine for the bench, `dev` and `demo`: a
//! private `redis-server`, waiting for a service to be SERVING, spare ports.

use std::{
    net::SocketAddr,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};
use tonic::transport::Channel;

/// What a local `redis-server` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedisRole {
    Alone,
    ClusterNode,
    /// A replica of the server on this port.
    ReplicaOf(u16),
}

/// Starts `redis_server` on 127.0.0.1:`port` without persistence, in a
/// fresh directory of its own (a cluster node keeps its `nodes.conf`
/// there), killed when the `Child` is dropped; returns once the port
/// answers.
pub(crate) async fn redis_server(redis_server: &Path, port: u16, role: RedisRole) -> Result<Child, String> {
    let dir = std::env::temp_dir().join(format!("hookline-redis-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir); // a stale nodes.conf would join an old cluster
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut command = Command::new(redis_server);
    command.current_dir(&dir).stdin(Stdio::null()).stdout(Stdio::null()).kill_on_drop(true);
    command.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    match role {
        RedisRole::Alone => {}
        RedisRole::ClusterNode => {
            command.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"]);
        }
        RedisRole::ReplicaOf(primary) => {
            command.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
    }
    let child = command.spawn().map_err(|e| {
        format!("cannot start {}: {e}. Install Redis (apt-get install redis-server)", redis_server.display())
    })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            return Err(format!("{} did not start on port {port}", redis_server.display()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(child)
}

/// Waits until the gRPC health check of `addr` says SERVING.
pub(crate) async fn wait_serving(name: &str, addr: SocketAddr, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(channel) = Channel::from_shared(format!("http://{addr}")).map_err(|e| e.to_string())?.connect().await
        {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
            if health.check(request).await.is_ok_and(|r| r.into_inner().status == 1) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{name} did not report SERVING on {addr} within {limit:?}"))
}

/// A port free on 127.0.0.1 when asked (bind it soon), outside the
/// ephemeral range and never handed out twice (see
/// [`hookline_server::spare_port`]).
pub(crate) fn free_port() -> Result<u16, String> {
    hookline_server::spare_port().map_err(|e| format!("no spare port on 127.0.0.1: {e}"))
}
