//! Tokens: short-lived HS256 access JWTs naming the session, and opaque random tokens
//! (refresh, e-mail verification, password reset) of which only the SHA-256 is stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use herald_shared::config::AuthConfig;

/// Signing and verifying keys for access tokens.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl JwtKeys {
    pub fn new(config: &AuthConfig) -> Self {
        let secret = config.jwt_secret.expose_secret().as_bytes();
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user.
    pub sub: Uuid,
    /// The user's account.
    pub acc: Uuid,
    /// The session; revoking it ends the token early.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
}

/// Signs an access token valid for `ttl_secs`.
pub fn encode_access(
    keys: &JwtKeys,
    user_id: Uuid,
    account_id: Uuid,
    session_id: Uuid,
    ttl_secs: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = chrono::Utc::now().timestamp();
    let claims = AccessClaims {
        sub: user_id,
        acc: account_id,
        sid: session_id,
        iat: now,
        exp: now + i64::try_from(ttl_secs).unwrap_or(i64::MAX / 2),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding)
}

/// Verifies signature and expiry (no leeway).
pub fn decode_access(
    keys: &JwtKeys,
    token: &str,
) -> Result<AccessClaims, jsonwebtoken::errors::Error> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    jsonwebtoken::decode::<AccessClaims>(token, &keys.decoding, &validation).map(|data| data.claims)
}

/// A fresh random token (256 bits, URL-safe) and its stored hash.
pub fn random_token() -> (String, Vec<u8>) {
    let mut bytes = [0_u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_token(&token);
    (token, hash)
}

/// The stored form of an opaque token.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use figment::providers::Serialized;

    use super::*;

    fn keys(secret: &str) -> JwtKeys {
        let config = herald_shared::config::Config::from_figment(
            &herald_shared::config::Config::figment_defaults()
                .merge(Serialized::default("auth.jwt_secret", secret)),
        )
        .unwrap();
        JwtKeys::new(&config.auth)
    }

    #[test]
    fn an_access_token_round_trips_and_rejects_another_key() {
        let ours = keys(&"a".repeat(32));
        let theirs = keys(&"b".repeat(32));
        let (user, account, session) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let token = encode_access(&ours, user, account, session, 60).unwrap();
        let claims = decode_access(&ours, &token).unwrap();
        assert_eq!(
            (claims.sub, claims.acc, claims.sid),
            (user, account, session)
        );
        assert!(decode_access(&theirs, &token).is_err());
    }

    #[test]
    fn random_tokens_differ_and_hash_stably() {
        let (a, hash_a) = random_token();
        let (b, _) = random_token();
        assert_ne!(a, b);
        assert_eq!(hash_token(&a), hash_a);
    }
}
