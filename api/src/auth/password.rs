//! Argon2id password hashing, off the async runtime and bounded: each hash takes ~19 MiB and
//! a CPU for a moment, so at most `auth.max_concurrent_hashes` run at once. A request waits
//! up to `auth.hash_wait_ms` for a slot, then answers 503 with `Retry-After` — a flood of
//! sign-ins costs a queue of small futures, never gigabytes of hashing memory.

use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use herald_shared::config::AuthConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// A hash of a password that never matches anything real, verified when the e-mail is
/// unknown so that a login takes as long whether or not the account exists.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3bnbYPprF0C8Ew7QdxGjQ9S5HH6a2cw9r6iCRwTgJQs";

/// The bounded Argon2 pool every password check and hash goes through.
pub struct Hasher {
    slots: Arc<Semaphore>,
    wait: Duration,
}

impl Hasher {
    pub fn new(config: &AuthConfig) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(config.concurrent_hashes())),
            wait: Duration::from_millis(config.hash_wait_ms),
        }
    }

    /// A hashing slot, or 503 once `wait` has passed without one.
    async fn slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        match tokio::time::timeout(self.wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => {
                metrics::counter!("herald_password_hash_busy_total").increment(1);
                Err(ApiError::ServiceUnavailable {
                    detail: "too many sign-ins at once; try again shortly",
                    retry_after_secs: self.wait.as_secs().max(1),
                })
            }
        }
    }

    /// Runs `work` on the blocking pool holding a slot. The permit moves into the closure, so
    /// a hash whose request was abandoned still counts until it really ends.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = self.slot().await?;
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop(permit);
            result
        })
        .await
        .map_err(|err| anyhow::anyhow!("hash task: {err}"))?
        .map_err(ApiError::Internal)
    }

    /// Hashes a password with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|err| anyhow::anyhow!("hash password: {err}"))
        })
        .await
    }

    /// Checks a password against a stored hash (or the dummy one when there is none).
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        self.run(move || {
            let stored_hash = stored.as_deref().unwrap_or(DUMMY_HASH);
            let parsed = PasswordHash::new(stored_hash)
                .map_err(|err| anyhow::anyhow!("stored hash: {err}"))?;
            let matches = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(matches && stored.is_some())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use figment::providers::Serialized;

    use super::*;

    fn hasher(slots: u32, wait_ms: u64) -> Hasher {
        let config = herald_shared::config::Config::from_figment(
            &herald_shared::config::Config::figment_defaults()
                .merge(Serialized::default("auth.jwt_secret", "s".repeat(32)))
                .merge(Serialized::default("auth.max_concurrent_hashes", slots))
                .merge(Serialized::default("auth.hash_wait_ms", wait_ms)),
        )
        .unwrap();
        Hasher::new(&config.auth)
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = hasher(0, 1000);
        let stored = hasher.hash("correct horse".to_owned()).await.unwrap();
        assert!(
            hasher
                .verify("correct horse".to_owned(), Some(stored.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse".to_owned(), Some(stored))
                .await
                .unwrap()
        );
        assert!(!hasher.verify("anything".to_owned(), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_caller_without_a_free_slot_gets_503_after_the_wait() {
        let hasher = hasher(1, 50);
        let held = Arc::clone(&hasher.slots).acquire_owned().await.unwrap();
        let err = hasher.hash("correct horse".to_owned()).await.unwrap_err();
        assert!(
            matches!(
                err,
                ApiError::ServiceUnavailable {
                    retry_after_secs: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        drop(held);
        hasher.hash("correct horse".to_owned()).await.unwrap();
    }

    #[test]
    fn zero_slots_means_one_per_cpu() {
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(hasher(0, 1).slots.available_permits(), cpus);
        assert_eq!(hasher(3, 1).slots.available_permits(), 3);
    }
}
