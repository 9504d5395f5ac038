//! Queries on `user_tokens`: single-use, expiring tokens mailed to users.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

/// What a mailed token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }
}

/// Stores a token's hash.
pub async fn create(
    executor: impl PgExecutor<'_>,
    user_id: Uuid,
    purpose: Purpose,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into user_tokens (token_hash, user_id, purpose, expires_at) values ($1, $2, $3, $4)",
        token_hash,
        user_id,
        purpose.as_str(),
        expires_at,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// True when the token exists, has this purpose, is unexpired and unused (a read only; see
/// `consume`).
pub async fn is_live(
    executor: impl PgExecutor<'_>,
    purpose: Purpose,
    token_hash: &[u8],
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists(select 1 from user_tokens
             where token_hash = $1 and purpose = $2 and used_at is null and expires_at > now())
           as "live!""#,
        token_hash,
        purpose.as_str(),
    )
    .fetch_one(executor)
    .await
}

/// Ends every unused token of a user with this purpose (after a reset, the other reset links).
pub async fn end_all(
    executor: impl PgExecutor<'_>,
    user_id: Uuid,
    purpose: Purpose,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update user_tokens set used_at = now()
         where user_id = $1 and purpose = $2 and used_at is null",
        user_id,
        purpose.as_str(),
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Uses a token once: the user's id if it exists, has this purpose, is unexpired and unused.
pub async fn consume(
    executor: impl PgExecutor<'_>,
    purpose: Purpose,
    token_hash: &[u8],
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "update user_tokens set used_at = now()
         where token_hash = $1 and purpose = $2 and used_at is null and expires_at > now()
         returning user_id",
        token_hash,
        purpose.as_str(),
    )
    .fetch_optional(executor)
    .await
}
