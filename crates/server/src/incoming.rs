//! Accepting gRPC connections: at most `max_connections` at once, TCP
//! keepalive on each, a connection that sends nothing within
//! `handshake_timeout` closed, and a back-off when the process runs out of
//! file descriptors.
//!
//! HTTP/2 keepalive pings (set on the server) drop a peer that stops
//! answering once the connection is up; before its first bytes nothing
//! would, and a few idle sockets could hold every slot: hence the
//! handshake timeout.
//!
//! tonic's own accept loop retries a failed `accept` at once; when the
//! process is out of descriptors (`EMFILE`) every retry fails the same
//! way, so it spins at 100% CPU while the calls already open starve. Here
//! a connection over the limit waits in the kernel's backlog (its permit
//! is taken before `accept`), and `EMFILE`/`ENFILE`/`ENOBUFS`/`ENOMEM` make
//! the loop sleep, doubling up to a second, instead of spinning.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How a server treats its connections (every service's `[connections]`
/// section).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionLimits {
    /// Connections open at once; more wait in the listen backlog until
    /// one closes.
    pub max_connections: usize,
    /// An HTTP/2 ping after this long without traffic ...
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// ... closes the connection if it goes unanswered this long, so a
    /// vanished peer (half-open connection) frees its slot.
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// TCP keepalive probes start after this much silence (for peers that
    /// never finish the HTTP/2 handshake).
    #[serde(with = "humantime_serde")]
    pub tcp_keepalive: Duration,
    /// Streams one connection may run at once.
    pub max_concurrent_streams: u32,
    /// A connection that sends nothing this long after it is accepted is
    /// closed.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            tcp_keepalive: Duration::from_secs(60),
            max_concurrent_streams: 1024,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl ConnectionLimits {
    /// The configuration rules.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err("connections.max_connections must be between 1 and 1000000".into());
        }
        if self.keepalive_interval < Duration::from_secs(1) || self.keepalive_timeout < Duration::from_secs(1) {
            return Err("connections.keepalive_interval and keepalive_timeout must be at least 1s".into());
        }
        if self.handshake_timeout < Duration::from_millis(100) {
            return Err("connections.handshake_timeout must be at least 100ms".into());
        }
        if self.max_concurrent_streams == 0 {
            return Err("connections.max_concurrent_streams must be at least 1".into());
        }
        Ok(())
    }
}

/// An accepted connection holding one of the server's connection permits
/// until it closes.
#[derive(Debug)]
pub struct Limited {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    /// Until the first bytes arrive: when the peer must have sent some.
    handshake: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Connected for Limited {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Limited {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        match &read {
            Poll::Ready(Ok(())) if buf.filled().len() > before => self.handshake = None,
            Poll::Pending => {
                if let Some(deadline) = self.handshake.as_mut()
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "nothing sent in time")));
                }
            }
            Poll::Ready(_) => {}
        }
        read
    }
}

impl AsyncWrite for Limited {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Whether an `accept` error means the process or system is out of a
/// resource, so trying again at once would only spin.
fn out_of_resources(error: &io::Error) -> bool {
    // EMFILE 24, ENFILE 23, ENOBUFS 105, ENOMEM 12 (Linux).
    matches!(error.raw_os_error(), Some(24 | 23 | 105 | 12))
}

const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The connections of `listener`, as tonic's `serve_with_incoming` takes
/// them; see the module documentation.
pub fn incoming(listener: TcpListener, limits: &ConnectionLimits) -> impl Stream<Item = io::Result<Limited>> {
    metrics::describe_counter!(
        "hookline_grpc_accept_errors_total",
        "Connections the gRPC server could not accept for lack of resources (file descriptors); it backs off"
    );
    metrics::counter!("hookline_grpc_accept_errors_total").increment(0);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let keepalive = socket2::TcpKeepalive::new().with_time(limits.tcp_keepalive);
    let handshake_timeout = limits.handshake_timeout;
    futures::stream::unfold((listener, permits, keepalive), move |(listener, permits, keepalive)| async move {
        let permit = permits.clone().acquire_owned().await.ok()?;
        let mut backoff = Duration::from_millis(10);
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
                    let handshake = Some(Box::pin(tokio::time::sleep(handshake_timeout)));
                    let limited = Limited { stream, _permit: permit, handshake };
                    return Some((Ok(limited), (listener, permits, keepalive)));
                }
                Err(error) if out_of_resources(&error) => {
                    metrics::counter!("hookline_grpc_accept_errors_total").increment(1);
                    if backoff == MAX_BACKOFF {
                        tracing::warn!(%error, "cannot accept connections (out of file descriptors?); backing off");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                // A connection that went away before it was accepted, and
                // the like: only that one is lost.
                Err(error) => tracing::debug!(%error, "accept failed"),
            }
        }
    })
}
