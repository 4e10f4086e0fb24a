//! The session cookie and the CSRF token derived from it.
//!
//! The cookie holds the session token itself: the portal keeps no state,
//! so any replica serves any page. It is `HttpOnly` (no script reads it),
//! `SameSite=Lax` (not sent with cross-site POSTs) and, unless turned off
//! for plain-HTTP development, `Secure`; it expires with the session. The
//! CSRF token of a form is a digest of the session token, so a page from
//! another site, which cannot read the cookie, cannot forge it.

use std::time::SystemTime;

use axum::{
    extract::OptionalFromRequestParts,
    http::{HeaderValue, header, request::Parts},
};
use hookline_proto::v1;
use sha2::{Digest, Sha256};

const COOKIE: &str = "hookline_portal";

/// The caller's portal session, from its cookie.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) token: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session(<redacted>)")
    }
}

impl Session {
    /// The value every form of this session carries.
    pub(crate) fn csrf(&self) -> String {
        let digest =
            Sha256::new().chain_update(b"hookline-portal-csrf\0").chain_update(self.token.as_bytes()).finalize();
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether the session may only look. Read from the token's claims
    /// without the key, to leave out forms it could not use; the services
    /// enforce it whatever this says.
    pub(crate) fn read_only(&self) -> bool {
        self.claims().is_some_and(|g| g.read_only)
    }

    /// The session's claims, read the same way and for the same use only:
    /// what to show (its scope, its forms), never who may do what.
    pub(crate) fn claims(&self) -> Option<hookline_auth::PortalGrant> {
        hookline_auth::PortalGrant::read_unverified(&self.token)
    }

    pub(crate) fn csrf_matches(&self, sent: &str) -> bool {
        let expected = self.csrf();
        // Constant time: compare every byte whatever differs first.
        expected.len() == sent.len() && expected.bytes().zip(sent.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        let token = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value.to_owned())
            .filter(|value| !value.is_empty());
        Ok(token.map(|token| Self { token }))
    }
}

/// The `Set-Cookie` that keeps `session` until it expires.
pub(crate) fn cookie(session: &v1::PortalSession, secure: bool) -> Option<HeaderValue> {
    let expires = SystemTime::try_from(session.expire_time?).ok()?;
    let max_age = expires.duration_since(SystemTime::now()).ok()?.as_secs();
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        session.token
    ))
    .ok()
}

/// The `Set-Cookie` that removes it.
pub(crate) fn clear_cookie(secure: bool) -> HeaderValue {
    if secure {
        HeaderValue::from_static("hookline_portal=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure")
    } else {
        HeaderValue::from_static("hookline_portal=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_session_is_read_from_its_cookie_among_others() {
        let request = axum::http::Request::builder()
            .header(header::COOKIE, "theme=dark; hookline_portal=hlp1.abc.def")
            .header(header::COOKIE, "other=1")
            .body(())
            .expect("request");
        let (mut parts, ()) = request.into_parts();
        let session = <Session as OptionalFromRequestParts<()>>::from_request_parts(&mut parts, &())
            .await
            .expect("infallible")
            .expect("a session");
        assert_eq!(session.token, "hlp1.abc.def");
        let (mut none, ()) = axum::http::Request::builder().body(()).expect("request").into_parts();
        let missing = <Session as OptionalFromRequestParts<()>>::from_request_parts(&mut none, &()).await;
        assert!(missing.expect("infallible").is_none());
    }

    #[test]
    fn the_csrf_token_belongs_to_one_session() {
        let a = Session { token: "hlp1.a.a".into() };
        let b = Session { token: "hlp1.b.b".into() };
        assert!(a.csrf_matches(&a.csrf()));
        assert!(!a.csrf_matches(&b.csrf()) && !a.csrf_matches("") && !a.csrf_matches(&a.csrf()[1..]));
    }
}
