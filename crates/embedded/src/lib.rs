//! hookline's embedded backend: an in-process, in-memory server for the
//! part of the Redis protocol hookline uses, so `hookline dev` and
//! `hookline demo` run with nothing installed.
//!
//! Why a protocol server and not a second implementation of each storage
//! step: the services' storage is Redis commands and Lua scripts (the
//! atomic queue steps). Serving those same commands and running those
//! same scripts (on Lua 5.1, as Redis does) means dev mode exercises the
//! production code paths, and nothing has to be written twice. The
//! conformance suite (`tests/conformance.rs`) sends identical commands to a
//! real `redis-server` and to this one and requires identical replies, and
//! the services' own suites can run on it (`HOOKLINE_TEST_BACKEND=embedded`).
//!
//! What it covers: strings, hashes, sets, sorted sets, lists, key expiry,
//! streams with consumer groups (XREADGROUP with blocking, pending lists,
//! XAUTOCLAIM, XCLAIM, XPENDING, XINFO GROUPS, trimming), EVAL / EVALSHA / SCRIPT.
//! What it is not: durable (everything is lost with the process), shared
//! (one process), or a Redis Cluster. Run real Redis for anything else.

mod commands;
mod db;
mod engine;
mod resp;
mod server;
mod stream;
mod zset;

use std::{net::SocketAddr, sync::Arc, thread::JoinHandle};

use tokio::sync::watch;

/// A running embedded backend. Dropping it stops it.
#[derive(Debug)]
pub struct EmbeddedRedis {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    running: Option<(watch::Sender<bool>, JoinHandle<()>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("embedded backend: cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("embedded backend: the Lua interpreter failed to start: {0}")]
    Lua(#[from] mlua::Error),
}

impl EmbeddedRedis {
    /// Listens on `addr` (port 0 picks a free one) on a thread of its own.
    pub fn start(addr: SocketAddr) -> Result<Self, Error> {
        let shared = Arc::new(server::Shared::new()?);
        let mut server = Self { addr, shared, running: None };
        server.listen()?;
        Ok(server)
    }

    fn listen(&mut self) -> Result<(), Error> {
        let listener =
            std::net::TcpListener::bind(self.addr).map_err(|source| Error::Listen { addr: self.addr, source })?;
        listener.set_nonblocking(true).map_err(|source| Error::Listen { addr: self.addr, source })?;
        self.addr = listener.local_addr().map_err(|source| Error::Listen { addr: self.addr, source })?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = self.shared.clone();
        let thread = std::thread::Builder::new()
            .name("hookline-embedded".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, "embedded backend: no runtime");
                        return;
                    }
                };
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => server::serve(listener, shared, stop_rx).await,
                        Err(error) => tracing::error!(%error, "embedded backend: listener unusable"),
                    }
                });
            })
            .map_err(|source| Error::Listen { addr: self.addr, source })?;
        self.running = Some((stop_tx, thread));
        Ok(())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL the services connect with.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Stops listening and closes every connection; the data stays (as if
    /// Redis went down with every write on disk).
    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            let _ = stop.send(true);
            let _ = thread.join();
        }
    }

    /// Listens again on the same address, with the data it had.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        self.listen()
    }

    /// Forgets every key (as if Redis came back empty).
    pub fn flush(&self) {
        self.shared.execute(vec![b"FLUSHALL".to_vec()]);
    }
}

impl Drop for EmbeddedRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
