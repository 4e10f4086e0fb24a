//! The three real binaries, a private Redis and a real HTTP receiver:
//! what a user runs, exercised as a user would.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hookline_domain::SigningSecret;
use hookline_e2e::*;
use hookline_proto::v1::{self, event_service_client::EventServiceClient};
use hookline_testkit::{RedisServer, eventually};

#[tokio::test]
async fn publish_fan_out_and_signed_delivery_across_the_three_binaries() {
    let stack = Stack::start().await;
    let (receiver, port) = Receiver::start(&[503, 200], Duration::ZERO).await;
    let secret = stack
        .subscribe(
            format!("http://127.0.0.1:{port}/hook"),
            Some(v1::RetryPolicy {
                schedule: vec![hookline_proto::Duration { seconds: 1, nanos: 0 }],
                ..Default::default()
            }),
            0,
        )
        .await;
    let mut events = stack.client(stack.fanout.addr(), EventServiceClient::with_interceptor).await;
    let event_id = events.publish(publish_request(1)).await.unwrap().into_inner().event_id;

    eventually(WAIT, || async { receiver.ids().len() >= 2 }).await;
    let got = receiver.got.lock().unwrap().clone();
    assert!(got.iter().all(|(h, _)| h["webhook-id"] == event_id), "one event, retried once with the same id");
    let (headers, body) = &got[1];
    let secret = SigningSecret::parse(&secret).unwrap();
    let timestamp: i64 = headers["webhook-timestamp"].parse().unwrap();
    assert!(hookline_signing::verify(&secret, &event_id, timestamp, body, &headers["webhook-signature"]));
    assert_eq!(body, br#"{"n":1}"#);

    // Every binary stops cleanly on SIGTERM.
    let Stack { subscriptions, fanout, delivery, .. } = stack;
    assert_eq!(delivery.terminate(), Some(0));
    assert_eq!(fanout.terminate(), Some(0));
    assert_eq!(subscriptions.terminate(), Some(0));
}

#[tokio::test]
async fn a_redis_restart_with_aof_mid_run_loses_nothing_and_needs_no_service_restart() {
    let stack = Stack::on(RedisServer::start_persistent()).await;
    let (receiver, port) = Receiver::start(&[200], Duration::from_millis(15)).await;
    stack.subscribe(format!("http://127.0.0.1:{port}/hook"), None, 4).await;
    let total = 200;
    let mut events = stack.client(stack.fanout.addr(), EventServiceClient::with_interceptor).await;
    let mut expected = Vec::new();
    for n in 0..total / 2 {
        expected.push(events.publish(publish_request(n)).await.unwrap().into_inner().event_id);
    }
    let Stack { redis, subscriptions, fanout, delivery } = stack;
    let Backend::Server(mut redis) = redis else { unreachable!("started on one Redis") };
    assert!(receiver.ids().len() < total / 2, "the restart must come mid-run");
    redis.restart(); // SIGKILL, then start again from the append-only file
    // Publishing works again once Redis is back; the services reconnect by themselves.
    let mut n = total / 2;
    while n < total {
        match events.publish(publish_request(n)).await {
            Ok(reply) => {
                expected.push(reply.into_inner().event_id);
                n += 1;
            }
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    eventually(Duration::from_secs(60), || async {
        let got: std::collections::HashSet<String> = receiver.ids().into_iter().collect();
        expected.iter().all(|id| got.contains(id))
    })
    .await;
    let received = receiver.ids().len();
    println!("redis restart (AOF): {total} events, {received} requests, {} duplicates", received - total);
    drop((subscriptions, fanout, delivery));
}
