//! The event-type catalog and tenant settings.

use hookline_auth::Principal;
use hookline_domain::{EventType, EventTypeName, TenantSettings};
use hookline_proto::{
    convert::{event_type_to_proto, settings_to_proto},
    v1,
};

use super::{Api, now, page, store_error};
use crate::{
    error::ServiceError,
    store::{StoreError, SubscriptionStore},
};

impl<S: SubscriptionStore> Api<S> {
    pub(super) async fn create_event_type(
        &self,
        who: &Principal,
        req: v1::CreateEventTypeRequest,
    ) -> Result<v1::EventType, ServiceError> {
        let tenant = who.tenant_for(&req.tenant_id).map_err(|s| ServiceError::from_status(&s))?;
        let proto = req.event_type.ok_or_else(|| ServiceError::BadRequest("event_type: is required".into()))?;
        let name = EventTypeName::parse(&proto.name)?;
        let at = now();
        let existing = self.store.get_event_type(&tenant, name.as_str()).await.map_err(store_error)?;
        let event_type = match existing {
            Some(archived) if archived.archived => EventType {
                description: if proto.description.is_empty() { archived.description } else { proto.description },
                archived: false,
                updated_at: at,
                ..archived
            },
            _ => EventType::new(name.clone(), proto.description, at)?,
        };
        match self.store.put_event_type(&tenant, &event_type, true).await {
            Ok(_) => Ok(event_type_to_proto(&event_type)),
            Err(StoreError::AlreadyExists) => {
                Err(ServiceError::AlreadyExists(format!("event type `{name}` already exists")))
            }
            Err(e) => Err(store_error(e)),
        }
    }

    pub(super) async fn list_event_types(
        &self,
        who: &Principal,
        req: v1::ListEventTypesRequest,
    ) -> Result<v1::ListEventTypesResponse, ServiceError> {
        let tenant = who.tenant_for(&req.tenant_id).map_err(|s| ServiceError::from_status(&s))?;
        let size = page::size(req.page_size)?;
        let after = page::decode(&req.page_token)?;
        let all = self.store.list_event_types(&tenant).await.map_err(store_error)?;
        let mut visible = all
            .iter()
            .filter(|t| req.include_archived || !t.archived)
            .filter(|t| after.as_deref().is_none_or(|a| t.name.as_str() > a))
            .peekable();
        let event_types: Vec<_> = visible.by_ref().take(size).map(event_type_to_proto).collect();
        let next_page_token = match (visible.peek(), event_types.last()) {
            (Some(_), Some(last)) => page::encode(&last.name),
            _ => String::new(),
        };
        Ok(v1::ListEventTypesResponse { event_types, next_page_token })
    }

    pub(super) async fn archive_event_type(
        &self,
        who: &Principal,
        req: v1::ArchiveEventTypeRequest,
    ) -> Result<v1::EventType, ServiceError> {
        let tenant = who.tenant_for(&req.tenant_id).map_err(|s| ServiceError::from_status(&s))?;
        let name = EventTypeName::parse(&req.name)?;
        let Some(mut event_type) = self.store.get_event_type(&tenant, name.as_str()).await.map_err(store_error)? else {
            return Err(ServiceError::NotFound(format!("event type `{name}`")));
        };
        if !event_type.archived {
            event_type.archived = true;
            event_type.updated_at = now();
            self.store.put_event_type(&tenant, &event_type, false).await.map_err(store_error)?;
        }
        Ok(event_type_to_proto(&event_type))
    }

    pub(super) async fn get_settings(
        &self,
        who: &Principal,
        req: v1::GetTenantSettingsRequest,
    ) -> Result<v1::TenantSettings, ServiceError> {
        let tenant = who.tenant_for(&req.tenant_id).map_err(|s| ServiceError::from_status(&s))?;
        let settings = self.store.get_settings(&tenant).await.map_err(store_error)?;
        Ok(settings_to_proto(&tenant, &settings))
    }

    pub(super) async fn update_settings(
        &self,
        who: &Principal,
        req: v1::UpdateTenantSettingsRequest,
    ) -> Result<v1::TenantSettings, ServiceError> {
        let proto = req.settings.ok_or_else(|| ServiceError::BadRequest("settings: is required".into()))?;
        let tenant = who.tenant_for(&proto.tenant_id).map_err(|s| ServiceError::from_status(&s))?;
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if let Some(bad) = paths.iter().find(|p| p.as_str() != "strict_event_types") {
            return Err(ServiceError::BadRequest(format!(
                "update_mask: `{bad}` is not a tenant setting (settable: strict_event_types)"
            )));
        }
        // An empty mask updates every field, as there is only one.
        let settings = TenantSettings { strict_event_types: proto.strict_event_types, updated_at: now() };
        self.store.put_settings(&tenant, &settings).await.map_err(store_error)?;
        Ok(settings_to_proto(&tenant, &settings))
    }
}
