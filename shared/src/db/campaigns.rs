//! `campaigns` with their `campaign_senders` (rotated, in order) and `campaign_steps`. A
//! campaign is written whole — its row, senders and steps in the caller's transaction — and
//! only while it is a `draft`; the senders and models it names are the account's own, locked
//! (`for key share`) while it is written so that they cannot be deleted under it.

use std::collections::HashMap;

use chrono::{DateTime, NaiveTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

/// A step as written.
#[derive(Debug, Clone)]
pub struct StepFields {
    pub delay_days: i32,
    pub model_id: Uuid,
    pub prompt: String,
}

/// A campaign as written (its state is not: it moves by its own transitions).
#[derive(Debug, Clone)]
pub struct CampaignFields {
    pub name: String,
    pub default_timezone: String,
    /// ISO weekdays, 1 = Monday.
    pub window_days: Vec<i16>,
    pub window_start: NaiveTime,
    pub window_end: NaiveTime,
    pub daily_cap: i32,
    pub new_prospects_per_day: i32,
    pub max_cost_microusd: Option<i64>,
    pub sender_ids: Vec<Uuid>,
    pub steps: Vec<StepFields>,
}

#[derive(Debug, Clone, FromRow)]
pub struct CampaignRow {
    pub id: Uuid,
    pub name: String,
    pub state: String,
    pub default_timezone: String,
    pub window_days: Vec<i16>,
    pub window_start: NaiveTime,
    pub window_end: NaiveTime,
    pub daily_cap: i32,
    pub new_prospects_per_day: i32,
    pub max_cost_microusd: Option<i64>,
    /// What generating its messages has cost so far.
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_microusd: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub struct StepRow {
    pub position: i32,
    pub delay_days: i32,
    pub model_id: Uuid,
    pub prompt: String,
}

/// A campaign with its senders (in rotation order) and steps.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub row: CampaignRow,
    pub sender_ids: Vec<Uuid>,
    pub steps: Vec<StepRow>,
}

/// Why a campaign could not be written.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    /// `sender_ids[i]` is not one of the account's senders.
    UnknownSender(usize),
    /// `steps[i].model_id` is not one of the account's models.
    UnknownModel(usize),
    /// The campaign is no longer a draft; its state.
    NotDraft(String),
}

/// Checks that every sender and model `fields` names is the account's, locking them until
/// the transaction ends.
async fn lock_references(
    conn: &mut PgConnection,
    account_id: Uuid,
    fields: &CampaignFields,
) -> Result<Option<Refusal>, sqlx::Error> {
    let senders: Vec<Uuid> = sqlx::query_scalar!(
        "select id from email_senders where account_id = $1 and id = any($2) for key share",
        account_id,
        &fields.sender_ids,
    )
    .fetch_all(&mut *conn)
    .await?;
    if let Some(index) = fields
        .sender_ids
        .iter()
        .position(|id| !senders.contains(id))
    {
        return Ok(Some(Refusal::UnknownSender(index)));
    }
    let model_ids: Vec<Uuid> = fields.steps.iter().map(|step| step.model_id).collect();
    let models: Vec<Uuid> = sqlx::query_scalar!(
        "select id from llm_models where account_id = $1 and id = any($2) for key share",
        account_id,
        &model_ids,
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(model_ids
        .iter()
        .position(|id| !models.contains(id))
        .map(Refusal::UnknownModel))
}

/// Writes the campaign's senders and steps (replacing any).
async fn write_parts(
    conn: &mut PgConnection,
    id: Uuid,
    fields: &CampaignFields,
) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from campaign_senders where campaign_id = $1", id)
        .execute(&mut *conn)
        .await?;
    sqlx::query!("delete from campaign_steps where campaign_id = $1", id)
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "insert into campaign_senders (campaign_id, position, sender_id)
         select $1, s.position, s.sender_id
         from unnest($2::uuid[]) with ordinality as s(sender_id, position)",
        id,
        &fields.sender_ids,
    )
    .execute(&mut *conn)
    .await?;
    let delays: Vec<i32> = fields.steps.iter().map(|step| step.delay_days).collect();
    let models: Vec<Uuid> = fields.steps.iter().map(|step| step.model_id).collect();
    let prompts: Vec<String> = fields
        .steps
        .iter()
        .map(|step| step.prompt.clone())
        .collect();
    sqlx::query!(
        "insert into campaign_steps (campaign_id, position, delay_days, model_id, prompt)
         select $1, s.position, s.delay_days, s.model_id, s.prompt
         from unnest($2::int[], $3::uuid[], $4::text[])
              with ordinality as s(delay_days, model_id, prompt, position)",
        id,
        &delays,
        &models,
        &prompts,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Creates a draft campaign in the caller's transaction.
pub async fn insert(
    conn: &mut PgConnection,
    account_id: Uuid,
    fields: &CampaignFields,
) -> Result<Result<Uuid, Refusal>, sqlx::Error> {
    if let Some(refusal) = lock_references(conn, account_id, fields).await? {
        return Ok(Err(refusal));
    }
    let id = sqlx::query_scalar!(
        "insert into campaigns (id, account_id, name, default_timezone, window_days,
                                window_start, window_end, daily_cap, new_prospects_per_day,
                                max_cost_microusd)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         returning id",
        Uuid::now_v7(),
        account_id,
        fields.name,
        fields.default_timezone,
        &fields.window_days,
        fields.window_start,
        fields.window_end,
        fields.daily_cap,
        fields.new_prospects_per_day,
        fields.max_cost_microusd,
    )
    .fetch_one(&mut *conn)
    .await?;
    write_parts(conn, id, fields).await?;
    Ok(Ok(id))
}

/// The state of the account's campaign `id`, locked until the transaction ends (a state
/// change, an edit or new prospects wait for each other); `None` when the account has none.
pub async fn lock(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "select state from campaigns where account_id = $1 and id = $2 for update",
        account_id,
        id,
    )
    .fetch_optional(conn)
    .await
}

/// A campaign sender's limits, in rotation order.
#[derive(Debug, Clone, FromRow)]
pub struct SenderLimitsRow {
    pub sender_id: Uuid,
    pub daily_cap: i32,
    pub min_gap_secs: i32,
}

/// The campaign's senders' limits, in rotation order.
pub async fn sender_limits(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Vec<SenderLimitsRow>, sqlx::Error> {
    sqlx::query_as!(
        SenderLimitsRow,
        "select s.id as sender_id, s.daily_cap, s.min_gap_secs
         from campaign_senders cs join email_senders s on s.id = cs.sender_id
         where cs.campaign_id = $1
         order by cs.position",
        id,
    )
    .fetch_all(executor)
    .await
}

/// The campaign's senders' addresses, by id.
pub async fn sender_addresses(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    let rows = sqlx::query!(
        "select s.id, s.from_email from campaign_senders cs
         join email_senders s on s.id = cs.sender_id
         where cs.campaign_id = $1",
        id,
    )
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.id, row.from_email))
        .collect())
}

/// Records the campaign's launch instant (the caller holds its lock).
pub async fn mark_launched(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("update campaigns set launched_at = now() where id = $1", id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves the campaign to `state` (the caller holds its lock and checked the move).
pub async fn set_state(conn: &mut PgConnection, id: Uuid, state: &str) -> Result<(), sqlx::Error> {
    sqlx::query!("update campaigns set state = $2 where id = $1", id, state)
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces a draft campaign's fields, senders and steps in the caller's transaction.
pub async fn update(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
    fields: &CampaignFields,
) -> Result<Result<(), Refusal>, sqlx::Error> {
    match lock(&mut *conn, account_id, id).await? {
        None => return Ok(Err(Refusal::NotFound)),
        Some(state) if state != "draft" => return Ok(Err(Refusal::NotDraft(state))),
        Some(_) => {}
    }
    if let Some(refusal) = lock_references(conn, account_id, fields).await? {
        return Ok(Err(refusal));
    }
    sqlx::query!(
        "update campaigns set name = $2, default_timezone = $3, window_days = $4,
             window_start = $5, window_end = $6, daily_cap = $7, new_prospects_per_day = $8,
             max_cost_microusd = $9
         where id = $1",
        id,
        fields.name,
        fields.default_timezone,
        &fields.window_days,
        fields.window_start,
        fields.window_end,
        fields.daily_cap,
        fields.new_prospects_per_day,
        fields.max_cost_microusd,
    )
    .execute(&mut *conn)
    .await?;
    write_parts(conn, id, fields).await?;
    Ok(Ok(()))
}

/// The account's campaigns `ids` with their senders and steps, in the order of `rows`.
async fn with_parts(
    executor: &mut PgConnection,
    rows: Vec<CampaignRow>,
) -> Result<Vec<Campaign>, sqlx::Error> {
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let senders = sqlx::query!(
        "select campaign_id, sender_id from campaign_senders
         where campaign_id = any($1) order by campaign_id, position",
        &ids,
    )
    .fetch_all(&mut *executor)
    .await?;
    let steps = sqlx::query!(
        "select campaign_id, position, delay_days, model_id, prompt from campaign_steps
         where campaign_id = any($1) order by campaign_id, position",
        &ids,
    )
    .fetch_all(&mut *executor)
    .await?;
    let mut sender_ids: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for sender in senders {
        sender_ids
            .entry(sender.campaign_id)
            .or_default()
            .push(sender.sender_id);
    }
    let mut step_rows: HashMap<Uuid, Vec<StepRow>> = HashMap::new();
    for step in steps {
        step_rows
            .entry(step.campaign_id)
            .or_default()
            .push(StepRow {
                position: step.position,
                delay_days: step.delay_days,
                model_id: step.model_id,
                prompt: step.prompt,
            });
    }
    Ok(rows
        .into_iter()
        .map(|row| Campaign {
            sender_ids: sender_ids.remove(&row.id).unwrap_or_default(),
            steps: step_rows.remove(&row.id).unwrap_or_default(),
            row,
        })
        .collect())
}

/// The account's campaign `id`.
pub async fn get(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<Campaign>, sqlx::Error> {
    let row = sqlx::query_as!(
        CampaignRow,
        "select id, name, state, default_timezone, window_days, window_start, window_end,
                daily_cap, new_prospects_per_day, max_cost_microusd, input_tokens, output_tokens,
                cost_microusd, created_at, updated_at
         from campaigns where account_id = $1 and id = $2",
        account_id,
        id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(with_parts(conn, vec![row]).await?.pop())
}

/// A page of the account's campaigns, newest first.
pub async fn list(
    conn: &mut PgConnection,
    account_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Campaign>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    let rows = sqlx::query_as!(
        CampaignRow,
        "select id, name, state, default_timezone, window_days, window_start, window_end,
                daily_cap, new_prospects_per_day, max_cost_microusd, input_tokens, output_tokens,
                cost_microusd, created_at, updated_at
         from campaigns
         where account_id = $1 and ($2::timestamptz is null or (created_at, id) < ($2, $3))
         order by created_at desc, id desc
         limit $4",
        account_id,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(&mut *conn)
    .await?;
    with_parts(conn, rows).await
}

/// Deletes a campaign that is not under way (`draft`, `completed` or `stopped`).
pub async fn delete(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<Result<(), Refusal>, sqlx::Error> {
    let found = sqlx::query!(
        r#"with target as (
             select id, state from campaigns where account_id = $1 and id = $2 for update),
         deleted as (
             delete from campaigns c using target t
             where c.id = t.id and t.state in ('draft', 'completed', 'stopped')
             returning c.id)
         select t.state as "state!", exists (select from deleted) as "deleted!" from target t"#,
        account_id,
        id,
    )
    .fetch_optional(executor)
    .await?;
    Ok(match found {
        None => Err(Refusal::NotFound),
        Some(row) if !row.deleted => Err(Refusal::NotDraft(row.state)),
        Some(_) => Ok(()),
    })
}
