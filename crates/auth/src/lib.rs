//! Bearer-token authentication shared by hookline's gRPC servers, and the
//! matching client side.
//!
//! Tokens come from configuration, each mapped to one tenant or to admin;
//! one more token identifies hookline's own services to each other. The
//! server [`Authenticator`] is a tonic interceptor that puts the caller's
//! [`Principal`] into the request extensions; handlers then ask it which
//! tenant a request may touch ([`Principal::tenant_for`],
//! [`Principal::can_access`]).
//!
//! Tokens are kept only as SHA-256 digests, so a lookup's timing says
//! nothing about the token's characters, and a memory dump holds no token.
//!
//! A portal session ([`portal`]) is the one principal not configured: its
//! token is signed with `auth.portal_key` and checked here, in every
//! service, so the services, not the portal, enforce what it may do.

pub mod portal;

use std::{collections::HashMap, fmt, time::SystemTime};

use hookline_domain::{Scope, TenantId};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tonic::{Request, Status, metadata::MetadataValue, service::Interceptor};

pub use crate::portal::{PortalGrant, PortalKey, PortalLink};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A tenant's token: sees only that tenant's resources.
    Tenant(TenantId),
    /// An operator's token: any tenant, named in each request.
    Admin,
    /// Another hookline service (watch streams, auto-pause, ...).
    Service,
    /// A subscriber in the customer portal: one tenant, like its token,
    /// but it cannot publish or change the tenant's catalog and settings
    /// ([`Principal::of_owner`]), and may be read-only
    /// ([`Principal::check_may_change`]).
    Portal(PortalGrant),
}

impl Principal {
    /// The tenant a request acts for. A tenant token may leave `requested`
    /// empty or name itself; naming another tenant answers NOT_FOUND, as if
    /// the other tenant did not exist. Admin and service tokens must name it.
    pub fn tenant_for(&self, requested: &str) -> Result<TenantId, Status> {
        match self.own_tenant() {
            Some(own) if requested.is_empty() || requested == own.as_str() => Ok(own.clone()),
            Some(_) => Err(Status::not_found(format!("tenant `{requested}` not found"))),
            None if requested.is_empty() => {
                Err(Status::invalid_argument("tenant_id: is required with an admin or service token"))
            }
            None => TenantId::parse(requested).map_err(|e| Status::invalid_argument(e.to_string())),
        }
    }

    /// Whether this caller may see a resource owned by `tenant`.
    pub fn can_access(&self, tenant: &TenantId) -> bool {
        self.own_tenant().is_none_or(|own| own == tenant)
    }

    /// The one tenant a tenant token or portal session is bound to; `None`
    /// for admin and service tokens, which may act on any.
    pub fn own_tenant(&self) -> Option<&TenantId> {
        match self {
            Self::Tenant(own) => Some(own),
            Self::Portal(grant) => Some(&grant.tenant),
            Self::Admin | Self::Service => None,
        }
    }

    /// Refuses a change (create, update, pause, retry, reveal a secret...)
    /// by a read-only portal session: PERMISSION_DENIED.
    pub fn check_may_change(&self) -> Result<(), Status> {
        match self {
            Self::Portal(grant) if grant.read_only => {
                Err(Status::permission_denied("this portal session is read-only; ask for a link that may manage"))
            }
            _ => Ok(()),
        }
    }

    pub fn is_service(&self) -> bool {
        matches!(self, Self::Service)
    }

    /// Whether this caller may see a subscription with `scope`: always,
    /// except for a portal session limited to part of its tenant, which
    /// sees only subscriptions whose scope lies within its own (so another
    /// account's subscription is NOT_FOUND, exactly like another tenant's).
    pub fn sees_scope(&self, scope: &Scope) -> bool {
        match self {
            Self::Portal(grant) => scope.within(&grant.scope),
            _ => true,
        }
    }

    /// The scope a limited portal session is held to; `None` for every
    /// other caller (who sees whole tenants).
    pub fn scope_limit(&self) -> Option<&Scope> {
        match self {
            Self::Portal(grant) if !grant.scope.is_empty() => Some(&grant.scope),
            _ => None,
        }
    }

    /// The scope a subscription this caller creates or changes gets: as
    /// given, or for a limited portal session, narrowed into the session's
    /// (labels it leaves out are filled in); a value outside the session's
    /// answers PERMISSION_DENIED.
    pub fn narrow_scope(&self, scope: &Scope) -> Result<Scope, Status> {
        match self {
            Self::Portal(grant) if !grant.scope.is_empty() => scope
                .narrowed_to(&grant.scope)
                .map_err(|e| Status::permission_denied(format!("{e} (this portal session's scope)"))),
            _ => Ok(scope.clone()),
        }
    }

    /// The principal a request was authenticated as, for the calls the
    /// service token may make (watch, auto-pause, disable on 410, publishing
    /// operational events). Handlers behind an [`Authenticator`] always have
    /// one; its absence is a wiring bug and answers UNAUTHENTICATED rather
    /// than panicking.
    pub fn of<T>(request: &Request<T>) -> Result<&Principal, Status> {
        request.extensions().get::<Principal>().ok_or_else(|| {
            if request.extensions().get::<PortalLink>().is_some() {
                Status::unauthenticated("a portal link is not a session token: open it in the portal")
            } else {
                Status::unauthenticated("no credentials")
            }
        })
    }

    /// The magic link a call was made with (`ExchangePortalCode` only).
    pub fn link_of<T>(request: &Request<T>) -> Result<&PortalLink, Status> {
        request
            .extensions()
            .get::<PortalLink>()
            .ok_or_else(|| Status::unauthenticated("send the portal link's code as the bearer token"))
    }

    /// The principal of a call the service token may not make: everything
    /// but [`Principal::of`]'s few. The service token is for hookline's own
    /// services, not a second admin token (it must not read secrets or
    /// another tenant's deliveries): PERMISSION_DENIED.
    pub fn of_user<T>(request: &Request<T>) -> Result<&Principal, Status> {
        match Self::of(request)? {
            Self::Service => Err(Status::permission_denied(
                "the service token is for hookline's own services; use a tenant or admin token",
            )),
            who => Ok(who),
        }
    }

    /// The principal of a call only the tenant itself (or an operator) may
    /// make: publishing, the event-type catalog, tenant settings, opening
    /// portal sessions. A portal session is a subscriber's, not the
    /// tenant's: PERMISSION_DENIED, as for the service token.
    pub fn of_owner<T>(request: &Request<T>) -> Result<&Principal, Status> {
        match Self::of_user(request)? {
            Self::Portal(_) => {
                Err(Status::permission_denied("a portal session cannot do this; use the tenant's own token"))
            }
            who => Ok(who),
        }
    }
}

/// The `[auth]` section every service reads.
#[derive(Debug, Clone, Default, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Client tokens, each for one tenant or for admin.
    #[serde(default, skip_serializing)]
    pub tokens: Vec<TokenConfig>,
    /// The token hookline's services present to each other.
    #[serde(default, skip_serializing)]
    pub service_token: Option<String>,
    /// Signs and checks customer-portal session tokens; the same value in
    /// every service. Unset: no portal sessions.
    #[serde(default, skip_serializing)]
    pub portal_key: Option<String>,
}

impl AuthConfig {
    /// Builds the authenticator, failing on a bad configuration.
    pub fn authenticator(&self) -> Result<Authenticator, AuthConfigError> {
        let auth = Authenticator::new(&self.tokens, self.service_token.as_deref())?;
        match self.portal_key() {
            Some(key) => Ok(auth.with_portal_key(key?)),
            None => Ok(auth),
        }
    }

    /// The portal session key, if one is configured.
    pub fn portal_key(&self) -> Option<Result<PortalKey, AuthConfigError>> {
        self.portal_key.as_deref().map(|k| PortalKey::new(k).ok_or(AuthConfigError::ShortPortalKey))
    }

    /// The tenants that have a token of their own.
    pub fn token_tenants(&self) -> Vec<TenantId> {
        self.tokens.iter().filter_map(|t| t.tenant.as_deref()).filter_map(|t| TenantId::parse(t).ok()).collect()
    }
}

/// One configured token.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub token: String,
    /// The tenant this token acts for; leave unset with `admin = true`.
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub admin: bool,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("token", &"<redacted>")
            .field("tenant", &self.tenant)
            .field("admin", &self.admin)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("auth.tokens[{0}]: set exactly one of `tenant` or `admin = true`")]
    Ambiguous(usize),
    #[error("auth.tokens[{index}]: {reason}")]
    BadTenant { index: usize, reason: String },
    #[error("auth: token #{0} is shorter than 16 characters; use a long random token")]
    Short(String),
    #[error("auth: the same token is configured twice")]
    Duplicate,
    #[error("auth.portal_key: is shorter than 32 characters; use a long random key")]
    ShortPortalKey,
}

const MIN_TOKEN_LEN: usize = 16;

type Digest32 = [u8; 32];

fn digest(token: &str) -> Digest32 {
    Sha256::digest(token.as_bytes()).into()
}

/// What a bearer token stands for.
#[derive(Debug, Clone)]
pub enum Credential {
    Principal(Principal),
    /// A magic link's code: good only for `ExchangePortalCode`.
    Link(PortalLink),
}

/// The server side: a tonic interceptor mapping bearer tokens to principals.
#[derive(Clone)]
pub struct Authenticator {
    tokens: std::sync::Arc<HashMap<Digest32, Principal>>,
    portal: Option<PortalKey>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.len())
            .field("portal", &self.portal.is_some())
            .finish()
    }
}

impl Authenticator {
    pub fn new(tokens: &[TokenConfig], service_token: Option<&str>) -> Result<Self, AuthConfigError> {
        let mut map = HashMap::new();
        for (index, t) in tokens.iter().enumerate() {
            if t.token.len() < MIN_TOKEN_LEN {
                return Err(AuthConfigError::Short(index.to_string()));
            }
            let principal = match (&t.tenant, t.admin) {
                (Some(tenant), false) => Principal::Tenant(
                    TenantId::parse(tenant).map_err(|e| AuthConfigError::BadTenant { index, reason: e.reason })?,
                ),
                (None, true) => Principal::Admin,
                _ => return Err(AuthConfigError::Ambiguous(index)),
            };
            if map.insert(digest(&t.token), principal).is_some() {
                return Err(AuthConfigError::Duplicate);
            }
        }
        if let Some(token) = service_token {
            if token.len() < MIN_TOKEN_LEN {
                return Err(AuthConfigError::Short("service_token".into()));
            }
            if map.insert(digest(token), Principal::Service).is_some() {
                return Err(AuthConfigError::Duplicate);
            }
        }
        Ok(Self { tokens: std::sync::Arc::new(map), portal: None })
    }

    /// Also accepts portal session tokens signed with `key`.
    pub fn with_portal_key(mut self, key: PortalKey) -> Self {
        self.portal = Some(key);
        self
    }

    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, Status> {
        match self.credential(header)? {
            Credential::Principal(p) => Ok(p),
            Credential::Link(_) => {
                Err(Status::unauthenticated("a portal link is not a session token: open it in the portal"))
            }
        }
    }

    /// What the header carries: a principal, or a magic link to exchange.
    pub fn credential(&self, header: Option<&str>) -> Result<Credential, Status> {
        let token = header
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .ok_or_else(|| Status::unauthenticated("missing credentials: send `authorization: Bearer <token>`"))?
            .trim();
        if PortalKey::is_portal_token(token) || PortalKey::is_link(token) {
            let key = self
                .portal
                .as_ref()
                .ok_or_else(|| Status::unauthenticated("portal sessions are not enabled here (auth.portal_key)"))?;
            return if PortalKey::is_link(token) {
                key.verify_link(token, SystemTime::now()).map(Credential::Link)
            } else {
                key.verify(token, SystemTime::now()).map(|g| Credential::Principal(Principal::Portal(g)))
            };
        }
        self.tokens
            .get(&digest(token))
            .cloned()
            .map(Credential::Principal)
            .ok_or_else(|| Status::unauthenticated("invalid token"))
    }
}

impl Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        match self.credential(header)? {
            Credential::Principal(principal) => {
                request.extensions_mut().insert(principal);
            }
            Credential::Link(link) => {
                request.extensions_mut().insert(link);
            }
        }
        Ok(request)
    }
}

/// The client side: adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct BearerToken(MetadataValue<tonic::metadata::Ascii>);

impl BearerToken {
    pub fn new(token: &str) -> Result<Self, Status> {
        format!("Bearer {token}")
            .parse()
            .map(Self)
            .map_err(|_| Status::invalid_argument("token has characters not allowed in a header"))
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        let tokens = [
            TokenConfig { token: "tenant-acme-token-0001".into(), tenant: Some("acme".into()), admin: false },
            TokenConfig { token: "admin-token-000000001".into(), tenant: None, admin: true },
        ];
        Authenticator::new(&tokens, Some("service-token-0000001")).expect("valid config")
    }

    #[test]
    fn tokens_map_to_their_principals() {
        let a = auth();
        assert_eq!(
            a.authenticate(Some("Bearer tenant-acme-token-0001")).expect("ok"),
            Principal::Tenant(TenantId::parse("acme").expect("tenant"))
        );
        assert_eq!(a.authenticate(Some("Bearer admin-token-000000001")).expect("ok"), Principal::Admin);
        assert_eq!(a.authenticate(Some("Bearer service-token-0000001")).expect("ok"), Principal::Service);
    }

    #[test]
    fn missing_or_wrong_tokens_are_unauthenticated() {
        let a = auth();
        for header in [None, Some("tenant-acme-token-0001"), Some("Bearer nope-nope-nope-nope")] {
            assert_eq!(a.authenticate(header).expect_err("refused").code(), tonic::Code::Unauthenticated);
        }
    }

    #[test]
    fn a_tenant_naming_another_tenant_gets_not_found() {
        let p = Principal::Tenant(TenantId::parse("acme").expect("tenant"));
        assert_eq!(p.tenant_for("").expect("own").as_str(), "acme");
        assert_eq!(p.tenant_for("other").expect_err("foreign").code(), tonic::Code::NotFound);
        assert_eq!(Principal::Admin.tenant_for("").expect_err("needs tenant").code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn a_portal_session_is_its_tenant_narrowed() {
        let key = PortalKey::new(&"p".repeat(32)).expect("key");
        let a = auth().with_portal_key(key.clone());
        let acme = TenantId::parse("acme").expect("tenant");
        let grant = PortalGrant {
            session: "ps_1".into(),
            tenant: acme.clone(),
            read_only: true,
            expires: u64::MAX,
            scope: Default::default(),
        };
        let who = a.authenticate(Some(&format!("Bearer {}", key.sign(&grant)))).expect("portal token");
        assert_eq!(who, Principal::Portal(grant.clone()));
        assert_eq!(who.tenant_for("").expect("own"), acme);
        assert_eq!(who.tenant_for("other").expect_err("foreign").code(), tonic::Code::NotFound);
        assert!(who.can_access(&acme) && !who.can_access(&TenantId::parse("other").expect("tenant")));
        assert_eq!(who.check_may_change().expect_err("read-only").code(), tonic::Code::PermissionDenied);
        assert!(Principal::Portal(PortalGrant { read_only: false, ..grant }).check_may_change().is_ok());
        let mut request = Request::new(());
        request.extensions_mut().insert(who);
        assert!(Principal::of_user(&request).is_ok());
        assert_eq!(Principal::of_owner(&request).expect_err("not the owner").code(), tonic::Code::PermissionDenied);
        // Without the key, portal tokens are refused, not looked up.
        let token = format!(
            "Bearer {}",
            key.sign(&PortalGrant {
                session: "ps_2".into(),
                tenant: acme,
                read_only: false,
                expires: u64::MAX,
                scope: Default::default(),
            })
        );
        assert_eq!(auth().authenticate(Some(&token)).expect_err("disabled").code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn bad_token_configs_are_refused() {
        let short = [TokenConfig { token: "short".into(), tenant: Some("a".into()), admin: false }];
        assert!(Authenticator::new(&short, None).is_err());
        let both = [TokenConfig { token: "x".repeat(20), tenant: Some("a".into()), admin: true }];
        assert!(Authenticator::new(&both, None).is_err());
        let dup = [
            TokenConfig { token: "x".repeat(20), tenant: Some("a".into()), admin: false },
            TokenConfig { token: "x".repeat(20), tenant: None, admin: true },
        ];
        assert!(Authenticator::new(&dup, None).is_err());
    }
}
