//! Ended portal sessions, refused before any handler runs.
//!
//! A portal session token is self-contained (hookline-auth verifies it
//! without a lookup), so ending one early needs a list the services
//! consult: [`EndedSessionGuard`] wraps a gRPC service and, for a call
//! bearing a portal session token, asks `ended(tenant, session)` first; an
//! ended session answers UNAUTHENTICATED. The claims are read without the
//! key: this only ever refuses, and the interceptor behind it still
//! verifies every token.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use hookline_auth::PortalGrant;
use tonic::server::NamedService;
use tower::Service;

/// Answers whether (tenant, session) was ended. An error should answer
/// `false`: the handler's own storage call then fails the request.
pub type EndedCheck = Arc<dyn Fn(String, String) -> BoxFuture<'static, bool> + Send + Sync>;

/// A gRPC service that refuses ended portal sessions.
#[derive(Clone)]
pub struct EndedSessionGuard<S> {
    inner: S,
    ended: EndedCheck,
}

impl<S> std::fmt::Debug for EndedSessionGuard<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndedSessionGuard")
    }
}

impl<S> EndedSessionGuard<S> {
    pub fn new(inner: S, ended: EndedCheck) -> Self {
        Self { inner, ended }
    }
}

impl<S: NamedService> NamedService for EndedSessionGuard<S> {
    const NAME: &'static str = S::NAME;
}

/// The (tenant, session) of a call's portal session token, if it bears one.
fn portal_session(headers: &http::HeaderMap) -> Option<(String, String)> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?.trim();
    let grant = PortalGrant::read_unverified(token)?;
    Some((grant.tenant.to_string(), grant.session))
}

impl<S, B, RB> Service<http::Request<B>> for EndedSessionGuard<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    RB::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let Some((tenant, session)) = portal_session(request.headers()) else {
            let call = self.inner.call(request);
            return Box::pin(async move { call.await.map(|r| r.map(tonic::body::Body::new)) });
        };
        // The ready clone serves this call; a fresh clone waits for the next.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let ended = self.ended.clone();
        Box::pin(async move {
            if ended(tenant, session).await {
                let status = tonic::Status::unauthenticated(
                    "this portal session has been ended; ask for a new link to the webhooks portal",
                );
                return Ok(status.into_http());
            }
            inner.call(request).await.map(|r| r.map(tonic::body::Body::new))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_portal_session_token_names_a_session() {
        let key = hookline_auth::PortalKey::new(&"k".repeat(32)).expect("key");
        let grant = PortalGrant {
            session: "ps_1".into(),
            tenant: hookline_domain::TenantId::parse("acme").expect("tenant"),
            read_only: false,
            expires: u64::MAX,
            scope: Default::default(),
        };
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, format!("Bearer {}", key.sign(&grant)).parse().expect("header"));
        assert_eq!(portal_session(&headers), Some(("acme".into(), "ps_1".into())));
        headers.insert(http::header::AUTHORIZATION, "Bearer tok_acme".parse().expect("header"));
        assert_eq!(portal_session(&headers), None);
        assert_eq!(portal_session(&http::HeaderMap::new()), None);
    }
}
