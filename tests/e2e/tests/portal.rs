//! The customer portal (`hookline-portal`) against the three services, all
//! as separate processes: a magic link opens once into a cookie session,
//! the pages show only that tenant's endpoints and deliveries, escape
//! whatever the tenant's data holds, and sign out only with the form's
//! CSRF token.

#![allow(clippy::unwrap_used)]

use std::{collections::HashMap, time::Duration};

use hookline_e2e::*;
use hookline_proto::v1::{
    self, event_service_client::EventServiceClient, subscription_service_client::SubscriptionServiceClient,
};
use hookline_testkit::{eventually, free_port, portal_token};
use reqwest::{StatusCode, header};

struct Portal {
    _process: Process,
    base: String,
    http: reqwest::Client,
}

impl Portal {
    async fn start(stack: &Stack) -> Self {
        let port = free_port();
        let env: HashMap<String, String> = [
            ("HOOKLINE_LISTEN_ADDR", format!("127.0.0.1:{port}")),
            ("HOOKLINE_ADMIN_ADDR", format!("127.0.0.1:{}", free_port())),
            ("HOOKLINE_SUBSCRIPTIONS_URL", format!("http://{}", stack.subscriptions.addr())),
            ("HOOKLINE_DELIVERY_URL", format!("http://{}", stack.delivery.addr())),
            ("HOOKLINE_SECURE_COOKIES", "false".into()),
            ("HOOKLINE_BRAND__NAME", "Acme Webhooks".into()),
            ("HOOKLINE_LOG", "warn".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let process = Process::start("hookline-portal", env);
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let portal = Self { _process: process, base: format!("http://127.0.0.1:{port}"), http };
        eventually(WAIT, || async { portal.get("/portal.css", None).await.is_ok() }).await;
        portal
    }

    async fn get(&self, path: &str, session: Option<&str>) -> reqwest::Result<reqwest::Response> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = session {
            request = request.header(header::COOKIE, format!("hookline_portal={token}"));
        }
        request.send().await
    }

    async fn page(&self, path: &str, session: Option<&str>) -> (StatusCode, String) {
        let response = self.get(path, session).await.unwrap();
        (response.status(), response.text().await.unwrap())
    }
}

/// The session token a `Set-Cookie` carries.
fn session_cookie(response: &reqwest::Response) -> (String, String) {
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    let token = cookie.strip_prefix("hookline_portal=").unwrap().split(';').next().unwrap().to_owned();
    (token, cookie)
}

#[tokio::test]
async fn a_magic_link_opens_the_tenants_pages_once_and_escapes_what_they_show() {
    let stack = Stack::start().await;
    let (receiver, port) = Receiver::start(&[200], Duration::ZERO).await;
    let hostile = "<script>alert(1)</script> shop";
    let sub = v1::Subscription {
        name: hostile.into(),
        url: format!("http://127.0.0.1:{port}/hook?a=<b>"),
        event_types: vec!["order.*".into()],
        ..Default::default()
    };
    stack.subscribe_with(sub).await;
    let mut events = stack.client(stack.fanout.addr(), EventServiceClient::with_interceptor).await;
    let publish =
        v1::PublishRequest { event_type: "order.paid".into(), payload: br#"{"n":1}"#.to_vec(), ..Default::default() };
    events.publish(publish).await.unwrap();
    eventually(WAIT, || async { receiver.delivered_ids().len() == 1 }).await;

    let portal = Portal::start(&stack).await;
    let mut subs = stack.client(stack.subscriptions.addr(), SubscriptionServiceClient::with_interceptor).await;
    let link = subs.create_portal_session(v1::CreatePortalSessionRequest::default()).await.unwrap().into_inner();
    let enter = format!("/enter?code={}", link.code);

    let opened = portal.get(&enter, None).await.unwrap();
    assert_eq!(opened.status(), StatusCode::SEE_OTHER);
    assert_eq!(opened.headers()[header::LOCATION], "/endpoints");
    assert_eq!(opened.headers()[header::REFERRER_POLICY], "no-referrer", "the link's URL holds its code");
    let (token, cookie) = session_cookie(&opened);
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");

    let response = portal.get("/endpoints", Some(&token)).await.unwrap();
    let csp = response.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let body = response.text().await.unwrap();
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt; shop"), "{body}");
    assert!(!body.contains("<script>") && !body.contains("a=<b>"), "user data rendered as markup: {body}");
    assert!(body.contains("Acme Webhooks") && body.contains("active"), "{body}");

    let id = format!("sub_{}", body.split("href=\"/endpoints/sub_").nth(1).unwrap().split('"').next().unwrap());
    let (status, detail) = portal.page(&format!("/endpoints/{id}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert!(detail.contains("order.paid") && detail.contains("succeeded") && detail.contains("HTTP 200"), "{detail}");

    // The link opened once; without a session there is nothing to see.
    let (status, again) = portal.page(&enter, None).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(again.contains("already been used"), "{again}");
    let (status, _) = portal.page("/endpoints", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = portal.page("/enter?code=hll1.forged.forged", None).await;
    assert_eq!(status, StatusCode::GONE);

    // Another tenant's session sees none of it: the services decide.
    let globex = portal_token(PORTAL_KEY, "globex", false);
    let (status, other) = portal.page("/endpoints", Some(&globex)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(other.contains("No endpoints yet") && !other.contains("shop"), "{other}");
    let (status, _) = portal.page(&format!("/endpoints/{id}"), Some(&globex)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Signing out needs the page's CSRF token.
    let logout = |csrf: String| {
        portal
            .http
            .post(format!("{}/logout", portal.base))
            .header(header::COOKIE, format!("hookline_portal={token}"))
            .form(&[("csrf", csrf)])
            .send()
    };
    assert_eq!(logout("0".repeat(32)).await.unwrap().status(), StatusCode::FORBIDDEN);
    let csrf = body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let out = logout(csrf).await.unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    assert!(out.headers()[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
}
