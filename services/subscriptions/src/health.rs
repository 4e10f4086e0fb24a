//! gRPC health: SERVING only while Redis answers, NOT_SERVING once the
//! server begins to shut down, so load balancers drain it first.

use std::sync::Arc;

use hookline_proto::v1::subscription_service_server::SubscriptionServiceServer;
use tokio::sync::watch;
use tonic::server::NamedService;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{HEALTH_INTERVAL, api::Api, store::SubscriptionStore};

pub(crate) async fn report<S: SubscriptionStore>(
    store: Arc<S>,
    reporter: HealthReporter,
    mut stop: watch::Receiver<bool>,
) {
    let mut last = None;
    loop {
        let status = if *stop.borrow() {
            ServingStatus::NotServing
        } else {
            match tokio::time::timeout(HEALTH_INTERVAL, store.ping()).await {
                Ok(Ok(())) => ServingStatus::Serving,
                _ => ServingStatus::NotServing,
            }
        };
        if last != Some(status) {
            tracing::info!(?status, "health");
            reporter.set_service_status("", status).await;
            reporter
                .set_service_status(
                    <SubscriptionServiceServer<Api<S>> as NamedService>::NAME,
                    status,
                )
                .await;
            last = Some(status);
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(HEALTH_INTERVAL) => {}
            _ = stop.changed() => {}
        }
    }
}
