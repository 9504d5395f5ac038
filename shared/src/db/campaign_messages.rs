//! `campaign_messages`: the e-mails a campaign's LLM jobs write, one per prospect and step.
//!
//! Generating plans the first step of every active prospect; each message written plans the
//! prospect's next step (whose prompt may quote it). A message that cannot be written fails
//! (`failed`, with the reason) and the prospect's later steps are `blocked`; reaching the
//! campaign's cost limit blocks every message still pending. The campaign moves from
//! `generating` to `ready` in the same transaction as its last pending message ends.
//!
//! Every write that ends a message locks the campaign row first (`for update`), so the cost
//! total, the readiness check and a concurrent stop or regeneration see one order.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

use super::people::Attributes;
use crate::effects::{EffectKind, EffectState};
use crate::telemetry;

/// Creates the messages of every active prospect and step (those missing) and plans the
/// first step's jobs, in the caller's transaction (the campaign locked by the caller).
/// Returns the number of jobs planned.
pub async fn create_and_plan(
    conn: &mut PgConnection,
    account_id: Uuid,
    campaign_id: Uuid,
    queue: &str,
) -> Result<usize, sqlx::Error> {
    sqlx::query!(
        "insert into campaign_messages (account_id, campaign_id, person_id, position)
         select $1, cp.campaign_id, cp.person_id, s.position
         from campaign_prospects cp
         join campaign_steps s on s.campaign_id = cp.campaign_id
         where cp.campaign_id = $2 and cp.state = 'active'
         order by cp.added_at, cp.person_id, s.position
         on conflict (campaign_id, person_id, position) do nothing",
        account_id,
        campaign_id,
    )
    .execute(&mut *conn)
    .await?;
    let first: Vec<Uuid> = sqlx::query_scalar!(
        "select id from campaign_messages
         where campaign_id = $1 and position = 1 and state = 'pending' and effect_id is null",
        campaign_id,
    )
    .fetch_all(&mut *conn)
    .await?;
    plan_runs(conn, queue, &first).await
}

/// Plans a new run of each message of `ids` (a job keyed by the message and its run count,
/// so planning the same run twice is one job), leaving it `pending`. Returns how many.
async fn plan_runs(
    conn: &mut PgConnection,
    queue: &str,
    ids: &[Uuid],
) -> Result<usize, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let request_id = telemetry::request_id();
    // `runs` is read under the row lock, so two plans of one message number their runs apart
    let planned = sqlx::query_scalar!(
        r#"with next as (
             select id, account_id, campaign_id, runs + 1 as run, gen_random_uuid() as effect_id
             from campaign_messages where id = any($1) for update),
         job as (
             insert into effects (id, account_id, kind, queue, idempotency_key, payload, due_at,
                                  next_attempt_at, request_id)
             select n.effect_id, n.account_id, $2, $3, 'generation:' || n.id || ':' || n.run,
                    jsonb_build_object('campaign_id', n.campaign_id, 'message_id', n.id),
                    now(), now(), $4
             from next n
             returning id)
         update campaign_messages m
         set runs = n.run, effect_id = n.effect_id, state = 'pending', error = null
         from next n
         where m.id = n.id and n.effect_id in (select id from job)
         returning m.id"#,
        ids,
        EffectKind::Generation.as_str(),
        queue,
        request_id.as_deref(),
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(planned.len())
}

/// What a generation job needs: the message, its campaign's state and budget, the step's
/// prompt and model, the provider, the prospect, and the prospect's earlier steps' texts.
#[derive(Debug, Clone, FromRow)]
pub struct Job {
    pub id: Uuid,
    pub account_id: Uuid,
    pub campaign_id: Uuid,
    pub person_id: Uuid,
    pub position: i32,
    pub state: String,
    pub effect_id: Option<Uuid>,
    pub campaign_state: String,
    pub max_cost_microusd: Option<i64>,
    pub campaign_cost_microusd: i64,
    pub prompt: String,
    pub model: String,
    pub input_microusd_per_mtok: i64,
    pub output_microusd_per_mtok: i64,
    pub provider_id: Uuid,
    pub base_url: String,
    pub sealed_api_key: String,
    pub requests_per_minute: i32,
    pub tokens_per_minute: i32,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    pub title: String,
    pub timezone: Option<String>,
    pub attributes: Json<Attributes>,
}

/// An earlier step's text, for the prompt's `stepN.subject` / `stepN.body`.
#[derive(Debug, Clone, FromRow)]
pub struct EarlierStep {
    pub position: i32,
    pub subject: String,
    pub body: String,
}

/// The job of message `id`, with the prospect's earlier steps as written.
pub async fn job(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<(Job, Vec<EarlierStep>)>, sqlx::Error> {
    let Some(job) = sqlx::query_as!(
        Job,
        r#"select m.id, m.account_id, m.campaign_id, m.person_id, m.position, m.state,
                  m.effect_id, c.state as campaign_state, c.max_cost_microusd,
                  c.cost_microusd as campaign_cost_microusd, s.prompt, md.model,
                  md.input_microusd_per_mtok, md.output_microusd_per_mtok,
                  pr.id as provider_id, pr.base_url, pr.sealed_api_key,
                  pr.requests_per_minute, pr.tokens_per_minute,
                  p.email, p.first_name, p.last_name, p.company, p.title, p.timezone,
                  p.attributes as "attributes: Json<Attributes>"
           from campaign_messages m
           join campaigns c on c.id = m.campaign_id
           join campaign_steps s on s.campaign_id = m.campaign_id and s.position = m.position
           join llm_models md on md.id = s.model_id
           join llm_providers pr on pr.id = md.provider_id
           join people p on p.id = m.person_id
           where m.id = $1"#,
        id,
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let earlier = sqlx::query_as!(
        EarlierStep,
        r#"select position, subject as "subject!", body as "body!" from campaign_messages
           where campaign_id = $1 and person_id = $2 and position < $3 and state = 'done'
           order by position"#,
        job.campaign_id,
        job.person_id,
        job.position,
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some((job, earlier)))
}

/// Tokens and cost of one call, added to the message and the campaign.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spent {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_microusd: i64,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Written {
        subject: String,
        body: String,
    },
    /// The run failed: the message is `failed` with this reason.
    Failed(String),
}

/// Records how the run of job `effect_id` ended, with what it spent, in one transaction.
/// Returns `false` when the message has moved on (a newer run, a stop): only the spending is
/// recorded then.
pub async fn finish(
    conn: &mut PgConnection,
    campaign_id: Uuid,
    id: Uuid,
    effect_id: Uuid,
    ending: &Ending,
    spent: Spent,
) -> Result<bool, sqlx::Error> {
    // the campaign, not the message, is locked first (as everywhere) and found by its own id:
    // a message deleted with its prospect meanwhile still has its cost recorded
    if !lock_campaign(conn, campaign_id).await? {
        return Ok(false);
    }
    add_spent(conn, id, campaign_id, spent).await?;
    let (state, subject, body, error) = match ending {
        Ending::Written { subject, body } => ("done", Some(subject), Some(body), None),
        Ending::Failed(reason) => ("failed", None, None, Some(reason)),
    };
    let ended = sqlx::query!(
        "update campaign_messages set state = $3,
             subject = coalesce($4, subject), body = coalesce($5, body), error = $6,
             written_at = case when $3 = 'done' then now() else written_at end,
             edited_at = case when $3 = 'done' then null else edited_at end
         where id = $1 and effect_id = $2
           and (state = 'pending' or (state = 'failed' and $3 = 'done'))
         returning person_id, position",
        id,
        effect_id,
        state,
        subject.map(String::as_str),
        body.map(String::as_str),
        error.map(String::as_str),
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(ended) = ended else {
        return Ok(false);
    };
    let queue = queue_of(conn, effect_id).await?;
    after_ending(
        conn,
        campaign_id,
        ended.person_id,
        ended.position,
        state,
        &queue,
    )
    .await?;
    Ok(true)
}

/// Puts a message whose job found an earlier step not written (being rewritten) back to
/// waiting for it: no job, planned again once that step is written. `false` when the message
/// has moved on.
pub async fn wait_again(
    conn: &mut PgConnection,
    id: Uuid,
    effect_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let waiting = sqlx::query!(
        "update campaign_messages set effect_id = null
         where id = $1 and effect_id = $2 and state in ('pending', 'failed')",
        id,
        effect_id,
    )
    .execute(conn)
    .await?;
    Ok(waiting.rows_affected() == 1)
}

/// Blocks every pending message of the campaign with `reason` and cancels their jobs not yet
/// started (the cost limit reached, the campaign stopped); the campaign becomes `ready` if
/// it was generating. The caller holds the campaign's lock.
pub async fn block_pending(
    conn: &mut PgConnection,
    campaign_id: Uuid,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    // the jobs are read before the update clears them (`returning` would give the new value)
    let blocked = sqlx::query_scalar!(
        "with blocked as (
             select id, effect_id from campaign_messages
             where campaign_id = $1 and state = 'pending' for update),
         cleared as (
             update campaign_messages m set state = 'blocked', error = $2, effect_id = null
             from blocked b where m.id = b.id)
         select effect_id from blocked",
        campaign_id,
        reason,
    )
    .fetch_all(&mut *conn)
    .await?;
    let jobs: Vec<Uuid> = blocked.iter().flatten().copied().collect();
    sqlx::query!(
        "update effects set state = 'canceled', last_error = $2, finished_at = now()
         where id = any($1) and state = any($3)",
        &jobs,
        reason,
        &EffectState::CANCELABLE[..] as &[EffectState],
    )
    .execute(&mut *conn)
    .await?;
    mark_ready_if_done(conn, campaign_id).await?;
    Ok(u64::try_from(blocked.len()).unwrap_or(u64::MAX))
}

/// Locks the campaign (`false`: it was deleted).
async fn lock_campaign(conn: &mut PgConnection, campaign_id: Uuid) -> Result<bool, sqlx::Error> {
    let found = sqlx::query_scalar!(
        "select id from campaigns where id = $1 for update",
        campaign_id,
    )
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// Locks the campaigns the person is a prospect of, before the person (and with them their
/// messages) is deleted: campaign first, as every writer of messages locks.
pub async fn lock_campaigns_of_person(
    conn: &mut PgConnection,
    account_id: Uuid,
    person_id: Uuid,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "select c.id from campaigns c
         join campaign_prospects cp on cp.campaign_id = c.id
         where c.account_id = $1 and cp.person_id = $2
         order by c.id
         for update of c",
        account_id,
        person_id,
    )
    .fetch_all(conn)
    .await
}

/// After a prospect's messages went (the person was deleted), each of `campaigns` that was
/// generating only for them is `ready`. The caller holds their locks.
pub async fn mark_ready_after_removal(
    conn: &mut PgConnection,
    campaigns: &[Uuid],
) -> Result<(), sqlx::Error> {
    for campaign_id in campaigns {
        mark_ready_if_done(conn, *campaign_id).await?;
    }
    Ok(())
}

async fn add_spent(
    conn: &mut PgConnection,
    id: Uuid,
    campaign_id: Uuid,
    spent: Spent,
) -> Result<(), sqlx::Error> {
    if spent == Spent::default() {
        return Ok(());
    }
    // one statement for both rows: the message's own spending and its campaign's total
    sqlx::query!(
        "with message as (
             update campaign_messages set input_tokens = input_tokens + $3,
                 output_tokens = output_tokens + $4, cost_microusd = cost_microusd + $5
             where id = $1)
         update campaigns set input_tokens = input_tokens + $3,
             output_tokens = output_tokens + $4, cost_microusd = cost_microusd + $5
         where id = $2",
        id,
        campaign_id,
        spent.input_tokens,
        spent.output_tokens,
        spent.cost_microusd,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn queue_of(conn: &mut PgConnection, effect_id: Uuid) -> Result<String, sqlx::Error> {
    sqlx::query_scalar!("select queue from effects where id = $1", effect_id)
        .fetch_one(conn)
        .await
}

/// What a message ending as `state` at `position` does to the prospect's later steps: a
/// written one unblocks them and plans the next; a failed one blocks them. Then the campaign
/// is `ready` if nothing is pending any more.
async fn after_ending(
    conn: &mut PgConnection,
    campaign_id: Uuid,
    person_id: Uuid,
    position: i32,
    state: &str,
    queue: &str,
) -> Result<(), sqlx::Error> {
    if state == "done" {
        // the next step no longer waits for this one: unblocked if it was blocked for want of
        // an earlier step (not one the cost limit or a stop blocked), and planned; each later
        // step follows in turn as the one before it is written
        sqlx::query!(
            "update campaign_messages set state = 'pending', error = null
             where campaign_id = $1 and person_id = $2 and position = $3 + 1
               and state = 'blocked' and error like 'step % was not written'",
            campaign_id,
            person_id,
            position,
        )
        .execute(&mut *conn)
        .await?;
        let next: Vec<Uuid> = sqlx::query_scalar!(
            "select id from campaign_messages
             where campaign_id = $1 and person_id = $2 and position = $3 + 1
               and state = 'pending' and effect_id is null",
            campaign_id,
            person_id,
            position,
        )
        .fetch_all(&mut *conn)
        .await?;
        if plan_runs(conn, queue, &next).await? > 0 {
            // a `ready` campaign has something to write again (a failed step edited by hand)
            sqlx::query!(
                "update campaigns set state = 'generating' where id = $1 and state = 'ready'",
                campaign_id,
            )
            .execute(&mut *conn)
            .await?;
        }
    } else {
        sqlx::query!(
            "update campaign_messages set state = 'blocked', effect_id = null,
                 error = 'step ' || $3 || ' was not written'
             where campaign_id = $1 and person_id = $2 and position > $3 and state = 'pending'",
            campaign_id,
            person_id,
            position,
        )
        .execute(&mut *conn)
        .await?;
    }
    mark_ready_if_done(conn, campaign_id).await
}

async fn mark_ready_if_done(conn: &mut PgConnection, campaign_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update campaigns set state = 'ready'
         where id = $1 and state = 'generating'
           and not exists (select from campaign_messages
                           where campaign_id = $1 and state = 'pending')",
        campaign_id,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// States of a job still to run or running: its message is being written. A `pending`
/// message whose job ended otherwise (`dead` after a long outage, canceled through the jobs
/// API) can be edited or regenerated.
const LIVE: [EffectState; 4] = [
    EffectState::Planned,
    EffectState::Queued,
    EffectState::Sending,
    EffectState::Retrying,
];

/// Why the user's change to a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The account has no such campaign, or the campaign no such message.
    NotFound,
    /// The campaign is not `generating` or `ready`: its state.
    CampaignState,
    /// The message is being written (`pending`, its job still to run or running).
    Pending,
    /// An earlier step of the prospect is not written yet.
    EarlierStepMissing,
}

/// Writes the user's own subject and body to a message that is not being written (checked
/// by the caller with `llm::check_email`), as a written run would: the next step is unblocked
/// and planned. The caller holds the campaign's lock.
pub async fn edit(
    conn: &mut PgConnection,
    campaign_id: Uuid,
    id: Uuid,
    subject: &str,
    body: &str,
    queue: &str,
) -> Result<Result<(), Refusal>, sqlx::Error> {
    let Some(current) = sqlx::query!(
        r#"select m.person_id, m.position,
                  (m.state = 'pending' and e.state = any($3)) as "busy!"
           from campaign_messages m left join effects e on e.id = m.effect_id
           where m.id = $1 and m.campaign_id = $2 for update of m"#,
        id,
        campaign_id,
        &LIVE[..] as &[EffectState],
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(Err(Refusal::NotFound));
    };
    if current.busy {
        return Ok(Err(Refusal::Pending));
    }
    sqlx::query!(
        "update campaign_messages set state = 'done', subject = $2, body = $3, error = null,
             edited_at = now()
         where id = $1",
        id,
        subject,
        body,
    )
    .execute(&mut *conn)
    .await?;
    after_ending(
        conn,
        campaign_id,
        current.person_id,
        current.position,
        "done",
        queue,
    )
    .await?;
    Ok(Ok(()))
}

/// Plans a new run of a message that is not being written and whose earlier steps are
/// written; the campaign goes back to `generating`. Later steps already written keep their
/// text; a later step still to be written waits for this one again (its job finds this step
/// not written and stands down). The caller holds the campaign's lock.
pub async fn regenerate(
    conn: &mut PgConnection,
    campaign_id: Uuid,
    id: Uuid,
    queue: &str,
) -> Result<Result<(), Refusal>, sqlx::Error> {
    let Some(current) = sqlx::query!(
        r#"select (m.state = 'pending' and e.state = any($3)) as "busy!",
                  (select count(*) from campaign_messages earlier
                   where earlier.campaign_id = m.campaign_id
                     and earlier.person_id = m.person_id
                     and earlier.position < m.position and earlier.state <> 'done')
                      as "earlier_missing!"
           from campaign_messages m left join effects e on e.id = m.effect_id
           where m.id = $1 and m.campaign_id = $2 for update of m"#,
        id,
        campaign_id,
        &LIVE[..] as &[EffectState],
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(Err(Refusal::NotFound));
    };
    if current.busy {
        return Ok(Err(Refusal::Pending));
    }
    if current.earlier_missing > 0 {
        return Ok(Err(Refusal::EarlierStepMissing));
    }
    plan_runs(conn, queue, &[id]).await?;
    sqlx::query!(
        "update campaigns set state = 'generating' where id = $1 and state = 'ready'",
        campaign_id,
    )
    .execute(&mut *conn)
    .await?;
    Ok(Ok(()))
}

/// One step's messages by state; `running` are pending ones whose job is being worked on.
#[derive(Debug, Clone, FromRow)]
pub struct StepProgress {
    pub position: i32,
    pub pending: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
    pub blocked: i64,
}

/// Each step's messages by state, in step order (steps with no messages yet are missing).
pub async fn progress(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
) -> Result<Vec<StepProgress>, sqlx::Error> {
    sqlx::query_as!(
        StepProgress,
        r#"select m.position,
                  count(*) filter (where m.state = 'pending') as "pending!",
                  count(*) filter (where m.state = 'pending' and e.state = 'sending') as "running!",
                  count(*) filter (where m.state = 'done') as "done!",
                  count(*) filter (where m.state = 'failed') as "failed!",
                  count(*) filter (where m.state = 'blocked') as "blocked!"
           from campaign_messages m
           left join effects e on e.id = m.effect_id
           where m.campaign_id = $1
           group by m.position order by m.position"#,
        campaign_id,
    )
    .fetch_all(executor)
    .await
}

/// A message as the API shows it.
#[derive(Debug, Clone, FromRow)]
pub struct MessageRow {
    pub id: Uuid,
    pub person_id: Uuid,
    pub email: String,
    pub position: i32,
    pub state: String,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub error: Option<String>,
    pub effect_id: Option<Uuid>,
    pub runs: i32,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_microusd: i64,
    pub written_at: Option<DateTime<Utc>>,
    pub edited_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Which messages a page lists.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter<'a> {
    pub position: Option<i32>,
    pub state: Option<&'a str>,
    pub person_id: Option<Uuid>,
    pub after: Option<(DateTime<Utc>, Uuid)>,
}

/// A page of the campaign's messages in the order they were created (those created together,
/// by one generate, in id order).
pub async fn list(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
    filter: &MessageFilter<'_>,
    limit: i64,
) -> Result<Vec<MessageRow>, sqlx::Error> {
    let (after_at, after_id) = filter.after.unzip();
    sqlx::query_as!(
        MessageRow,
        "select m.id, m.person_id, p.email, m.position, m.state, m.subject, m.body, m.error,
                m.effect_id, m.runs, m.input_tokens, m.output_tokens, m.cost_microusd,
                m.written_at, m.edited_at, m.created_at
         from campaign_messages m join people p on p.id = m.person_id
         where m.campaign_id = $1 and ($2::int is null or m.position = $2)
           and ($3::text is null or m.state = $3) and ($4::uuid is null or m.person_id = $4)
           and ($5::timestamptz is null or (m.created_at, m.id) > ($5, $6))
         order by m.created_at, m.id
         limit $7",
        campaign_id,
        filter.position,
        filter.state,
        filter.person_id,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(executor)
    .await
}

/// One message of the campaign.
pub async fn get(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
    id: Uuid,
) -> Result<Option<MessageRow>, sqlx::Error> {
    sqlx::query_as!(
        MessageRow,
        "select m.id, m.person_id, p.email, m.position, m.state, m.subject, m.body, m.error,
                m.effect_id, m.runs, m.input_tokens, m.output_tokens, m.cost_microusd,
                m.written_at, m.edited_at, m.created_at
         from campaign_messages m join people p on p.id = m.person_id
         where m.campaign_id = $1 and m.id = $2",
        campaign_id,
        id,
    )
    .fetch_optional(executor)
    .await
}

/// The payload of a generation job.
pub fn message_of(payload: &Value) -> Option<Uuid> {
    payload.get("message_id")?.as_str()?.parse().ok()
}

/// An active prospect whose first e-mail is written, as the launch plan needs them.
#[derive(Debug, Clone, FromRow)]
pub struct Writable {
    pub person_id: Uuid,
    pub email: String,
    /// The person's own zone; `None`: the campaign's.
    pub timezone: Option<String>,
}

/// The active prospects whose step 1 is written, in the order they were added, and how many
/// active prospects are not written yet (pending, failed or blocked).
pub async fn first_steps_written(
    conn: &mut PgConnection,
    campaign_id: Uuid,
) -> Result<(Vec<Writable>, i64), sqlx::Error> {
    let written = sqlx::query_as!(
        Writable,
        "select cp.person_id, p.email, p.timezone
         from campaign_prospects cp
         join people p on p.id = cp.person_id
         join campaign_messages m on m.campaign_id = cp.campaign_id
                                 and m.person_id = cp.person_id and m.position = 1
         where cp.campaign_id = $1 and cp.state = 'active' and m.state = 'done'
         order by cp.added_at, cp.person_id",
        campaign_id,
    )
    .fetch_all(&mut *conn)
    .await?;
    let not_written = sqlx::query_scalar!(
        r#"select count(*) as "count!" from campaign_prospects cp
           where cp.campaign_id = $1 and cp.state = 'active'
             and not exists (select from campaign_messages m
                             where m.campaign_id = cp.campaign_id and m.person_id = cp.person_id
                               and m.position = 1 and m.state = 'done')"#,
        campaign_id,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok((written, not_written))
}
