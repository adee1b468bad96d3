//! Sealing webhook signing secrets before they go into the log.
//!
//! The log is replayed by every replica and read by operators' tools, so a
//! webhook secret must never be written in clear. It is encrypted with
//! ChaCha20-Poly1305 (RustCrypto `chacha20poly1305`, an AEAD) under a key the
//! operator provides in `PARLEY_NOTIFY_SECRET_KEY`, with the subscription id as
//! associated data so a sealed secret cannot be moved to another subscription.
//!
//! Why encryption rather than a salted hash: the service has to *use* the
//! secret to sign every delivery (HMAC needs the key itself), so a one-way
//! reference would not do unless the secret lived in a second store — and then
//! it would not survive a replay from the log alone.
//!
//! Sealed form: `v1:<key id>:<hex(nonce || ciphertext)>`, where the key id is
//! the first 8 hex digits of SHA-256 over the key, so a replica started with
//! the wrong key says so instead of failing with an opaque decryption error.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use sha2::{Digest, Sha256};

/// Environment variable holding the sealing key.
pub const SECRET_KEY_ENV: &str = "PARLEY_NOTIFY_SECRET_KEY";

/// Why a key or a sealed secret is unusable.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The configured key is too short to be a key.
    #[error(
        "{SECRET_KEY_ENV} must be 64 hex digits (32 random bytes) or a passphrase of at least 16 characters"
    )]
    WeakKey,
    /// The sealed text is not in the `v1:<key id>:<hex>` form.
    #[error("sealed secret is malformed")]
    Malformed,
    /// Sealed under another key.
    #[error("sealed secret was sealed with key {found}, but this replica has key {ours}")]
    OtherKey {
        /// Key id in the sealed text.
        found: String,
        /// Our key id.
        ours: String,
    },
    /// Authentication failed (tampered, or sealed for another subscription).
    #[error("sealed secret does not open (tampered, or sealed for another subscription)")]
    Tampered,
}

/// The key secrets are sealed with.
#[derive(Clone)]
pub struct SecretKey {
    cipher: ChaCha20Poly1305,
    id: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SecretKey").field("id", &self.id).finish()
    }
}

impl SecretKey {
    /// Reads the key from its text form: 64 hex digits are used as the raw
    /// key; anything else (at least 16 characters) is hashed with SHA-256.
    /// Use a random value: a passphrase is not stretched.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let bytes: [u8; 32] = match hex::decode(text) {
            Ok(raw) if raw.len() == 32 => raw.try_into().map_err(|_| SecretError::WeakKey)?,
            _ if text.chars().count() >= 16 => {
                Sha256::digest(format!("parley-notify-secret-key:{text}").as_bytes()).into()
            }
            _ => return Err(SecretError::WeakKey),
        };
        let id = hex::encode(&Sha256::digest(bytes)[..4]);
        Ok(Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)),
            id,
        })
    }

    /// The key from [`SECRET_KEY_ENV`], if set.
    pub fn from_env() -> Result<Option<Self>, SecretError> {
        match std::env::var(SECRET_KEY_ENV) {
            Ok(text) if !text.trim().is_empty() => Self::parse(&text).map(Some),
            _ => Ok(None),
        }
    }

    /// Short public fingerprint of the key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypts `secret` for `subscription_id`.
    pub fn seal(&self, subscription_id: &str, secret: &str) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.as_bytes(),
                    aad: subscription_id.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 encryption of a short secret cannot fail");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("v1:{}:{}", self.id, hex::encode(bytes))
    }

    /// Decrypts a secret sealed by [`SecretKey::seal`] for `subscription_id`.
    pub fn open(&self, subscription_id: &str, sealed: &str) -> Result<String, SecretError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some("v1"), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SecretError::Malformed);
        };
        if key_id != self.id {
            return Err(SecretError::OtherKey {
                found: key_id.to_owned(),
                ours: self.id.clone(),
            });
        }
        let bytes = hex::decode(body).map_err(|_| SecretError::Malformed)?;
        if bytes.len() < 12 {
            return Err(SecretError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let clear = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: subscription_id.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Tampered)?;
        String::from_utf8(clear).map_err(|_| SecretError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_subscription() {
        let key = SecretKey::parse("correct horse battery staple").unwrap();
        let sealed = key.seal("sub-1", "whsec_abc");
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(key.open("sub-1", &sealed).unwrap(), "whsec_abc");
        assert!(matches!(
            key.open("sub-2", &sealed),
            Err(SecretError::Tampered)
        ));
        let other = SecretKey::parse(&"ab".repeat(32)).unwrap();
        assert!(matches!(
            other.open("sub-1", &sealed),
            Err(SecretError::OtherKey { .. })
        ));
        // Two seals of one secret differ (fresh nonce).
        assert_ne!(sealed, key.seal("sub-1", "whsec_abc"));
    }

    #[test]
    fn short_keys_are_refused_and_debug_hides_the_key() {
        assert!(SecretKey::parse("short").is_err());
        let key = SecretKey::parse(&"01".repeat(32)).unwrap();
        assert!(!format!("{key:?}").contains("0101"));
    }
}
