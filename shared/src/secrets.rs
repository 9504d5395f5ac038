//! Secrets at rest: AES-256-GCM with a key from `secrets.encryption_key`. A sealed secret is
//! text (`v1.` + base64 of a random 96-bit nonce and the ciphertext with its tag), so it fits
//! in a JSON payload or a text column; opening it fails loudly if the key or the text differs.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::config::Config;

const VERSION: &str = "v1.";
const NONCE_LEN: usize = 12;

/// Decodes a configured key: 32 bytes in standard base64.
pub fn decode_key(encoded: &str) -> Option<[u8; 32]> {
    STANDARD.decode(encoded.trim()).ok()?.try_into().ok()
}

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
#[error("secret box: {0}")]
pub struct CryptoError(&'static str);

/// Seals and opens secrets with the configured key, and signs what Herald hands out
/// (unsubscribe links) with a key derived from it.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
    /// HMAC-SHA256 key for [`SecretBox::sign`]: derived, so the encryption key itself is never
    /// used for a second purpose.
    signing: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// The box of a validated configuration: `secrets.encryption_key`, or, when it is empty
    /// (allowed only in e-mail sandbox mode, see `Config::validate`), a key derived from
    /// `auth.jwt_secret` so that both binaries of a trial setup agree without another setting.
    pub fn from_config(config: &Config) -> Self {
        let configured = config.secrets.encryption_key.expose_secret();
        let key = decode_key(configured).unwrap_or_else(|| {
            let mut hasher = Sha256::new();
            hasher.update(b"herald secrets key derived from auth.jwt_secret\0");
            hasher.update(config.auth.jwt_secret.expose_secret().as_bytes());
            hasher.finalize().into()
        });
        Self::new(&key)
    }

    pub fn new(key: &[u8; 32]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"herald signing key\0");
        hasher.update(key);
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
            signing: hasher.finalize().into(),
        }
    }

    /// The HMAC-SHA256 of `message` for `purpose` (each purpose its own domain, so a
    /// signature made for one is never valid for another).
    pub fn sign(&self, purpose: &str, message: &[u8]) -> [u8; 32] {
        self.mac(purpose, message).finalize().into_bytes().into()
    }

    /// Whether `tag` is the start (at least 16 bytes) of [`SecretBox::sign`]'s signature,
    /// compared in constant time.
    pub fn verify(&self, purpose: &str, message: &[u8], tag: &[u8]) -> bool {
        tag.len() >= 16
            && self
                .mac(purpose, message)
                .verify_truncated_left(tag)
                .is_ok()
    }

    fn mac(&self, purpose: &str, message: &[u8]) -> Hmac<Sha256> {
        // a 32-byte key: any length is valid for HMAC, so this cannot fail
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.signing)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(message);
        mac
    }

    /// Encrypts `plaintext` under a fresh random nonce.
    pub fn seal(&self, plaintext: &str) -> Result<String, CryptoError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .map_err(|_| CryptoError("encryption failed"))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// Decrypts what `seal` produced with the same key.
    pub fn open(&self, sealed: &str) -> Result<String, CryptoError> {
        let encoded = sealed
            .strip_prefix(VERSION)
            .ok_or(CryptoError("unknown format"))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| CryptoError("not base64"))?;
        if bytes.len() <= NONCE_LEN {
            return Err(CryptoError("too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plaintext = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| CryptoError("wrong key or tampered text"))?;
        String::from_utf8(plaintext).map_err(|_| CryptoError("not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_its_key_only_and_hides_the_plaintext() {
        let ours = SecretBox::new(&[7; 32]);
        let theirs = SecretBox::new(&[8; 32]);
        let sealed = ours.seal("token-abc").unwrap();
        assert!(!sealed.contains("token-abc"));
        assert_ne!(sealed, ours.seal("token-abc").unwrap(), "nonces are fresh");
        assert_eq!(ours.open(&sealed).unwrap(), "token-abc");
        assert!(theirs.open(&sealed).is_err());
        // two characters replaced by two others (a fixed "AA" is no change at all when the
        // random ciphertext already ends so: 1 run in 4,096)
        let mut tampered = sealed.clone();
        let other = if sealed.ends_with("AA") { "BB" } else { "AA" };
        tampered.replace_range(sealed.len() - 2.., other);
        assert_ne!(tampered, sealed);
        assert!(ours.open(&tampered).is_err());
        assert!(ours.open("token-abc").is_err());
    }

    #[test]
    fn keys_are_32_bytes_of_base64() {
        assert!(decode_key(&STANDARD.encode([1_u8; 32])).is_some());
        assert!(decode_key(&STANDARD.encode([1_u8; 16])).is_none());
        assert!(decode_key("not base64!").is_none());
    }
}
