//! Argon2id password hashing, off the async runtime (hashing is deliberately slow).

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::error::ApiError;

/// A hash of a password that never matches anything real, verified when the e-mail is
/// unknown so that a login takes as long whether or not the account exists.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3bnbYPprF0C8Ew7QdxGjQ9S5HH6a2cw9r6iCRwTgJQs";

/// Hashes a password with a fresh salt.
pub async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|err| anyhow::anyhow!("hash password: {err}"))
    })
    .await
    .map_err(|err| anyhow::anyhow!("hash task: {err}"))?
    .map_err(ApiError::Internal)
}

/// Checks a password against a stored hash (or the dummy one when there is none).
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let stored_hash = stored.as_deref().unwrap_or(DUMMY_HASH);
        let parsed =
            PasswordHash::new(stored_hash).map_err(|err| anyhow::anyhow!("stored hash: {err}"))?;
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(matches && stored.is_some())
    })
    .await
    .map_err(|err| anyhow::anyhow!("verify task: {err}"))?
    .map_err(ApiError::Internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse".to_owned()).await.unwrap();
        assert!(
            verify("correct horse".to_owned(), Some(stored.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify("wrong horse".to_owned(), Some(stored))
                .await
                .unwrap()
        );
        assert!(!verify("anything".to_owned(), None).await.unwrap());
    }
}
