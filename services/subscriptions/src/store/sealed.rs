//! Secrets at rest: AES-256-GCM under the configured master key, or plain
//! when none is configured.
//!
//! A sealed value is `v1:` + base64(nonce || ciphertext); the nonce is 96
//! random bits per write. The subscription id is bound as associated data,
//! so a sealed blob copied onto another subscription does not open.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use hookline_domain::SecretSet;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// How secrets sit in a stored record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SecretsAtRest {
    Plain(SecretSet),
    Sealed(String),
}

#[derive(Clone)]
pub(crate) struct SecretSealer {
    cipher: Option<Aes256Gcm>,
}

impl std::fmt::Debug for SecretSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSealer").field("encrypting", &self.cipher.is_some()).finish()
    }
}

const PREFIX: &str = "v1:";

impl SecretSealer {
    /// `key`: 32 bytes, or `None` to store secrets in plain text.
    pub(crate) fn new(key: Option<&[u8]>) -> Result<Self, String> {
        let cipher = key
            .map(|k| Aes256Gcm::new_from_slice(k).map_err(|_| "master key must be 32 bytes".to_owned()))
            .transpose()?;
        Ok(Self { cipher })
    }

    pub(crate) fn seal(&self, secrets: &SecretSet, bound_to: &str) -> Result<SecretsAtRest, String> {
        let Some(cipher) = &self.cipher else {
            return Ok(SecretsAtRest::Plain(secrets.clone()));
        };
        let plain = serde_json::to_vec(secrets).map_err(|e| e.to_string())?;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &plain, aad: bound_to.as_bytes() })
            .map_err(|_| "encryption failed".to_owned())?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(SecretsAtRest::Sealed(format!("{PREFIX}{}", STANDARD.encode(out))))
    }

    pub(crate) fn open(&self, at_rest: &SecretsAtRest, bound_to: &str) -> Result<SecretSet, String> {
        let text = match at_rest {
            SecretsAtRest::Plain(set) => return Ok(set.clone()),
            SecretsAtRest::Sealed(text) => text,
        };
        let cipher =
            self.cipher.as_ref().ok_or("secrets are encrypted at rest but no secrets.master_key is configured")?;
        let raw = text
            .strip_prefix(PREFIX)
            .and_then(|b| STANDARD.decode(b).ok())
            .filter(|raw| raw.len() > 12)
            .ok_or("sealed secret is malformed")?;
        let (nonce, body) = raw.split_at(12);
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: bound_to.as_bytes() })
            .map_err(|_| "sealed secret does not open with the configured master key".to_owned())?;
        serde_json::from_slice(&plain).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use hookline_domain::SigningSecret;

    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_binding() {
        let set = SecretSet::new(SigningSecret::generate());
        let sealer = SecretSealer::new(Some(&[7u8; 32])).expect("key");
        let sealed = sealer.seal(&set, "sub_a").expect("seal");
        let SecretsAtRest::Sealed(text) = &sealed else { panic!("not sealed") };
        assert!(!text.contains(&set.current.expose()[6..]), "ciphertext must not contain the secret");
        assert_eq!(sealer.open(&sealed, "sub_a").expect("open"), set);
        assert!(sealer.open(&sealed, "sub_b").is_err(), "bound to its subscription");
        assert!(SecretSealer::new(Some(&[8u8; 32])).expect("key").open(&sealed, "sub_a").is_err());
        assert!(SecretSealer::new(None).expect("none").open(&sealed, "sub_a").is_err());
    }

    #[test]
    fn without_a_key_secrets_stay_plain() {
        let set = SecretSet::new(SigningSecret::generate());
        let sealer = SecretSealer::new(None).expect("none");
        let at_rest = sealer.seal(&set, "sub_a").expect("seal");
        assert!(matches!(at_rest, SecretsAtRest::Plain(_)));
        assert_eq!(sealer.open(&at_rest, "sub_a").expect("open"), set);
    }
}
