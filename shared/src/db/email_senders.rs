//! `email_senders`: the mailboxes an account sends campaign e-mail from, each with its
//! transport (an SMTP server or SendGrid) and its pace (a rolling daily cap and a gap between
//! sends). The transport's secret is stored sealed (`crate::secrets`); this module never sees
//! it in clear.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use super::written::Written;

/// How a sender's e-mail leaves Herald.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Smtp {
        host: String,
        port: i32,
        /// `none`, `starttls` or `tls`.
        tls: String,
        username: Option<String>,
    },
    Sendgrid,
}

impl Transport {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Smtp { .. } => "smtp",
            Self::Sendgrid => "sendgrid",
        }
    }
}

/// A sender's fields as written.
#[derive(Debug, Clone)]
pub struct SenderFields {
    pub from_name: String,
    pub from_email: String,
    pub reply_to: Option<String>,
    pub transport: Transport,
    pub secret: Secret,
    pub daily_cap: i32,
    pub min_gap_secs: i32,
}

/// What becomes of the transport's sealed secret (an SMTP password or a SendGrid API key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// On update, the stored one stays if the transport kind is unchanged (a secret is never
    /// shown, so a client cannot send it back); otherwise, and on insert, there is none.
    Keep,
    Set(String),
    Clear,
}

impl Secret {
    fn keep(&self) -> bool {
        *self == Self::Keep
    }

    fn sealed(&self) -> Option<&str> {
        match self {
            Self::Set(sealed) => Some(sealed),
            Self::Keep | Self::Clear => None,
        }
    }
}

/// A stored sender.
#[derive(Debug, Clone, FromRow)]
pub struct SenderRow {
    pub id: Uuid,
    pub from_name: String,
    pub from_email: String,
    pub reply_to: Option<String>,
    pub transport: String,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i32>,
    pub smtp_tls: Option<String>,
    pub smtp_username: Option<String>,
    pub sealed_secret: Option<String>,
    pub daily_cap: i32,
    pub min_gap_secs: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The SMTP columns of `transport` (all `None` for SendGrid).
fn smtp_columns(transport: &Transport) -> (Option<&str>, Option<i32>, Option<&str>, Option<&str>) {
    match transport {
        Transport::Smtp {
            host,
            port,
            tls,
            username,
        } => (
            Some(host.as_str()),
            Some(*port),
            Some(tls.as_str()),
            username.as_deref(),
        ),
        Transport::Sendgrid => (None, None, None, None),
    }
}

/// Another of the account's senders has the address (compared case-insensitively).
pub const ADDRESS_TAKEN: &str = "email_senders_account_email";
/// A SendGrid sender without an API key (a new one, or an SMTP sender switched over).
pub const KEY_MISSING: &str = "email_senders_sendgrid_key";
const CONSTRAINTS: &[&str] = &[ADDRESS_TAKEN, KEY_MISSING];

/// Adds a sender.
pub async fn insert(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    fields: &SenderFields,
) -> Result<Written<SenderRow>, sqlx::Error> {
    let (host, port, tls, username) = smtp_columns(&fields.transport);
    let inserted = sqlx::query_as!(
        SenderRow,
        "insert into email_senders (id, account_id, from_name, from_email, reply_to, transport,
                                    smtp_host, smtp_port, smtp_tls, smtp_username,
                                    sealed_secret, daily_cap, min_gap_secs)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         returning id, from_name, from_email, reply_to, transport, smtp_host, smtp_port,
                   smtp_tls, smtp_username, sealed_secret, daily_cap, min_gap_secs,
                   created_at, updated_at",
        Uuid::now_v7(),
        account_id,
        fields.from_name,
        fields.from_email,
        fields.reply_to,
        fields.transport.kind(),
        host,
        port,
        tls,
        username,
        fields.secret.sealed(),
        fields.daily_cap,
        fields.min_gap_secs,
    )
    .fetch_optional(executor)
    .await;
    Written::from_result(inserted, CONSTRAINTS)
}

/// The account's sender `id`; `None` when the account has no such sender.
pub async fn get(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<SenderRow>, sqlx::Error> {
    sqlx::query_as!(
        SenderRow,
        "select id, from_name, from_email, reply_to, transport, smtp_host, smtp_port, smtp_tls,
                smtp_username, sealed_secret, daily_cap, min_gap_secs, created_at, updated_at
         from email_senders where account_id = $1 and id = $2",
        account_id,
        id,
    )
    .fetch_optional(executor)
    .await
}

/// A page of the account's senders, newest first, after the keyset position `after`.
pub async fn list(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<SenderRow>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        SenderRow,
        "select id, from_name, from_email, reply_to, transport, smtp_host, smtp_port, smtp_tls,
                smtp_username, sealed_secret, daily_cap, min_gap_secs, created_at, updated_at
         from email_senders
         where account_id = $1 and ($2::timestamptz is null or (created_at, id) < ($2, $3))
         order by created_at desc, id desc
         limit $4",
        account_id,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(executor)
    .await
}

/// Replaces the fields of the account's sender `id` (see [`Secret::Keep`]).
pub async fn update(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
    fields: &SenderFields,
) -> Result<Written<SenderRow>, sqlx::Error> {
    let (host, port, tls, username) = smtp_columns(&fields.transport);
    let updated = sqlx::query_as!(
        SenderRow,
        "update email_senders set from_name = $3, from_email = $4, reply_to = $5,
             transport = $6, smtp_host = $7, smtp_port = $8, smtp_tls = $9, smtp_username = $10,
             sealed_secret = case when $14 and transport = $6 then sealed_secret else $11 end,
             daily_cap = $12, min_gap_secs = $13
         where account_id = $1 and id = $2
         returning id, from_name, from_email, reply_to, transport, smtp_host, smtp_port,
                   smtp_tls, smtp_username, sealed_secret, daily_cap, min_gap_secs,
                   created_at, updated_at",
        account_id,
        id,
        fields.from_name,
        fields.from_email,
        fields.reply_to,
        fields.transport.kind(),
        host,
        port,
        tls,
        username,
        fields.secret.sealed(),
        fields.daily_cap,
        fields.min_gap_secs,
        fields.secret.keep(),
    )
    .fetch_optional(executor)
    .await;
    Written::from_result(updated, CONSTRAINTS)
}

/// A campaign sends from the sender being deleted.
pub const IN_USE: &str = "campaign_senders_sender_id_fkey";

/// Deletes the account's sender `id` (`Refused(IN_USE)` while a campaign sends from it).
pub async fn delete(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<Written<Uuid>, sqlx::Error> {
    let deleted = sqlx::query_scalar!(
        "delete from email_senders where account_id = $1 and id = $2 returning id",
        account_id,
        id,
    )
    .fetch_optional(executor)
    .await;
    Written::from_result(deleted, &[IN_USE])
}
