//! `kill -9` of a delivery process mid-flight loses nothing.

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    time::Duration,
};

use hookline_proto::v1;

use crate::support::*;

fn spawn_binary(stack: &Stack, port: u16) -> Child {
    let env: HashMap<&str, String> = HashMap::from([
        ("HOOKLINE_LISTEN_ADDR", format!("127.0.0.1:{port}")),
        ("HOOKLINE_REDIS_URL", stack.redis.url()),
        ("HOOKLINE_SUBSCRIPTIONS_URL", stack.subscriptions.url()),
        ("HOOKLINE_FANOUT_URL", stack.fanout.url()),
        ("HOOKLINE_ALLOW_CIDRS", "[\"127.0.0.0/8\"]".into()),
        ("HOOKLINE_CLAIM_IDLE", "3s".into()),
        ("HOOKLINE_AUTH__TOKENS", format!("[{{token=\"{ACME}\",tenant=\"acme\"}}]")),
        ("HOOKLINE_AUTH__SERVICE_TOKEN", SERVICE.into()),
        ("HOOKLINE_LOG", "warn".into()),
    ]);
    Command::new(env!("CARGO_BIN_EXE_hookline-delivery"))
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the hookline-delivery binary")
}

#[tokio::test]
async fn kill_9_mid_flight_loses_no_delivery() {
    let mut stack = Stack::without_delivery().await;
    stack.receiver.set("/slow", Behaviour { delay: Duration::from_millis(200), ..Default::default() });
    let (sub, _) = stack.subscribe("/slow", |s| s.max_in_flight = 5).await;
    let mut first = spawn_binary(&stack, hookline_testkit::free_port());
    let mut expected = Vec::new();
    for i in 0..60 {
        expected.push(stack.publish("a", &format!("{{\"n\":{i}}}")).await);
    }
    // Let it deliver some, then kill it without warning.
    eventually(WAIT, || async { stack.receiver.received("/slow").len() >= 10 }).await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let at_kill = stack.receiver.received("/slow").len();
    assert!(at_kill < 60, "killed mid-run ({at_kill} received)");

    let mut second = spawn_binary(&stack, hookline_testkit::free_port());
    let result = async {
        eventually(Duration::from_secs(60), || async {
            let got: std::collections::HashSet<String> =
                stack.receiver.received("/slow").into_iter().map(|r| r.headers["webhook-id"].clone()).collect();
            expected.iter().all(|e| got.contains(e))
        })
        .await;
    };
    result.await;
    second.kill().unwrap();
    second.wait().unwrap();
    let received = stack.receiver.received("/slow").len();
    let duplicates = received - 60;
    // Reported, not asserted away: at-least-once means a few attempts that
    // were in flight at the kill are sent again.
    println!("kill -9: 60 events, {received} requests received, {duplicates} duplicates (in flight at the kill)");
    assert!(duplicates <= 5, "at most the in-flight limit is re-sent: {duplicates}");
    let _ = sub;
    let _ = v1::DeliveryStatus::Succeeded;
}
