//! Event types and tenant settings.

use hookline_domain::{EventType, TenantId, TenantSettings};

use super::timestamp;
use crate::v1;

pub fn event_type_to_proto(et: &EventType) -> v1::EventType {
    v1::EventType {
        name: et.name.to_string(),
        description: et.description.clone(),
        archived: et.archived,
        create_time: Some(timestamp(et.created_at)),
        update_time: Some(timestamp(et.updated_at)),
    }
}

pub fn settings_to_proto(tenant: &TenantId, s: &TenantSettings) -> v1::TenantSettings {
    v1::TenantSettings {
        tenant_id: tenant.to_string(),
        strict_event_types: s.strict_event_types,
        update_time: (s.updated_at != std::time::SystemTime::UNIX_EPOCH).then(|| timestamp(s.updated_at)),
    }
}
