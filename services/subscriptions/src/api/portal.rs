//! Customer-portal sessions: magic links and their one exchange.
//!
//! CreatePortalSession signs a [`PortalLink`] (nothing is stored); the
//! portal trades it once with ExchangePortalCode, which marks the session
//! opened in Redis (so a second exchange is refused) and signs the
//! session token every service then checks on its own.

use std::time::{Duration, SystemTime};

use hookline_auth::{PortalGrant, PortalKey, PortalLink, Principal};
use hookline_proto::{
    convert::{duration_from_proto, scope_from_proto, scope_to_proto, timestamp},
    v1,
};
use tonic::Status;

use super::{Api, now, store_error};
use crate::{config::PortalSection, error::ServiceError, store::SubscriptionStore};

/// The key and rules portal links are made with.
#[derive(Debug, Clone)]
pub(crate) struct Portal {
    key: PortalKey,
    section: PortalSection,
}

impl Portal {
    pub(crate) fn new(key: PortalKey, section: PortalSection) -> Self {
        Self { key, section }
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl<S: SubscriptionStore> Api<S> {
    fn portal(&self) -> Result<&Portal, ServiceError> {
        self.policy.portal.as_ref().ok_or_else(|| {
            ServiceError::FailedPrecondition(
                "portal sessions are not enabled: set auth.portal_key (the same in every service)".into(),
            )
        })
    }

    pub(super) fn create_portal_session(
        &self,
        who: &Principal,
        req: v1::CreatePortalSessionRequest,
    ) -> Result<v1::CreatePortalSessionResponse, ServiceError> {
        let tenant = who.tenant_for(&req.tenant_id).map_err(|s| ServiceError::from_status(&s))?;
        let portal = self.portal()?;
        let lifetime = match duration_from_proto("session_lifetime", req.session_lifetime.as_ref())? {
            None => portal.section.default_session_lifetime,
            Some(d) => Some(d)
                .filter(|d| (Duration::from_secs(60)..=portal.section.max_session_lifetime).contains(d))
                .ok_or_else(|| {
                    ServiceError::BadRequest(format!(
                        "session_lifetime: must be between 1m and {} (portal.max_session_lifetime)",
                        humantime_serde::re::humantime::format_duration(portal.section.max_session_lifetime)
                    ))
                })?,
        };
        let scope = scope_from_proto(&req.scope)?;
        let link_expires = now() + portal.section.link_ttl;
        let link = PortalLink {
            opens: PortalGrant {
                session: format!("ps_{}", ulid::Ulid::new()),
                tenant,
                read_only: req.read_only,
                expires: unix_seconds(link_expires),
                scope,
            },
            session_seconds: lifetime.as_secs(),
        };
        let code = portal.key.sign_link(&link);
        let mut url = url::Url::parse(&portal.section.public_url)
            .map_err(|e| ServiceError::Internal(format!("portal.public_url: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| ServiceError::Internal("portal.public_url cannot be a base".into()))?
            .pop_if_empty()
            .push("enter");
        url.query_pairs_mut().append_pair("code", &code);
        let opens = &link.opens;
        tracing::info!(session = %opens.session, tenant = %opens.tenant, read_only = opens.read_only, "portal link created");
        Ok(v1::CreatePortalSessionResponse {
            url: url.into(),
            code,
            link_expire_time: Some(timestamp(link.opens.expire_time())),
            session_id: link.opens.session,
        })
    }

    /// Ends a session early (see `EndPortalSession`).
    pub(super) async fn end_portal_session(
        &self,
        who: &Principal,
        req: v1::EndPortalSessionRequest,
    ) -> Result<(), ServiceError> {
        let portal = self.portal()?;
        let (tenant, session, lasts) = match who {
            // A session ends itself; its token says how long it could last.
            Principal::Portal(grant) => {
                if !req.session_id.is_empty() && req.session_id != grant.session {
                    return Err(ServiceError::PermissionDenied(
                        "a portal session can end only itself; use the tenant's token to end another".into(),
                    ));
                }
                let lasts = grant.expire_time().duration_since(now()).unwrap_or_default();
                (grant.tenant.clone(), grant.session.clone(), lasts)
            }
            _ => {
                let tenant = who.tenant_for(&req.tenant_id).map_err(|s| ServiceError::from_status(&s))?;
                let well_formed =
                    req.session_id.strip_prefix("ps_").is_some_and(|u| ulid::Ulid::from_string(u).is_ok());
                if !well_formed {
                    return Err(ServiceError::BadRequest(
                        "session_id: a portal session id (\"ps_\" + ULID) from CreatePortalSession".into(),
                    ));
                }
                // Unknown here: as long as any of its links or sessions could live.
                let lasts = portal.section.link_ttl + portal.section.max_session_lifetime;
                (tenant, req.session_id, lasts)
            }
        };
        self.store.end_portal_session(&tenant, &session, lasts).await.map_err(store_error)?;
        tracing::info!(%session, %tenant, "portal session ended");
        Ok(())
    }

    pub(super) async fn exchange_portal_code(&self, link: PortalLink) -> Result<v1::PortalSession, Status> {
        let portal = self.portal()?;
        let at = now();
        let opens = &link.opens;
        if self.store.portal_session_ended(opens.tenant.as_str(), &opens.session).await.map_err(store_error)? {
            return Err(Status::unauthenticated("this portal link has been withdrawn; ask for a new one"));
        }
        let remaining = link.opens.expire_time().duration_since(at).unwrap_or_default();
        if !self.store.claim_portal_link(&link.opens.session, remaining).await.map_err(store_error)? {
            return Err(Status::unauthenticated(
                "this portal link has already been used; ask for a new one (each link opens once)",
            ));
        }
        let grant = link.open(at);
        tracing::info!(session = %grant.session, tenant = %grant.tenant, "portal session opened");
        Ok(v1::PortalSession {
            token: portal.key.sign(&grant),
            session_id: grant.session.clone(),
            tenant_id: grant.tenant.to_string(),
            read_only: grant.read_only,
            expire_time: Some(timestamp(grant.expire_time())),
            scope: scope_to_proto(&grant.scope),
        })
    }
}
