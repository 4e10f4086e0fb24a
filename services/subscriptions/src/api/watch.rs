//! `WatchSubscriptions`: a snapshot, then every change, each with its
//! revision.
//!
//! Per watcher, one task: send a snapshot taken after reading the log
//! position (or resume from the client's revision when the log still holds
//! it), then replay the log from that position in pages, then wait for the
//! log to move and replay again. Whenever the log cannot serve the next
//! revision (trimmed, or Redis restarted empty under a new log id) the task
//! sends a fresh snapshot. While Redis is unreachable the stream stays open
//! and the task retries with backoff, so watchers need not reconnect.

use std::time::Duration;

use hookline_proto::{
    convert::{event_type_to_proto, secrets_to_proto, settings_to_proto, subscription_to_proto},
    v1::{self, watch_subscriptions_response::Change as Wire},
};
use tokio::sync::mpsc;
use tonic::Status;

use super::{Api, WatchStream, now};
use crate::store::{Change, LogPosition, StoreError, SubscriptionStore};

const PAGE: usize = 500;
const IDLE_RECHECK: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The watcher went away or the server is stopping.
struct Closed;

impl<S: SubscriptionStore> Api<S> {
    pub(super) fn watch(&self, req: v1::WatchSubscriptionsRequest) -> WatchStream {
        let (tx, rx) = mpsc::channel(256);
        let store = self.store.clone();
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let resume = (!req.log_id.is_empty() && req.after_revision > 0)
                .then_some(LogPosition { log_id: req.log_id, revision: req.after_revision });
            tokio::select! {
                _ = run(store.as_ref(), &tx, resume) => {}
                () = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
                    let _ = tx.send(Err(Status::unavailable("server shutting down; reconnect"))).await;
                }
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }
}

type Sender = mpsc::Sender<Result<v1::WatchSubscriptionsResponse, Status>>;

/// Sends one message, unless it is larger than any watcher may decode
/// (only a subscription stored before the size limit could be): that one
/// is left out, loudly, so it cannot stall every other tenant's changes.
async fn send(tx: &Sender, revision: u64, change: Wire) -> Result<(), Closed> {
    let message = v1::WatchSubscriptionsResponse { revision, change: Some(change) };
    let size = prost::Message::encoded_len(&message);
    if size > hookline_proto::MAX_PAGE_BYTES {
        let id = match &message.change {
            Some(Wire::SubscriptionUpserted(w)) => w.subscription.as_ref().map(|s| s.id.clone()).unwrap_or_default(),
            _ => String::new(),
        };
        tracing::error!(
            subscription = %id, size, limit = hookline_proto::MAX_PAGE_BYTES,
            "a stored subscription is too large for the watch; left out (update it to a smaller one, or delete it)"
        );
        metrics::counter!("hookline_watch_skipped_total").increment(1);
        return Ok(());
    }
    tx.send(Ok(message)).await.map_err(|_| Closed)
}

fn to_wire(change: Change) -> Wire {
    let at = now();
    match change {
        Change::Subscription(rec) => Wire::SubscriptionUpserted(v1::WatchedSubscription {
            subscription: Some(subscription_to_proto(&rec.subscription, Some(&rec.secrets), at)),
            secrets: secrets_to_proto(&rec.secrets, at),
        }),
        Change::SubscriptionDeleted { id, tenant } => {
            Wire::SubscriptionDeleted(v1::SubscriptionDeleted { id: id.to_string(), tenant_id: tenant.to_string() })
        }
        Change::EventType { tenant, event_type } => Wire::EventTypeUpserted(v1::EventTypeChanged {
            tenant_id: tenant.to_string(),
            event_type: Some(event_type_to_proto(&event_type)),
        }),
        Change::Settings { tenant, settings } => Wire::TenantSettingsUpserted(settings_to_proto(&tenant, &settings)),
    }
}

async fn snapshot<S: SubscriptionStore>(store: &S, tx: &Sender) -> Result<Result<LogPosition, StoreError>, Closed> {
    let position = match store.position().await {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let items = match store.snapshot().await {
        Ok(items) => items,
        Err(e) => return Ok(Err(e)),
    };
    send(tx, position.revision, Wire::SnapshotStart(v1::SnapshotStart { log_id: position.log_id.clone() })).await?;
    for item in items {
        send(tx, position.revision, to_wire(item)).await?;
    }
    send(tx, position.revision, Wire::SnapshotEnd(v1::SnapshotEnd {})).await?;
    Ok(Ok(position))
}

async fn run<S: SubscriptionStore>(store: &S, tx: &Sender, resume: Option<LogPosition>) -> Result<(), Closed> {
    let mut at: Option<LogPosition> = resume;
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(position) = at.clone() else {
            match snapshot(store, tx).await? {
                Ok(p) => at = Some(p),
                Err(error) => {
                    tracing::debug!(%error, "watch snapshot failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            continue;
        };
        let step = async {
            let latest = store.position().await?;
            if latest.log_id != position.log_id || latest.revision < position.revision {
                return Err(StoreError::Truncated);
            }
            let changes = store.changes_after(position.revision, PAGE).await?;
            Ok((latest, changes))
        };
        match step.await {
            Ok((latest, changes)) if changes.is_empty() => {
                backoff = Duration::from_millis(50);
                let _ = store.wait_for_change(&latest, IDLE_RECHECK).await;
            }
            Ok((_, changes)) => {
                backoff = Duration::from_millis(50);
                let mut revision = position.revision;
                for (rev, change) in changes {
                    send(tx, rev, to_wire(change)).await?;
                    revision = rev;
                }
                at = Some(LogPosition { revision, ..position });
            }
            Err(StoreError::Truncated) => {
                tracing::info!("watcher's revision is no longer in the change log; sending a new snapshot");
                at = None;
            }
            Err(error) => {
                tracing::debug!(%error, "watch catch-up failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
