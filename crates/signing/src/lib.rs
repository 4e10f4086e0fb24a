//! [Standard Webhooks](https://www.standardwebhooks.com/) signatures.
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; each
//! signature is `v1,` + base64(HMAC-SHA256(secret key, content)). During a
//! secret rotation a delivery carries one signature per valid secret,
//! space-separated, and receivers accept any that verifies.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use hookline_domain::SigningSecret;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &SigningSecret, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        HmacSha256::new_from_slice(&secret.key()).unwrap_or_else(|_| unreachable!("hmac takes any key length"));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` header value: one `v1,<sig>` per secret.
pub fn sign<'a>(secrets: impl IntoIterator<Item = &'a SigningSecret>, id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .into_iter()
        .map(|secret| format!("v1,{}", STANDARD.encode(mac(secret, id, timestamp, body).finalize().into_bytes())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether any `v1` signature in `header` was made with `secret` over this
/// content (constant-time comparison).
pub fn verify(secret: &SigningSecret, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    header.split(' ').filter_map(|part| part.strip_prefix("v1,")).any(|sig| match STANDARD.decode(sig) {
        Ok(bytes) => mac(secret, id, timestamp, body).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Computed with the reference Python library (`standardwebhooks`,
    /// `Webhook(secret).sign(...)`), not with this code.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const EXPECTED: &str = "v1,9o7UeFkn1GjVbcY4emAJruJCYqgH2EIf8u/slvVRBZI=";

    #[test]
    fn matches_the_reference_implementation() {
        let secret = SigningSecret::parse(SECRET).unwrap();
        assert_eq!(sign([&secret], "msg_1", 1_614_265_330, br#"{"test": 2432232314}"#), EXPECTED);
    }

    #[test]
    fn rotation_sends_one_signature_per_secret_and_each_verifies() {
        let (old, new) = (SigningSecret::generate(), SigningSecret::generate());
        let header = sign([&new, &old], "evt_1", 1_700_000_000, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&old, "evt_1", 1_700_000_000, b"{}", &header));
        assert!(verify(&new, "evt_1", 1_700_000_000, b"{}", &header));
        assert!(!verify(&SigningSecret::generate(), "evt_1", 1_700_000_000, b"{}", &header));
    }

    #[test]
    fn any_change_to_id_timestamp_or_body_breaks_the_signature() {
        let secret = SigningSecret::generate();
        let header = sign([&secret], "evt_1", 1_700_000_000, b"{}");
        assert!(!verify(&secret, "evt_2", 1_700_000_000, b"{}", &header));
        assert!(!verify(&secret, "evt_1", 1_700_000_001, b"{}", &header));
        assert!(!verify(&secret, "evt_1", 1_700_000_000, b"{ }", &header));
    }
}
