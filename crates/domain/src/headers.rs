//! Extra headers sent on every delivery (Instaply's `extraHeaders`,
//! Instantly's shared-secret header), minus the ones hookline owns.

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Headers that the HTTP layer or hookline's signature sets; a subscription
/// may not override them.
const FORBIDDEN: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "proxy-authorization",
    "proxy-connection",
    "traceparent",
    "tracestate",
    "user-agent",
];

/// Validated extra headers, names lowercased.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraHeaders(BTreeMap<String, String>);

impl ExtraHeaders {
    pub const MAX_COUNT: usize = 32;
    pub const MAX_TOTAL_BYTES: usize = 8 * 1024;

    pub fn new<I, K, V>(pairs: I) -> Result<Self, ValidationError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut map = BTreeMap::new();
        let mut total = 0;
        for (name, value) in pairs {
            let (name, value) = (name.as_ref(), value.as_ref());
            let parsed = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ValidationError::new("headers", format!("`{name}` is not a valid header name")))?;
            let lower = parsed.as_str();
            if FORBIDDEN.contains(&lower) || lower.starts_with("webhook-") {
                return Err(ValidationError::new(
                    "headers",
                    format!("`{name}` is set by hookline on every delivery and cannot be overridden"),
                ));
            }
            HeaderValue::from_str(value).map_err(|_| {
                ValidationError::new("headers", format!("the value of `{name}` has characters not allowed in a header"))
            })?;
            total += lower.len() + value.len();
            if map.insert(lower.to_owned(), value.to_owned()).is_some() {
                return Err(ValidationError::new("headers", format!("`{name}` is given twice")));
            }
        }
        if map.len() > Self::MAX_COUNT {
            return Err(ValidationError::new("headers", format!("more than {} headers", Self::MAX_COUNT)));
        }
        if total > Self::MAX_TOTAL_BYTES {
            return Err(ValidationError::new(
                "headers",
                format!("{total} bytes in all, over the limit of {} bytes", Self::MAX_TOTAL_BYTES),
            ));
        }
        Ok(Self(map))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercased() {
        let h = ExtraHeaders::new([("Authorization", "Bearer x"), ("X-Webhook-Secret", "s")]).expect("valid");
        let names: Vec<_> = h.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["authorization", "x-webhook-secret"]);
    }

    #[test]
    fn hop_by_hop_and_signature_headers_are_refused() {
        for name in ["Host", "content-length", "Transfer-Encoding", "webhook-signature", "Webhook-Id", "traceparent"] {
            let err = ExtraHeaders::new([(name, "x")]).expect_err(name);
            assert!(err.reason.contains("cannot be overridden"), "{err}");
        }
    }

    #[test]
    fn malformed_duplicate_and_oversized_headers_are_refused() {
        assert!(ExtraHeaders::new([("bad name", "x")]).is_err());
        assert!(ExtraHeaders::new([("x-a", "line\nbreak")]).is_err());
        assert!(ExtraHeaders::new([("X-A", "1"), ("x-a", "2")]).is_err());
        let big = "v".repeat(9000);
        assert!(ExtraHeaders::new([("x-big", big.as_str())]).is_err());
        let many: Vec<_> = (0..33).map(|i| (format!("x-{i}"), "v")).collect();
        assert!(ExtraHeaders::new(many).is_err());
    }
}
