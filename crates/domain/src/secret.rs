//! Signing secrets: `whsec_` + base64 of random bytes, as Standard Webhooks
//! libraries expect, and the set of secrets valid during a rotation.

use std::{fmt, time::SystemTime};

use base64::{Engine, engine::general_purpose::STANDARD};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::ValidationError;

const PREFIX: &str = "whsec_";

/// A signing secret. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SigningSecret(String);

impl SigningSecret {
    pub const GENERATED_BYTES: usize = 32;
    pub const MIN_BYTES: usize = 24;
    pub const MAX_BYTES: usize = 64;

    /// A fresh secret of 32 random bytes from the OS generator.
    pub fn generate() -> Self {
        let mut bytes = [0u8; Self::GENERATED_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(format!("{PREFIX}{}", STANDARD.encode(bytes)))
    }

    /// A caller-chosen secret: `whsec_` + base64 of 24 to 64 bytes.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let err = || {
            ValidationError::new(
                "secret",
                format!(
                    "must be `whsec_` followed by the base64 of {} to {} random bytes; leave it empty to have one generated",
                    Self::MIN_BYTES,
                    Self::MAX_BYTES
                ),
            )
        };
        let raw = text.strip_prefix(PREFIX).ok_or_else(err)?;
        let bytes = STANDARD.decode(raw).map_err(|_| err())?;
        if !(Self::MIN_BYTES..=Self::MAX_BYTES).contains(&bytes.len()) {
            return Err(err());
        }
        Ok(Self(text.to_owned()))
    }

    /// The key bytes for HMAC.
    pub fn key(&self) -> Vec<u8> {
        // Constructors only admit valid base64.
        STANDARD.decode(&self.0[PREFIX.len()..]).unwrap_or_default()
    }

    /// The full `whsec_...` text, for showing to the subscription's owner.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

impl TryFrom<String> for SigningSecret {
    type Error = ValidationError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<SigningSecret> for String {
    fn from(s: SigningSecret) -> String {
        s.0
    }
}

/// The secrets that sign a subscription's deliveries: the current one and,
/// during a rotation's grace period, the previous one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretSet {
    pub current: SigningSecret,
    pub previous: Option<(SigningSecret, SystemTime)>,
}

impl SecretSet {
    pub fn new(current: SigningSecret) -> Self {
        Self { current, previous: None }
    }

    /// Makes `next` current; the old current keeps signing until `until`.
    #[must_use]
    pub fn rotate(self, next: SigningSecret, until: SystemTime) -> Self {
        Self { current: next, previous: Some((self.current, until)) }
    }

    /// The secrets that sign at `now`, current first.
    pub fn valid_at(&self, now: SystemTime) -> impl Iterator<Item = &SigningSecret> {
        let previous = self.previous.as_ref().filter(|(_, until)| *until > now).map(|(s, _)| s);
        std::iter::once(&self.current).chain(previous)
    }

    /// When the previous secret stops signing, if it still does at `now`.
    pub fn previous_expiry(&self, now: SystemTime) -> Option<SystemTime> {
        self.previous.as_ref().map(|(_, until)| *until).filter(|until| *until > now)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn generated_secrets_are_standard_webhooks_secrets() {
        let s = SigningSecret::generate();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(s.key().len(), 32);
        assert_eq!(SigningSecret::parse(s.expose()), Ok(s.clone()));
        assert_ne!(SigningSecret::generate(), s);
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let s = SigningSecret::generate();
        assert!(!format!("{s:?}").contains(&s.expose()[6..]));
    }

    #[test]
    fn short_or_unprefixed_secrets_are_refused() {
        assert!(SigningSecret::parse("hmac-secret-key").is_err());
        assert!(SigningSecret::parse(&format!("whsec_{}", STANDARD.encode([1u8; 10]))).is_err());
        assert!(SigningSecret::parse("whsec_!!!").is_err());
    }

    #[test]
    fn rotation_keeps_the_old_secret_until_the_grace_period_ends() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let (a, b) = (SigningSecret::generate(), SigningSecret::generate());
        let set = SecretSet::new(a.clone()).rotate(b.clone(), t0 + Duration::from_secs(60));
        assert_eq!(set.valid_at(t0).cloned().collect::<Vec<_>>(), [b.clone(), a]);
        assert_eq!(set.valid_at(t0 + Duration::from_secs(60)).cloned().collect::<Vec<_>>(), [b]);
        assert_eq!(set.previous_expiry(t0 + Duration::from_secs(61)), None);
    }
}
