//! `campaign_prospects`: who a campaign writes to. Adding people is idempotent (a person is a
//! prospect of a campaign once), and a person the account has suppressed is added `skipped`
//! with the suppression's reason rather than left out silently.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

/// What [`add`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Added {
    /// Newly added and `active`.
    pub added: i64,
    /// Prospects of the campaign already, left as they were.
    pub already: i64,
    /// Newly added as `skipped` (suppressed): (person, e-mail, reason).
    pub skipped: Vec<(Uuid, String, String)>,
}

/// Adds the account's people `person_ids` (distinct, checked to be the account's by the
/// caller with [`unknown_people`]) to the campaign, in the caller's transaction.
pub async fn add(
    conn: &mut PgConnection,
    account_id: Uuid,
    campaign_id: Uuid,
    person_ids: &[Uuid],
) -> Result<Added, sqlx::Error> {
    let rows = sqlx::query!(
        r#"insert into campaign_prospects (campaign_id, person_id, state, skip_reason)
         select $2, p.id,
                case when s.reason is null then 'active' else 'skipped' end,
                case when s.reason is null then null else 'suppressed: ' || s.reason end
         from people p
         left join suppressions s on s.account_id = $1 and lower(s.email) = lower(p.email)
         where p.account_id = $1 and p.id = any($3)
         on conflict (campaign_id, person_id) do nothing
         returning person_id, state, skip_reason"#,
        account_id,
        campaign_id,
        person_ids,
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut added = Added::default();
    let mut skipped_ids = Vec::new();
    for row in &rows {
        if row.state == "skipped" {
            skipped_ids.push(row.person_id);
        } else {
            added.added += 1;
        }
    }
    added.already = i64::try_from(person_ids.len() - rows.len()).unwrap_or(0);
    if !skipped_ids.is_empty() {
        let skipped = sqlx::query!(
            r#"select p.id, p.email, cp.skip_reason as "reason!"
             from campaign_prospects cp join people p on p.id = cp.person_id
             where cp.campaign_id = $1 and cp.person_id = any($2)
             order by p.email"#,
            campaign_id,
            &skipped_ids,
        )
        .fetch_all(&mut *conn)
        .await?;
        added.skipped = skipped
            .into_iter()
            .map(|row| (row.id, row.email, row.reason))
            .collect();
    }
    Ok(added)
}

/// The positions in `person_ids` of ids that are not the account's people.
pub async fn unknown_people(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    person_ids: &[Uuid],
) -> Result<Vec<usize>, sqlx::Error> {
    let known: Vec<Uuid> = sqlx::query_scalar!(
        "select id from people where account_id = $1 and id = any($2)",
        account_id,
        person_ids,
    )
    .fetch_all(executor)
    .await?;
    Ok(person_ids
        .iter()
        .enumerate()
        .filter(|(_, id)| !known.contains(id))
        .map(|(index, _)| index)
        .collect())
}

#[derive(Debug, Clone, FromRow)]
pub struct ProspectRow {
    pub person_id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub state: String,
    pub skip_reason: Option<String>,
    pub added_at: DateTime<Utc>,
}

/// A page of the campaign's prospects in the order they were added, of one state when
/// `state` is given, after the keyset position `after`.
pub async fn list(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
    state: Option<&str>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<ProspectRow>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        ProspectRow,
        "select cp.person_id, p.email, p.first_name, p.last_name, cp.state, cp.skip_reason,
                cp.added_at
         from campaign_prospects cp join people p on p.id = cp.person_id
         where cp.campaign_id = $1 and ($2::text is null or cp.state = $2)
           and ($3::timestamptz is null or (cp.added_at, cp.person_id) > ($3, $4))
         order by cp.added_at, cp.person_id
         limit $5",
        campaign_id,
        state,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(executor)
    .await
}

/// Who an unsubscribe reached: the campaign's account and the person's address.
#[derive(Debug, Clone, FromRow)]
pub struct Unsubscribed {
    pub account_id: Uuid,
    pub email: String,
}

/// Marks the person's prospect of the campaign `unsubscribed` if it was `active` (a reply, a
/// bounce or a skip stays what it was), in the caller's transaction. `None` when the campaign
/// or the prospect no longer exists.
pub async fn unsubscribe(
    conn: &mut PgConnection,
    campaign_id: Uuid,
    person_id: Uuid,
) -> Result<Option<Unsubscribed>, sqlx::Error> {
    let found = sqlx::query_as!(
        Unsubscribed,
        "select c.account_id, p.email
         from campaign_prospects cp
         join campaigns c on c.id = cp.campaign_id
         join people p on p.id = cp.person_id
         where cp.campaign_id = $1 and cp.person_id = $2
         for no key update of cp",
        campaign_id,
        person_id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if found.is_some() {
        sqlx::query!(
            "update campaign_prospects set state = 'unsubscribed'
             where campaign_id = $1 and person_id = $2 and state = 'active'",
            campaign_id,
            person_id,
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(found)
}
