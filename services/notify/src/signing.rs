//! Webhook signatures as Standard Webhooks defines them
//! (<https://www.standardwebhooks.com>), so a receiver verifies Parley's
//! deliveries with any of its libraries (`standardwebhooks` on PyPI, `svix`,
//! ...) or the ten lines of Python in `services/notify/README.md`.
//!
//! Every POST carries three headers:
//!
//! ```text
//! webhook-id: <subscription id>:<event id>:v<version>   (the same for every retry)
//! webhook-timestamp: <unix seconds of this attempt>
//! webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>
//! ```
//!
//! The secret is `whsec_` followed by the base64 of the key (24 to 64 random
//! bytes); the HMAC key is those decoded bytes, not the text of the secret.
//! Like the reference libraries, decoding ignores characters outside the
//! base64 alphabet and missing padding, so every secret Parley ever stored
//! keeps verifying the same way (the `whsec_<64 hex digits>` secrets of
//! earlier versions decode to 48 bytes).

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::{DecodePaddingMode, general_purpose};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Fewest key bytes a secret given by a caller may hold (Standard Webhooks: 24 to 64).
pub const MIN_KEY_BYTES: usize = 24;
/// Most key bytes a secret given by a caller may hold.
pub const MAX_KEY_BYTES: usize = 64;

/// Base64 that takes padding or none, as the reference libraries do.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Why a secret cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not base64 after `whsec_`.
    #[error(
        "webhook secret is not `whsec_` followed by base64 (Standard Webhooks); leave it out to have one generated"
    )]
    NotBase64,
    /// Too short or too long.
    #[error(
        "webhook secret holds {0} bytes; Standard Webhooks secrets hold {MIN_KEY_BYTES} to {MAX_KEY_BYTES} (leave it out to have one generated)"
    )]
    Size(usize),
}

/// The HMAC key of `secret`: the base64 after `whsec_`, decoded leniently
/// (characters outside the alphabet and padding ignored).
pub fn key_of(secret: &str) -> Result<Vec<u8>, SecretError> {
    let encoded: String = secret
        .strip_prefix(SECRET_PREFIX)
        .unwrap_or(secret)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '+' || *c == '/')
        .collect();
    let key = LENIENT
        .decode(encoded)
        .map_err(|_| SecretError::NotBase64)?;
    if key.is_empty() {
        return Err(SecretError::NotBase64);
    }
    Ok(key)
}

/// Checks a secret a caller brought: strict base64 after `whsec_`, 24 to 64 bytes.
pub fn check_secret(secret: &str) -> Result<(), SecretError> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = LENIENT
        .decode(encoded)
        .map_err(|_| SecretError::NotBase64)?;
    if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
        return Err(SecretError::Size(key.len()));
    }
    Ok(())
}

/// A fresh random signing secret: `whsec_` and the base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any size");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-id` of a delivery: the same for every retry of one change
/// to one subscription, different across subscriptions.
pub fn message_id(subscription_id: &str, idempotency_key: &str) -> String {
    format!("{subscription_id}:{idempotency_key}")
}

/// The HMAC key a stored secret signs with: [`key_of`], or the bytes of the
/// text for a secret that holds no base64 at all (none is accepted any more).
pub fn signing_key(secret: &str) -> Vec<u8> {
    key_of(secret).unwrap_or_else(|_| secret.as_bytes().to_vec())
}

/// The `webhook-signature` value for a message: `v1,<base64 HMAC>`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = mac(key, id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", general_purpose::STANDARD.encode(digest))
}

/// Whether one of the space-separated `v1,` signatures in `header` signs
/// the message with `secret` (constant-time comparison). The timestamp's age
/// is the receiver's to check.
pub fn verify(secret: &str, id: &str, timestamp: i64, header: &str, body: &[u8]) -> bool {
    let Ok(key) = key_of(secret) else {
        return false;
    };
    header.split(' ').any(|signature| {
        let Some(encoded) = signature.strip_prefix("v1,") else {
            return false;
        };
        let Ok(expected) = STANDARD.decode(encoded) else {
            return false;
        };
        mac(&key, id, timestamp, body)
            .verify_slice(&expected)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_example_verifies() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let timestamp = 1614265330;
        let body = br#"{"test": 2432232314}"#;
        let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(
            signature(&key_of(secret).unwrap(), id, timestamp, body),
            expected
        );
        assert!(verify(
            secret,
            id,
            timestamp,
            &format!("v1,bm90IGl0 {expected}"),
            body
        ));
        assert!(!verify(secret, id, timestamp + 1, expected, body));
        assert!(!verify(
            "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB",
            id,
            timestamp,
            expected,
            body
        ));
    }

    #[test]
    fn secrets_are_base64_of_24_to_64_bytes() {
        let secret = generate_secret();
        assert!(secret.starts_with("whsec_"), "{secret}");
        assert_eq!(key_of(&secret).unwrap().len(), 32);
        assert_eq!(check_secret(&secret), Ok(()));
        assert_eq!(check_secret("whsec_topsecret"), Err(SecretError::NotBase64));
        assert_eq!(check_secret("whsec_c2hvcnQ="), Err(SecretError::Size(5)));
        // Earlier versions' hex secrets still sign (as base64, like the libraries read them).
        assert_eq!(
            key_of(&format!("whsec_{}", "ab".repeat(32))).unwrap().len(),
            48
        );
    }
}
