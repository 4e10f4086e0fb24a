//! `hookline demo` and `hookline dev`, the real binary: the demo succeeds
//! only when every delivery arrived with a valid signature, on the embedded
//! backend with no Redis anywhere on the PATH, and on a real Redis; dev
//! mode runs the three services in one process that the CLI and a local
//! receiver can use at once, and stops cleanly on SIGTERM.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hookline_e2e::*;
use hookline_testkit::{eventually, free_port, health};

/// Runs `hookline demo` with `args`; its output, checked.
async fn demo(args: &[&str], path: &str) -> String {
    let out = tokio::process::Command::new(binary("hookline"))
        .args(["demo", "--exit"])
        .args(args)
        .env("PATH", path)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "demo failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("signature valid").count(), 5, "{stdout}");
    assert_eq!(stdout.matches("answered 503").count(), 1, "{stdout}");
    assert!(stdout.contains("succeeded at attempt 2"), "{stdout}");
    assert!(!stdout.contains("INVALID"), "{stdout}");
    stdout
}

#[tokio::test]
async fn the_demo_shows_a_signed_delivery_retried_and_verified_with_nothing_installed() {
    // An empty PATH: no redis-server could be found even if it were wanted.
    let story = demo(&[], "").await;
    assert!(story.contains("the embedded backend"), "{story}");
}

#[tokio::test]
async fn the_demo_runs_the_same_on_a_real_redis() {
    let redis = hookline_testkit::RedisServer::start_redis_server();
    let story = demo(&["--redis-url", &redis.url()], &std::env::var("PATH").unwrap_or_default()).await;
    assert!(story.contains(&redis.url()), "{story}");
}

#[tokio::test]
async fn the_demo_leaves_a_customer_portal_open_behind_the_link_it_prints_until_sigterm() {
    use tokio::io::AsyncBufReadExt;
    let mut demo = tokio::process::Command::new(binary("hookline"))
        .arg("demo")
        .env("PATH", "")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(demo.stdout.take().unwrap()).lines();
    let link = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(at) = line.find("http://").filter(|_| line.contains("/enter?code=")) {
                return line[at..].trim().to_owned();
            }
        }
        panic!("the demo ended without printing a portal link");
    })
    .await
    .unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let opened = http.get(&link).send().await.unwrap();
    assert_eq!(opened.status(), reqwest::StatusCode::SEE_OTHER, "{link}");
    let cookie = opened.headers()[reqwest::header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let base = &link[..link.find("/enter").unwrap()];
    let page = http.get(format!("{base}/endpoints")).header("cookie", cookie).send().await.unwrap();
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("orders") && page.contains("flaky"), "the demo's endpoints are there: {page}");

    let pid = demo.id().unwrap().to_string();
    tokio::process::Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), demo.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0), "a clean stop");
}

#[tokio::test]
async fn dev_mode_serves_the_cli_delivers_to_loopback_and_stops_on_sigterm() {
    let ports = [free_port(), free_port(), free_port()];
    let portal_port = free_port();
    let addr = |port: u16| format!("127.0.0.1:{port}");
    let mut dev = tokio::process::Command::new(binary("hookline"))
        .args(["dev", "--subscriptions-addr", &addr(ports[0]), "--fanout-addr", &addr(ports[1])])
        .args(["--delivery-addr", &addr(ports[2]), "--portal-addr", &addr(portal_port)])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for port in ports {
        let at = ([127, 0, 0, 1], port).into();
        eventually(WAIT, || async move { health(at).await == 1 }).await;
    }
    let (receiver, receiver_port) = Receiver::start(&[200], Duration::ZERO).await;
    let cli = |args: &[&str]| {
        let mut command = tokio::process::Command::new(binary("hookline"));
        command
            .args(["--output", "json"])
            .args(args)
            .env("HOOKLINE_TOKEN", "dev-acme-token-000001")
            .env("HOOKLINE_SUBSCRIPTIONS_URL", format!("http://{}", addr(ports[0])))
            .env("HOOKLINE_FANOUT_URL", format!("http://{}", addr(ports[1])))
            .env("HOOKLINE_DELIVERY_URL", format!("http://{}", addr(ports[2])));
        command
    };
    let url = format!("http://127.0.0.1:{receiver_port}/hook");
    let created = cli(&["subscriptions", "create", "--url", &url, "--event-type", "*"]).output().await.unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let published = cli(&["events", "publish", "order.paid", "{}"]).output().await.unwrap();
    let event: serde_json::Value = serde_json::from_slice(&published.stdout).unwrap();
    let event = event["event_id"].as_str().unwrap().to_owned();
    eventually(WAIT, || async { receiver.delivered_ids() == [event.clone()] }).await;

    // Dev mode's portal opens the links its subscription service makes.
    let link = cli(&["portal", "link"]).output().await.unwrap();
    assert!(link.status.success(), "{}", String::from_utf8_lossy(&link.stderr));
    let link: serde_json::Value = serde_json::from_slice(&link.stdout).unwrap();
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("http://{}/enter?code=", addr(portal_port))), "{url}");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let opened = http.get(url).send().await.unwrap();
    assert_eq!(opened.status(), reqwest::StatusCode::SEE_OTHER, "{:?}", opened.text().await);

    let pid = dev.id().unwrap().to_string();
    tokio::process::Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), dev.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0), "a clean stop");
}
