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

use std::{collections::HashMap, fmt};

use hookline_domain::TenantId;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tonic::{Request, Status, metadata::MetadataValue, service::Interceptor};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A tenant's token: sees only that tenant's resources.
    Tenant(TenantId),
    /// An operator's token: any tenant, named in each request.
    Admin,
    /// Another hookline service (watch streams, auto-pause, ...).
    Service,
}

impl Principal {
    /// The tenant a request acts for. A tenant token may leave `requested`
    /// empty or name itself; naming another tenant answers NOT_FOUND, as if
    /// the other tenant did not exist. Admin and service tokens must name it.
    pub fn tenant_for(&self, requested: &str) -> Result<TenantId, Status> {
        match self {
            Self::Tenant(own) if requested.is_empty() || requested == own.as_str() => Ok(own.clone()),
            Self::Tenant(_) => Err(Status::not_found(format!("tenant `{requested}` not found"))),
            Self::Admin | Self::Service if requested.is_empty() => {
                Err(Status::invalid_argument("tenant_id: is required with an admin or service token"))
            }
            Self::Admin | Self::Service => {
                TenantId::parse(requested).map_err(|e| Status::invalid_argument(e.to_string()))
            }
        }
    }

    /// Whether this caller may see a resource owned by `tenant`.
    pub fn can_access(&self, tenant: &TenantId) -> bool {
        match self {
            Self::Tenant(own) => own == tenant,
            Self::Admin | Self::Service => true,
        }
    }

    pub fn is_service(&self) -> bool {
        matches!(self, Self::Service)
    }

    /// The principal a request was authenticated as, for the calls the
    /// service token may make (watch, auto-pause, disable on 410, publishing
    /// operational events). Handlers behind an [`Authenticator`] always have
    /// one; its absence is a wiring bug and answers UNAUTHENTICATED rather
    /// than panicking.
    pub fn of<T>(request: &Request<T>) -> Result<&Principal, Status> {
        request.extensions().get::<Principal>().ok_or_else(|| Status::unauthenticated("no credentials"))
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
}

impl AuthConfig {
    /// Builds the authenticator, failing on a bad configuration.
    pub fn authenticator(&self) -> Result<Authenticator, AuthConfigError> {
        Authenticator::new(&self.tokens, self.service_token.as_deref())
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
}

const MIN_TOKEN_LEN: usize = 16;

type Digest32 = [u8; 32];

fn digest(token: &str) -> Digest32 {
    Sha256::digest(token.as_bytes()).into()
}

/// The server side: a tonic interceptor mapping bearer tokens to principals.
#[derive(Clone)]
pub struct Authenticator {
    tokens: std::sync::Arc<HashMap<Digest32, Principal>>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator").field("tokens", &self.tokens.len()).finish()
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
        Ok(Self { tokens: std::sync::Arc::new(map) })
    }

    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, Status> {
        let token = header
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .ok_or_else(|| Status::unauthenticated("missing credentials: send `authorization: Bearer <token>`"))?;
        self.tokens.get(&digest(token.trim())).cloned().ok_or_else(|| Status::unauthenticated("invalid token"))
    }
}

impl Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        let principal = self.authenticate(header)?;
        request.extensions_mut().insert(principal);
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
