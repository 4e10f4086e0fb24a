//! The network side: a listener on its own thread and runtime (like a
//! Redis process beside the services), one task per connection, replies
//! in request order, and blocking stream reads that wait for writes.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{Notify, watch},
    time::Instant,
};

use crate::{
    commands::resolve_last_ids,
    db::{Bytes, parse_int},
    engine::Engine,
    resp::{Reply, parse_command},
};

const PURGE_EVERY: Duration = Duration::from_secs(1);

/// What outlives a stop and restart: the data and the scripts.
pub(crate) struct Shared {
    engine: Mutex<Engine>,
    /// Woken when a stream gets entries (or loses its key).
    streams_changed: Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the lock: a Debug print must not wait on (or deadlock with) a command.
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new() -> mlua::Result<Self> {
        Ok(Self { engine: Mutex::new(Engine::new()?), streams_changed: Notify::new() })
    }

    pub(crate) fn execute(&self, command: Vec<Bytes>) -> Reply {
        let mut engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        let reply = engine.execute(command);
        if std::mem::take(&mut engine.db().streams_changed) {
            self.streams_changed.notify_waiters();
        }
        reply
    }

    pub(crate) fn with_engine<T>(&self, f: impl FnOnce(&mut Engine) -> T) -> T {
        f(&mut self.engine.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A command, waiting first if it is a blocking stream read with
    /// nothing to return yet.
    async fn run(&self, mut command: Vec<Bytes>) -> Reply {
        let Some(block) = block_of(&command) else { return self.execute(command) };
        if command[0].eq_ignore_ascii_case(b"XREAD") {
            self.with_engine(|e| {
                e.db().tick();
                resolve_last_ids(e.db(), &mut command);
            });
        }
        let deadline = block.map(|b| Instant::now() + b);
        loop {
            let changed = self.streams_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let reply = self.execute(command.clone());
            if reply != Reply::NilArray {
                return reply;
            }
            match deadline {
                Some(deadline) => tokio::select! {
                    () = changed => {}
                    () = tokio::time::sleep_until(deadline) => return Reply::NilArray,
                },
                None => changed.await,
            }
        }
    }
}

/// `Some(None)`: blocks without limit (`BLOCK 0`); `Some(Some(d))`: up to
/// `d`; `None`: does not block.
fn block_of(command: &[Bytes]) -> Option<Option<Duration>> {
    let name = command.first()?;
    if !(name.eq_ignore_ascii_case(b"XREAD") || name.eq_ignore_ascii_case(b"XREADGROUP")) {
        return None;
    }
    let streams = command.iter().position(|a| a.eq_ignore_ascii_case(b"STREAMS"))?;
    let at = command[..streams].iter().position(|a| a.eq_ignore_ascii_case(b"BLOCK"))?;
    let ms = parse_int(command.get(at + 1)?).ok()?;
    Some((ms > 0).then(|| Duration::from_millis(ms as u64)))
}

/// Serves until `stop` turns true; connections close with it.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let purge = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PURGE_EVERY);
            loop {
                every.tick().await;
                shared.with_engine(|e| {
                    e.db().tick();
                    e.db().purge_expired();
                });
            }
        })
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    tokio::spawn(connection(socket, peer, shared.clone(), stop.clone()));
                }
                Err(error) => tracing::warn!(%error, "embedded backend: accept failed"),
            },
            _ = stop.changed() => break,
        }
    }
    purge.abort();
}

async fn connection(socket: TcpStream, peer: SocketAddr, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let (mut reader, mut writer) = socket.into_split();
    let mut input: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut output: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        let mut used = 0;
        loop {
            match parse_command(&input[used..]) {
                Ok(Some((command, len))) => {
                    used += len;
                    if command.is_empty() {
                        continue;
                    }
                    tokio::select! {
                        reply = shared.run(command) => reply.encode(&mut output),
                        _ = stop.changed() => return,
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    Reply::error(format!("ERR {error}")).encode(&mut output);
                    let _ = writer.write_all(&output).await;
                    tracing::debug!(%peer, %error, "embedded backend: closing a connection");
                    return;
                }
            }
        }
        input.drain(..used);
        if !output.is_empty() {
            if writer.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
        }
        tokio::select! {
            read = reader.read_buf(&mut input) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(parts: &[&str]) -> Vec<Bytes> {
        parts.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn only_stream_reads_with_block_wait() {
        assert_eq!(
            block_of(&command(&["XREAD", "BLOCK", "100", "STREAMS", "s", "$"])),
            Some(Some(Duration::from_millis(100)))
        );
        assert_eq!(
            block_of(&command(&["xreadgroup", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"])),
            Some(None)
        );
        assert_eq!(block_of(&command(&["XREAD", "STREAMS", "BLOCK", "0"])), None, "a stream named BLOCK");
        assert_eq!(block_of(&command(&["GET", "BLOCK"])), None);
    }
}
