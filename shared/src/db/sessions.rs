//! Queries on `sessions` and their rotating `refresh_tokens`.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

/// Starts a session for a user.
pub async fn create(executor: impl PgExecutor<'_>, user_id: Uuid) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar!(
        "insert into sessions (user_id) values ($1) returning id",
        user_id,
    )
    .fetch_one(executor)
    .await
}

/// Stores a refresh token (its hash) for a session.
pub async fn add_refresh_token(
    executor: impl PgExecutor<'_>,
    session_id: Uuid,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into refresh_tokens (token_hash, session_id, expires_at) values ($1, $2, $3)",
        token_hash,
        session_id,
        expires_at,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, FromRow)]
pub struct SpentToken {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub account_id: Uuid,
    /// It had been used before: a replay, so the session must be revoked.
    pub reused: bool,
    pub expired: bool,
    pub revoked: bool,
    /// The session is older than its absolute lifetime.
    pub too_old: bool,
}

/// Marks a refresh token used and reports what it was, `too_old` when its session began
/// more than `max_age_secs` ago. Locks the token row, so two concurrent refreshes with the
/// same token cannot both succeed.
pub async fn spend_refresh_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
    max_age_secs: u64,
) -> Result<Option<SpentToken>, sqlx::Error> {
    // as a double (make_interval takes one), capped at a century so it stays in range
    let max_age_secs = max_age_secs.min(100 * 366 * 86_400) as f64;
    // the comparisons are of non-null columns (and `now()`), so never null
    let found = sqlx::query_as!(
        SpentToken,
        r#"select t.session_id, s.user_id, u.account_id,
                t.used_at is not null as "reused!",
                t.expires_at <= now() as "expired!",
                s.revoked_at is not null as "revoked!",
                s.created_at <= now() - make_interval(secs => $2) as "too_old!"
         from refresh_tokens t
         join sessions s on s.id = t.session_id
         join users u on u.id = s.user_id
         where t.token_hash = $1
         for update of t"#,
        token_hash,
        max_age_secs,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if found.is_some() {
        sqlx::query!(
            "update refresh_tokens set used_at = coalesce(used_at, now()) where token_hash = $1",
            token_hash,
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(found)
}

/// Revokes one session.
pub async fn revoke(executor: impl PgExecutor<'_>, session_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update sessions set revoked_at = coalesce(revoked_at, now()) where id = $1",
        session_id,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Revokes every session of a user (after a password reset).
pub async fn revoke_all(executor: impl PgExecutor<'_>, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update sessions set revoked_at = now() where user_id = $1 and revoked_at is null",
        user_id,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Revokes every session of a user but `keep` (after a password change in `keep`).
pub async fn revoke_all_but(
    executor: impl PgExecutor<'_>,
    user_id: Uuid,
    keep: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update sessions set revoked_at = now()
         where user_id = $1 and id <> $2 and revoked_at is null",
        user_id,
        keep,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// True when the session exists, is not revoked, and belongs to this user of this account.
pub async fn is_active_for(
    executor: impl PgExecutor<'_>,
    session_id: Uuid,
    user_id: Uuid,
    account_id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists(
           select 1 from sessions s join users u on u.id = s.user_id
           where s.id = $1 and s.revoked_at is null and s.user_id = $2 and u.account_id = $3)
           as "active!""#,
        session_id,
        user_id,
        account_id,
    )
    .fetch_one(executor)
    .await
}
