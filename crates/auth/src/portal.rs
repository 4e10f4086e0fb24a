//! Portal links and session tokens: what a subscriber's browser acts with.
//!
//! A portal session is a tenant's principal narrowed for one of its own
//! customers: it sees only that tenant, may be read-only, cannot publish
//! or change the tenant's catalog and settings, and ends at a fixed time.
//! Its token is self-contained, so every service checks it without a
//! lookup: `hlp1.<claims>.<mac>`, the claims JSON and an HMAC-SHA256 over
//! the prefix and the claims, both base64url, keyed with `auth.portal_key`
//! (the same key in every service; only the subscription service signs).
//!
//! A magic link carries a [`PortalLink`] (`hll1.…`, signed the same way
//! under its own prefix, so neither kind passes for the other). It is no
//! principal: its only use is `ExchangePortalCode`, which claims it once
//! (in Redis) and answers with the session token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use hookline_domain::{Scope, TenantId};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tonic::Status;

const PREFIX: &str = "hlp1.";
/// The shortest `auth.portal_key` accepted (characters).
pub const MIN_PORTAL_KEY_LEN: usize = 32;

/// What a portal session may do, carried in its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalGrant {
    /// `ps_` + ULID: names the session in logs and lets it be ended.
    #[serde(rename = "sid")]
    pub session: String,
    #[serde(rename = "t")]
    pub tenant: TenantId,
    /// Read-only sessions may look but not change anything.
    #[serde(rename = "ro")]
    pub read_only: bool,
    /// Unix seconds after which the token is refused.
    #[serde(rename = "exp")]
    pub expires: u64,
    /// The part of the tenant the session is limited to: it sees and
    /// makes only subscriptions whose scope lies within this one
    /// (`account_id ∈ {12}`). Empty: the whole tenant.
    #[serde(rename = "sc", default, skip_serializing_if = "Scope::is_empty")]
    pub scope: Scope,
}

impl PortalGrant {
    pub fn expire_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.expires)
    }

    pub fn is_expired(&self, now: SystemTime) -> bool {
        now.duration_since(UNIX_EPOCH).map_or(true, |d| d.as_secs() >= self.expires)
    }

    /// The claims of a session token **without checking its MAC**: for a
    /// holder that has no key and only adapts what it shows (the portal
    /// hides forms a read-only session could not use). Never a basis for
    /// access: the services verify every token they are sent.
    pub fn read_unverified(token: &str) -> Option<Self> {
        let (claims, _) = token.strip_prefix(PREFIX)?.split_once('.')?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
    }
}

/// A magic link's claims: the session it opens (whose `expires` is, here,
/// the last moment the link may be opened), and how long that session
/// lasts once it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalLink {
    #[serde(flatten)]
    pub opens: PortalGrant,
    /// Seconds the session lasts once the link is opened.
    #[serde(rename = "life")]
    pub session_seconds: u64,
}

impl PortalLink {
    /// The session this link opens at `now`.
    pub fn open(&self, now: SystemTime) -> PortalGrant {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        PortalGrant { expires: now.saturating_add(self.session_seconds), ..self.opens.clone() }
    }
}

const LINK_PREFIX: &str = "hll1.";

/// The key portal tokens are signed and checked with.
#[derive(Clone)]
pub struct PortalKey(Hmac<Sha256>);

impl std::fmt::Debug for PortalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PortalKey(<redacted>)")
    }
}

impl PortalKey {
    /// `None` when the key is shorter than [`MIN_PORTAL_KEY_LEN`].
    pub fn new(key: &str) -> Option<Self> {
        if key.len() < MIN_PORTAL_KEY_LEN {
            return None;
        }
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).ok().map(Self)
    }

    /// The session token for `grant`.
    pub fn sign(&self, grant: &PortalGrant) -> String {
        self.seal(PREFIX, grant)
    }

    /// The magic-link code for `link`.
    pub fn sign_link(&self, link: &PortalLink) -> String {
        self.seal(LINK_PREFIX, link)
    }

    /// Whether `token` looks like a portal session token (and so is checked
    /// here, not looked up among the configured tokens).
    pub fn is_portal_token(token: &str) -> bool {
        token.starts_with(PREFIX)
    }

    /// Whether `token` looks like a magic-link code.
    pub fn is_link(token: &str) -> bool {
        token.starts_with(LINK_PREFIX)
    }

    /// The grant of a session token this key signed, if it has not expired.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<PortalGrant, Status> {
        let grant: PortalGrant = self.open_sealed(PREFIX, token, "invalid portal session token")?;
        if grant.is_expired(now) {
            return Err(Status::unauthenticated("the portal session has expired; open a new portal link"));
        }
        Ok(grant)
    }

    /// The claims of a link this key signed, if it may still be opened.
    pub fn verify_link(&self, code: &str, now: SystemTime) -> Result<PortalLink, Status> {
        let link: PortalLink = self.open_sealed(LINK_PREFIX, code, "this is not a valid portal link")?;
        if link.opens.is_expired(now) {
            return Err(Status::unauthenticated("this portal link has expired; ask for a new one"));
        }
        Ok(link)
    }

    fn mac(&self, prefix: &str, claims: &str) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(prefix.as_bytes());
        mac.update(claims.as_bytes());
        mac
    }

    fn seal(&self, prefix: &str, claims: &impl Serialize) -> String {
        // Serializing a struct of strings, a bool and numbers cannot fail.
        let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let tag = self.mac(prefix, &claims).finalize().into_bytes();
        format!("{prefix}{claims}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    fn open_sealed<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
        token: &str,
        invalid: &str,
    ) -> Result<T, Status> {
        let invalid = || Status::unauthenticated(invalid.to_owned());
        let (claims, tag) = token.strip_prefix(prefix).and_then(|t| t.split_once('.')).ok_or_else(invalid)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
        self.mac(prefix, claims).verify_slice(&tag).map_err(|_| invalid())?;
        let json = URL_SAFE_NO_PAD.decode(claims).map_err(|_| invalid())?;
        serde_json::from_slice(&json).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(expires: u64) -> PortalGrant {
        PortalGrant {
            session: "ps_01J0000000000000000000000".into(),
            tenant: TenantId::parse("acme").expect("tenant"),
            read_only: true,
            expires,
            scope: Scope::default(),
        }
    }

    #[test]
    fn the_claims_can_be_read_without_the_key_but_only_from_a_session_token() {
        let key = PortalKey::new(&"k".repeat(MIN_PORTAL_KEY_LEN)).expect("key");
        let g = grant(4_000_000_000);
        assert_eq!(PortalGrant::read_unverified(&key.sign(&g)), Some(g.clone()));
        let link = PortalLink { opens: g, session_seconds: 60 };
        assert_eq!(PortalGrant::read_unverified(&key.sign_link(&link)), None);
        assert_eq!(PortalGrant::read_unverified("hlp1.not-base64!.x"), None);
    }

    #[test]
    fn a_signed_grant_verifies_until_it_expires() {
        let key = PortalKey::new(&"k".repeat(32)).expect("key");
        let token = key.sign(&grant(2_000));
        assert!(PortalKey::is_portal_token(&token));
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(key.verify(&token, at(1_999)).expect("valid"), grant(2_000));
        assert_eq!(key.verify(&token, at(2_000)).expect_err("expired").code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn tokens_from_another_key_or_tampered_are_refused() {
        let key = PortalKey::new(&"k".repeat(32)).expect("key");
        let other = PortalKey::new(&"o".repeat(32)).expect("key");
        let token = other.sign(&grant(u64::MAX));
        assert!(key.verify(&token, SystemTime::now()).is_err());
        // The same MAC over claims that say read_only = false.
        let mine = key.sign(&grant(u64::MAX));
        let (_, tag) = mine.rsplit_once('.').expect("tag");
        let widened = PortalGrant { read_only: false, ..grant(u64::MAX) };
        let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&widened).expect("json"));
        assert!(key.verify(&format!("{PREFIX}{claims}.{tag}"), SystemTime::now()).is_err());
        assert!(key.verify("hlp1.garbage", SystemTime::now()).is_err());
        assert!(PortalKey::new("short").is_none());
    }

    #[test]
    fn a_link_is_not_a_session_nor_a_session_a_link() {
        let key = PortalKey::new(&"k".repeat(32)).expect("key");
        let link = PortalLink { opens: PortalGrant { read_only: false, ..grant(1_000) }, session_seconds: 3_600 };
        let code = key.sign_link(&link);
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(key.verify_link(&code, at(999)).expect("valid"), link);
        assert!(key.verify_link(&code, at(1_000)).is_err(), "expired");
        let grant = link.open(at(500));
        assert_eq!(grant.expires, 4_100);
        let session = key.sign(&grant);
        // Same claims and MAC under the other prefix: refused both ways.
        let swapped = code.replacen(LINK_PREFIX, PREFIX, 1);
        assert!(key.verify(&swapped, at(0)).is_err());
        assert!(key.verify_link(&session.replacen(PREFIX, LINK_PREFIX, 1), at(0)).is_err());
    }
}
