//! The event-type catalog: the names a tenant publishes, and whether the
//! tenant is strict about names outside it.

use std::{fmt, time::SystemTime};

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// An event-type name: 1 to 128 of letters, digits and `_ . - : /`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventTypeName(String);

impl EventTypeName {
    pub const MAX_LEN: usize = 128;

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        if text.is_empty() || text.len() > Self::MAX_LEN || !text.chars().all(Self::is_name_char) {
            return Err(ValidationError::new(
                "event_type",
                format!("`{text}` is not an event-type name (1 to 128 letters, digits or `_ . - : /`)"),
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub(crate) fn is_name_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':' | '/')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventTypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for EventTypeName {
    type Error = ValidationError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<EventTypeName> for String {
    fn from(n: EventTypeName) -> String {
        n.0
    }
}

/// An entry of a tenant's catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventType {
    pub name: EventTypeName,
    pub description: String,
    pub archived: bool,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
}

impl EventType {
    pub const MAX_DESCRIPTION: usize = 1024;

    pub fn new(name: EventTypeName, description: String, now: SystemTime) -> Result<Self, ValidationError> {
        if description.len() > Self::MAX_DESCRIPTION {
            return Err(ValidationError::new(
                "event_type.description",
                format!("is longer than {} bytes", Self::MAX_DESCRIPTION),
            ));
        }
        Ok(Self { name, description, archived: false, created_at: now, updated_at: now })
    }
}

/// Per-tenant settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    /// Refuse event types that are not (or no longer) in the catalog.
    pub strict_event_types: bool,
    pub updated_at: SystemTime,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self { strict_event_types: false, updated_at: SystemTime::UNIX_EPOCH }
    }
}
