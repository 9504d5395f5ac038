//! Queries on `accounts` and `users`.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

/// A user as the API shows it (no password hash).
#[derive(Debug, Clone, FromRow)]
pub struct User {
    pub id: Uuid,
    pub account_id: Uuid,
    pub email: String,
    pub name: String,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A user with the password hash, for sign-in.
#[derive(Debug, Clone, FromRow)]
pub struct Credentials {
    pub id: Uuid,
    pub account_id: Uuid,
    pub password_hash: String,
}

/// Creates an account and its first user. `None` when the e-mail is taken.
pub async fn create_with_account(
    conn: &mut PgConnection,
    email: &str,
    name: &str,
    password_hash: &str,
) -> Result<Option<User>, sqlx::Error> {
    let account_id =
        sqlx::query_scalar!("insert into accounts (name) values ($1) returning id", name)
            .fetch_one(&mut *conn)
            .await?;
    let inserted = sqlx::query_as!(
        User,
        "insert into users (account_id, email, name, password_hash) values ($1, $2, $3, $4)
         returning id, account_id, email, name, email_verified_at, created_at",
        account_id,
        email,
        name,
        password_hash,
    )
    .fetch_one(&mut *conn)
    .await;
    super::on_unique_violation(inserted, "users_email_key")
}

/// The user with this (already lower-cased) e-mail, with the password hash.
pub async fn credentials_by_email(
    executor: impl PgExecutor<'_>,
    email: &str,
) -> Result<Option<Credentials>, sqlx::Error> {
    sqlx::query_as!(
        Credentials,
        "select id, account_id, password_hash from users where email = $1",
        email,
    )
    .fetch_optional(executor)
    .await
}

/// The user with this e-mail.
pub async fn by_email(
    executor: impl PgExecutor<'_>,
    email: &str,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as!(
        User,
        "select id, account_id, email, name, email_verified_at, created_at
         from users where email = $1",
        email,
    )
    .fetch_optional(executor)
    .await
}

/// The user with this id.
pub async fn by_id(executor: impl PgExecutor<'_>, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as!(
        User,
        "select id, account_id, email, name, email_verified_at, created_at
         from users where id = $1",
        id,
    )
    .fetch_optional(executor)
    .await
}

/// Replaces the password hash.
pub async fn set_password(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update users set password_hash = $2 where id = $1",
        id,
        password_hash,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Renames a user; the user, or `None` if there is none.
pub async fn set_name(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    name: &str,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as!(
        User,
        "update users set name = $2 where id = $1
         returning id, account_id, email, name, email_verified_at, created_at",
        id,
        name,
    )
    .fetch_optional(executor)
    .await
}

/// Marks the e-mail verified (keeps the first verification time).
pub async fn mark_verified(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as!(
        User,
        "update users set email_verified_at = coalesce(email_verified_at, now()) where id = $1
         returning id, account_id, email, name, email_verified_at, created_at",
        id,
    )
    .fetch_optional(executor)
    .await
}
