//! Queries on `suppressions`: e-mail addresses an account must not send to, and why. One per
//! account and address whatever its case (`suppressions_account_email`, on `lower(email)`).
//! Campaign sending asks [`is_suppressed`] (one address) or [`suppressed_among`] (many)
//! before each send.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

/// Why an address is suppressed. Stored as its name (`sqlx::Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum SuppressionReason {
    /// The person unsubscribed (a one-click link, a reply, a provider's unsubscribe event).
    Unsubscribed,
    /// A hard bounce: the address does not exist.
    Bounced,
    /// The person marked an e-mail as spam.
    Complained,
    /// The account added it by hand.
    Manual,
}

impl SuppressionReason {
    pub const ALL: [Self; 4] = [
        Self::Unsubscribed,
        Self::Bounced,
        Self::Complained,
        Self::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsubscribed => "unsubscribed",
            Self::Bounced => "bounced",
            Self::Complained => "complained",
            Self::Manual => "manual",
        }
    }
}

impl FromStr for SuppressionReason {
    type Err = crate::effects::UnknownName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.as_str() == name)
            .ok_or(crate::effects::UnknownName)
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct SuppressionRow {
    pub id: Uuid,
    /// Lower-cased.
    pub email: String,
    pub reason: SuppressionReason,
    pub source: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Suppresses `email` (lower-cased) for the account, unless it already is: then the existing
/// suppression is answered unchanged. The flag says whether this call created it.
pub async fn suppress(
    conn: &mut sqlx::PgConnection,
    account_id: Uuid,
    email: &str,
    reason: SuppressionReason,
    source: Option<&str>,
) -> Result<(SuppressionRow, bool), sqlx::Error> {
    // The conflicting row was committed before the insert gave up, so the select sees it;
    // it may have been deleted in between, which `do nothing` cannot tell: then try again.
    loop {
        let created = sqlx::query_as!(
            SuppressionRow,
            r#"insert into suppressions (account_id, email, reason, source)
             values ($1, $2, $3, $4)
             on conflict (account_id, lower(email)) do nothing
             returning id, email, reason as "reason: SuppressionReason", source, created_at"#,
            account_id,
            email,
            reason as SuppressionReason,
            source,
        )
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = created {
            return Ok((row, true));
        }
        let existing = sqlx::query_as!(
            SuppressionRow,
            r#"select id, email, reason as "reason: SuppressionReason", source, created_at
             from suppressions where account_id = $1 and lower(email) = lower($2)"#,
            account_id,
            email,
        )
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = existing {
            return Ok((row, false));
        }
    }
}

/// The account's suppression.
pub async fn get_suppression(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<SuppressionRow>, sqlx::Error> {
    sqlx::query_as!(
        SuppressionRow,
        r#"select id, email, reason as "reason: SuppressionReason", source, created_at
         from suppressions where account_id = $1 and id = $2"#,
        account_id,
        id,
    )
    .fetch_optional(executor)
    .await
}

/// A page of the account's suppressions, newest first, after `(created_at, id)`; `reason`
/// filters when given.
pub async fn list_suppressions(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    reason: Option<SuppressionReason>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<SuppressionRow>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        SuppressionRow,
        r#"select id, email, reason as "reason: SuppressionReason", source, created_at
         from suppressions
         where account_id = $1 and ($2::text is null or reason = $2)
           and ($3::timestamptz is null or (created_at, id) < ($3, $4))
         order by created_at desc, id desc
         limit $5"#,
        account_id,
        reason as Option<SuppressionReason>,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(executor)
    .await
}

/// Deletes the account's suppression (the address may be sent to again); false when it has
/// no such suppression.
pub async fn delete_suppression(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "delete from suppressions where account_id = $1 and id = $2",
        account_id,
        id
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Whether the account must not send to `email` (compared in any case).
pub async fn is_suppressed(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    email: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists (
             select 1 from suppressions where account_id = $1 and lower(email) = lower($2)
         ) as "suppressed!""#,
        account_id,
        email,
    )
    .fetch_one(executor)
    .await
}

/// Which of `emails` the account must not send to, in one query: each suppressed address,
/// lower-cased, with its reason. Addresses not in the map may be sent to.
pub async fn suppressed_among(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    emails: &[String],
) -> Result<HashMap<String, SuppressionReason>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select lower(email) as "email!", reason as "reason: SuppressionReason"
         from suppressions
         where account_id = $1
           and lower(email) = any(array(select lower(e) from unnest($2::text[]) as e))"#,
        account_id,
        emails,
    )
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.email, row.reason))
        .collect())
}
