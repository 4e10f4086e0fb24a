//! Waiting for a service to be ready, and picking ports: shared by the
//! bench, `dev` and `demo`.

use std::{
    net::{SocketAddr, TcpListener},
    time::{Duration, Instant},
};

use tonic::transport::Channel;

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

/// A port free on 127.0.0.1 when asked (bind it soon).
pub(crate) fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}
