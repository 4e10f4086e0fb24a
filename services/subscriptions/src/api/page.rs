//! Page tokens and sizes, the same for every list call.
//!
//! A token is the base64url of the last key a page showed; it is opaque to
//! clients, who must only hand back `next_page_token`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::error::ServiceError;

pub(crate) const DEFAULT_PAGE_SIZE: usize = 50;
pub(crate) const MAX_PAGE_SIZE: usize = 1000;

/// 0 means the default; above the maximum is clamped to it.
pub(crate) fn size(page_size: i32) -> Result<usize, ServiceError> {
    match page_size {
        n if n < 0 => Err(ServiceError::BadRequest("page_size: must not be negative".into())),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok((n as usize).min(MAX_PAGE_SIZE)),
    }
}

pub(crate) fn encode(last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(last_key)
}

/// The last key of the previous page, or `None` for the first page.
pub(crate) fn decode(token: &str) -> Result<Option<String>, ServiceError> {
    if token.is_empty() {
        return Ok(None);
    }
    URL_SAFE_NO_PAD.decode(token).ok().and_then(|b| String::from_utf8(b).ok()).map(Some).ok_or_else(|| {
        ServiceError::BadRequest(
            "page_token: is not a token this service issued; pass next_page_token from the previous page".into(),
        )
    })
}
